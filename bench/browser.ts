/**
 * 11. The client's local cache in Chromium (Debian's, driven by
 * playwright-core), on a page served from 127.0.0.1 that bundles the client
 * with a fake socket (no server):
 * - bytes put into IndexedDB per single-row change with 1k and 100k rows
 *   cached (keys and values, JSON-encoded, counted in the page);
 * - a reload with 100k cached rows: a fresh page's client, from its creation
 *   to a first snapshot holding every row, beside a raw read of the same data
 *   (one transaction's reads of the meta, the pages and the log, the pages
 *   parsed with JSON.parse), alternating;
 * - the heap a 100k-row client holds (V8's used heap after a collection),
 *   beside the raw read's arrays;
 * - 12, enqueue stays flat: an offline client over 1,000 cached rows queues
 *   1,000 actions into IndexedDB, each timed until its record is stored (see
 *   bench/enqueue.ts for the Node side).
 */
import { build } from "esbuild"
import { existsSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import type { Browser, Page } from "playwright-core"
import { changeFrames, syncFrames } from "./local.ts"

// The client, the channel and a fake socket for the page, and a counter of the bytes it puts into IndexedDB.
const harness = `
import * as Effect from "effect/Effect"
import { createSyncClient, makeIndexedDb } from "./src/client/index.ts"
import { todos } from "./fixtures/todo-sync/src/shared.ts"
import { optimisticReducer } from "./fixtures/todo-sync/src/app/optimistic.ts"
class FakeSocket {
  readyState = 1
  url = "ws://bench.invalid/parties/to-dos/cache"
  listeners = new Set()
  addEventListener(type, l) { if (type === "message") this.listeners.add(l) }
  removeEventListener(type, l) { this.listeners.delete(l) }
  send() {}
  deliver(data) { for (const l of this.listeners) l({ data }) }
}
const counted = { bytes: 0, puts: 0 }
const put = IDBObjectStore.prototype.put
// the records' keys only: a lease's heartbeat (every few seconds, whatever changes) is no change's cost
IDBObjectStore.prototype.put = function (value, key) {
  if (typeof key === "string" && key.includes("/r/")) {
    counted.puts++
    counted.bytes += JSON.stringify(value).length + JSON.stringify(key).length
  }
  return put.call(this, value, key)
}
const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error) })
const NS = "effect-partysync/v2/" + encodeURIComponent("bench.invalid/to-dos/cache") + "/todos/r/"
const storedCursor = async () => {
  const db = await request(indexedDB.open("effect-partysync"))
  const meta = await request(db.transaction("kv").objectStore("kv").get(NS + "meta"))
  db.close()
  return meta === undefined ? undefined : JSON.parse(meta).cursor
}
// the same data read raw: one transaction's reads of the meta, the pages and the log, the pages parsed
const rawRead = async () => {
  const t0 = performance.now()
  const db = await request(indexedDB.open("effect-partysync"))
  const kv = db.transaction("kv").objectStore("kv")
  const meta = JSON.parse(await request(kv.get(NS + "meta")))
  const keys = Array.from({ length: meta.pages }, (_, n) => NS + "p/" + meta.epoch + "/" + n)
  for (let n = meta.from; n < meta.to; n++) keys.push(NS + "l/" + n)
  const values = await Promise.all(keys.map((k) => request(kv.get(k))))
  const rows = values.slice(0, meta.pages).flatMap((p) => JSON.parse(p))
  const ms = performance.now() - t0
  db.close()
  window.held = [rows, values.slice(meta.pages)]
  return { ms, rows: rows.length }
}
const open = async (frames) => {
  const t0 = performance.now()
  const socket = new FakeSocket()
  const client = createSyncClient({ channel: todos, socket, persistDelayMs: 1 })
  await client.ready
  const cached = client.getSnapshot().length
  const ms = performance.now() - t0
  for (const f of frames ?? []) socket.deliver(f)
  window.client = client
  window.socket = socket
  return { ms, cached, rows: client.getSnapshot().length }
}
// 12: an offline client over the rows of frames (cached by an online one first) queues actions that edit them;
// each is timed until IndexedDB has stored its record (and, with read, the snapshot and status read)
let sessions = 0
const offline = async (frames, actions, read) => {
  const url = "ws://bench.invalid/parties/to-dos/offline-" + ++sessions
  const online = new FakeSocket()
  online.url = url
  const seed = createSyncClient({ channel: todos, socket: online, persistDelayMs: 1 })
  await seed.ready
  for (const f of frames) online.deliver(f)
  await seed.close()
  const inner = makeIndexedDb()
  let stored = () => {}
  const store = Object.create(inner)
  store.set = (key, value) => Effect.tap(inner.set(key, value), () => Effect.sync(() => key.includes("/q/") && stored()))
  const socket = { readyState: 3, url, send() { throw new Error("offline") }, addEventListener() {}, removeEventListener() {} }
  const client = createSyncClient({ channel: todos, socket, store, optimistic: optimisticReducer })
  await client.ready
  const cached = client.getSnapshot().length
  const perEnqueue = []
  for (let k = 0; k < actions; k++) {
    const done = new Promise((resolve) => { stored = resolve })
    const t0 = performance.now()
    client.send({ type: "update", payload: { id: "t" + (k * 7) % cached, text: "edited offline " + k } }).catch(() => {})
    if (read) { client.getSnapshot(); client.getStatus() }
    await done
    perEnqueue.push(performance.now() - t0)
  }
  const pending = client.getStatus().pending
  await client.close()
  return { cached, pending, perEnqueue }
}
window.bench = { open, rawRead, storedCursor, counted, offline }
`

/** What scenario 11 measured in Chromium. */
export interface BrowserCacheResult {
  /** Per table size: bytes put for a change of a row of `row` bytes, and of the same row `long` bytes long. */
  readonly bytes: ReadonlyArray<{ readonly rows: number; readonly row: number; readonly bytes: number; readonly long: number; readonly longBytes: number; readonly puts: number }>
  /** Per round: ms to the first full snapshot of a reloaded client, and of the raw read. */
  readonly reload: { readonly ours: ReadonlyArray<number>; readonly raw: ReadonlyArray<number> }
  /** Used heap held, in bytes: the 100k-row client loaded from its cache, and the raw read's arrays. */
  readonly heap: { readonly ours: number; readonly raw: number }
}

/** 12 in Chromium: ms per enqueue of an offline session into IndexedDB, the queue alone and with a render's read after each. */
export interface BrowserEnqueueResult {
  readonly queue: ReadonlyArray<number>
  readonly render: ReadonlyArray<number>
}

const launch = async (): Promise<Browser> => {
  const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
  if (!existsSync(executablePath)) throw new Error(`bench: Chromium not found at ${executablePath} (apt-get install -y chromium)`)
  const { chromium } = await import("playwright-core")
  return chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  })
}

/** 12 in Chromium: a warm-up session of 100 enqueues, then 1,000 with the queue alone and 1,000 with a render's read, each over 1,000 cached rows. */
const offlineEnqueue = async (browser: Browser, origin: string): Promise<BrowserEnqueueResult> => {
  const context = await browser.newContext()
  const page = await context.newPage()
  await page.goto(origin)
  const frames = syncFrames(1_000)
  const session = async (actions: number, read: boolean) => {
    const r = await page.evaluate(([f, n, rd]) => (window as any).bench.offline(f, n, rd), [frames, actions, read] as const)
    if (r.cached !== 1_000 || r.pending !== actions) throw new Error(`bench: the offline client held ${r.cached} rows and ${r.pending} actions`)
    return r.perEnqueue as Array<number>
  }
  await session(100, true)
  const queue = await session(1_000, false)
  const render = await session(1_000, true)
  await context.close()
  return { queue, render }
}

/** Serves the harness on a loopback origin and runs `f` in a Chromium that can load it. */
const withHarness = async <A>(f: (browser: Browser, origin: string) => Promise<A>): Promise<A> => {
  const bundled = await build({
    stdin: { contents: harness, resolveDir: process.cwd(), loader: "ts" },
    bundle: true,
    minify: true,
    format: "iife",
    platform: "browser",
    write: false,
    logLevel: "silent"
  })
  const html = `<!doctype html><title>cache</title><script>${bundled.outputFiles[0]!.text.replace(/<\/script/g, "<\\/script")}</script>`
  // a loopback origin is a secure context (crypto.randomUUID)
  const server = createServer((_, response) => response.writeHead(200, { "content-type": "text/html" }).end(html))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  const browser = await launch()
  try {
    return await f(browser, origin)
  } finally {
    await browser.close()
    server.close()
  }
}

/** Runs scenario 11's Chromium part; `reloads` rounds of the reload. */
export const browserCache = (reloads: number): Promise<BrowserCacheResult> =>
  withHarness(async (browser, origin) => {
    const stored = async (page: Page, cursor: number) => {
      for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
        if ((await page.evaluate(() => (window as any).bench.storedCursor())) === cursor) return
        await page.waitForTimeout(50)
      }
      throw new Error(`bench: the cache never reached ${cursor}`)
    }
    const bytes: Array<BrowserCacheResult["bytes"][number]> = []
    let page: Page | undefined
    let context = await browser.newContext()
    for (const rows of [1_000, 100_000]) {
      await context.close()
      context = await browser.newContext()
      page = await context.newPage()
      await page.goto(origin)
      await page.evaluate((frames) => (window as any).bench.open(frames), syncFrames(rows))
      await stored(page, rows)
      const change = async (frame: string, cursor: number) => {
        await page!.evaluate((f) => {
          const { counted } = (window as any).bench
          counted.bytes = counted.puts = 0
          ;(window as any).socket.deliver(f)
        }, frame)
        await stored(page!, cursor)
        return page!.evaluate(() => ({ ...(window as any).bench.counted }))
      }
      const [short, long] = changeFrames(rows, 2).map((f) => JSON.parse(f))
      long.rows[0][1] += "x".repeat(1000)
      const a = await change(JSON.stringify(short), short.version)
      const b = await change(JSON.stringify(long), long.version)
      bytes.push({ rows, row: JSON.stringify(short.rows[0]).length, bytes: a.bytes, long: JSON.stringify(long.rows[0]).length, longBytes: b.bytes, puts: a.puts })
    }
    // the 100k-row cache is in the context: reload it, alternating with the raw read
    await page!.evaluate(() => (window as any).client.close())
    const reload = { ours: [] as Array<number>, raw: [] as Array<number> }
    const fresh = async () => {
      const p = await context.newPage()
      await p.goto(origin)
      return p
    }
    for (let r = 0; r < reloads; r++) {
      for (const side of r % 2 === 0 ? ["ours", "raw"] as const : ["raw", "ours"] as const) {
        const p = await fresh()
        const result = await p.evaluate((s) => (s === "ours" ? (window as any).bench.open() : (window as any).bench.rawRead()), side)
        if ((side === "ours" ? result.cached : result.rows) !== 100_000) throw new Error(`bench: the reloaded ${side} read ${JSON.stringify(result)}`)
        reload[side].push(result.ms)
        if (side === "ours") await p.evaluate(() => (window as any).client.close())
        await p.close()
      }
    }
    const heldBy = async (side: "ours" | "raw") => {
      const p = await fresh()
      const cdp = await context.newCDPSession(p)
      const used = async () => {
        await cdp.send("HeapProfiler.collectGarbage")
        return (await cdp.send("Runtime.getHeapUsage")).usedSize
      }
      const before = await used()
      await p.evaluate((s) => (s === "ours" ? (window as any).bench.open() : (window as any).bench.rawRead()), side)
      // the client's writer and timers settle
      await p.waitForTimeout(1_000)
      const held = (await used()) - before
      await p.close()
      return held
    }
    const heap = { ours: await heldBy("ours"), raw: await heldBy("raw") }
    await context.close()
    return { bytes, reload, heap }
  })

/** 12. Enqueues of offline sessions into IndexedDB in Chromium (see `offlineEnqueue`). */
export const browserEnqueue = (): Promise<BrowserEnqueueResult> => withHarness(offlineEnqueue)
