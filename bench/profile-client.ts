/**
 * Where the real client's time goes per action, in the client's process:
 * starts our worker (as `npm run bench` does), runs the throughput scenario
 * (1 client, 32 in flight) and the drain scenario (1,000 creates queued
 * offline, then the socket opens) with `createSyncClient`, and profiles the
 * measured part with the V8 profiler (node:inspector): the top functions by
 * self time, and src/client's by total time, in µs per action, beside the
 * client's CPU per action (process.cpuUsage) and the sizes of its pushes.
 * Not part of `npm run bench`; the profiler slows what it samples, so
 * compare figures of runs with PROFILE=0.
 *
 * - CLIENT_ROOTS: builds to compare in one session, comma-separated
 *   checkout roots (`.` is this one; `wire` the protocol-level bench
 *   client; `raw`, for `many` only, raw's bench client against the raw
 *   worker): the rounds alternate between them against the same worker.
 * - LOCAL=1: the client is answered in this process (no workerd), for its
 *   CPU alone.
 * - TIMELINE=1: the drain's phases (open, synced, first push, the server's
 *   share from push to reply and the client's from reply to next push);
 *   SETTLE=ms waits that long after queueing, before the socket opens.
 * - SCENARIO=tp|drain|both, or many (100 clients, 2 in flight each), or rt
 *   (round trips one action at a time);
 *   ROUNDS, TOTAL (throughput), DRAIN, TOP; SAVE, a path prefix: writes
 *   each build's first .cpuprofile.
 *
 *   PROFILE=0 CLIENT_ROOTS=../main,. node bench/profile-client.ts
 */
import { Session } from "node:inspector/promises"
import { writeFileSync } from "node:fs"
import { resolve } from "node:path"
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { clientUrl, connect, open } from "./clients.ts"
import { closedParty } from "./real.ts"
import { median, now, round } from "./stats.ts"
import { type Side, SIDES, start } from "./workers.ts"

const SCENARIO = process.env.SCENARIO ?? "both"
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const TOTAL = Number(process.env.TOTAL ?? 3000)
const DRAIN = Number(process.env.DRAIN ?? 1000)
const PROFILE = process.env.PROFILE !== "0"
const TOP = Number(process.env.TOP ?? 40)
const ROOTS = (process.env.CLIENT_ROOTS ?? ".").split(",")
const LOCAL = process.env.LOCAL === "1"
const TEXT = "a todo written by the benchmark"

type Create = typeof import("../src/client/index.ts").createSyncClient
/** `wire` in CLIENT_ROOTS: the protocol-level client instead of a build of the real one. */
const WIRE = (() => {
  throw new Error("profile: not a client")
}) as unknown as Create
/** `raw` in CLIENT_ROOTS: raw's bench client, against the raw worker (started only then). */
const RAW = (() => {
  throw new Error("profile: not a client")
}) as unknown as Create
let rawSide: Side | undefined
let rooms = 0
const room = (what: string) => `${what}-${Date.now().toString(36)}-${++rooms}`

const until = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 60_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`profile: timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 1))
  }
}

/** Sizes of the pushes a socket sent (reset per measured round). */
let pushSizes: Array<number> = []
/** When each push went and each reply came (ms), with TIMELINE=1. */
let timeline: Array<readonly [string, number]> = []
const countPushes = (ws: { send(data: string): void; addEventListener(type: "message", l: (e: { data?: unknown }) => void): void }) => {
  const send = ws.send.bind(ws)
  ws.send = (data: string) => {
    if (data.startsWith('{"_tag":"Push"')) {
      pushSizes.push((JSON.parse(data) as { actions: Array<unknown> }).actions.length)
      timeline.push(["push", now()])
    }
    send(data)
  }
  ws.addEventListener("open" as "message", () => timeline.push(["open", now()]))
  ws.addEventListener("message", (e) => {
    const text = String(e.data)
    if (text.startsWith('{"_tag":"Pushed"')) timeline.push(["pushed", now()])
    else if (text.startsWith('{"_tag":"SyncRows"')) timeline.push(["rows", now()])
    else if (text.startsWith('{"_tag":"Synced"')) timeline.push(["synced", now()])
  })
}

/** Throughput: one client keeps 32 creates in flight until `total` are confirmed; actions/s. */
const throughput = async (create: Create, side: Side | undefined, measure: <A>(f: () => Promise<A>) => Promise<A>) => {
  if (create === WIRE) return throughputWire(side!, measure)
  const ws = side === undefined ? new LocalServer() : await open(clientUrl(side, room("tp")))
  if (ws instanceof LocalServer) ws.open()
  countPushes(ws)
  const client = create({ channel: todos, socket: ws as never, maxInFlight: 32 })
  await until(() => client.getStatus().connection === "live", "live")
  try {
    return await measure(async () => {
      let next = 0
      const t0 = now()
      const lane = async () => {
        while (next < TOTAL) {
          const i = next++
          await client.send({ type: "create", payload: { id: `tp-${i}`, text: TEXT, completed: 0, priority: 1 } })
        }
      }
      await Promise.all(Array.from({ length: 32 }, lane))
      return TOTAL / ((now() - t0) / 1000)
    })
  } finally {
    await client.close()
    ws.close()
  }
}

/** Round trips one action at a time: `TOTAL` creates, each sent once the last is confirmed; the median ms. */
const roundTrips = async (create: Create, side: Side | undefined, measure: <A>(f: () => Promise<A>) => Promise<A>) => {
  if (create === WIRE) {
    const wire = await connect(side!, room("rt-wire"))
    await wire.sync(null)
    try {
      return await measure(() => sequential((i) => wire.create(`rt-${i}`, TEXT)))
    } finally {
      wire.close()
    }
  }
  const ws = side === undefined ? new LocalServer() : await open(clientUrl(side, room("rt")))
  if (ws instanceof LocalServer) ws.open()
  const client = create({ channel: todos, socket: ws as never, maxInFlight: 32 })
  await until(() => client.getStatus().connection === "live", "live")
  try {
    return await measure(() => sequential((i) => client.send({ type: "create", payload: { id: `rt-${i}`, text: TEXT, completed: 0, priority: 1 } })))
  } finally {
    await client.close()
    ws.close()
  }
}

const sequential = async (send: (i: number) => Promise<unknown>) => {
  const samples: Array<number> = []
  for (let i = 0; i < TOTAL; i++) {
    const t0 = now()
    await send(i)
    samples.push(now() - t0)
  }
  return median(samples)
}

/** Each client's creates, 2 in flight, until `TOTAL` are confirmed in all; actions/s. */
const twoInFlightEach = async (creates: ReadonlyArray<(id: string) => Promise<unknown>>): Promise<number> => {
  const per = Math.ceil(TOTAL / creates.length)
  const t0 = now()
  await Promise.all(creates.map(async (create, c) => {
    let next = 0
    const lane = async () => {
      while (next < per) await create(`tp-${c}-${next++}`)
    }
    await Promise.all([lane(), lane()])
  }))
  return (per * creates.length) / ((now() - t0) / 1000)
}

/** Throughput of 100 clients of one room, 2 creates in flight each, until `total` are confirmed; actions/s. */
const throughputMany = async (create: Create, side: Side | undefined, measure: <A>(f: () => Promise<A>) => Promise<A>) => {
  if (side === undefined) throw new Error("profile: many runs against the worker")
  if (create === WIRE || create === RAW) return throughputManyBench(create === RAW ? rawSide! : side, measure)
  const name = room("tp-many")
  const sockets = await Promise.all(Array.from({ length: 100 }, () => open(clientUrl(side, name))))
  const clients = sockets.map((ws) => create({ channel: todos, socket: ws as never, maxInFlight: 32 }))
  await until(() => clients.every((c) => c.getStatus().connection === "live"), "live")
  try {
    return await measure(() =>
      twoInFlightEach(clients.map((client) => (id) => client.send({ type: "create", payload: { id, text: TEXT, completed: 0, priority: 1 } })))
    )
  } finally {
    await Promise.all(clients.map((c) => c.close()))
    for (const ws of sockets) ws.close()
  }
}

/** `many` with the bench's own clients (bench/clients.ts): the protocol-level one, or raw's against the raw worker. */
const throughputManyBench = async (side: Side, measure: <A>(f: () => Promise<A>) => Promise<A>) => {
  const name = room("tp-many-bench")
  const clients = await Promise.all(Array.from({ length: 100 }, () => connect(side, name)))
  await Promise.all(clients.map((c) => c.sync(null)))
  try {
    return await measure(() => twoInFlightEach(clients.map((client) => (id) => client.create(id, TEXT))))
  } finally {
    for (const c of clients) c.close()
  }
}

/** The protocol-level client's throughput (bench/clients.ts), for reference. */
const throughputWire = async (side: Side, measure: <A>(f: () => Promise<A>) => Promise<A>) => {
  const client = await connect(side, room("tp-wire"))
  await client.sync(null)
  try {
    return await measure(async () => {
      let next = 0
      const t0 = now()
      const lane = async () => {
        while (next < TOTAL) await client.create(`tp-${next++}`, TEXT)
      }
      await Promise.all(Array.from({ length: 32 }, lane))
      return TOTAL / ((now() - t0) / 1000)
    })
  } finally {
    client.close()
  }
}

/** A LocalServer that opens at `reconnect`, for the drain. */
const localParty = () => {
  const server = new LocalServer()
  return Object.assign(server, { reconnect: () => server.open() })
}

/** Drain: `DRAIN` creates queued while the socket is closed, then it opens; ms to the last settle. */
const drain = async (create: Create, side: Side | undefined, measure: <A>(f: () => Promise<A>) => Promise<A>) => {
  if (create === WIRE) return drainWire(side!, measure)
  const party = side === undefined ? localParty() : closedParty(side, room("drain"))
  // before the client's listener: a reply's time is when it came, not when the client was done with it
  countPushes(party)
  const client = create({ channel: todos, socket: party })
  try {
    await client.ready
    const sends = Array.from({ length: DRAIN }, (_, i) =>
      client.send({ type: "create", payload: { id: `d-${i}`, text: TEXT, completed: 0, priority: 1 } }))
    await until(() => client.getStatus().pending === DRAIN, "the queue filled")
    if (process.env.SETTLE !== undefined) await new Promise((r) => setTimeout(r, Number(process.env.SETTLE)))
    return await measure(async () => {
      const t0 = now()
      party.reconnect()
      await Promise.all(sends)
      const end = now()
      if (process.env.TIMELINE === "1") {
        // the server's share (push to reply) and the client's (reply to next push), and the start (open to first push)
        let server = 0
        let client = 0
        let last = t0
        let first = 0
        let synced = 0
        for (const [what, at] of timeline) {
          if (what === "synced") synced = at - t0
          if (what === "open" || what === "rows") console.log(`  ${what} at ${round(at - t0, 1)}`)
          if (what === "push") {
            if (first === 0) first = at - t0
            else client += at - last
          } else if (what === "pushed") server += at - last
          last = at
        }
        console.log(`drain ${round(end - t0, 1)} ms: synced at ${round(synced, 1)}, first push at ${round(first, 1)}, server ${round(server, 1)}, client between ${round(client, 1)}, after the last reply ${round(end - last, 1)}`)
      }
      return end - t0
    })
  } finally {
    await client.close()
    party.close()
  }
}

/** The protocol-level client's drain: `DRAIN` creates sent at once on an open socket. */
const drainWire = async (side: Side, measure: <A>(f: () => Promise<A>) => Promise<A>) => {
  const client = await connect(side, room("drain-wire"))
  try {
    return await measure(async () => {
      const t0 = now()
      await Promise.all(Array.from({ length: DRAIN }, (_, i) => client.create(`d-${i}`, TEXT)))
      return now() - t0
    })
  } finally {
    client.close()
  }
}

/**
 * A socket answered in this process, as the server answers (a Pushed carrying each action's row and the push's
 * Change), one macrotask after each frame: the client's CPU alone, without workerd's.
 */
class LocalServer {
  readyState = 0
  readonly url = `ws://local.invalid/parties/to-dos/${room("local")}`
  readonly #listeners = new Map<string, Set<(event: { data?: unknown }) => void>>()
  #version = 0
  addEventListener(type: string, listener: (event: { data?: unknown }) => void) {
    let set = this.#listeners.get(type)
    if (set === undefined) this.#listeners.set(type, (set = new Set()))
    set.add(listener)
  }
  removeEventListener(type: string, listener: (event: { data?: unknown }) => void) {
    this.#listeners.get(type)?.delete(listener)
  }
  #emit(type: string, data?: string) {
    for (const l of [...(this.#listeners.get(type) ?? [])]) l({ data })
  }
  close() {}
  open() {
    this.readyState = 1
    this.#emit("open")
  }
  send(data: string) {
    const frame = JSON.parse(data) as { _tag: string; clientId: string; actions: Array<{ seq: number; action: { payload: { id: string; text: string } } }> }
    setImmediate(() => {
      if (frame._tag === "Subscribe") {
        this.#emit("message", `{"_tag":"SyncRows","channel":"todos","reset":true,"rows":[],"deleted":[]}`)
        this.#emit("message", `{"_tag":"Synced","channel":"todos","version":${this.#version},"reset":true,"history":"243e7c241d84953a"}`)
      }
      if (frame._tag !== "Push" || frame.actions.length === 0) return
      const t = Date.now()
      const rows = frame.actions.map((a) => [a.action.payload.id, a.action.payload.text, 0, t, t, 1, null])
      this.#version += rows.length
      const last = frame.actions[frame.actions.length - 1]!.seq
      this.#emit("message", JSON.stringify({
        _tag: "Pushed", channel: "todos", clientId: frame.clientId, version: this.#version, next: last + 1,
        results: frame.actions.map((a, i) => ({ seq: a.seq, rows: [rows[i]] })),
        changes: [{ _tag: "Change", channel: "todos", version: this.#version, rows, deleted: [] }]
      }))
    })
  }
}

interface Node {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}

const nameOf = (f: Node["callFrame"]) =>
  `${f.functionName || "(anonymous)"} ${f.url === "" ? "" : `${f.url.replace(/^.*\/(node_modules|src|bench)\//, "$1/")}:${f.lineNumber + 1}`}`

/**
 * Self time per function of a profile, and total time (self and callees) per function of src/client, in ms: the
 * heaviest first.
 */
const times = (profile: { nodes: ReadonlyArray<Node>; samples: ReadonlyArray<number>; timeDeltas: ReadonlyArray<number> }) => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  let all = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)!
    const dt = (profile.timeDeltas[i] ?? 0) / 1000
    all += dt
    const key = nameOf(node.callFrame)
    self.set(key, (self.get(key) ?? 0) + dt)
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame
      if (!f.url.includes("/src/client/")) continue
      const k = nameOf(f)
      if (seen.has(k)) continue
      seen.add(k)
      total.set(k, (total.get(k) ?? 0) + dt)
    }
  }
  return { all, self, total }
}

const main = async () => {
  const side = LOCAL ? undefined : await start("ours", SIDES.ours.config, SIDES.ours.party)
  if (ROOTS.includes("raw")) rawSide = await start("raw", SIDES.raw.config, SIDES.raw.party)
  const builds = await Promise.all(ROOTS.map(async (r) => {
    if (r === "wire") return { root: r, create: WIRE }
    if (r === "raw") return { root: r, create: RAW }
    const mod = await import(resolve(r, "src/client/index.ts")) as { createSyncClient: Create }
    return { root: r, create: mod.createSyncClient }
  }))
  const session = new Session()
  session.connect()
  try {
    for (const [name, run] of [["tp", throughput], ["drain", drain], ["many", throughputMany], ["rt", roundTrips]] as const) {
      if (SCENARIO === "both" ? name === "many" || name === "rt" : SCENARIO !== name) continue
      // one warm-up round per build, unmeasured
      for (const b of builds) await run(b.create, side, (f) => f())
      const results = new Map<string, Array<number>>(builds.map((b) => [b.root, []]))
      const cpus = new Map<string, Array<number>>(builds.map((b) => [b.root, []]))
      const pushes = new Map<string, Array<number>>(builds.map((b) => [b.root, []]))
      const profiles = new Map<string, Array<unknown>>(builds.map((b) => [b.root, []]))
      for (let r = 0; r < ROUNDS; r++) {
        for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
          const value = await run(b.create, side, async (f) => {
            if (PROFILE) {
              await session.post("Profiler.enable")
              await session.post("Profiler.setSamplingInterval", { interval: 100 })
              await session.post("Profiler.start")
            }
            pushSizes = []
            timeline = []
            const cpu = process.cpuUsage()
            const v = await f()
            const used = process.cpuUsage(cpu)
            cpus.get(b.root)!.push((used.user + used.system) / (name === "drain" ? DRAIN : TOTAL))
            pushes.get(b.root)!.push(...pushSizes)
            if (PROFILE) profiles.get(b.root)!.push((await session.post("Profiler.stop")).profile)
            return v
          })
          results.get(b.root)!.push(value)
        }
      }
      for (const b of builds) {
        const values = results.get(b.root)!
        console.log(`\n== ${name} [${b.root}] ${name === "drain" ? "ms" : name === "rt" ? "ms, median round trip" : "actions/s"}: median ${round(median(values), 3)} of ${values.map((v) => round(v, 3)).join(", ")}`)
        const sizes = pushes.get(b.root)!
        console.log(`client CPU per action: median ${round(median(cpus.get(b.root)!), 1)} µs; ${sizes.length / ROUNDS} pushes per round, sizes: median ${median(sizes)}, of ${[...new Set(sizes)].sort((x, y) => x - y).slice(0, 12).join(",")}`)
        if (!PROFILE) continue
        const self = new Map<string, number>()
        const total = new Map<string, number>()
        let all = 0
        for (const p of profiles.get(b.root)!) {
          const t = times(p as never)
          all += t.all
          for (const [k, v] of t.self) self.set(k, (self.get(k) ?? 0) + v)
          for (const [k, v] of t.total) total.set(k, (total.get(k) ?? 0) + v)
        }
        const count = (name === "drain" ? DRAIN : TOTAL) * ROUNDS
        const list = (m: Map<string, number>) => {
          for (const [k, v] of [...m].sort((x, y) => y[1] - x[1]).slice(0, TOP)) {
            console.log(`  ${round((v * 1000) / count, 2).toString().padStart(7)}  ${k}`)
          }
        }
        console.log(`sampled ${round(all, 0)} ms, ${round((all * 1000) / count, 1)} µs per action; top self time (µs per action):`)
        list(self)
        console.log("total time (self and callees) of src/client's functions (µs per action):")
        list(total)
        if (process.env.SAVE !== undefined) writeFileSync(`${process.env.SAVE}-${name}-${builds.indexOf(b)}.cpuprofile`, JSON.stringify(profiles.get(b.root)![0]))
      }
    }
  } finally {
    session.disconnect()
    await side?.dispose()
    await rawSide?.dispose()
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
