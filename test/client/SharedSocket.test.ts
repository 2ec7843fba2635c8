/**
 * Clients on one socket, driven frame by frame through a fake socket (no
 * server): they share the socket's in-flight budget, a temporary refusal
 * keeps an action queued and re-sends it before anything after it, and a
 * refused Subscribe is retried on a backoff.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Scope from "effect/Scope"
import { afterEach, describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { make, makeMemoryStore, type SocketLike, type SyncClient } from "../../src/client/index.ts"
import type { ClientMessage, ServerMessage } from "../../src/protocol/Protocol.ts"
import { eventually } from "../helpers/protocol.ts"

type TodoAction = typeof todos.action.Type
type Action = Extract<ClientMessage, { _tag: "Action" }>

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
  actions(): Array<Action> {
    return this.sent.filter((m): m is Action => m._tag === "Action")
  }
  count(tag: ClientMessage["_tag"]) {
    return this.sent.filter((m) => m._tag === tag).length
  }
}

const scopes: Array<Scope.Closeable> = []
afterEach(async () => {
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void))
})

const client = (socket: FakeSocket, maxInFlight: number): Promise<SyncClient<typeof todos>> => {
  const scope = Scope.makeUnsafe()
  scopes.push(scope)
  return Effect.runPromise(
    make({ channel: todos, socket, maxInFlight }).pipe(
      Effect.provide(Layer.succeed(KeyValueStore.KeyValueStore, makeMemoryStore())),
      Scope.provide(scope)
    )
  )
}

const synced: ServerMessage = { _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" }
const ack = (requestId: string): ServerMessage => ({ _tag: "Ack", requestId, version: 1, rows: [], duplicate: false })
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
    socket.deliver(synced)
    const outcomes = clients.flatMap((c, i) => [1, 2, 3].map((j) => send(c, `${i}-${j}`)))
    const answered = new Set<string>()
    const unanswered = () => socket.actions().filter((a) => !answered.has(a.requestId))
    expect(unanswered()).toHaveLength(4)
    while (unanswered().length > 0) {
      expect(unanswered().length).toBeLessThanOrEqual(4)
      const next = unanswered()[0]!
      answered.add(next.requestId)
      socket.deliver(ack(next.requestId))
    }
    expect(socket.actions()).toHaveLength(9)
    for (const c of clients) {
      expect(socket.actions().filter((a) => a.clientId === c.clientId).map((a) => a.seq)).toEqual([1, 2, 3])
    }
    await eventually(() => (outcomes.every((o) => o() === "applied") ? true : undefined), { what: "every send applied" })
  })

  it("a temporary refusal keeps the action queued and re-sends it, after a backoff, before any later action", async () => {
    const socket = new FakeSocket()
    const c = await client(socket, 2)
    socket.open()
    socket.deliver(synced)
    const outcomes = ["a", "b", "c"].map((id) => send(c, id))
    const [first, second] = socket.actions()
    expect(socket.actions().map((a) => a.seq)).toEqual([1, 2])
    socket.deliver({ _tag: "Failure", requestId: first!.requestId, channel: "todos", reason: "TooManyInFlight", message: "busy" })
    socket.deliver(ack(second!.requestId))
    // the budget has room, but nothing goes ahead of the refused action
    expect(socket.actions()).toHaveLength(2)
    expect(c.getStatus()).toMatchObject({ pending: 2, lastError: { reason: "TooManyInFlight" } })
    await eventually(() => (socket.actions().length === 4 ? true : undefined), { what: "re-sent after the backoff" })
    expect(socket.actions().slice(2).map((a) => a.seq)).toEqual([1, 3])
    // a re-send says when the action was first sent
    expect(socket.actions()[2]!.sentAt).toEqual(expect.any(Number))
    for (const a of socket.actions().slice(2)) socket.deliver(ack(a.requestId))
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
    socket.deliver(ack(socket.actions()[0]!.requestId))
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
    socket.deliver(ack(socket.actions()[1]!.requestId))
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

  it("a reply whose rows come in AckRows chunks resolves send with every row, in order; chunks of others' replies are ignored", async () => {
    const socket = new FakeSocket()
    const c = await client(socket, 2)
    socket.open()
    socket.deliver(synced)
    let rows: ReadonlyArray<ReadonlyArray<unknown>> | undefined
    void Effect.runPromise(c.send(remove("x"))).then((r) => (rows = r))
    const [action] = socket.actions()
    const row = (id: string) => [id, `text ${id}`, 0, 1, 1, 1, null]
    socket.deliver({ _tag: "AckRows", requestId: action!.requestId, rows: [row("r1"), row("r2")] })
    socket.deliver({ _tag: "AckRows", requestId: "someone-else:1", rows: [row("zz")] })
    socket.deliver({ _tag: "AckRows", requestId: action!.requestId, rows: [row("r3")] })
    socket.deliver({ _tag: "Ack", requestId: action!.requestId, version: 3, rows: [], duplicate: false })
    await eventually(() => rows, { what: "send resolved" })
    expect(rows!.map((r) => r[0])).toEqual(["r1", "r2", "r3"])
  })
})
