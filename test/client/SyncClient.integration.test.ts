/**
 * The client against the real Todo worker in workerd: convergence, resume
 * after a disconnect, the offline queue (exactly once, also across a
 * reload), rejection and rollback, rebase over other clients' changes, the
 * cached snapshot before the network, local validation, bad records, and
 * what persisting the pending queue costs per action.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { KeyValueStore } from "effect/persistence"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { ActionRejected, createSyncClient, InvalidAction, make, makeMemoryStore, NotAuthorized, type PlainSyncClient } from "../../src/client/index.ts"
import * as Channel from "../../src/protocol/Channel.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, freshRoom, keyOf, ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { eventually, GatedSocket, ids, opened, partySocket, texts } from "./support.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

const optimistic = (rows: ReadonlyArray<Todo>, action: TodoAction): ReadonlyArray<Todo> => {
  const now = Date.now()
  switch (action.type) {
    case "create":
      return [...rows, [action.payload.id, action.payload.text, action.payload.completed, now, now, action.payload.priority, null]]
    case "update":
      return rows.map((r) =>
        r[0] === action.payload.id
          ? [r[0], action.payload.text ?? r[1], action.payload.completed ?? r[2], r[3], now, action.payload.priority ?? r[5], r[6]] as const
          : r
      )
    case "delete":
      return rows.filter((r) => r[0] !== action.payload.id)
  }
}

const create = (id: string, text: string): TodoAction => ({ type: "create", payload: { id, text, completed: 0, priority: 1 } })

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const setup = (room: string, options: { store?: KeyValueStore.KeyValueStore; startClosed?: boolean; gated?: boolean } = {}) => {
  const url = workerUrl()
  const party = partySocket(url, room, options.startClosed === true ? { startClosed: true } : {})
  const socket = options.gated === true ? new GatedSocket(party) : party
  const store = options.store ?? makeMemoryStore()
  const client = createSyncClient({ channel: todos, socket, optimistic, store })
  cleanup.push(() => party.close())
  cleanup.push(() => client.close())
  return { client, party, socket, store }
}

const live = (client: PlainSyncClient<typeof todos>) =>
  eventually(() => (client.getStatus().connection === "live" ? true : undefined), { what: "live" })

describe("sync client against the real worker", () => {
  it("two clients converge", async () => {
    const room = freshRoom("converge")
    const a = setup(room)
    const b = setup(room)
    await Promise.all([live(a.client), live(b.client)])
    await a.client.send(create("1", "from a"))
    await b.client.send(create("2", "from b"))
    await b.client.send({ type: "update", payload: { id: "1", completed: 1 } })
    await eventually(() => (a.client.getSnapshot().length === 2 && b.client.getSnapshot().length === 2 ? true : undefined))
    await eventually(() => (JSON.stringify(a.client.getSnapshot()) === JSON.stringify(b.client.getSnapshot()) ? true : undefined), {
      what: "identical snapshots"
    })
    expect(texts(a.client.getSnapshot())).toEqual(["from a", "from b"])
    expect(a.client.getSnapshot()[0]![2]).toBe(1)
    expect(a.client.getStatus()).toMatchObject({ connection: "live", pending: 0, lastError: null })
  })

  it("a client that disconnects and reconnects catches up, deletes included", async () => {
    const room = freshRoom("resume")
    const a = setup(room)
    const b = setup(room)
    await Promise.all([live(a.client), live(b.client)])
    for (const id of ["1", "2", "3"]) await b.client.send(create(id, `t${id}`))
    await eventually(() => (a.client.getSnapshot().length === 3 ? true : undefined))

    a.party.close()
    await eventually(() => (a.client.getStatus().connection === "offline" ? true : undefined), { what: "offline" })
    await b.client.send({ type: "delete", payload: { id: "2" } })
    await b.client.send({ type: "update", payload: { id: "3", text: "changed" } })
    await b.client.send(create("4", "t4"))
    await hooks(workerUrl(), room).rawWrite("5", "raw")
    expect(ids(a.client.getSnapshot())).toEqual(["1", "2", "3"])

    a.party.reconnect()
    await live(a.client)
    await eventually(() => (a.client.getSnapshot().length === 4 ? true : undefined), { what: "caught up" })
    expect(a.client.getSnapshot().map((r) => [r[0], r[1]])).toEqual([["1", "t1"], ["3", "changed"], ["4", "t4"], ["5", "raw"]])
    expect(a.client.getSnapshot()).toEqual(b.client.getSnapshot())
  })

  it("the offline queue flushes in order, each action exactly once", async () => {
    const room = freshRoom("offline")
    const a = setup(room, { startClosed: true })
    await eventually(() => (a.client.getStatus().connection === "connecting" ? true : undefined))
    const sends = [
      a.client.send(create("1", "one")),
      a.client.send(create("2", "two")),
      a.client.send({ type: "update", payload: { id: "1", text: "one, edited" } }),
      a.client.send({ type: "delete", payload: { id: "2" } })
    ]
    // optimistic while offline
    await eventually(() => (a.client.getStatus().pending === 4 ? true : undefined))
    expect(texts(a.client.getSnapshot())).toEqual(["one, edited"])
    expect([...a.client.getStatus().pendingIds].sort()).toEqual(["1", "2"])

    a.party.reconnect()
    await Promise.all(sends)
    await live(a.client)
    const rows = await hooks(workerUrl(), room).rows()
    expect(rows.map((r) => [r[0], r[1], r[6] === null])).toEqual([["1", "one, edited", true], ["2", "two", false]])
    const clients = await hooks(workerUrl(), room).clients()
    expect(clients).toHaveLength(1)
    expect(clients[0]!.seq).toBe(4)
    expect(a.client.getStatus()).toMatchObject({ pending: 0, lastError: null })
    expect(a.client.getStatus().pendingIds.size).toBe(0)
    expect(texts(a.client.getSnapshot())).toEqual(["one, edited"])
  })

  it("queueing and settling an action each write one record of the stored queue, never the whole queue", async () => {
    const writes: Array<string> = []
    // the store's map sees every write of the queue: records (`q/<client>/<seq>`) and leases
    class Counting extends Map<string, string> {
      override set(key: string, value: string) {
        if (key.includes("/q/")) writes.push(`set ${key.split("/q/")[1]}`)
        return super.set(key, value)
      }
      override delete(key: string) {
        if (key.includes("/q/")) writes.push(`remove ${key.split("/q/")[1]}`)
        return super.delete(key)
      }
    }
    const map = new Counting()
    const { client } = setup(freshRoom("writes"), { store: makeMemoryStore(map) })
    await live(client)
    writes.length = 0
    for (let i = 1; i <= 20; i++) await client.send(create(`${i}`, `todo ${i}`))
    await eventually(() => (writes.filter((w) => w.startsWith("remove")).length === 20 ? true : undefined), { what: "every record removed" })
    const id = encodeURIComponent(client.clientId!)
    expect(writes.filter((w) => w.startsWith("set"))).toEqual(Array.from({ length: 20 }, (_, i) => `set ${id}/${i + 1}`))
    expect(writes.filter((w) => w.startsWith("remove")).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `remove ${id}/${i + 1}`).sort())
    expect([...map.keys()].some((key) => key.includes("/q/"))).toBe(false)
  })

  it("a reload while offline keeps the queue: the next client sends it under the original client id and seq", async () => {
    const room = freshRoom("reload")
    const store = makeMemoryStore()
    const first = setup(room, { store, startClosed: true })
    await first.client.ready
    const lost = [first.client.send(create("1", "one")), first.client.send(create("2", "two"))].map((p) =>
      p.then(() => undefined, (e: unknown) => e)
    )
    await eventually(() => (first.client.getStatus().pending === 2 ? true : undefined))
    await first.client.close()
    for (const p of lost) expect(await p).toMatchObject({ _tag: "ActionDiscarded", reason: "Closed" })

    const second = setup(room, { store })
    await second.client.ready
    // adopted at once (the first client released its queue), optimistic before the server answers
    expect(second.client.getStatus().pending).toBe(2)
    await live(second.client)
    await eventually(() => (second.client.getStatus().pending === 0 ? true : undefined), { what: "queue flushed" })
    expect(texts(second.client.getSnapshot())).toEqual(["one", "two"])
    const clients = await hooks(workerUrl(), room).clients()
    expect(clients).toHaveLength(1)
    expect(clients[0]!.seq).toBe(2)
    expect(clients[0]!.client_id).not.toBe(second.client.clientId)
    expect((await hooks(workerUrl(), room).rows()).length).toBe(2)
  })

  it("an action the server already applied is confirmed by its duplicate Ack, not applied twice", async () => {
    const room = freshRoom("dupe")
    // a previous client delivered seq 1 but crashed before it could forget it
    const raw = await ProtocolClient.connect(roomUrl(workerUrl(), room))
    expectAck(await raw.act({ clientId: "crashed", seq: 1, action: create("1", "once") }))
    raw.socket.close()
    const store = makeMemoryStore()
    const url = new URL(workerUrl())
    const ns = `effect-partysync/v2/${encodeURIComponent(`${url.host}/to-dos/${room}`)}/todos/`
    await Effect.runPromise(store.set(`${ns}pending/crashed`, JSON.stringify({
      owner: "crashed",
      key: keyOf("crashed"),
      heartbeat: 0,
      nextSeq: 2,
      entries: [{ clientId: "crashed", clientKey: keyOf("crashed"), seq: 1, action: create("1", "once") }]
    })))

    const a = setup(room, { store })
    await live(a.client)
    await eventually(() => (a.client.getStatus().pending === 0 ? true : undefined), { what: "queue flushed" })
    expect(texts(a.client.getSnapshot())).toEqual(["once"])
    expect(await hooks(workerUrl(), room).rows()).toHaveLength(1)
    expect(await Effect.runPromise(store.get(`${ns}pending/crashed`))).toBeUndefined()
  })

  it("a server rejection rolls back the optimistic row and fails send with the reason", async () => {
    const room = freshRoom("reject")
    const a = setup(room)
    await live(a.client)
    await a.client.send(create("ok", "fine"))
    const error = await a.client.send(create("bad", "   ")).then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(ActionRejected)
    expect(error).toMatchObject({ message: "text must be 1 to 200 characters" })
    expect(ids(a.client.getSnapshot())).toEqual(["ok"])
    expect(a.client.getStatus()).toMatchObject({ pending: 0, lastError: { reason: "ActionRejected" } })
    expect(await hooks(workerUrl(), room).rows()).toHaveLength(1)
  })

  it("an invalid action fails locally with InvalidAction and is never sent", async () => {
    const room = freshRoom("invalid")
    const a = setup(room)
    await live(a.client)
    const error = await a.client.send({ type: "create", payload: { id: "", text: "x", completed: 0, priority: 1 } }).then(
      () => undefined,
      (e: unknown) => e
    )
    expect(error).toBeInstanceOf(InvalidAction)
    expect(a.client.getStatus().pending).toBe(0)
    await a.client.send(create("after", "after"))
    expect(await hooks(workerUrl(), room).clients()).toEqual([{ client_id: expect.any(String), seq: 1 }])
  })

  it("rebase: a pending change stays on top of other clients' changes, and never flickers back", async () => {
    const room = freshRoom("rebase")
    const a = setup(room, { gated: true })
    const b = setup(room)
    await Promise.all([live(a.client), live(b.client)])
    await b.client.send(create("x", "original"))
    await eventually(() => (a.client.getSnapshot().length === 1 ? true : undefined))

    ;(a.socket as GatedSocket).hold = true
    const pending = a.client.send({ type: "update", payload: { id: "x", completed: 1 } })
    await eventually(() => ((a.socket as GatedSocket).held.length === 1 ? true : undefined), { what: "action held" })
    expect(a.client.getSnapshot()[0]!.slice(0, 3)).toEqual(["x", "original", 1])
    expect([...a.client.getStatus().pendingIds]).toEqual(["x"])

    await b.client.send({ type: "update", payload: { id: "x", text: "renamed by b" } })
    await b.client.send(create("y", "another"))
    await eventually(() => (a.client.getSnapshot().length === 2 ? true : undefined), { what: "b's changes" })
    // b's rename applied under a's pending toggle
    expect(a.client.getSnapshot().map((r) => [r[0], r[1], r[2]])).toEqual([["x", "renamed by b", 1], ["y", "another", 0]])

    const seen: Array<unknown> = []
    const unsubscribe = a.client.subscribe(() => seen.push(a.client.getSnapshot().find((r) => r[0] === "x")?.[2]))
    ;(a.socket as GatedSocket).release()
    await pending
    await eventually(() => (a.client.getStatus().pending === 0 ? true : undefined))
    unsubscribe()
    expect(seen.every((completed) => completed === 1)).toBe(true)
    expect(a.client.getSnapshot().map((r) => [r[0], r[1], r[2]])).toEqual([["x", "renamed by b", 1], ["y", "another", 0]])
    await eventually(() => (JSON.stringify(b.client.getSnapshot()) === JSON.stringify(a.client.getSnapshot()) ? true : undefined))
  })

  it("the cached snapshot is emitted before the network answers (Effect API)", async () => {
    const room = freshRoom("cache")
    const store = makeMemoryStore()
    const first = setup(room, { store })
    await live(first.client)
    await first.client.send(create("1", "cached one"))
    await first.client.send(create("2", "cached two"))
    await first.client.close()

    const url = workerUrl()
    const socket = partySocket(url, room, { startClosed: true })
    cleanup.push(() => socket.close())
    const scope = Scope.makeUnsafe()
    cleanup.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
    const client = await Effect.runPromise(
      make({ channel: todos, socket, optimistic }).pipe(
        Effect.provide(Layer.succeed(KeyValueStore.KeyValueStore, store)),
        Scope.provide(scope)
      )
    )
    const [records] = await Effect.runPromise(Stream.runCollect(Stream.take(client.records, 1)))
    expect(texts(records!)).toEqual(["cached one", "cached two"])
    const [status] = await Effect.runPromise(Stream.runCollect(Stream.take(client.status, 1)))
    expect(status!.connection).toBe("connecting")

    // and once connected, it resumes from the cached cursor
    await first.client.close()
    socket.reconnect()
    await eventually(async () => {
      const [s] = await Effect.runPromise(Stream.runCollect(Stream.take(client.status, 1)))
      return s!.connection === "live" ? true : undefined
    })
    const answer = await Effect.runPromise(client.send(create("3", "new")))
    expect(answer.map((r) => r[0])).toEqual(["3"])
    expect(texts(client.getSnapshot())).toEqual(["cached one", "cached two", "new"])
  })

  it("rooms sharing one store keep separate caches", async () => {
    const store = makeMemoryStore()
    const one = setup(freshRoom("one"), { store })
    const two = setup(freshRoom("two"), { store })
    await Promise.all([live(one.client), live(two.client)])
    await one.client.send(create("1", "room one"))
    await two.client.send(create("2", "room two"))
    expect(texts(one.client.getSnapshot())).toEqual(["room one"])
    expect(texts(two.client.getSnapshot())).toEqual(["room two"])
  })

  it("clearLocalData forgets the cache and resyncs from the server", async () => {
    const room = freshRoom("clear")
    const store = makeMemoryStore()
    const a = setup(room, { store })
    await live(a.client)
    await a.client.send(create("1", "kept on server"))
    await a.client.clearLocalData()
    await live(a.client)
    await eventually(() => (a.client.getSnapshot().length === 1 ? true : undefined), { what: "resynced" })
    expect(texts(a.client.getSnapshot())).toEqual(["kept on server"])
  })

  it("a row that does not decode is reported in status and not applied; the others are", async () => {
    const room = freshRoom("badrow")
    const strict = Channel.make("todos", {
      record: Schema.Tuple([
        Schema.String,
        Schema.String.check(Schema.isMaxLength(5)),
        Schema.Literals([0, 1]),
        Schema.Number,
        Schema.Number,
        Schema.Literals([0, 1, 2]),
        Schema.NullOr(Schema.Number)
      ]),
      action: todos.action,
      version: todos.version
    })
    const party = partySocket(workerUrl(), room)
    cleanup.push(() => party.close())
    const client = createSyncClient({ channel: strict, socket: party, store: makeMemoryStore() })
    cleanup.push(() => client.close())
    await eventually(() => (client.getStatus().connection === "live" ? true : undefined))
    await hooks(workerUrl(), room).rawWrite("short", "ok")
    await hooks(workerUrl(), room).rawWrite("long", "far too long")
    await eventually(() => (client.getStatus().lastError?.reason === "InvalidRecord" ? true : undefined), { what: "reported" })
    await eventually(() => (client.getSnapshot().length === 1 ? true : undefined))
    expect(client.getSnapshot()[0]![0]).toBe("short")
  })

  it("host/party/room with `query` (an object, or a function called on connect) carry a token to the server", async () => {
    const room = freshRoom("query")
    let calls = 0
    const connection = { host: new URL(workerUrl()).host, party: "to-dos", room, protocol: "ws" as const, WebSocket: globalThis.WebSocket }
    const byObject = createSyncClient({ channel: todos, ...connection, query: { token: "guest", unused: null }, store: makeMemoryStore() })
    const byFunction = createSyncClient({
      channel: todos,
      ...connection,
      query: async () => {
        calls += 1
        return { token: "guest" }
      },
      store: makeMemoryStore()
    })
    cleanup.push(() => byObject.close(), () => byFunction.close())
    await Promise.all([live(byObject), live(byFunction)])
    expect(calls).toBeGreaterThan(0)
    await byObject.send(create("q1", "by a guest"))
    // the fixture's demo rule: a `guest` token may create but not delete
    for (const client of [byObject, byFunction]) {
      const error = await client.send({ type: "delete", payload: { id: "q1" } }).then(() => undefined, (e: unknown) => e)
      expect(error).toBeInstanceOf(NotAuthorized)
    }
    expect(await hooks(workerUrl(), room).rows()).toHaveLength(1)
  })
})
