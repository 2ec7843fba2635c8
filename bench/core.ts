/**
 * Scenarios of the ordered, batched core:
 * - 11. drain: a client comes back with 1,000 creates queued offline; the
 *   time until every one is settled, against raw taking 1,000 pipelined
 *   creates (all sent at once);
 * - 12. hot resume: 10,000 writes to 100 rows while a client is away; the
 *   rows its resume reads (the log keeps about one entry per row);
 * - 13. cold start: a never-used object's first Subscribe answered
 *   (migrations and install included) and a woken object's, beside raw's
 *   first `all`.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { createSyncClient } from "../src/client/index.ts"
import { type Contender, open, clientUrl } from "./clients.ts"
import { connectMany, freshRoom, usageOf } from "./network.ts"
import { closedParty } from "./real.ts"
import { now } from "./stats.ts"
import { seed, type Side, SIDES, start } from "./workers.ts"

const TEXT = "a todo of a usual length, about fifty characters"

const until = (check: () => boolean, deadlineMs: number, what: string) =>
  new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + deadlineMs
    const tick = () => {
      if (check()) return resolve()
      if (Date.now() > deadline) return reject(new Error(`bench: timed out waiting for ${what}`))
      setTimeout(tick, 1)
    }
    tick()
  })

/**
 * 11. Drain, ours with the real client: `n` creates queued while the socket
 * is closed, then the socket opens; ms from the open to the last settle.
 */
export const drainReal = async (side: Side, n: number, deadlineMs: number): Promise<number> => {
  const party = closedParty(side, freshRoom("drain-real"))
  const client = createSyncClient({ channel: todos, socket: party })
  try {
    await client.ready
    const sends = Array.from({ length: n }, (_, i) => client.send({ type: "create", payload: { id: `d-${i}`, text: TEXT, completed: 0, priority: 1 } }))
    await until(() => client.getStatus().pending === n, deadlineMs, "the queue filled")
    const t0 = now()
    party.reconnect()
    await Promise.all(sends)
    return now() - t0
  } finally {
    await client.close()
    party.close()
  }
}

/** 11. Drain, protocol-level or raw: `n` creates sent at once on an open socket, ms until every one is confirmed. */
export const drainWire = async (who: Contender, n: number): Promise<number> => {
  const [client] = await connectMany(who, freshRoom(`drain-${who.label}`), 1, false)
  try {
    const t0 = now()
    await Promise.all(Array.from({ length: n }, (_, i) => client!.create(`d-${i}`, TEXT)))
    return now() - t0
  } finally {
    client!.close()
  }
}

/** What a hot resume read. */
export interface HotResume {
  readonly writes: number
  readonly rows: number
  /** Rows read by the resuming Subscribe (Cloudflare's count). */
  readonly rowsRead: number
  /** Rows the resume carried. */
  readonly rowsSent: number
  readonly ms: number
}

/** 12. Hot resume (protocol-level client): `rows` rows, a client leaves, `writes` updates spread over them, the client resumes. */
export const hotResume = async (who: Contender, rows: number, writes: number): Promise<HotResume> => {
  const room = freshRoom("hot")
  await seed(who.side, room, 0, 0)
  await seed(who.side, room, 0, rows)
  const [away] = await connectMany(who, room, 1, false)
  const full = await away!.sync(null)
  away!.close()
  const [writer] = await connectMany(who, room, 1, false)
  await Promise.all(Array.from({ length: writes }, (_, i) => writer!.update(`t${i % rows}`, `write ${i}`)))
  writer!.close()
  const [back] = await connectMany(who, room, 1, false)
  const before = await usageOf(who.side, room)
  const t0 = now()
  const resume = await back!.sync(full.version, full.history)
  const ms = now() - t0
  const after = await usageOf(who.side, room)
  back!.close()
  return { writes, rows, rowsRead: after.rowsRead - before.rowsRead, rowsSent: resume.rows, ms }
}

/** What a cold start cost, per side. */
export interface ColdStart {
  /** A never-used object: connect, first Subscribe (ours) or `all` (raw) answered. */
  readonly freshMs: number
  /** The same on an object with 1,000 rows, woken after a restart. */
  readonly wokenMs: number
}

const firstSync = async (side: Side, room: string): Promise<number> => {
  const t0 = now()
  const ws = await open(clientUrl(side, room))
  await new Promise<void>((resolve) => {
    ws.onmessage = (event: MessageEvent) => {
      const text = String(event.data)
      if (text.startsWith(`{"_tag":"Synced"`) || text.startsWith(`{"t":"all"`)) resolve()
    }
    ws.send(side.name === "ours" ? JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }) : JSON.stringify({ t: "all" }))
  })
  const ms = now() - t0
  ws.close()
  return ms
}

/** 13. Cold start, `rounds` rooms each: fresh objects, then the same objects seeded and woken after a restart. */
export const coldStart = async (rounds: number): Promise<Record<Side["name"], Array<ColdStart>>> => {
  const out: Record<Side["name"], Array<ColdStart>> = { ours: [], raw: [] }
  for (const name of ["ours", "raw"] as const) {
    const dir = mkdtempSync(join(tmpdir(), `bench-cold-${name}-`))
    try {
      let side = await start(name, SIDES[name].config, SIDES[name].party, { persist: dir })
      const fresh: Array<number> = []
      const rooms = Array.from({ length: rounds }, (_, i) => `cold-${i}`)
      for (const room of rooms) {
        fresh.push(await firstSync(side, room))
        await seed(side, room, 0, 1_000)
      }
      await side.dispose()
      side = await start(name, SIDES[name].config, SIDES[name].party, { persist: dir })
      try {
        for (const [i, room] of rooms.entries()) out[name].push({ freshMs: fresh[i]!, wokenMs: await firstSync(side, room) })
      } finally {
        await side.dispose()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  return out
}
