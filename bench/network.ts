/**
 * Scenarios over the network (1 to 5), each written once against the
 * BenchClient shape and run for ours and raw. Every loop is bounded in count
 * and by a deadline; rooms are fresh per scenario and side.
 */
import { type BenchClient, type Contender, type Row, type SyncStats } from "./clients.ts"
import type { Side } from "./workers.ts"
import { bytesOf, now } from "./stats.ts"

let roomCounter = 0
/** A room name nobody used yet in this run. */
export const freshRoom = (what: string) => `${what}-${Date.now().toString(36)}-${++roomCounter}`

const TEXT = "a todo written by the benchmark"

/** Connects n clients; ours clients subscribe (from scratch) first, raw ones fetch the table. */
export const connectMany = async (who: Contender, room: string, n: number, subscribe = true): Promise<Array<BenchClient>> => {
  const clients: Array<BenchClient> = []
  const batch = 50
  for (let i = 0; i < n; i += batch) {
    const group = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => who.connect(who.side, room)))
    if (subscribe) await Promise.all(group.map((c) => c.sync(null)))
    clients.push(...group)
  }
  return clients
}

/**
 * 1. Sequential round trips: send, then wait until confirmed. Returns one latency per action (ms). `around` wraps the
 * loop alone (connecting and closing stay outside), for a caller that measures it.
 */
export const roundTrip = async (
  who: Contender,
  count: number,
  deadlineMs: number,
  around: (run: () => Promise<Array<number>>) => Promise<Array<number>> = (run) => run()
): Promise<Array<number>> => {
  const [client] = await connectMany(who, freshRoom(`rt-${who.label}`), 1)
  const deadline = Date.now() + deadlineMs
  try {
    return await around(async () => {
      const samples: Array<number> = []
      for (let i = 0; i < count && Date.now() < deadline; i++) {
        const t0 = now()
        await client!.create(`rt-${i}`, TEXT)
        samples.push(now() - t0)
      }
      return samples
    })
  } finally {
    client!.close()
  }
}

/** The receivers and the sender of the fan-out scenario, kept across rounds. */
export interface FanOutRig {
  readonly sender: BenchClient
  readonly receivers: ReadonlyArray<BenchClient>
  readonly room: string
  counter: number
}

/** Connects one sender and `n` subscribed receivers. */
export const fanOutRig = async (who: Contender, n: number): Promise<FanOutRig> => {
  const room = freshRoom(`fan-${who.label}`)
  const receivers = await connectMany(who, room, n)
  const [sender] = await connectMany(who, room, 1)
  return { sender: sender!, receivers, room, counter: 0 }
}

/** 2. Fan-out: per change, ms from send until all receivers have it. */
export const fanOut = async (rig: FanOutRig, changes: number, deadlineMs: number): Promise<Array<number>> => {
  const samples: Array<number> = []
  const deadline = Date.now() + deadlineMs
  for (let i = 0; i < changes && Date.now() < deadline; i++) {
    const id = `fan-${++rig.counter}`
    let seen = 0
    let t0 = 0
    let done: () => void = () => {}
    const all = new Promise<void>((resolve) => {
      done = resolve
    })
    for (const r of rig.receivers) {
      let mine = false
      r.onChange = () => {
        if (mine || !r.has(id)) return
        mine = true
        if (++seen === rig.receivers.length) {
          samples.push(now() - t0)
          done()
        }
      }
    }
    t0 = now()
    await Promise.race([
      Promise.all([rig.sender.create(id, TEXT), all]),
      new Promise((_, reject) => setTimeout(() => reject(new Error("bench: fan-out change did not reach every receiver")), 10_000))
    ])
  }
  return samples
}

/** Closes a rig's sockets. */
export const closeRig = (rig: FanOutRig) => {
  rig.sender.close()
  for (const r of rig.receivers) r.close()
}

/**
 * 3. Sustained throughput: `clients` subscribed clients each keep `window`
 * actions in flight until `total` actions are confirmed. Returns actions/s.
 */
export const throughput = async (who: Contender, clients: number, total: number, window: number, deadlineMs: number): Promise<number> => {
  const room = freshRoom(`tp-${who.label}-${clients}`)
  const all = await connectMany(who, room, clients)
  const perClient = Math.ceil(total / clients)
  const deadline = Date.now() + deadlineMs
  let confirmed = 0
  const t0 = now()
  await Promise.all(all.map(async (client, c) => {
    let next = 0
    const lane = async () => {
      while (next < perClient && Date.now() < deadline) {
        const i = next++
        await client.create(`tp-${c}-${i}`, TEXT)
        confirmed++
      }
    }
    await Promise.all(Array.from({ length: window }, lane))
  }))
  const seconds = (now() - t0) / 1000
  for (const c of all) c.close()
  return confirmed / seconds
}

/** 4. Initial sync of a seeded room to a fresh client. */
export const initialSync = async (who: Contender, room: string, expectRows: number): Promise<SyncStats> => {
  const client = await who.connect(who.side, room)
  try {
    const stats = await client.sync(null)
    if (stats.rows !== expectRows) throw new Error(`bench: ${who.label} synced ${stats.rows} rows, expected ${expectRows}`)
    return stats
  } finally {
    client.close()
  }
}

/** What one resume round measured (ours only: the raw baseline can only resend the table). */
export interface ResumeRound {
  readonly resume: SyncStats
  readonly full: SyncStats
  /** UTF-8 bytes of the changed rows' JSON: the information a resume must carry. */
  readonly changedBytes: number
}

/**
 * 5. Resume after offline: a client syncs in full and leaves; a writer then
 * changes `changes` rows (a tenth of them deletes); a client resumes from the
 * cursor. Rows `t<first>`.. are touched; each round passes a new `first`.
 */
export const resumeRound = async (who: Contender, room: string, expectRows: number, first: number, changes: number): Promise<ResumeRound> => {
  const away = await who.connect(who.side, room)
  const full = await away.sync(null)
  if (full.rows !== expectRows) throw new Error(`bench: full sync gave ${full.rows} rows, expected ${expectRows}`)
  away.close()
  const writer = await who.connect(who.side, room)
  const written: Array<Row> = []
  const deletes = Math.floor(changes / 10)
  for (let i = 0; i < changes; i++) {
    const id = `t${first + i}`
    written.push(...(i < deletes ? await writer.remove(id) : await writer.update(id, `changed while away ${i}`)))
  }
  writer.close()
  if (written.length !== changes) throw new Error(`bench: ${written.length} rows written, expected ${changes}`)
  const back = await who.connect(who.side, room)
  const resume = await back.sync(full.version, full.history)
  back.close()
  if (back.size !== changes - deletes) {
    throw new Error(`bench: resume applied ${back.size} live rows, expected ${changes - deletes}`)
  }
  const changedBytes = written.reduce((sum, row) => sum + bytesOf(JSON.stringify(row)), 0)
  return { resume, full, changedBytes }
}

/** Rows read and written so far by a side's room (its `usage` bench hook). */
export const usageOf = async (side: Side, room: string): Promise<{ rowsRead: number; rowsWritten: number }> => {
  const path = side.name === "ours" ? "hooks/usage" : "usage"
  const res = await fetch(`${side.url}${side.party}/${room}/${path}`)
  if (!res.ok) throw new Error(`bench: usage of ${side.name} failed: ${res.status}`)
  return (await res.json()) as { rowsRead: number; rowsWritten: number }
}

/** Rows written and read per create, over `count` creates in a fresh room: one at a time, or all sent at once. */
export const rowsPerAction = async (who: Contender, count: number, pipelined = false): Promise<{ written: number; read: number }> => {
  const room = freshRoom(`rows-${who.label}`)
  const [client] = await connectMany(who, room, 1)
  try {
    await client!.create("warm", TEXT)
    const before = await usageOf(who.side, room)
    if (pipelined) await Promise.all(Array.from({ length: count }, (_, i) => client!.create(`w-${i}`, TEXT)))
    else for (let i = 0; i < count; i++) await client!.create(`w-${i}`, TEXT)
    const after = await usageOf(who.side, room)
    return { written: (after.rowsWritten - before.rowsWritten) / count, read: (after.rowsRead - before.rowsRead) / count }
  } finally {
    client!.close()
  }
}

/**
 * 9. Bulk write: one multi-row `INSERT ... SELECT` of `count` rows in a fresh
 * room, ms from the request to its answer (ours includes capture and the
 * publish that follows the request).
 */
export const bulkWrite = async (who: Contender, count: number): Promise<number> => {
  const room = freshRoom(`bulk-${who.label}`)
  const base = `${who.side.url}${who.side.party}/${room}/${who.side.name === "ours" ? "hooks/bulk" : "bulk"}`
  // wake the object first: its start is not part of the write
  await (await fetch(base, { method: "POST", body: JSON.stringify({ from: 0, count: 1 }) })).text()
  const t0 = now()
  const res = await fetch(base, { method: "POST", body: JSON.stringify({ from: 1, count }) })
  if (!res.ok) throw new Error(`bench: bulk write on ${who.side.name} failed: ${res.status} ${await res.text()}`)
  await res.text()
  return now() - t0
}
