/**
 * 11. The client's local cache in Node (no network, the real client driven by
 * a fake socket): bytes written to a KeyValueStore per single-row change at
 * 1k and 100k rows (the layout any persistent KeyValueStore gets, counted at
 * the store: keys and values set), and the heap a 100k-row client holds,
 * against a bare Map of the same rows.
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore } from "../src/client/index.ts"
import { changeFrames, FakeSocket, syncFrames } from "./local.ts"
import { sleep, until } from "./stats.ts"

/** What one single-row change wrote. */
export interface ChangeBytes {
  readonly rows: number
  /** Bytes of the keys and values set for the change. */
  readonly bytes: number
  /** Of which the row's own key and value. */
  readonly rowBytes: number
  /** The changed row, JSON-encoded. */
  readonly encodedRow: number
  /** Keys set and removed. */
  readonly writes: number
}

/** A memory store seen as any KeyValueStore (no record layout of its own), counting what is set. */
const countingStore = () => {
  const inner = makeMemoryStore()
  const sets: Array<readonly [string, string]> = []
  const kv = KeyValueStore.makeStringOnly({
    get: inner.get,
    set: (key, value) => Effect.andThen(inner.set(key, value), Effect.sync(() => void sets.push([key, value]))),
    remove: (key) => Effect.andThen(inner.remove(key), Effect.sync(() => void sets.push([key, ""]))),
    clear: inner.clear,
    size: inner.size,
    keys: inner.keys
  })
  return { kv, sets, meta: () => Effect.runSync(Effect.map(inner.keys, (keys) => keys.find((k) => k.endsWith("/meta")))) }
}

/** 11. Bytes written to a KeyValueStore for one single-row update, with `rows` rows cached. */
export const bytesPerChange = async (rows: number): Promise<ChangeBytes> => {
  const store = countingStore()
  const socket = new FakeSocket()
  const client = createSyncClient({ channel: todos, socket, store: store.kv, persistDelayMs: 1 })
  await client.ready
  const stored = async (cursor: number) => {
    await until(() => {
      const key = store.meta()
      const meta = key === undefined ? undefined : JSON.parse(store.sets.findLast(([k]) => k === key)?.[1] ?? "null")
      return meta?.cursor === cursor && meta.writing !== true
    }, 120_000, `the cache at ${cursor}`)
    // the writer's hold-back after the table write
    await sleep(5)
  }
  for (const f of syncFrames(rows)) socket.deliver(f)
  await stored(rows)
  store.sets.length = 0
  const frame = changeFrames(rows, 1)[0]!
  const changed = JSON.parse(frame).rows[0] as ReadonlyArray<unknown>
  socket.deliver(frame)
  await stored(rows + 1)
  const bytes = store.sets.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0)
  const own = store.sets.filter(([k]) => k.endsWith(`/r/s${String(changed[0])}`))
  const writes = store.sets.length
  await client.close()
  return {
    rows,
    bytes,
    rowBytes: own.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0),
    encodedRow: Buffer.byteLength(JSON.stringify(changed)),
    writes
  }
}

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void
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
