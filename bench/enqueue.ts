/**
 * 12. Enqueue stays flat: an offline client (its socket never opens) with
 * 1,000 cached rows queues 1,000 actions through the real `send`, one after
 * another, as a user working offline would: each edits the text of a cached
 * todo (the list keeps its length, so what a read costs is measured against
 * the queue alone; a create would also lengthen the list every read walks).
 * Each enqueue is timed from the call to `send` until its record is in the
 * store (a memory store here), on its own ("queue") and with the snapshot and
 * the status read after it as a render reads them, the Todo app's optimistic
 * reducer applied ("render"). The first 10 enqueues of a session are set
 * against its last 10 (the median of each), so a cost that grows with the
 * queue shows as a ratio; a short session first warms the code up, so the
 * first ones are not timed cold.
 */
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { optimisticReducer } from "../fixtures/todo-sync/src/app/optimistic.ts"
import { createSyncClient, makeMemoryStore } from "../src/client/index.ts"
import { FakeSocket, syncFrames } from "./local.ts"
import { median, now, until } from "./stats.ts"

/** What one offline session measured: ms per enqueue, in order. */
export interface EnqueueSession {
  readonly perEnqueue: ReadonlyArray<number>
  /** The medians of the first and of the last 10. */
  readonly first: number
  readonly last: number
}

/** What scenario 12 measured: sessions with and without a render's read after each enqueue. */
export interface EnqueueResult {
  readonly actions: number
  readonly cachedRows: number
  readonly queue: ReadonlyArray<EnqueueSession>
  readonly render: ReadonlyArray<EnqueueSession>
}

const URL = "ws://bench.invalid/parties/to-dos/offline"

/** A socket that never opens: the client is offline for the whole session. */
const offlineSocket = () => ({
  readyState: 3,
  url: URL,
  send: () => {
    throw new Error("bench: an offline client sent a frame")
  },
  addEventListener: () => {},
  removeEventListener: () => {}
})

/** A Map that counts the queue records set in it (one per enqueued action). */
class CountingMap extends Map<string, string> {
  records = 0
  override set(key: string, value: string) {
    if (key.includes("/q/")) this.records++
    return super.set(key, value)
  }
}

/** A memory store holding `rows` cached rows of the offline socket's room, written by an online client. */
const seeded = async (rows: number): Promise<CountingMap> => {
  const map = new CountingMap()
  const online = new FakeSocket()
  Object.assign(online, { url: URL })
  const client = createSyncClient({ channel: todos, socket: online, store: makeMemoryStore(map), persistDelayMs: 1 })
  await client.ready
  for (const f of syncFrames(rows)) online.deliver(f)
  await until(() => [...map.keys()].some((k) => k.endsWith("r/meta")), 60_000, "the seeded cache")
  await client.close()
  return map
}

/** One offline session: `actions` enqueues, each until its record is stored (and, with `read`, the snapshot and status read). */
const session = async (actions: number, cachedRows: number, read: boolean): Promise<EnqueueSession> => {
  const map = await seeded(cachedRows)
  const client = createSyncClient({ channel: todos, socket: offlineSocket(), store: makeMemoryStore(map), optimistic: optimisticReducer })
  await client.ready
  if (client.getSnapshot().length !== cachedRows) throw new Error(`bench: the offline client holds ${client.getSnapshot().length} rows`)
  const perEnqueue: Array<number> = []
  for (let k = 0; k < actions; k++) {
    const stored = map.records + 1
    const t0 = now()
    // offline, no send settles: its promise is left pending
    void client.send({ type: "update", payload: { id: `t${(k * 7) % cachedRows}`, text: `edited offline ${k}` } }).catch(() => {})
    if (read) {
      client.getSnapshot()
      client.getStatus()
    }
    while (map.records < stored) await new Promise<void>((resolve) => setImmediate(resolve))
    perEnqueue.push(now() - t0)
  }
  if (client.getStatus().pending !== actions || client.getSnapshot()[(actions - 1) * 7 % cachedRows]![1] !== `edited offline ${actions - 1}`) {
    throw new Error(`bench: ${client.getStatus().pending} pending after ${actions} enqueues, or the last edit not in the snapshot`)
  }
  await client.close()
  return { perEnqueue, first: median(perEnqueue.slice(0, 10)), last: median(perEnqueue.slice(-10)) }
}

/**
 * 12. `sessions` offline sessions of `actions` enqueues each over `cachedRows` cached rows, the
 * queue alone and with a render's read, alternating; a short session first warms the code up.
 */
export const offlineEnqueue = async (actions: number, cachedRows: number, sessions: number): Promise<EnqueueResult> => {
  await session(100, cachedRows, true)
  const queue: Array<EnqueueSession> = []
  const render: Array<EnqueueSession> = []
  for (let s = 0; s < sessions; s++) {
    queue.push(await session(actions, cachedRows, false))
    render.push(await session(actions, cachedRows, true))
  }
  return { actions, cachedRows, queue, render }
}
