/**
 * 11. The client's local cache in Node (no network, the real client driven by
 * a fake socket): bytes written to a KeyValueStore per single-row change at
 * 1k and 100k rows (counted at the store: keys and values set; a row and the
 * same row 1,000 bytes longer, so the bytes per byte of row show apart from
 * the fixed part), and the heap a 100k-row client holds (its memory store
 * included), against a bare Map of the same rows.
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore } from "../src/client/index.ts"
import { changeFrames, FakeSocket, syncFrames } from "./local.ts"
import { collectGarbage as gc } from "./gc.ts"
import { sleep, until } from "./stats.ts"

/** What single-row changes wrote with `rows` rows cached: a row of `row` bytes, then the same row `long` bytes long. */
export interface ChangeBytes {
  readonly rows: number
  readonly row: number
  /** Bytes of the keys and values set for the change. */
  readonly bytes: number
  readonly long: number
  readonly longBytes: number
  /** Keys set and removed for the first change. */
  readonly writes: number
}

/** A memory store seen as any KeyValueStore, counting what is set. */
const countingStore = () => {
  const inner = makeMemoryStore()
  const sets: Array<readonly [string, string]> = []
  const kv = KeyValueStore.makeStringOnly({
    get: inner.get,
    // the records' keys only: a lease's heartbeat (every few seconds, whatever changes) is no change's cost
    set: (key, value) => Effect.andThen(inner.set(key, value), Effect.sync(() => void (key.includes("/r/") && sets.push([key, value])))),
    remove: (key) => Effect.andThen(inner.remove(key), Effect.sync(() => void (key.includes("/r/") && sets.push([key, ""])))),
    clear: inner.clear,
    size: inner.size,
    keys: inner.keys
  })
  const cursor = () => {
    const meta = Effect.runSync(Effect.flatMap(inner.keys, (keys) => inner.get(keys.find((k) => k.endsWith("/meta")) ?? "")))
    return meta === undefined ? undefined : (JSON.parse(meta) as { cursor: number }).cursor
  }
  return { kv, sets, cursor }
}

/** 11. Bytes written to a KeyValueStore for single-row updates, with `rows` rows cached. */
export const bytesPerChange = async (rows: number): Promise<ChangeBytes> => {
  const store = countingStore()
  const socket = new FakeSocket()
  const client = createSyncClient({ channel: todos, socket, store: store.kv, persistDelayMs: 1 })
  await client.ready
  for (const f of syncFrames(rows)) socket.deliver(f)
  await until(() => store.cursor() === rows, 120_000, "the cache written")
  const change = async (frame: { version: number; rows: Array<Array<unknown>> }) => {
    // the writer's hold-back after the table write
    await sleep(50)
    store.sets.length = 0
    socket.deliver(JSON.stringify(frame))
    await until(() => store.cursor() === frame.version, 60_000, `the cache at ${frame.version}`)
    return {
      bytes: store.sets.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0),
      row: Buffer.byteLength(JSON.stringify(frame.rows[0])),
      writes: store.sets.length
    }
  }
  const [short, long] = changeFrames(rows, 2).map((f) => JSON.parse(f))
  long.rows[0][1] += "x".repeat(1000)
  const a = await change(short)
  const b = await change(long)
  await client.close()
  return { rows, row: a.row, bytes: a.bytes, long: b.row, longBytes: b.bytes, writes: a.writes }
}

const heapUsed = async () => {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(10)
  }
  return process.memoryUsage().heapUsed
}

/** What the heap scenario measured, in bytes. */
export interface HeapResult {
  /** A 100k-row client and the memory store's records (the default store in Node). */
  readonly client: number
  /** A bare Map of the same rows (parsed from the same frames). */
  readonly map: number
}

/** 11. Heap held by a `rows`-row client in Node, against a bare Map of the same rows. */
export const clientHeap = async (rows: number): Promise<HeapResult> => {
  const frames = syncFrames(rows)
  // the Map first: what the client leaves behind when closed could be collected inside the Map's measure
  let before = await heapUsed()
  let map: Map<unknown, unknown> | undefined = new Map()
  for (const f of frames) for (const r of JSON.parse(f).rows ?? []) map.set(r[0], r)
  const mapBytes = (await heapUsed()) - before
  if (map.size !== rows) throw new Error("bench: the map does not hold every row")
  map = undefined
  before = await heapUsed()
  const socket = new FakeSocket()
  const client = createSyncClient({ channel: todos, socket, persistDelayMs: 1 })
  await client.ready
  for (const f of frames) socket.deliver(f)
  if (client.getSnapshot().length !== rows) throw new Error("bench: the client does not hold every row")
  // the cache written, the writer idle
  await sleep(1_000)
  const clientBytes = (await heapUsed()) - before
  await client.close()
  return { client: clientBytes, map: mapBytes }
}
