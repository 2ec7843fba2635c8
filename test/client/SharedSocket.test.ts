/**
 * Clients on one socket, driven frame by frame through a fake socket (no
 * server): they share the socket's in-flight budgets of actions and of
 * bytes, a temporary refusal
 * keeps a push's actions queued and sends them again before anything after
 * them, and a refused Subscribe is retried on a backoff.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Scope from "effect/Scope"
import { afterEach, describe, expect, it } from "vitest"
import * as Schema from "effect/Schema"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { make, makeMemoryStore, type SocketLike, type SyncClient } from "../../src/client/index.ts"
import { MAX_BYTES_IN_FLIGHT } from "../../src/client/Transport.ts"
import * as Channel from "../../src/protocol/Channel.ts"
import type { ClientMessage, Push, ServerMessage } from "../../src/protocol/Protocol.ts"
import { eventually } from "../helpers/protocol.ts"

type TodoAction = typeof todos.action.Type
/** One action of a push, with its push's client id. */
interface Action {
  readonly clientId: string
  readonly seq: number
}

/** A socket whose server is the test: it records what the clients send and delivers what the test says. */
class FakeSocket implements SocketLike {
  readyState = 0
  readonly url = "ws://fake.test/parties/to-dos/room"
  readonly sent: Array<ClientMessage> = []
  readonly #listeners = new Map<string, Set<(event: any) => void>>()
  addEventListener(type: string, listener: (event: any) => void) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set())
    this.#listeners.get(type)!.add(listener)
  }
  removeEventListener(type: string, listener: (event: any) => void) {
    this.#listeners.get(type)?.delete(listener)
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as ClientMessage)
  }
  open() {
    this.readyState = 1
    for (const l of [...(this.#listeners.get("open") ?? [])]) l({})
  }
  deliver(frame: ServerMessage) {
    for (const l of [...(this.#listeners.get("message") ?? [])]) l({ data: JSON.stringify(frame) })
  }
  pushes(): Array<Push> {
    return this.sent.filter((m): m is Push => m._tag === "Push" && m.actions.length > 0)
  }
  actions(): Array<Action> {
    return this.pushes().flatMap((p) => p.actions.map((a) => ({ clientId: p.clientId, seq: a.seq })))
  }
  count(tag: ClientMessage["_tag"]) {
    return this.sent.filter((m) => m._tag === tag).length
  }
}

const scopes: Array<Scope.Closeable> = []
afterEach(async () => {
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const client = <C extends Channel.Any = typeof todos>(socket: FakeSocket, maxInFlight: number, channel?: C): Promise<SyncClient<C>> => {
  const scope = Scope.makeUnsafe()
  scopes.push(scope)
  return Effect.runPromise(
    make({ channel: (channel ?? todos) as C, socket, maxInFlight }).pipe(
      Effect.provide(Layer.succeed(KeyValueStore.KeyValueStore, makeMemoryStore())),
      Scope.provide(scope)
    )
  )
}

const synced: ServerMessage = { _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" }
/** The reply applying every action of a push. */
const applied = (push: Push): ServerMessage => ({
  _tag: "Pushed",
  channel: "todos",
  clientId: push.clientId,
  version: 1,
  next: push.actions.at(-1)!.seq + 1,
  results: push.actions.map((a) => ({ seq: a.seq, rows: [] }))
})
const remove = (id: string): TodoAction => ({ type: "delete", payload: { id } })
const send = (c: SyncClient<typeof todos>, id: string) => {
  let outcome: unknown = "pending"
  Effect.runPromise(c.send(remove(id))).then(() => (outcome = "applied"), (e: unknown) => (outcome = e))
  return () => outcome
}

describe("clients sharing one socket", () => {
  it("share its budget: never more actions unanswered than maxInFlight in all, each client's in its own order", async () => {
    const socket = new FakeSocket()
    const clients = await Promise.all([client(socket, 4), client(socket, 4), client(socket, 4)])
    socket.open()
    // queued before the sync: the first pushes fill the budget between them
    const outcomes = clients.flatMap((c, i) => [1, 2, 3].map((j) => send(c, `${i}-${j}`)))
    socket.deliver(synced)
    const answered = new Set<Push>()
    const unanswered = () => socket.pushes().filter((p) => !answered.has(p))
    const inFlight = () => unanswered().reduce((n, p) => n + p.actions.length, 0)
    expect(inFlight()).toBe(4)
    while (unanswered().length > 0) {
      expect(inFlight()).toBeLessThanOrEqual(4)
      const next = unanswered()[0]!
      answered.add(next)
      socket.deliver(applied(next))
    }
    expect(socket.actions()).toHaveLength(9)
    for (const c of clients) {
      expect(socket.actions().filter((a) => a.clientId === c.clientId).map((a) => a.seq)).toEqual([1, 2, 3])
    }
    await eventually(() => (outcomes.every((o) => o() === "applied") ? true : undefined), { what: "every send applied" })
  })

  it("share its byte budget: pushes unanswered carry at most MAX_BYTES_IN_FLIGHT beyond the last one sent, and all go in the end", async () => {
    // actions of 250 KB, one per push: 8 clients would put 2 MB ahead of the server at once
    const blobs = Channel.make("blobs", {
      record: Schema.Tuple([Schema.String, Schema.NullOr(Schema.Number)]),
      action: Schema.Struct({ type: Schema.Literal("put"), payload: Schema.Struct({ id: Schema.String, blob: Schema.String }) })
    })
    const socket = new FakeSocket()
    const clients = await Promise.all(Array.from({ length: 8 }, () => client(socket, 64, blobs)))
    socket.open()
    const blob = "b".repeat(250_000)
    const sends = clients.map((c, i) => Effect.runPromise(c.send({ type: "put", payload: { id: `blob-${i}`, blob } })))
    socket.deliver({ _tag: "Synced", channel: "blobs", version: 0, reset: true, history: "h1" })
    const answered = new Set<Push>()
    const unanswered = () => socket.pushes().filter((p) => !answered.has(p))
    const bytesOf = (pushes: ReadonlyArray<Push>) => pushes.reduce((n, p) => n + JSON.stringify(p.actions.map((a) => a.action)).length, 0)
    // four pushes fit below the budget and a fifth goes on its last room; the other three wait
    expect(unanswered()).toHaveLength(5)
    while (unanswered().length > 0) {
      expect(bytesOf(unanswered().slice(0, -1))).toBeLessThan(MAX_BYTES_IN_FLIGHT)
      const next = unanswered()[0]!
      answered.add(next)
      socket.deliver({ _tag: "Pushed", channel: "blobs", clientId: next.clientId, version: 1, next: 2, results: [{ seq: 1, rows: [] }] })
    }
    expect(socket.pushes()).toHaveLength(8)
    await Promise.all(sends)
  })

  it("a temporary refusal keeps a push's actions queued and sends them again, after a backoff, before any later action", async () => {
    const socket = new FakeSocket()
    const c = await client(socket, 2)
    socket.open()
    socket.deliver(synced)
    const outcomes = ["a", "b", "c"].map((id) => send(c, id))
    // the first send went alone; the others queued behind it
    expect(socket.pushes().map((p) => p.actions.map((a) => a.seq))).toEqual([[1]])
    socket.deliver({ _tag: "Failure", requestId: null, channel: "todos", clientId: c.clientId, reason: "TooManyInFlight", message: "busy" })
    // the budget has room, but nothing goes until the backoff is over
    expect(socket.pushes()).toHaveLength(1)
    expect(c.getStatus()).toMatchObject({ pending: 3, lastError: { reason: "TooManyInFlight" } })
    await eventually(() => (socket.pushes().length === 2 ? true : undefined), { what: "sent again after the backoff" })
    expect(socket.pushes()[1]!.actions.map((a) => a.seq)).toEqual([1, 2])
    socket.deliver(applied(socket.pushes()[1]!))
    expect(socket.pushes()[2]!.actions.map((a) => a.seq)).toEqual([3])
    socket.deliver(applied(socket.pushes()[2]!))
    await eventually(() => (outcomes.every((o) => o() === "applied") ? true : undefined), { what: "every send applied" })
  })

  it("a Subscribe refused as Unavailable is sent again after a backoff; actions wait for the sync", async () => {
    const socket = new FakeSocket()
    const c = await client(socket, 4)
    socket.open()
    const outcome = send(c, "x")
    socket.deliver({ _tag: "Failure", requestId: null, channel: "todos", reason: "Unavailable", message: "starting" })
    expect(c.getStatus().connection).toBe("unavailable")
    await eventually(() => (socket.count("Subscribe") === 2 ? true : undefined), { what: "Subscribe sent again" })
    expect(socket.actions()).toHaveLength(0)
    socket.deliver(synced)
    expect(c.getStatus().connection).toBe("live")
    expect(socket.actions()).toHaveLength(1)
    socket.deliver(applied(socket.pushes()[0]!))
    await eventually(() => (outcome() === "applied" ? true : undefined))
  })

  it("a server that cannot start (Unavailable without a channel) while actions are in flight: they go again after the next sync", async () => {
    const socket = new FakeSocket()
    const c = await client(socket, 4)
    socket.open()
    socket.deliver(synced)
    const outcome = send(c, "x")
    expect(socket.actions()).toHaveLength(1)
    socket.deliver({ _tag: "Failure", requestId: null, channel: null, reason: "Unavailable", message: "the sync server could not start" })
    expect(c.getStatus()).toMatchObject({ connection: "unavailable", pending: 1 })
    await eventually(() => (socket.count("Subscribe") === 2 ? true : undefined), { what: "Subscribe sent again" })
    socket.deliver(synced)
    expect(socket.actions()).toHaveLength(2)
    socket.deliver(applied(socket.pushes()[1]!))
    await eventually(() => (outcome() === "applied" ? true : undefined))
  })

  it("a synced client ignores the refusal of another client's Subscribe on the same channel", async () => {
    const socket = new FakeSocket()
    const [a, b] = await Promise.all([client(socket, 4), client(socket, 4)])
    socket.open()
    // both subscribed; the first answer reaches both, the second Subscribe is refused
    socket.deliver(synced)
    socket.deliver({ _tag: "Failure", requestId: null, channel: "todos", reason: "TooManyInFlight", message: "one sync per second" })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(socket.count("Subscribe")).toBe(2)
    expect([a.getStatus().connection, b.getStatus().connection]).toEqual(["live", "live"])
  })

  it("a result whose rows come in ResultRows chunks resolves send with every row, in order; chunks of others' results are ignored", async () => {
    const socket = new FakeSocket()
    const c = await client(socket, 2)
    socket.open()
    socket.deliver(synced)
    let rows: ReadonlyArray<ReadonlyArray<unknown>> | undefined
    void Effect.runPromise(c.send(remove("x"))).then((r) => (rows = r))
    const [push] = socket.pushes()
    const row = (id: string) => [id, `text ${id}`, 0, 1, 1, 1, null]
    socket.deliver({ _tag: "ResultRows", clientId: push!.clientId, seq: 1, rows: [row("r1"), row("r2")] })
    socket.deliver({ _tag: "ResultRows", clientId: "someone-else", seq: 1, rows: [row("zz")] })
    socket.deliver({ _tag: "ResultRows", clientId: push!.clientId, seq: 1, rows: [row("r3")] })
    socket.deliver({ _tag: "Pushed", channel: "todos", clientId: push!.clientId, version: 3, next: 2, results: [{ seq: 1, rows: [] }] })
    await eventually(() => rows, { what: "send resolved" })
    expect(rows!.map((r) => r[0])).toEqual(["r1", "r2", "r3"])
  })
})
