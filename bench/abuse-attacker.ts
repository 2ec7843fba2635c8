/**
 * The hostile side of `bench/abuse.ts`, run as its own process so that its
 * sending never shares an event loop with the well-behaved clients it is
 * measured against. One attack per process, until the parent says stop (or
 * the time is up); it then reports what it sent and what came back.
 *
 * Every attack keeps at most WINDOW frames unanswered per socket and sends
 * as fast as the socket and that window allow; a socket the server closes is
 * replaced at once, as a hostile client would.
 *
 * - `storm`: Subscribes with a cursor of another history (each one asks for
 *   a full sync of the whole table) from STORM_SOCKETS sockets, each sending
 *   the next one as soon as the last was answered (pipelined Subscribes of
 *   one connection merge into the one waiting, so this asks for more).
 * - `flood`: pushes of 64 valid creates each, pipelined over rotating client
 *   ids, each id's seqs rewound to what the server last said it expects.
 * - `junk`: malformed JSON, unknown tags, and frames over the size limit.
 * - `sockets`: 200 sockets opened at once, each subscribing from scratch.
 *
 * Usage (by the parent): node bench/abuse-attacker.ts <mode> <ws room url> <seconds>
 */
const WINDOW = 1_000
const PUSH_SIZE = 64
const FLOOD_IDS = 50
const SOCKETS = 200
const STORM_SOCKETS = 4

const [mode, url, seconds] = process.argv.slice(2) as [string, string, string]
const until = Date.now() + Number(seconds) * 1000

const stats = {
  mode,
  sockets: 0,
  refusedSockets: 0,
  closed: {} as Record<string, number>,
  framesSent: 0,
  bytesSent: 0,
  answers: 0,
  synced: 0,
  applied: 0,
  failures: {} as Record<string, number>,
  /** When (ms after the attack began) each close and each first refusal of a reason came. */
  events: [] as Array<{ readonly at: number; readonly what: string }>
}
const began = Date.now()
const recordEvent = (what: string) => {
  if (stats.events.length < 50) stats.events.push({ at: Date.now() - began, what })
}
let stopping = false

const count = (into: Record<string, number>, key: string) => {
  into[key] = (into[key] ?? 0) + 1
}

/** One attacking socket: sends `next()` frames while fewer than WINDOW are unanswered, reopens when closed. */
const attack = (
  next: () => string | undefined,
  onFrame: (data: string) => boolean = () => true,
  reopen = true,
  opened: () => void = () => {}
): Promise<void> =>
  new Promise((done) => {
    const open = () => {
      if (stopping || Date.now() > until) return done()
      opened()
      const ws = new WebSocket(url)
      let unanswered = 0
      stats.sockets++
      const pump = () => {
        while (!stopping && ws.readyState === WebSocket.OPEN && unanswered < WINDOW && Date.now() < until) {
          const frame = next()
          if (frame === undefined) return
          ws.send(frame)
          unanswered++
          stats.framesSent++
          stats.bytesSent += frame.length
        }
      }
      ws.onopen = pump
      ws.onmessage = (event) => {
        const data = String(event.data)
        const tag = /^\{"_tag":"(\w+)"/.exec(data)?.[1]
        if (tag === "Failure") {
          const reason = /"reason":"(\w+)"/.exec(data)?.[1] ?? "?"
          if (stats.failures[reason] === undefined) recordEvent(`first ${reason}`)
          count(stats.failures, reason)
          if (reason === "TooManyConnections") stats.refusedSockets++
        }
        if (tag === "Synced") stats.synced++
        if ((tag === "Failure" || tag === "Synced" || tag === "Pushed") && onFrame(data)) {
          stats.answers++
          unanswered = Math.max(0, unanswered - 1)
        }
        // pumped on a later turn: the socket's receive path must not starve
        if (unanswered < WINDOW / 2) setImmediate(pump)
      }
      ws.onclose = (event) => {
        count(stats.closed, String(event.code))
        if (event.code !== 1013) recordEvent(`closed ${event.code}`)
        if (reopen) setTimeout(open, 0)
        else done()
      }
      ws.onerror = () => {}
    }
    open()
  })

const foreignHistory = "an-old-history-of-another-object"
const subscribeOld = JSON.stringify({ _tag: "Subscribe", channel: "todos", since: 1, history: foreignHistory })

const storm = () =>
  Promise.all(Array.from({ length: STORM_SOCKETS }, () => {
    // one Subscribe unanswered at a time: the next goes when the last is answered
    let waiting = false
    return attack(() => {
      if (waiting) return undefined
      waiting = true
      return subscribeOld
    }, (data) => {
      if (data.startsWith(`{"_tag":"Synced"`) || data.startsWith(`{"_tag":"Failure"`)) waiting = false
      return true
    }, true, () => {
      waiting = false
    })
  }))

const flood = () => {
  const sent = new Map<string, number>()
  const prefix = `flood-${process.pid}`
  let turn = 0
  let created = 0
  const next = () => {
    const clientId = `${prefix}-${turn++ % FLOOD_IDS}`
    const from = (sent.get(clientId) ?? 0) + 1
    const actions = Array.from({ length: PUSH_SIZE }, (_, i) => ({
      seq: from + i,
      action: { type: "create", payload: { id: `${clientId}-${created++}`, text: "flooding the room", completed: 0, priority: 1 } }
    }))
    sent.set(clientId, from + PUSH_SIZE - 1)
    return JSON.stringify({ _tag: "Push", channel: "todos", clientId, clientKey: `${clientId}-key-0123456789`, actions, confirmed: from - 1 })
  }
  // per client id, the seq the server last said it expects: a refused push is sent again from there
  const expected = new Map<string, number>()
  const onFrame = (data: string) => {
    if (data.startsWith(`{"_tag":"Pushed"`)) {
      const frame = JSON.parse(data) as { clientId: string; next: number; results: Array<{ reason?: string }> }
      stats.applied += frame.results.filter((r) => r.reason === undefined).length
      expected.set(frame.clientId, frame.next)
      // what the server did not decide is sent again from where it expects
      if (frame.clientId.startsWith(prefix)) sent.set(frame.clientId, Math.min(sent.get(frame.clientId) ?? 0, frame.next - 1))
    } else if (data.startsWith(`{"_tag":"Failure"`)) {
      const clientId = /"clientId":"([^"]+)"/.exec(data)?.[1]
      if (clientId !== undefined) sent.set(clientId, (expected.get(clientId) ?? 1) - 1)
    }
    return true
  }
  return attack(next, onFrame)
}

const junk = () => {
  const oversize = JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null, pad: "x".repeat(300 * 1024) })
  const kinds = [
    () => "{not json",
    () => JSON.stringify({ _tag: "Nonsense", channel: "todos" }),
    () => JSON.stringify({ _tag: "Push", channel: "todos", clientId: 7 }),
    () => oversize
  ]
  let i = 0
  return attack(() => kinds[i++ % kinds.length]!())
}

const sockets = () =>
  Promise.all(Array.from({ length: SOCKETS }, () => {
    let sent = false
    const subscribe = JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null })
    return attack(() => {
      if (sent) return undefined
      sent = true
      return subscribe
    }, () => true, false)
  }))

process.on("message", (message) => {
  if (message === "stop") stopping = true
})

const run = mode === "storm" ? storm : mode === "flood" ? flood : mode === "junk" ? junk : sockets
// the many-sockets attack holds its sockets open (each subscribed) until told to stop
const attacking = run()
const timer = setInterval(() => {
  if (stopping || Date.now() > until) {
    clearInterval(timer)
    process.send?.(stats)
    setTimeout(() => process.exit(0), 100)
  }
}, 50)
void attacking
