/**
 * ActionDispatch over node:sqlite with the Todo handler: a valid action is
 * applied once and answered after its Change; every kind of bad input gets
 * its typed Failure and writes nothing (no rows, no sequence number, no
 * version); a handler that fails after writing leaves no rows.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { ActionDispatch } from "../../src/services/ActionDispatch.ts"
import { Authorizer } from "../../src/services/ActionHandler.ts"
import { type ConnectionState, initialState } from "../../src/services/Connections.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"
import { NotAuthorized } from "../../src/services/Errors.ts"
import type { Ack, ErrorReason, Failure, ServerMessage } from "../../src/protocol/Protocol.ts"
import { Reconciliation } from "../../src/services/Reconciliation.ts"
import { Storage } from "../../src/services/Storage.ts"
import type { SyncOptions } from "../../src/services/SyncConfig.ts"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { decodedFrames } from "../helpers/memory.ts"
import { FAIL_AFTER_WRITE, servicesLayer } from "../helpers/services.ts"
import { create, update } from "../helpers/todos.ts"

const action = (clientId: string, seq: number, body: unknown, extra: { channel?: string; requestId?: string } = {}) =>
  JSON.stringify({ _tag: "Action", requestId: extra.requestId ?? `${clientId}-${seq}`, channel: extra.channel ?? "todos", clientId, seq, action: body })

const run = <A, E>(
  body: (c: ReturnType<typeof makeMemoryConnection>) => Effect.Effect<A, E, ActionDispatch | Reconciliation | Storage>,
  options: { state?: ConnectionState; options?: Partial<SyncOptions>; authorizer?: Layer.Layer<Authorizer> } = {}
) => {
  const connection = makeMemoryConnection("c1", options.state ?? initialState)
  return body(connection).pipe(Effect.provide(servicesLayer({
    connections: [connection],
    ...(options.options ? { options: options.options } : {}),
    ...(options.authorizer ? { authorizer: options.authorizer } : {})
  })))
}

/** Sends one frame and returns the frames it produced. */
const receive = (connection: ReturnType<typeof makeMemoryConnection>, frame: string | ArrayBuffer) =>
  Effect.gen(function*() {
    const before = connection.sent.length
    yield* ActionDispatch.use((d) => d.receive(connection, frame))
    return decodedFrames({ sent: connection.sent.slice(before) })
  })

const snapshot = Effect.gen(function*() {
  const sql = yield* Storage
  return {
    rows: yield* sql.raw("SELECT * FROM todos ORDER BY id"),
    clients: yield* sql.raw("SELECT client_id, seq FROM _psync_clients ORDER BY client_id"),
    version: yield* Reconciliation.use((r) => r.version)
  }
})

const onlyFailure = (frames: Array<ServerMessage>, reason: ErrorReason): Failure => {
  assert.strictEqual(frames.length, 1, JSON.stringify(frames))
  const [failure] = frames
  assert.strictEqual(failure!._tag, "Failure")
  assert.strictEqual((failure as Failure).reason, reason, JSON.stringify(failure))
  return failure as Failure
}

/** Seeds one row, runs `bad`, checks nothing changed and the connection still works. */
const refuses = (frame: string | ArrayBuffer, reason: ErrorReason, check: (f: Failure) => void = () => {}) =>
  run((c) =>
    Effect.gen(function*() {
      yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
      yield* receive(c, action("seed", 1, create("seed", "seed")))
      const before = yield* snapshot
      check(onlyFailure(yield* receive(c, frame), reason))
      assert.deepStrictEqual(yield* snapshot, before)
      const after = yield* receive(c, action("seed", 2, create("next", "next")))
      assert.deepStrictEqual(after.map((m) => m._tag), ["Change", "Ack"])
    })
  )

describe("ActionDispatch", () => {
  it.effect("a valid action is applied: its Change is published, then the Ack with the rows and version", () =>
    run((c) =>
      Effect.gen(function*() {
        yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
        const frames = yield* receive(c, action("a", 1, create("t1", "  hello  ")))
        assert.deepStrictEqual(frames.map((m) => m._tag), ["Change", "Ack"])
        const ack = frames[1] as Ack
        assert.deepStrictEqual(ack.rows.map((r) => r.slice(0, 3)), [["t1", "hello", 0]])
        assert.strictEqual(ack.version, 1)
        assert.isFalse(ack.duplicate)
        assert.strictEqual(ack.requestId, "a-1")
        const state = yield* snapshot
        assert.deepStrictEqual(state.clients, [["a", 1]])
      })))

  it.effect("a duplicate (clientId, seq) is not applied twice and is answered as a duplicate", () =>
    run((c) =>
      Effect.gen(function*() {
        yield* receive(c, action("a", 1, create("t1", "one")))
        yield* receive(c, action("a", 2, update("t1", { text: "two" })))
        const before = yield* snapshot
        for (const seq of [2, 1]) {
          const frames = yield* receive(c, action("a", seq, update("t1", { text: "three" }), { requestId: `retry-${seq}` }))
          assert.deepStrictEqual(frames, [{ _tag: "Ack", requestId: `retry-${seq}`, version: before.version, rows: [], duplicate: true }])
        }
        assert.deepStrictEqual(yield* snapshot, before)
        // another client's seq 2 is its own
        const other = yield* receive(c, action("b", 2, update("t1", { text: "b" })))
        assert.isFalse((other.find((m) => m._tag === "Ack") as Ack).duplicate)
      })))

  it.effect("malformed JSON -> MalformedJson", () => refuses(`{"_tag":`, "MalformedJson"))
  it.effect("an unknown message -> UnknownMessage", () => refuses(`{"_tag":"Hello","requestId":"h1"}`, "UnknownMessage"))
  it.effect("an action without seq -> UnknownMessage naming its request id", () =>
    refuses(JSON.stringify({ _tag: "Action", requestId: "no-seq", channel: "todos", clientId: "x", action: create("x", "x") }), "UnknownMessage", (f) =>
      assert.strictEqual(f.requestId, "no-seq")))
  it.effect("a binary frame -> UnknownMessage", () => refuses(new TextEncoder().encode(action("x", 1, create("x", "x"))).buffer as ArrayBuffer, "UnknownMessage"))
  for (const channel of ["nope", "todos; DROP TABLE todos", "sqlite_master", "_psync_clients"]) {
    it.effect(`unknown channel ${JSON.stringify(channel)} -> UnknownChannel`, () =>
      refuses(action("x", 1, create("x", "x"), { channel }), "UnknownChannel", (f) => {
        assert.strictEqual(f.channel, channel)
        assert.strictEqual(f.requestId, "x-1")
      }))
  }
  it.effect("a schema-invalid action -> InvalidAction with its request id", () =>
    refuses(action("x", 1, { type: "create", payload: { id: "x" } }), "InvalidAction", (f) => assert.strictEqual(f.requestId, "x-1")))
  it.effect("a frame over the inbound limit -> FrameTooLarge", () =>
    refuses(action("x", 1, create("x", "x".repeat(300 * 1024))), "FrameTooLarge"))
  it.effect("a handler refusal -> HandlerFailed with the handler's message", () =>
    refuses(action("x", 1, create("x", " ")), "HandlerFailed", (f) => assert.strictEqual(f.message, "text must be 1 to 200 characters")))
  it.effect("a handler that fails after writing -> HandlerFailed and its row is rolled back", () =>
    refuses(action("x", 1, create("x", FAIL_AFTER_WRITE)), "HandlerFailed", (f) => assert.strictEqual(f.message, "failed after writing")))
  it.effect("a handler whose SQL fails -> HandlerFailed with the engine's reason, not the statement", () =>
    refuses(action("x", 1, create("seed", "duplicate id")), "HandlerFailed", (f) => {
      assert.include(f.message, "UNIQUE constraint failed")
      assert.notInclude(f.message, "INSERT")
    }))

  it.effect("a read-only connection may subscribe but its actions get ReadOnly", () =>
    run((c) =>
      Effect.gen(function*() {
        const sync = yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
        assert.strictEqual(sync[sync.length - 1]!._tag, "Synced")
        onlyFailure(yield* receive(c, action("x", 1, create("x", "x"))), "ReadOnly")
        assert.deepStrictEqual((yield* snapshot).rows, [])
      }), { state: { ...initialState, readOnly: true } }))

  it.effect("an action the authorizer refuses gets NotAuthorized and writes nothing", () =>
    run((c) =>
      Effect.gen(function*() {
        const failure = onlyFailure(yield* receive(c, action("x", 1, create("x", "x"))), "NotAuthorized")
        assert.strictEqual(failure.message, "not yours")
        assert.deepStrictEqual(yield* snapshot, { rows: [], clients: [], version: 0 })
      }), {
      authorizer: Layer.succeed(Authorizer, Authorizer.of({ authorizeAction: () => Effect.fail(new NotAuthorized({ message: "not yours" })) }))
    }))

  it.effect("over the in-flight limit -> TooManyInFlight", () =>
    run((c) =>
      Effect.gen(function*() {
        onlyFailure(yield* receive(c, action("x", 1, create("x", "x"))), "TooManyInFlight")
        assert.deepStrictEqual(yield* snapshot, { rows: [], clients: [], version: 0 })
      }), { options: { maxInFlightPerConnection: 0 } }))

  it.live("a connection's actions are applied in arrival order even when authorizing the first takes longer", () =>
    run((c) =>
      Effect.gen(function*() {
        // both frames arrive before either is authorized; the first one's authorization is slower
        const first = yield* Effect.forkChild(ActionDispatch.use((d) => d.receive(c, action("o", 1, create("slow", "slow")))), { startImmediately: true })
        const second = yield* Effect.forkChild(ActionDispatch.use((d) => d.receive(c, action("o", 2, create("fast", "fast")))), { startImmediately: true })
        yield* Fiber.join(first)
        yield* Fiber.join(second)
        const acks = decodedFrames(c).filter((m): m is Ack => m._tag === "Ack")
        assert.deepStrictEqual(acks.map((a) => [a.requestId, a.duplicate]), [["o-1", false], ["o-2", false]])
        const { rows, clients } = yield* snapshot
        assert.deepStrictEqual(rows.map((r) => r[0]), ["fast", "slow"])
        assert.deepStrictEqual(clients, [["o", 2]])
      }), {
      authorizer: Layer.succeed(Authorizer, Authorizer.of({
        authorizeAction: (_principal, _channel, body) =>
          Effect.sleep((body as { payload: { id: string } }).payload.id === "slow" ? 30 : 1)
      }))
    }))

  it.effect("subscribe and unsubscribe to a declared channel", () =>
    run((c) =>
      Effect.gen(function*() {
        yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: todos.name, since: null }))
        assert.deepStrictEqual(c.state.channels, ["todos"])
        assert.deepStrictEqual(yield* receive(c, JSON.stringify({ _tag: "Unsubscribe", channel: "todos" })), [])
        assert.deepStrictEqual(c.state.channels, [])
        const frames = yield* receive(c, action("x", 1, create("x", "x")))
        assert.deepStrictEqual(frames.map((m) => m._tag), ["Ack"])
      })))
})
