/**
 * The confirmed records' cache over a KeyValueStore (the memory store), with
 * real clients driven through a fake socket:
 * - write cost: a change writes the rows it changed and the meta, never the
 *   table (counted: rows in what was written, not time);
 * - a reload gets the rows in the table's order, with the cursor they are at;
 * - clients sharing a store: one that is behind stores nothing, another
 *   history replaces the table, and what is stored always loads as the rows
 *   of its cursor;
 * - a write cut short (the process died between two keys) never shows: the
 *   next client loads the state before it; a page gone missing resets the
 *   cache with the reason; the queue is kept either way;
 * - a log grown past half the table is folded into a new table;
 * - a cache in the previous format (one `records` value) is migrated, or
 *   reset once when it cannot be read, and the queue is kept.
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import { afterEach, describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore, type PlainSyncClient } from "../../src/client/index.ts"
import { plan } from "../../src/client/RecordCache.ts"
import { RecordTable } from "../../src/client/RecordTable.ts"
import type { ServerMessage } from "../../src/protocol/Protocol.ts"
import { FakeSocket } from "../helpers/fake-socket.ts"
import { eventually } from "../helpers/protocol.ts"

type Todo = typeof todos.record.Type
type Client = PlainSyncClient<typeof todos>

const NS = `effect-partysync/v2/${encodeURIComponent("fake.test/to-dos/room")}/todos/`
const row = (id: string, text: string, deleted: number | null = null): Todo => [id, text, 0, 1, 1, 1, deleted]
const rows = (n: number, from = 0) => Array.from({ length: n }, (_, i) => row(`t${from + i}`, `todo ${from + i}`))
const change = (version: number, changed: ReadonlyArray<Todo>, deleted: ReadonlyArray<string> = []): ServerMessage =>
  ({ _tag: "Change", channel: "todos", version, rows: changed, deleted })

/** The rows of a full sync answer at `version`. */
const answer = (socket: FakeSocket, version: number, all: ReadonlyArray<Todo>, history = "h1") => {
  socket.deliver({ _tag: "SyncRows", channel: "todos", reset: true, rows: all, deleted: [] })
  socket.deliver({ _tag: "Synced", channel: "todos", version, reset: true, history })
}

/**
 * A memory store over `disk` that counts what is written, and that can be made to die
 * after a number of further writes (every call fails from then on, as after a crash).
 */
const store = (disk: Map<string, string>) => {
  const inner = makeMemoryStore(disk)
  const log: Array<readonly ["set" | "remove", string, string?]> = []
  // writes of records (not of pending queues) the process still makes before it dies
  let budget = Infinity
  const alive = <A>(effect: Effect.Effect<A, KeyValueStore.KeyValueStoreError>, key?: string) =>
    Effect.suspend(() => {
      if (budget <= 0) return Effect.fail(new KeyValueStore.KeyValueStoreError({ message: "the process died", method: "any" }))
      if (key !== undefined && !/\/(q|lease|pending)\//.test(key)) budget--
      return effect
    })
  const kv = KeyValueStore.makeStringOnly({
    get: (key) => alive(inner.get(key)),
    set: (key, value) => alive(Effect.andThen(inner.set(key, value), Effect.sync(() => void log.push(["set", key, value]))), key),
    remove: (key) => alive(Effect.andThen(inner.remove(key), Effect.sync(() => void log.push(["remove", key]))), key),
    clear: alive(inner.clear, ""),
    size: alive(inner.size),
    keys: alive(inner.keys)
  })
  return { kv, log, dieAfter: (writes: number) => void (budget = writes) }
}

/** Record tuples in a stored value (a row of ours is an array whose first element is a "t..." id). */
const rowsIn = (value: string | undefined): number => {
  let n = 0
  const walk = (u: unknown) => {
    if (!Array.isArray(u)) return
    if (u.length === 7 && typeof u[0] === "string" && u[0].startsWith("t")) n++
    else u.forEach(walk)
  }
  if (value !== undefined) {
    const parsed = JSON.parse(value) as unknown
    walk(Array.isArray(parsed) ? parsed : typeof parsed === "object" && parsed !== null ? Object.values(parsed) : parsed)
  }
  return n
}

const storedMeta = (disk: Map<string, string>) =>
  JSON.parse(disk.get(`${NS}r/meta`) ?? "null") as { cursor: number | null; history?: string; from: number; to: number; epoch: string; pages: number } | null

const open: Array<Client> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
})

const client = async (kv: KeyValueStore.KeyValueStore, socket = new FakeSocket(), options: { leaseMs?: number; persistDelayMs?: number } = {}) => {
  const c = createSyncClient({ channel: todos, socket, store: kv, persistDelayMs: options.persistDelayMs ?? 1, ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }) })
  open.push(c)
  await c.ready
  return { c, socket }
}

const ids = (c: Client) => c.getSnapshot().map((r) => r[0])
const storedAt = (disk: Map<string, string>, cursor: number) =>
  eventually(() => (storedMeta(disk)?.cursor === cursor ? true : undefined), { what: `the cache stored at ${cursor}` })

describe("the records cache over a KeyValueStore", () => {
  it("a change writes the rows it changed and the meta, at 1k rows; a burst is one write", async () => {
    const disk = new Map<string, string>()
    const s = store(disk)
    const { socket } = await client(s.kv)
    socket.open()
    answer(socket, 1000, rows(1000))
    await storedAt(disk, 1000)
    expect(s.log.reduce((n, [, , v]) => n + rowsIn(v), 0)).toBe(1000)

    s.log.length = 0
    socket.deliver(change(1001, [row("t500", "edited")]))
    await storedAt(disk, 1001)
    // a log entry holding the row, then the meta that counts it
    expect(s.log.map(([op, k]) => `${op} ${k.slice(NS.length)}`)).toEqual(["set r/l/0", "set r/meta"])
    expect(s.log.reduce((n, [, , v]) => n + rowsIn(v), 0)).toBe(1)

    s.log.length = 0
    socket.deliver(change(1002, [], ["t7"]))
    await storedAt(disk, 1002)
    expect(s.log.map(([op, k]) => `${op} ${k.slice(NS.length)}`)).toEqual(["set r/l/1", "set r/meta"])
    expect(s.log.reduce((n, [, , v]) => n + rowsIn(v), 0)).toBe(0)

    s.log.length = 0
    for (let v = 1003; v < 1053; v++) socket.deliver(change(v, [row(`t${v - 1003}`, `burst ${v}`)]))
    await storedAt(disk, 1052)
    expect(s.log.reduce((n, [, , v]) => n + rowsIn(v), 0)).toBe(50)
    expect(s.log).toHaveLength(2)
  })

  it("a log grown past half the table is folded into a new table, and the old pages and entries go", async () => {
    const disk = new Map<string, string>()
    const s = store(disk)
    const { c, socket } = await client(s.kv)
    socket.open()
    answer(socket, 100, rows(100))
    await storedAt(disk, 100)
    const first = storedMeta(disk)!
    let v = 100
    // entries of ten 1 KB rows: the log passes 64 KB (the least it may hold, more than half this table) at the 7th
    const long = (k: number) => row(`t${k % 100}`, `${v} `.padEnd(1000, "x"))
    while (storedMeta(disk)!.epoch === first.epoch) {
      socket.deliver(change(++v, Array.from({ length: 10 }, (_, k) => long(v * 10 + k))))
      await storedAt(disk, v)
    }
    const folded = storedMeta(disk)!
    expect(folded).toMatchObject({ cursor: v, from: folded.to, pages: 1 })
    expect(v - 100).toBe(7)
    expect([...disk.keys()].filter((k) => k.startsWith(`${NS}r/l/`) || k.startsWith(`${NS}r/p/${first.epoch}`))).toEqual([])
    const b = await client(store(disk).kv)
    expect(b.c.getSnapshot()).toEqual(c.getSnapshot())
  })

  it("a client with nothing new since it loaded writes nothing, not even when it closes", async () => {
    const disk = new Map<string, string>()
    const a = await client(store(disk).kv)
    a.socket.open()
    answer(a.socket, 10, rows(10))
    await storedAt(disk, 10)
    await a.c.close()
    const s = store(disk)
    const b = await client(s.kv)
    expect(b.c.getSnapshot()).toHaveLength(10)
    await new Promise((resolve) => setTimeout(resolve, 30))
    await b.c.close()
    expect(s.log.filter(([, key]) => !/\/(q|lease|pending)\//.test(key))).toEqual([])
  })

  it("a reload gets the rows in the table's order, with the cursor and history they are at", async () => {
    const disk = new Map<string, string>()
    const a = await client(store(disk).kv)
    a.socket.open()
    answer(a.socket, 5, ["a", "b", "c", "d", "e"].map((id) => row(`t${id}`, id)))
    // an update keeps its place, a new row goes last, a row deleted and created again moves last
    a.socket.deliver(change(6, [row("tc", "c edited")], ["tb"]))
    a.socket.deliver(change(7, [row("tf", "f")]))
    a.socket.deliver(change(8, [], ["ta"]))
    a.socket.deliver(change(9, [row("ta", "a again")]))
    await storedAt(disk, 9)
    const shown = a.c.getSnapshot()
    expect(shown.map((r) => r[0])).toEqual(["tc", "td", "te", "tf", "ta"])
    await a.c.close()

    const b = await client(store(disk).kv)
    expect(b.c.getSnapshot()).toEqual(shown)
    b.socket.open()
    expect(b.socket.frames("Subscribe")[0]).toMatchObject({ since: 9, history: "h1" })
  })

  it("clients sharing a store: one that is behind stores nothing, and what is stored always loads as its cursor's rows", async () => {
    const disk = new Map<string, string>()
    // one store shared by the tabs, as tabs share IndexedDB
    const { kv } = store(disk)
    const a = await client(kv)
    const b = await client(kv)
    for (const t of [a, b]) {
      t.socket.open()
      answer(t.socket, 10, rows(20))
    }
    await storedAt(disk, 10)
    a.socket.deliver(change(11, [row("t1", "v11")]))
    a.socket.deliver(change(12, [row("t2", "v12")], ["t3"]))
    await storedAt(disk, 12)
    const at12 = a.c.getSnapshot()

    // b is behind (it has seen 11 only): the store keeps 12
    b.socket.deliver(change(11, [row("t1", "v11")]))
    await eventually(() => (ids(b.c).length === 20 && b.c.getSnapshot()[1]![1] === "v11" ? true : undefined))
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(storedMeta(disk)?.cursor).toBe(12)
    const c1 = await client(kv)
    expect(c1.c.getSnapshot()).toEqual(at12)

    // b catches up and goes on: its changes since its own last state (10) cover what the store lacks
    b.socket.deliver(change(12, [row("t2", "v12")], ["t3"]))
    b.socket.deliver(change(13, [row("t9", "v13")]))
    await storedAt(disk, 13)
    const c2 = await client(kv)
    expect(c2.c.getSnapshot()).toEqual(b.c.getSnapshot())

    // another history (a wiped server): the whole table, and a's next write (old history) the whole of its own
    b.socket.close()
    b.socket.open()
    answer(b.socket, 2, rows(3, 100), "h2")
    await eventually(() => (storedMeta(disk)?.history === "h2" ? true : undefined), { what: "the new history stored" })
    const c3 = await client(kv)
    expect(ids(c3.c)).toEqual(["t100", "t101", "t102"])
    a.socket.deliver(change(13, [row("t9", "v13")]))
    a.socket.deliver(change(14, [row("t4", "v14")]))
    await eventually(() => (storedMeta(disk)?.history === "h1" && storedMeta(disk)?.cursor === 14 ? true : undefined), { what: "a's table stored" })
    const c4 = await client(kv)
    expect(c4.c.getSnapshot()).toEqual(a.c.getSnapshot())
  })

  it("a write cut short never shows: the next client loads the state before it, and keeps the queue", async () => {
    const disk = new Map<string, string>()
    const s = store(disk)
    const a = await client(s.kv, new FakeSocket(), { leaseMs: 60 })
    a.socket.open()
    answer(a.socket, 100, rows(100))
    await storedAt(disk, 100)
    const at100 = a.c.getSnapshot()
    // an action the server never answers: it is in the stored queue
    void a.c.send({ type: "create", payload: { id: "n1", text: "queued", completed: 0, priority: 1 } }).catch(() => undefined)
    await eventually(() => ([...disk.keys()].some((k) => k.includes("/q/")) ? true : undefined), { what: "the queue stored" })
    // the process dies after the log entry is written, before the meta that would count it
    s.dieAfter(1)
    a.socket.deliver(change(101, rows(5, 50).map((r) => row(r[0], "changed"))))
    await eventually(() => (a.c.getStatus().lastError?.reason === "PersistenceFailed" ? true : undefined))
    expect(disk.get(`${NS}r/l/0`)).toContain("changed")
    expect(storedMeta(disk)).toMatchObject({ cursor: 100, to: 0 })

    const b = await client(store(disk).kv, new FakeSocket(), { leaseMs: 60 })
    expect(b.c.getSnapshot()).toEqual(at100)
    expect(b.c.getStatus().lastError).toBeNull()
    b.socket.open()
    expect(b.socket.frames("Subscribe")[0]).toMatchObject({ since: 100, history: "h1" })
    answer(b.socket, 101, at100.map((r) => (Number(r[0].slice(1)) >= 50 && Number(r[0].slice(1)) < 55 ? row(r[0], "changed") : r)))
    // a's queue is adopted once its lease ran out, and sent under a's client id and seq
    await eventually(() => (b.socket.frames("Push").length === 1 ? true : undefined), { what: "the queued action sent" })
    expect(b.socket.frames("Push")[0]).toMatchObject({ clientId: a.c.clientId, actions: [{ seq: 1 }] })
    await storedAt(disk, 101)
    const c = await client(store(disk).kv)
    expect(c.c.getSnapshot()).toEqual(b.c.getSnapshot())
  })

  it("a table write cut short leaves the state before it; a page gone missing resets the cache with the reason", async () => {
    const disk = new Map<string, string>()
    const s = store(disk)
    const a = await client(s.kv)
    a.socket.open()
    answer(a.socket, 5000, rows(5000))
    await storedAt(disk, 5000)
    const before = a.c.getSnapshot()
    // a reset answer after a reconnect: the whole table again, and the process dies after two of its three pages
    s.dieAfter(2)
    a.socket.close()
    a.socket.open()
    answer(a.socket, 6000, rows(5000, 1))
    await eventually(() => (a.c.getStatus().lastError?.reason === "PersistenceFailed" ? true : undefined))
    const b = await client(store(disk).kv)
    expect(b.c.getSnapshot()).toEqual(before)
    expect(b.c.getStatus().lastError).toBeNull()
    await b.c.close()

    const meta = storedMeta(disk)!
    disk.delete(`${NS}r/p/${meta.epoch}/1`)
    const c = await client(store(disk).kv)
    expect(c.c.getStatus().lastError).toMatchObject({ reason: "CacheReset", message: expect.stringContaining("missing") })
    expect(c.c.getSnapshot()).toEqual([])
    c.socket.open()
    expect(c.socket.frames("Subscribe")[0]).toMatchObject({ since: null })
  })

  it("a cached row that does not match the record is left out and reported; the others load", async () => {
    const disk = new Map<string, string>()
    const a = await client(store(disk).kv)
    a.socket.open()
    answer(a.socket, 3, rows(3))
    await storedAt(disk, 3)
    await a.c.close()
    const meta = storedMeta(disk)!
    const page = `${NS}r/p/${meta.epoch}/0`
    disk.set(page, disk.get(page)!.replace(`"todo 1",0`, `"todo 1",7`))
    const b = await client(store(disk).kv)
    expect(ids(b.c)).toEqual(["t0", "t2"])
    expect(b.c.getStatus().lastError).toMatchObject({ reason: "InvalidRecord" })
  })

  it("a cache in the previous format is migrated with the first write; the queue is kept", async () => {
    const disk = new Map<string, string>()
    const old = rows(3)
    disk.set(`${NS}records`, JSON.stringify({ cursor: 7, history: "h1", schema: 2, rows: old }))
    disk.set(`${NS}pending/gone`, JSON.stringify({
      owner: "gone",
      key: "k".repeat(32),
      heartbeat: 0,
      nextSeq: 2,
      entries: [{ clientId: "gone", clientKey: "k".repeat(32), seq: 1, action: { type: "delete", payload: { id: "t1" } }, schema: 2 }]
    }))
    const b = await client(store(disk).kv)
    expect(b.c.getSnapshot()).toEqual(old)
    expect(b.c.getStatus().pending).toBe(1)
    await eventually(() => (disk.has(`${NS}records`) ? undefined : true), { what: "the old value removed" })
    expect(storedMeta(disk)).toMatchObject({ cursor: 7, history: "h1" })
    b.socket.open()
    expect(b.socket.frames("Subscribe")[0]).toMatchObject({ since: 7, history: "h1" })
    await b.c.close()
    const c = await client(store(disk).kv)
    expect(c.c.getSnapshot()).toEqual(old)
  })

  it("a cache in the previous format that cannot be read is reset once, with the reason; the queue is kept", async () => {
    const disk = new Map<string, string>()
    disk.set(`${NS}records`, "{\"cursor\":7,\"rows\":[[\"t1\"")
    disk.set(`${NS}pending/gone`, JSON.stringify({ owner: "gone", key: "k".repeat(32), heartbeat: 0, nextSeq: 2, entries: [{ clientId: "gone", clientKey: "k".repeat(32), seq: 1, action: { type: "delete", payload: { id: "t1" } }, schema: 2 }] }))
    const b = await client(store(disk).kv)
    expect(b.c.getStatus()).toMatchObject({ pending: 1, lastError: { reason: "CacheReset", message: expect.stringContaining("previous format") } })
    expect(disk.has(`${NS}records`)).toBe(false)
    b.socket.open()
    expect(b.socket.frames("Subscribe")[0]).toMatchObject({ since: null })
  })
})

describe("RecordTable's changes", () => {
  it("logs the ids updated or removed and the ids inserted, and takes back what a failed write could not store", () => {
    const t = new RecordTable<Todo>()
    const named = (c: ReturnType<typeof t.drain>) => ({ replaced: c.replaced, touched: [...c.touched], inserted: [...c.inserted] })
    t.replace(rows(3))
    expect(named(t.drain())).toEqual({ replaced: true, touched: [], inserted: [] })
    t.apply(row("t1", "edit"))
    t.apply(row("n1", "new"))
    t.apply(row("t0", "gone", 5))
    t.apply(row("n2", "new"))
    t.apply(row("n1", "again"))
    const first = t.drain()
    expect(named(first)).toEqual({ replaced: false, touched: ["t1", "t0", "n1"], inserted: ["n1", "n2"] })
    expect(t.drain().touched).toHaveLength(0)
    t.remove("n1")
    t.apply(row("n1", "third"))
    t.apply(row("t2", "edit"))
    t.restore(first)
    expect(named(t.drain())).toEqual({ replaced: false, touched: ["t1", "t0", "n1", "n1", "t2"], inserted: ["n1", "n2", "n1"] })
    expect(t.array().map((r) => r[0])).toEqual(["t1", "t2", "n2", "n1"])
    t.restore({ replaced: true, touched: ["x"], inserted: [] })
    expect(named(t.drain())).toEqual({ replaced: true, touched: [], inserted: [] })
  })
})

describe("plan", () => {
  const meta = (cursor: number | null, history = "h1", schema = 2) => ({ cursor, history, schema })
  const set = (cursor: number | null, replace = false, history = "h1") =>
    ({ meta: meta(cursor, history), replace, d: [], u: [], i: [], all: replace ? () => [] : undefined })
  it("stores the changes only on a state they extend, nothing on a later one, the table otherwise", () => {
    expect(plan(meta(10), meta(8), set(12))).toBe("changes")
    expect(plan(meta(12), meta(8), set(12))).toBe("changes")
    expect(plan(meta(13), meta(8), set(12))).toBe("behind")
    expect(plan(meta(13), meta(8), set(12, true))).toBe("behind")
    expect(plan(meta(7), meta(8), set(12))).toBe("whole")
    expect(plan(meta(10, "h0"), meta(8), set(12))).toBe("whole")
    expect(plan(undefined, meta(8), set(12, true))).toBe("table")
    expect(plan(meta(10), undefined, set(12))).toBe("whole")
    expect(plan(meta(10, "h1", 3), meta(8), set(12, true))).toBe("behind")
    expect(plan(meta(10, "h1", 1), meta(8), set(12, true))).toBe("table")
  })
})
