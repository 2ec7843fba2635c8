/**
 * Scenarios without a server: 6 (client apply, the real client driven by a
 * fake socket) and 7 (bundle size of the React entry).
 *
 * Client apply has three baselines, measured the same way in the same run:
 * a bare Map fed the frames (JSON.parse, Map.set), and the floor the client's
 * design sets, a bare Map that also checks what the client must check with
 * Schema: each row with the channel's record Schema, or each frame with the
 * Protocol's Change Schema whose rows are the record Schema. Every side
 * starts its timed part from a collected heap (the client once its cache
 * holds the synced table), so none pays for the garbage of the side before.
 */
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { build, transform } from "esbuild"
import { gzipSync } from "node:zlib"
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore } from "../src/client/index.ts"
import { Change, MAX_OUTBOUND_FRAME_BYTES } from "../src/protocol/Protocol.ts"
import { collectGarbage } from "./gc.ts"
import { fmtBytes, now, type ReportRow, until } from "./stats.ts"

type Listener = (event: { data: unknown }) => void

/** A socket that is always open and delivers frames on demand. */
export class FakeSocket {
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
export const syncFrames = (n: number): Array<string> => {
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

/** `changes` Change frames, each one row of an `n`-row table with a new text. */
export const changeFrames = (n: number, changes: number): Array<string> =>
  Array.from({ length: changes }, (_, k) => {
    const i = (k * 7919) % n
    return JSON.stringify({ _tag: "Change", channel: "todos", version: n + k + 1, rows: [row(i, `changed ${k}`, 1_700_000_000_001 + k)], deleted: [] })
  })

/** Per round, ms of the client and of each baseline, rounds rotating the order. */
export interface ApplySides {
  readonly ours: ReadonlyArray<number>
  /** A bare Map: JSON.parse and Map.set. */
  readonly map: ReadonlyArray<number>
  /** The bare Map, each row decoded with the channel's record Schema first. */
  readonly rowSchema: ReadonlyArray<number>
  /** The bare Map, each frame decoded with the Protocol's Change Schema, its rows with the record Schema. */
  readonly frameSchema: ReadonlyArray<number>
}

/** What scenario 6 measured: per round, ours and the baselines measured the same way. */
export interface ApplyResult {
  /** Initial reset sync of `rows` rows into the client, until the snapshot is readable (first round). */
  readonly initialMs: number
  /** `changes` Change frames applied back to back, the snapshot read once at the end. */
  readonly backToBack: ApplySides
  /**
   * The same frames, each delivered in its own task as a socket does, with the snapshot read
   * every 16 ms (a UI's frame): ms until a read holds the last change. A baseline's read is
   * `Array.from(map.values())`.
   */
  readonly perTask16: ApplySides
  /** One per task, with a subscriber that reads the snapshot on every notification (what React does): ms, and reads. */
  readonly notifiedMs: number
  readonly notifications: number
}

/**
 * A client that has synced `rows` rows and stored them in its cache: the table's first write
 * (a few hundred ms for 100k rows, 500 ms after the sync) belongs to the load, and must not
 * land in what is measured next.
 */
const freshClient = async (rows: number) => {
  const socket = new FakeSocket()
  const store = new Map<string, string>()
  const client = createSyncClient({ channel: todos, socket, store: makeMemoryStore(store) })
  await client.ready
  await until(() => socket.sent.some((f) => f.includes("Subscribe")), 5_000, "the client's Subscribe")
  // built before the clock starts: the load is the client's work, not the bench's JSON
  const frames = syncFrames(rows)
  const t0 = now()
  for (const f of frames) socket.deliver(f)
  const size = client.getSnapshot().length
  const initialMs = now() - t0
  if (size !== rows) throw new Error(`bench: client holds ${size} rows after the sync, expected ${rows}`)
  const stored = () => {
    for (const [key, value] of store) if (key.endsWith("r/meta")) return JSON.parse(value).cursor === rows
    return false
  }
  await until(stored, 60_000, "the client's first cache write")
  return { socket, client, initialMs }
}

const task = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Delivers frames one per task while something reads every 16 ms; ms until a read has seen `done`. */
const perTask = async (frames: ReadonlyArray<string>, deliver: (frame: string) => void, read: () => boolean): Promise<number> => {
  let seen = false
  const timer = setInterval(() => {
    if (read()) seen = true
  }, 16)
  const t0 = now()
  for (const f of frames) {
    await task()
    deliver(f)
  }
  while (!seen) await task()
  const ms = now() - t0
  clearInterval(timer)
  return ms
}

/** A bare Map holding the same `rows` rows as the client after its sync. */
const bareMap = (rows: number) => {
  const map = new Map<unknown, ReadonlyArray<unknown>>()
  for (const f of syncFrames(rows)) for (const r of JSON.parse(f).rows ?? []) map.set(r[0], r)
  return map
}

const decodeRow = Schema.decodeUnknownExit(todos.record)
const decodeChange = Schema.decodeUnknownExit(Schema.TaggedStruct("Change", { ...Change.fields, rows: Schema.Array(todos.record) }))

/** How each baseline applies one frame's text to its Map. */
const baselines = {
  map: (map: Map<unknown, ReadonlyArray<unknown>>, text: string) => {
    for (const r of JSON.parse(text).rows) map.set(r[0], r)
  },
  rowSchema: (map: Map<unknown, ReadonlyArray<unknown>>, text: string) => {
    for (const r of JSON.parse(text).rows) {
      const exit = decodeRow(r)
      if (Exit.isFailure(exit)) throw new Error("bench: a row does not decode")
      map.set(exit.value[0], exit.value)
    }
  },
  frameSchema: (map: Map<unknown, ReadonlyArray<unknown>>, text: string) => {
    const exit = decodeChange(JSON.parse(text))
    if (Exit.isFailure(exit)) throw new Error("bench: a frame does not decode")
    for (const r of exit.value.rows) map.set(r[0], r)
  }
} as const

/** 6. Client apply: `changes` single-row changes into a `rows`-row client, in Node, no network, against the baselines. */
export const clientApply = async (rows: number, changes: number, rounds: number): Promise<ApplyResult> => {
  const frames = changeFrames(rows, changes)
  const last = JSON.parse(frames[frames.length - 1]!).rows[0] as ReadonlyArray<unknown>
  const holds = (snapshot: Iterable<ReadonlyArray<unknown>>) => {
    for (const r of snapshot) if (r[0] === last[0] && r[1] === last[1]) return true
    return false
  }
  const backToBack = { ours: [] as Array<number>, map: [] as Array<number>, rowSchema: [] as Array<number>, frameSchema: [] as Array<number> }
  const perTask16 = { ours: [] as Array<number>, map: [] as Array<number>, rowSchema: [] as Array<number>, frameSchema: [] as Array<number> }
  let initialMs = NaN

  const baseline = (name: keyof typeof baselines) => async () => {
    const apply = baselines[name]
    const map = bareMap(rows)
    collectGarbage()
    const t0 = now()
    for (const f of frames) apply(map, f)
    backToBack[name].push(now() - t0)
    if (!holds(map.values())) throw new Error(`bench: the last change is not in the ${name} baseline`)
    const other = bareMap(rows)
    collectGarbage()
    perTask16[name].push(await perTask(frames, (f) => apply(other, f), () => holds(Array.from(other.values()))))
  }
  const sides = [
    async () => {
      const a = await freshClient(rows)
      if (Number.isNaN(initialMs)) initialMs = a.initialMs
      collectGarbage()
      const t0 = now()
      for (const f of frames) a.socket.deliver(f)
      if (!holds(a.client.getSnapshot())) throw new Error("bench: the last change is not in the snapshot")
      backToBack.ours.push(now() - t0)
      await a.client.close()
      const b = await freshClient(rows)
      collectGarbage()
      perTask16.ours.push(await perTask(frames, (f) => b.socket.deliver(f), () => holds(b.client.getSnapshot())))
      await b.client.close()
    },
    baseline("map"),
    baseline("rowSchema"),
    baseline("frameSchema")
  ]
  // each round starts with the next side: none is always first (or last) after the others
  for (let r = 0; r < rounds; r++) for (let k = 0; k < sides.length; k++) await sides[(r + k) % sides.length]!()

  const n = await freshClient(rows)
  collectGarbage()
  let reads = 0
  const seen = new Promise<void>((resolve) => {
    n.client.subscribe(() => {
      reads++
      if (holds(n.client.getSnapshot())) resolve()
    })
  })
  const t0 = now()
  for (const f of frames) {
    await task()
    n.socket.deliver(f)
  }
  await seen
  const notifiedMs = now() - t0
  await n.client.close()

  return { initialMs, backToBack, perTask16, notifiedMs, notifications: reads }
}

/** What scenario 7 measured. */
export interface BundleResult {
  readonly minified: number
  readonly gzipped: number
  /** The largest inputs by minified bytes, to see where the size goes. */
  readonly top: ReadonlyArray<{ readonly path: string; readonly bytes: number }>
  /**
   * effect's modules and ours, each minified and gzipped by itself (the two
   * add up to a little more than the whole: gzip shares nothing between them).
   * effect's part is what any client built on effect's runtime and Schema
   * carries, so the target leaves what it does not take for the client's code.
   */
  readonly split: { readonly effect: number; readonly ours: number }
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
  return { minified: code.byteLength, gzipped: gzipSync(code, { level: 9 }).byteLength, top, split: await splitSize() }
}

/** Scenario 7's row: the bundle against its 40,000 B target, with what effect's modules and ours weigh alone. */
export const bundleRow = (bundle: BundleResult): ReportRow => ({
  scenario: "7. bundle size", metric: "effect-partysync/react, min+gz", unit: "B",
  // in bytes: rounded to 0.1 KB, a bundle just under the limit read as the limit itself
  ours: bundle.gzipped, raw: null, target: "<= 40,000 B gz", pass: bundle.gzipped <= 40_000,
  note: `minified ${fmtBytes(bundle.minified)}; gzipped alone, effect's modules ${bundle.split.effect} B and ours ${bundle.split.ours} B`
})

/**
 * The React entry bundled unminified, cut at esbuild's `// path` comment
 * before each module into effect's modules and ours, and each part minified
 * and gzipped by itself.
 */
const splitSize = async (): Promise<BundleResult["split"]> => {
  const result = await build({
    entryPoints: ["src/react/index.ts"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    external: ["react", "react-dom", "react/jsx-runtime"],
    write: false,
    logLevel: "silent"
  })
  const parts = { effect: [] as Array<string>, ours: [] as Array<string> }
  let into: Array<string> = parts.ours
  for (const line of result.outputFiles[0]!.text.split("\n")) {
    const module = /^\/\/ (\S+)$/.exec(line)?.[1]
    if (module !== undefined) into = module.startsWith("node_modules/effect/") ? parts.effect : parts.ours
    into.push(line)
  }
  const size = async (lines: Array<string>) => {
    const { code } = await transform(lines.join("\n"), { minify: true, format: "esm", target: "es2022", loader: "js" })
    return gzipSync(code, { level: 9 }).byteLength
  }
  return { effect: await size(parts.effect), ours: await size(parts.ours) }
}
