/**
 * Scenarios without a server: 6 (client apply, the real client driven by a
 * fake socket) and 7 (bundle size of the React entry).
 */
import { build } from "esbuild"
import { gzipSync } from "node:zlib"
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { createSyncClient } from "../src/client/index.ts"
import { MAX_OUTBOUND_FRAME_BYTES } from "../src/protocol/Protocol.ts"
import { now, until } from "./stats.ts"

type Listener = (event: { data: unknown }) => void

/** A socket that is always open and delivers frames on demand. */
class FakeSocket {
  readonly readyState = 1
  readonly url = "ws://bench.invalid/parties/to-dos/apply"
  readonly sent: Array<string> = []
  readonly #listeners = new Map<string, Set<Listener>>()
  send(data: string) {
    this.sent.push(data)
  }
  addEventListener(type: string, listener: Listener) {
    let set = this.#listeners.get(type)
    if (set === undefined) this.#listeners.set(type, (set = new Set()))
    set.add(listener)
  }
  removeEventListener(type: string, listener: Listener) {
    this.#listeners.get(type)?.delete(listener)
  }
  deliver(data: string) {
    for (const l of this.#listeners.get("message") ?? []) l({ data })
  }
}

const row = (i: number, text: string, t: number) => [`t${i}`, text, i % 2, t, t, 1, null]

/** The initial sync frames of `n` rows, chunked like the server does. */
const syncFrames = (n: number): Array<string> => {
  const frames: Array<string> = []
  let chunk: Array<string> = []
  let size = 200
  for (let i = 0; i < n; i++) {
    const json = JSON.stringify(row(i, `seeded todo number ${i}`, 1_700_000_000_000))
    if (size + json.length > MAX_OUTBOUND_FRAME_BYTES) {
      frames.push(`{"_tag":"SyncRows","channel":"todos","reset":true,"rows":[${chunk.join(",")}],"deleted":[]}`)
      chunk = []
      size = 200
    }
    chunk.push(json)
    size += json.length + 1
  }
  frames.push(`{"_tag":"SyncRows","channel":"todos","reset":true,"rows":[${chunk.join(",")}],"deleted":[]}`)
  frames.push(`{"_tag":"Synced","channel":"todos","version":${n},"reset":true,"history":"0123456789abcdef"}`)
  return frames
}

const changeFrames = (n: number, changes: number): Array<string> =>
  Array.from({ length: changes }, (_, k) => {
    const i = (k * 7919) % n
    return JSON.stringify({ _tag: "Change", channel: "todos", version: n + k + 1, rows: [row(i, `changed ${k}`, 1_700_000_000_001 + k)], deleted: [] })
  })

/** What scenario 6 measured. */
export interface ApplyResult {
  /** Initial reset sync of `rows` rows into the client, until the snapshot is readable. */
  readonly initialMs: number
  /**
   * `changes` Change frames, each delivered in its own task as a socket does,
   * with a subscriber that reads the snapshot on every notification (what a UI
   * does): ms until the last change is in the snapshot.
   */
  readonly applyNotifiedMs: number
  /** The same frames with the snapshot read synchronously after every single one (the worst consumer). */
  readonly applyEachMs: number
  /** The same count of changes applied back to back, the snapshot read once at the end. */
  readonly applyBatchMs: number
  /** Notifications the subscriber got in the notified run. */
  readonly notifications: number
  /** The bare minimum: JSON.parse + Map.set of the same frames. */
  readonly baselineMs: number
  /** The same, one frame per task. */
  readonly baselineTasksMs: number
}

const freshClient = async (rows: number) => {
  const socket = new FakeSocket()
  const client = createSyncClient({ channel: todos, socket })
  await client.ready
  await until(() => socket.sent.some((f) => f.includes("Subscribe")), 5_000, "the client's Subscribe")
  // built before the clock starts: the load is the client's work, not the bench's JSON
  const frames = syncFrames(rows)
  const t0 = now()
  for (const f of frames) socket.deliver(f)
  const size = client.getSnapshot().length
  const initialMs = now() - t0
  if (size !== rows) throw new Error(`bench: client holds ${size} rows after the sync, expected ${rows}`)
  return { socket, client, initialMs }
}

/** 6. Client apply: `changes` single-row changes into a `rows`-row snapshot, in Node, no network. */
export const clientApply = async (rows: number, changes: number): Promise<ApplyResult> => {
  const frames = changeFrames(rows, changes)

  const a = await freshClient(rows)
  let t0 = now()
  for (const f of frames) {
    a.socket.deliver(f)
    a.client.getSnapshot()
  }
  const applyEachMs = now() - t0
  const last = JSON.parse(frames[frames.length - 1]!).rows[0]
  if (!a.client.getSnapshot().some((r) => r[0] === last[0] && r[1] === last[1])) throw new Error("bench: the last change is not in the snapshot")
  await a.client.close()

  const n = await freshClient(rows)
  let reads = 0
  const lastFrame = JSON.parse(frames[frames.length - 1]!).rows[0]
  const seen = new Promise<void>((resolve) => {
    n.client.subscribe(() => {
      reads++
      const snapshot = n.client.getSnapshot()
      if (snapshot.some((r) => r[0] === lastFrame[0] && r[1] === lastFrame[1])) resolve()
    })
  })
  t0 = now()
  for (const f of frames) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    n.socket.deliver(f)
  }
  await seen
  const applyNotifiedMs = now() - t0
  await n.client.close()

  const b = await freshClient(rows)
  t0 = now()
  for (const f of frames) b.socket.deliver(f)
  b.client.getSnapshot()
  const applyBatchMs = now() - t0
  await b.client.close()

  const map = new Map<unknown, unknown>()
  for (const f of syncFrames(rows)) for (const r of JSON.parse(f).rows ?? []) map.set(r[0], r)
  t0 = now()
  for (const f of frames) for (const r of JSON.parse(f).rows) map.set(r[0], r)
  const baselineMs = now() - t0

  // the same delivery, one frame per task, into a bare Map: what the task hops alone cost
  t0 = now()
  for (const f of frames) {
    await new Promise<void>((resolve) => setImmediate(resolve))
    for (const r of JSON.parse(f).rows) map.set(r[0], r)
  }
  const baselineTasksMs = now() - t0

  return { initialMs: a.initialMs, applyNotifiedMs, notifications: reads, applyEachMs, applyBatchMs, baselineMs, baselineTasksMs }
}

/** What scenario 7 measured. */
export interface BundleResult {
  readonly minified: number
  readonly gzipped: number
  /** The largest inputs by minified bytes, to see where the size goes. */
  readonly top: ReadonlyArray<{ readonly path: string; readonly bytes: number }>
}

/** 7. The React entry bundled for browsers, minified and gzipped, React excluded. */
export const bundleSize = async (): Promise<BundleResult> => {
  const result = await build({
    entryPoints: ["src/react/index.ts"],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    external: ["react", "react-dom", "react/jsx-runtime"],
    write: false,
    metafile: true,
    logLevel: "silent"
  })
  const code = result.outputFiles[0]!.contents
  const output = Object.values(result.metafile.outputs)[0]!
  const top = Object.entries(output.inputs)
    .map(([path, v]) => ({ path: path.replace(/^node_modules\//, ""), bytes: v.bytesInOutput }))
    .sort((x, y) => y.bytes - x.bytes)
    .slice(0, 8)
  return { minified: code.byteLength, gzipped: gzipSync(code, { level: 9 }).byteLength, top }
}
