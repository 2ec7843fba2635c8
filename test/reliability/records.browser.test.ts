/**
 * The confirmed records' cache in real Chromium (playwright-core, Debian's
 * chromium), on a page served by the test itself that bundles the client:
 * - write cost: a single-row change puts that one row (and the meta) into
 *   IndexedDB, never the table (counted in the page: rows in what was put);
 * - a cache in the previous format (one `records` value) is moved to the
 *   new layout, its queue kept;
 * - crash consistency, against the real worker: a page killed in the middle
 *   of a records write (its renderer crashed while the transaction was still
 *   being filled) reloads to a cache whose rows are exactly the server's rows
 *   at the stored cursor, then resumes and applies its queued action, with
 *   nothing lost.
 */
import { build } from "esbuild"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchBrowser } from "../e2e/harness.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { freshRoom } from "../helpers/protocol.ts"

// The page comes from a server of the test's own on 127.0.0.1: a loopback origin is a secure context
// (crypto.randomUUID), and a page Chromium fetched from the local network may open the worker's sockets
// (one a route made up is refused by its local network access checks).
let origin: string
let server: Server

// The client, the Todo channel and a fake socket for the page (as `window.psync`), and a
// counter of what the page puts into IndexedDB: per object store, and the rows in the values.
const harness = `
import { createSyncClient, makeIndexedDb } from "./src/client/index.ts"
import { todos } from "./fixtures/todo-sync/src/shared.ts"
class FakeSocket {
  readyState = 1
  url = "ws://fake.test/parties/to-dos/room"
  listeners = new Map()
  sent = []
  addEventListener(type, l) { if (!this.listeners.has(type)) this.listeners.set(type, new Set()); this.listeners.get(type).add(l) }
  removeEventListener(type, l) { this.listeners.get(type)?.delete(l) }
  send(data) { this.sent.push(JSON.parse(data)) }
  deliver(frame) { for (const l of [...(this.listeners.get("message") ?? [])]) l({ data: JSON.stringify(frame) }) }
}
// forwards to a WebSocket, except Action frames while holdActions is set (the action stays pending)
class Holding {
  constructor(ws) { this.ws = ws; this.holdActions = false }
  get readyState() { return this.ws.readyState }
  get url() { return this.ws.url }
  addEventListener(t, l) { this.ws.addEventListener(t, l) }
  removeEventListener(t, l) { this.ws.removeEventListener(t, l) }
  send(data) { if (!(this.holdActions && data.includes('"_tag":"Action"'))) this.ws.send(data) }
}
const rowsIn = (value) => {
  let n = 0
  const walk = (u) => {
    if (typeof u === "string" && u.startsWith("{")) { try { u = JSON.parse(u) } catch { return } }
    if (typeof u === "object" && u !== null && !Array.isArray(u)) return Object.values(u).forEach(walk)
    if (!Array.isArray(u)) return
    if (u.length === 7 && typeof u[0] === "string" && /^(t|seed-)/.test(u[0])) n++
    else u.forEach(walk)
  }
  walk(value)
  return n
}
// what a key of the cache is: the records' meta, a page, a log entry, a pending queue
const kind = (key) => typeof key !== "string" ? String(key) : /\\/(q|lease|pending)\\//.test(key) ? "pending" : key.endsWith("/meta") ? "meta" : key.includes("/p/") ? "page" : key.includes("/l/") ? "log" : key
const counts = { puts: {}, deletes: {}, rows: 0 }
const put = IDBObjectStore.prototype.put
IDBObjectStore.prototype.put = function (value, key) {
  if (kind(key) !== "pending") {
    counts.puts[kind(key)] = (counts.puts[kind(key)] ?? 0) + 1
    counts.rows += rowsIn(value)
  }
  // a test that wants a write cut short names the put of rows (a page or a log entry) to stop at
  if (window.stopAt !== undefined && (kind(key) === "page" || kind(key) === "log") && --window.stopAt === 0) {
    console.log("mid-write")
    const end = Date.now() + 30000
    while (Date.now() < end) {}
  }
  return put.call(this, value, key)
}
const del = IDBObjectStore.prototype.delete
IDBObjectStore.prototype.delete = function (key) {
  if (typeof key === "string" && kind(key) !== "pending") counts.deletes[kind(key)] = (counts.deletes[kind(key)] ?? 0) + 1
  return del.call(this, key)
}
const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error) })
// the records as they are in the store, read directly (never creating the database): the pages' rows, then the log's changes
const readRecords = async (prefix) => {
  if (!(await indexedDB.databases()).some((d) => d.name === "effect-partysync")) return null
  const db = await request(indexedDB.open("effect-partysync"))
  const kv = db.transaction("kv").objectStore("kv")
  const text = await request(kv.get(prefix + "r/meta"))
  if (text === undefined) return (db.close(), null)
  const meta = JSON.parse(text)
  const pages = await Promise.all(Array.from({ length: meta.pages }, (_, n) => request(kv.get(prefix + "r/p/" + meta.epoch + "/" + n))))
  const log = await Promise.all(Array.from({ length: meta.to - meta.from }, (_, n) => request(kv.get(prefix + "r/l/" + (meta.from + n)))))
  db.close()
  const rows = new Map(pages.flatMap((p) => JSON.parse(p)).map((r) => [r[0], r]))
  let cursor = meta.tableCursor
  for (const entry of log.map((e) => JSON.parse(e))) {
    if (entry.f !== cursor) throw new Error("the log does not follow on")
    for (const id of entry.d) rows.delete(id)
    for (const r of entry.u) rows.set(r[0], r)
    for (const r of entry.i) {
      rows.delete(r[0])
      rows.set(r[0], r)
    }
    cursor = entry.c
  }
  if (cursor !== meta.cursor) throw new Error("the log does not reach the meta's cursor")
  return { meta, ids: [...rows.keys()], entries: log.length }
}
window.psync = { createSyncClient, makeIndexedDb, todos, FakeSocket, Holding, counts, request, readRecords }
`

let browser: Browser
let context: BrowserContext
let script: string

beforeAll(async () => {
  const bundled = await build({
    stdin: { contents: harness, resolveDir: process.cwd(), loader: "ts" },
    bundle: true,
    format: "iife",
    platform: "browser",
    write: false,
    logLevel: "silent"
  })
  script = bundled.outputFiles[0]!.text
  const html = `<!doctype html><title>records</title><script>${script.replace(/<\/script/g, "<\\/script")}</script>`
  server = createServer((_, response) => response.writeHead(200, { "content-type": "text/html" }).end(html))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  browser = await launchBrowser()
}, 120_000)
afterAll(async () => {
  await browser?.close()
  server?.close()
})

const freshContext = async () => {
  context = await browser.newContext()
  return context
}

const page = async (): Promise<Page> => {
  const p = await context.newPage()
  await p.goto(`${origin}/`)
  return p
}

const FAKE_NS = `effect-partysync/v2/${encodeURIComponent("fake.test/to-dos/room")}/todos/`

describe("the records cache in Chromium's IndexedDB", () => {
  it("a single-row change puts that row (in a log entry) and the meta; a delete puts no row", async () => {
    await freshContext()
    const p = await page()
    await p.evaluate(async () => {
      const { createSyncClient, FakeSocket } = (window as any).psync
      const socket = new FakeSocket()
      const client = createSyncClient({ channel: (window as any).psync.todos, socket, persistDelayMs: 1 })
      await client.ready
      socket.deliver({ _tag: "SyncRows", channel: "todos", reset: true, rows: Array.from({ length: 1000 }, (_, i) => [`t${i}`, `todo ${i}`, 0, 1, 1, 1, null]), deleted: [] })
      socket.deliver({ _tag: "Synced", channel: "todos", version: 1000, reset: true, history: "h1" })
      Object.assign(window, { client, socket })
    })
    const storedAt = (cursor: number) =>
      expect.poll(() => p.evaluate((ns) => (window as any).psync.readRecords(ns).then((r: any) => r?.meta?.cursor), FAKE_NS), { timeout: 10_000 }).toBe(cursor)
    await storedAt(1000)
    const change = (version: number, rows: Array<unknown>, deleted: Array<string> = []) =>
      p.evaluate(([frame]) => {
        const { counts } = (window as any).psync
        counts.puts = {}
        counts.deletes = {}
        counts.rows = 0
        ;(window as any).socket.deliver(frame)
      }, [{ _tag: "Change", channel: "todos", version, rows, deleted }] as const)
    const counted = () => p.evaluate(() => JSON.parse(JSON.stringify((window as any).psync.counts)))

    // one log entry holding the changed row, and the meta that counts it
    await change(1001, [["t500", "edited", 1, 1, 2, 1, null]])
    await storedAt(1001)
    expect(await counted()).toEqual({ puts: { log: 1, meta: 1 }, deletes: {}, rows: 1 })
    await change(1002, [["t1000", "new", 0, 1, 1, 1, null]])
    await storedAt(1002)
    expect(await counted()).toEqual({ puts: { log: 1, meta: 1 }, deletes: {}, rows: 1 })
    await change(1003, [], ["t3"])
    await storedAt(1003)
    expect(await counted()).toEqual({ puts: { log: 1, meta: 1 }, deletes: {}, rows: 0 })

    // a reload shows the table as it was, in its order
    const before = await p.evaluate(() => (window as any).client.getSnapshot())
    await p.evaluate(() => (window as any).client.close())
    const q = await page()
    const after = await q.evaluate(async () => {
      const { createSyncClient, FakeSocket, todos } = (window as any).psync
      const client = createSyncClient({ channel: todos, socket: new FakeSocket() })
      await client.ready
      return client.getSnapshot()
    })
    expect(after).toEqual(before)
    await context.close()
  })

  it("a cache in the previous format is moved to the new layout with the first write; the queue is kept", async () => {
    await freshContext()
    const p = await page()
    const old = Array.from({ length: 50 }, (_, i) => [`t${i}`, `old ${i}`, 0, 1, 1, 1, null])
    // what an earlier build left: the whole table in one value of the kv object store, and a queue
    await p.evaluate(async ([ns, rows]) => {
      const { request } = (window as any).psync
      const open = indexedDB.open("effect-partysync", 1)
      open.onupgradeneeded = () => open.result.createObjectStore("kv")
      const db: IDBDatabase = await request(open)
      const store = db.transaction("kv", "readwrite").objectStore("kv")
      store.put(JSON.stringify({ cursor: 50, history: "h1", schema: 2, rows }), `${ns}records`)
      const key = "k".repeat(32)
      await request(store.put(JSON.stringify({ owner: "gone", key, heartbeat: 0, nextSeq: 2, entries: [{ clientId: "gone", clientKey: key, seq: 1, action: { type: "delete", payload: { id: "t1" } }, schema: 2 }] }), `${ns}pending/gone`))
      db.close()
    }, [FAKE_NS, old] as const)
    const loaded = await p.evaluate(async () => {
      const { createSyncClient, FakeSocket, todos } = (window as any).psync
      const socket = new FakeSocket()
      const client = createSyncClient({ channel: todos, socket, persistDelayMs: 1 })
      await client.ready
      Object.assign(window, { client, socket })
      return { rows: client.getSnapshot(), status: client.getStatus(), subscribe: socket.sent.find((m: any) => m._tag === "Subscribe") }
    })
    expect(loaded.rows).toEqual(old)
    expect(loaded.status.pending).toBe(1)
    expect(loaded.subscribe).toMatchObject({ since: 50, history: "h1" })
    await expect.poll(() => p.evaluate((ns) => (window as any).psync.readRecords(ns), FAKE_NS), { timeout: 10_000 })
      .toMatchObject({ meta: { cursor: 50, history: "h1" }, ids: old.map((r) => r[0]) })
    const kvKeys = () =>
      p.evaluate(async () => {
        const { request } = (window as any).psync
        const db: IDBDatabase = await request(indexedDB.open("effect-partysync"))
        const keys = await request(db.transaction("kv").objectStore("kv").getAllKeys())
        db.close()
        return keys.map((k: string) => k.split("/").slice(-2).join("/"))
      })
    await expect.poll(kvKeys, { timeout: 10_000 }).not.toContain("todos/records")
    // the queue is kept, as one record per action (the previous release's value converted)
    const keys = await kvKeys()
    expect(keys.filter((k: string) => k.startsWith("pending"))).toHaveLength(0)
    expect(keys).toContain("gone/1")
    await context.close()
  })

  it("a page killed in the middle of a write reloads to rows that agree with its cursor, then resumes without loss", async () => {
    const room = freshRoom("records-crash")
    const url = `${workerUrl().replace(/^http/, "ws").replace(/\/$/, "")}/parties/to-dos/${room}`
    const ns = `effect-partysync/v2/${encodeURIComponent(`${new URL(url).host}/to-dos/${room}`)}/todos/`
    const server = hooks(workerUrl(), room)
    await server.seed(0, 2000)
    await freshContext()
    const p = await page()
    const cdp = await context.newCDPSession(p)
    const start = (q: Page) =>
      q.evaluate(async (u) => {
        const { createSyncClient, Holding, todos } = (window as any).psync
        const socket = new Holding(new WebSocket(u))
        const client = createSyncClient({ channel: todos, socket, persistDelayMs: 1, leaseMs: 300 })
        await client.ready
        Object.assign(window, { client, socket })
        return client.getSnapshot().length
      }, url)
    const live = (q: Page) =>
      expect.poll(() => q.evaluate(() => (window as any).client.getStatus().connection), { timeout: 20_000 }).toBe("live")
    await start(p)
    await live(p)
    await expect.poll(() => p.evaluate((n) => (window as any).psync.readRecords(n).then((r: any) => r?.ids.length), ns), { timeout: 20_000 }).toBe(2000)
    const stored = await p.evaluate((n) => (window as any).psync.readRecords(n), ns)

    // an action the server never sees (its frame is held back): it is in the stored queue only
    await p.evaluate(() => {
      ;(window as any).socket.holdActions = true
      void (window as any).client.send({ type: "create", payload: { id: "queued", text: "queued before the crash", completed: 0, priority: 1 } }).catch(() => {})
    })
    // the next records write stops as it puts its rows; the renderer crashes there, the transaction unfinished
    const midWrite = new Promise<void>((resolve) => p.on("console", (m) => m.text() === "mid-write" && resolve()))
    await p.evaluate(() => ((window as any).stopAt = 1))
    await server.seed(2000, 3000)
    await midWrite
    const crashed = new Promise<void>((resolve) => p.on("crash", () => resolve()))
    void cdp.send("Page.crash").catch(() => undefined)
    await crashed

    const q = await page()
    const cached = await q.evaluate((n) => (window as any).psync.readRecords(n), ns)
    // the rows are exactly the server's rows at the stored cursor: every row whose version is at most it
    const log = await server.log()
    const atCursor = log.filter(([version, , deleted]) => version <= cached.meta.cursor && deleted === 0).map(([, id]) => id).sort()
    expect([...cached.ids].sort()).toEqual(atCursor)
    // and the write was cut: the cache holds the first rows, not the 3000 the server sent next
    expect(cached.meta.cursor).toBeGreaterThanOrEqual(stored.meta.cursor)
    expect(cached.ids.length).toBeLessThan(5000)
    expect(log.some(([version]) => version > cached.meta.cursor)).toBe(true)

    // reloaded: the cached rows at once, then the rest from the cursor, and the queued action applied once
    expect(await start(q)).toBe(2000)
    await live(q)
    await expect.poll(() => q.evaluate(() => (window as any).client.getStatus().pending), { timeout: 20_000 }).toBe(0)
    const rows = await server.rows()
    expect(rows.filter((r) => r[1] === "queued before the crash")).toHaveLength(1)
    await expect.poll(() => q.evaluate(() => (window as any).client.getSnapshot().length), { timeout: 20_000 }).toBe(5001)
    const shown = await q.evaluate(() => (window as any).client.getSnapshot().map((r: Array<unknown>) => r[0]).sort())
    expect(shown).toEqual(rows.map((r) => r[0]).sort())
    await context.close()
  }, 120_000)
})
