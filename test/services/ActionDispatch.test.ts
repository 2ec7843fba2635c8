/**
 * ActionDispatch over node:sqlite with the Todo handler: a pushed action is
 * applied once and answered after its Change; every kind of bad frame gets
 * its typed Failure and writes nothing (no rows, no sequence number, no
 * version); an action refused (before or by its handler) is decided as a
 * refusal that every re-send gets again, and writes no rows.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Channel from "../../src/protocol/Channel.ts"
import { ActionDispatch } from "../../src/services/ActionDispatch.ts"
import { ActionHandler, Authorizer } from "../../src/services/ActionHandler.ts"
import { Caller } from "../../src/services/Caller.ts"
import { type ConnectionState, initialState } from "../../src/services/Connections.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"
import { NotAuthorized } from "../../src/services/Errors.ts"
import type { Applied, ErrorReason, Failure, Pushed, Refused, ServerMessage } from "../../src/protocol/Protocol.ts"
import { Reconciliation } from "../../src/services/Reconciliation.ts"
import { Storage } from "../../src/services/Storage.ts"
import type { SyncOptions } from "../../src/services/SyncConfig.ts"
import { runTodoAction } from "../../fixtures/todo-sync/src/actions.ts"
import { type TodoAction, todos, upgradeFromV1 } from "../../fixtures/todo-sync/src/shared.ts"
import { decodedFrames } from "../helpers/memory.ts"
import { FAIL_AFTER_WRITE, servicesLayer } from "../helpers/services.ts"
import { create, pushOfCreates, update } from "../helpers/todos.ts"
import { keyOf } from "../helpers/protocol.ts"

/** A push of one action. */
const action = (clientId: string, seq: number, body: unknown, extra: { channel?: string } = {}) =>
  JSON.stringify({ _tag: "Push", channel: extra.channel ?? "todos", clientId, clientKey: keyOf(clientId), actions: [{ seq, action: body }] })

/** The reply to a push among some frames. */
const pushedIn = (frames: ReadonlyArray<ServerMessage>): Pushed => {
  const reply = frames.find((m): m is Pushed => m._tag === "Pushed")
  assert.isDefined(reply, JSON.stringify(frames))
  return reply!
}

/** The outcome of action `seq` in a reply. */
const outcome = (frames: ReadonlyArray<ServerMessage>, seq: number): Applied | Refused => {
  const result = pushedIn(frames).results.find((r) => r.seq === seq)
  assert.isDefined(result, JSON.stringify(frames))
  return result!
}

/** The refusal of action `seq`: decided, final. */
const refusedWith = (frames: ReadonlyArray<ServerMessage>, seq: number, reason: ErrorReason): Refused => {
  const result = outcome(frames, seq)
  assert.isTrue("reason" in result, JSON.stringify(result))
  assert.strictEqual((result as Refused).reason, reason, JSON.stringify(result))
  return result as Refused
}

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

/** The Todo handler, except that an action on row `id` runs `broken` instead. */
const breakingOn = (id: string, broken: Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, unknown, Storage>) =>
  Layer.effect(ActionHandler, Effect.gen(function*() {
    const storage = yield* Storage
    return ActionHandler.of({
      run: (_channel, input) => {
        const todo = input as TodoAction
        return (todo.payload.id === id ? broken : runTodoAction(todo, 1)).pipe(Effect.provideService(Storage, storage))
      }
    })
  }))

/**
 * Seeds one row, pushes an action the server refuses, checks its rows and
 * version did not change, that the refusal is final (a re-send of the same
 * seq gets it again, even with an action that would pass), that the client's
 * next seq is decided, and that the connection still works.
 */
const refusesOnce = (
  frame: string,
  reason: ErrorReason,
  check: (f: Refused) => void = () => {},
  layers: { handler?: Layer.Layer<ActionHandler, never, Storage>; authorizer?: Layer.Layer<Authorizer> } = {}
) => {
  const connection = makeMemoryConnection("c1")
  return Effect.gen(function*() {
    const c = connection
    yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
    yield* receive(c, action("seed", 1, create("seed", "seed")))
    const before = yield* snapshot
    const parsed = JSON.parse(frame) as { clientId: string; actions: Array<{ seq: number }> }
    const seq = parsed.actions[0]!.seq
    check(refusedWith(yield* receive(c, frame), seq, reason))
    const after = yield* snapshot
    assert.deepStrictEqual([after.rows, after.version], [before.rows, before.version])
    const again = refusedWith(yield* receive(c, action(parsed.clientId, seq, create("fine", "would pass"))), seq, reason)
    check(again)
    assert.deepStrictEqual((yield* snapshot).rows, before.rows)
    // the refusal decided its seq: the client's next one is applied
    const following = yield* receive(c, action(parsed.clientId, seq + 1, create("following", "following")))
    assert.isTrue("rows" in outcome(following, seq + 1))
    const next = yield* receive(c, action("seed", 2, create("next", "next")))
    assert.deepStrictEqual(next.map((m) => m._tag), ["Change", "Pushed"])
  }).pipe(Effect.provide(servicesLayer({ connections: [connection], ...layers })))
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
      assert.deepStrictEqual(after.map((m) => m._tag), ["Change", "Pushed"])
    })
  )

describe("ActionDispatch", () => {
  it.effect("a pushed action is applied: its Change is published, then the reply with the captured rows and version", () =>
    run((c) =>
      Effect.gen(function*() {
        yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
        const frames = yield* receive(c, action("a", 1, create("t1", "  hello  ")))
        assert.deepStrictEqual(frames.map((m) => m._tag), ["Change", "Pushed"])
        const reply = frames[1] as Pushed
        assert.deepStrictEqual(reply.results.map((r) => [r.seq, "rows" in r ? r.rows.map((row) => row.slice(0, 3)) : r.reason]), [[1, [["t1", "hello", 0]]]])
        assert.strictEqual(reply.version, 1)
        assert.strictEqual(reply.next, 2)
        assert.strictEqual(reply.clientId, "a")
        const state = yield* snapshot
        assert.deepStrictEqual(state.clients, [["a", 1]])
      })))

  it.effect("a re-sent (clientId, seq) is not applied twice and gets the first outcome's rows", () =>
    run((c) =>
      Effect.gen(function*() {
        const first = outcome(yield* receive(c, action("a", 1, create("t1", "one"))), 1)
        const second = outcome(yield* receive(c, action("a", 2, update("t1", { text: "two" }))), 2)
        const before = yield* snapshot
        for (const [seq, was] of [[2, second], [1, first]] as const) {
          const frames = yield* receive(c, action("a", seq, update("t1", { text: "three" })))
          assert.deepStrictEqual(frames, [{ _tag: "Pushed", channel: "todos", clientId: "a", version: before.version, next: 3, results: [{ ...was, duplicate: true }] }])
        }
        assert.deepStrictEqual(yield* snapshot, before)
        // another client's seq 1 is its own
        const other = outcome(yield* receive(c, action("b", 1, update("t1", { text: "b" }))), 1)
        assert.deepStrictEqual("rows" in other ? other.rows.map((r) => r[1]) : other, ["b"])
      })))

  it.effect("malformed JSON -> MalformedJson", () => refuses(`{"_tag":`, "MalformedJson"))
  it.effect("an unknown message -> UnknownMessage", () => refuses(`{"_tag":"Hello","requestId":"h1"}`, "UnknownMessage"))
  it.effect("a push without seqs -> UnknownMessage naming its client id", () =>
    refuses(JSON.stringify({ _tag: "Push", channel: "todos", clientId: "x", clientKey: keyOf("x"), actions: [{ action: create("x", "x") }] }), "UnknownMessage", (f) =>
      assert.strictEqual(f.clientId, "x")))
  it.effect("a push whose seqs do not follow each other -> UnknownMessage", () =>
    refuses(JSON.stringify({ _tag: "Push", channel: "todos", clientId: "x", clientKey: keyOf("x"), actions: [{ seq: 1, action: create("x", "x") }, { seq: 3, action: create("y", "y") }] }), "UnknownMessage"))
  it.effect("an Action frame of the previous release -> Unavailable by its request id (that tab keeps the action queued)", () =>
    refuses(JSON.stringify({ _tag: "Action", requestId: "old-1", channel: "todos", clientId: "x", clientKey: keyOf("x"), seq: 1, action: create("x", "x") }), "Unavailable", (f) =>
      assert.strictEqual(f.requestId, "old-1")))
  it.effect("a binary frame -> UnknownMessage", () => refuses(new TextEncoder().encode(action("x", 1, create("x", "x"))).buffer as ArrayBuffer, "UnknownMessage"))
  for (const channel of ["nope", "todos; DROP TABLE todos", "sqlite_master", "_psync_clients"]) {
    it.effect(`unknown channel ${JSON.stringify(channel)} -> UnknownChannel`, () =>
      refuses(action("x", 1, create("x", "x"), { channel }), "UnknownChannel", (f) => {
        assert.strictEqual(f.channel, channel)
        assert.strictEqual(f.clientId, "x")
      }))
  }
  it.effect("a schema-invalid action -> refused InvalidAction, decided", () =>
    refusesOnce(action("x", 1, { type: "create", payload: { id: "x" } }), "InvalidAction", (f) => assert.include(f.message, "text")))
  it.effect("a frame over the inbound limit -> FrameTooLarge", () =>
    refuses(action("x", 1, create("x", "x".repeat(300 * 1024))), "FrameTooLarge"))
  it.effect("a handler whose SQL fails -> HandlerFailed with the engine's reason, not the statement", () =>
    refusesOnce(action("x", 1, create("seed", "duplicate id")), "HandlerFailed", (f) => {
      assert.include(f.message, "UNIQUE constraint failed")
      assert.notInclude(f.message, "INSERT")
    }))
  it.effect("a business refusal (ActionRejected from the handler) -> ActionRejected with the handler's message", () =>
    refusesOnce(action("x", 1, create("x", " ")), "ActionRejected", (f) => assert.strictEqual(f.message, "text must be 1 to 200 characters")))
  it.effect("a handler that fails after writing -> its refusal, and its row is rolled back", () =>
    refusesOnce(action("x", 1, create("x", FAIL_AFTER_WRITE)), "ActionRejected", (f) => assert.strictEqual(f.message, "failed after writing")))
  it.effect("a handler that writes a row not matching the record Schema -> InvalidRecord naming the column, rolled back", () =>
    refusesOnce(action("x", 1, create("x", "x")), "InvalidRecord", (f) => assert.include(f.message, "column completed"), {
      handler: breakingOn("x", Effect.map(Storage.use((sql) => sql.raw("INSERT INTO todos VALUES ('x', 'x', 'yes', 1, 1, NULL, 1)")), () => []))
    }))
  it.effect("a handler that dies -> HandlerFailed, rolled back", () =>
    refusesOnce(action("x", 1, create("x", "x")), "HandlerFailed", (f) => assert.include(f.message, "kaboom"), {
      handler: breakingOn("x", Effect.andThen(Storage.use((sql) => sql.raw("INSERT INTO todos VALUES ('x', 'x', 0, 1, 1, NULL, 1)")), Effect.die(new Error("kaboom"))))
    }))

  it.effect("a read-only connection may subscribe but its actions are refused ReadOnly", () =>
    run((c) =>
      Effect.gen(function*() {
        const sync = yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
        assert.strictEqual(sync[sync.length - 1]!._tag, "Synced")
        refusedWith(yield* receive(c, action("x", 1, create("x", "x"))), 1, "ReadOnly")
        assert.deepStrictEqual((yield* snapshot).rows, [])
      }), { state: { ...initialState, readOnly: true } }))

  it.effect("an action the authorizer refuses gets NotAuthorized, writes nothing, and stays refused", () =>
    refusesOnce(action("x", 1, create("x", "x")), "NotAuthorized", (f) => assert.strictEqual(f.message, "not yours"), {
      authorizer: Layer.succeed(Authorizer, Authorizer.of({
        authorizeAction: (_p, _c, body) =>
          (body as { payload: { id: string } }).payload.id === "x" ? Effect.fail(new NotAuthorized({ message: "not yours" })) : Effect.void
      }))
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
        const replies = decodedFrames(c).filter((m): m is Pushed => m._tag === "Pushed")
        assert.deepStrictEqual(replies.map((r) => r.results.map((x) => [x.seq, "rows" in x])), [[[1, true]], [[2, true]]])
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
        assert.deepStrictEqual(frames.map((m) => m._tag), ["Pushed"])
      })))
})

describe("ActionDispatch: identities and limits", () => {
  it.effect("onAction knows its caller: principal, connection id, client id and seq", () => {
    const connection = makeMemoryConnection("conn-7", { ...initialState, principal: { user: "ada" } })
    const seen: Array<unknown> = []
    const handler = Layer.effect(ActionHandler, Effect.gen(function*() {
      const storage = yield* Storage
      return ActionHandler.of({
        run: (_channel, input) =>
          Effect.gen(function*() {
            seen.push(yield* Caller)
            return yield* runTodoAction(input as TodoAction, 1)
          }).pipe(Effect.provideService(Storage, storage))
      })
    }))
    return Effect.gen(function*() {
      yield* receive(connection, action("client-a", 3, create("t", "t")))
      assert.deepStrictEqual(seen, [{ principal: { user: "ada" }, connectionId: "conn-7", clientId: "client-a", seq: 3, requestId: "client-a:3" }])
    }).pipe(Effect.provide(servicesLayer({ connections: [connection], handler })))
  })

  it.effect("a client id used with another key -> ClientMismatch; the owner's sequence space is untouched", () =>
    run((c) =>
      Effect.gen(function*() {
        yield* receive(c, action("victim", 1, create("v1", "mine")))
        const forged = JSON.stringify({ _tag: "Push", channel: "todos", clientId: "victim", clientKey: "attacker-key-0123456", actions: [{ seq: 2, action: create("f", "forged") }] })
        const failure = onlyFailure(yield* receive(c, forged), "ClientMismatch")
        assert.strictEqual(failure.clientId, "victim")
        const next = yield* receive(c, action("victim", 2, create("v2", "still mine")))
        assert.isTrue("rows" in outcome(next, 2))
        assert.deepStrictEqual((yield* snapshot).rows.map((r) => r[0]), ["v1", "v2"])
      })))

  it.live("a flood of Subscribes for one channel gets two sync answers, then refusals (clients retry), then the connection is closed", () =>
    run((c) =>
      Effect.gen(function*() {
        for (let i = 0; i < 20; i++) yield* receive(c, action("w", i + 1, create(`row-${i}`, `row ${i}`)))
        c.sent.length = 0
        // one after another, as a socket delivers them: each frame is done before the next comes
        for (let i = 0; i < 300; i++) yield* receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
        const frames = decodedFrames(c)
        assert.strictEqual(frames.filter((m) => m._tag === "Synced").length, 2)
        const refused = frames.filter((m): m is Failure => m._tag === "Failure")
        // maxInvalidFrames refusals, then the one that closes it; the frames after that are dropped
        assert.deepStrictEqual(refused.map((f) => f.reason), [...Array.from({ length: 5 }, () => "TooManyInFlight"), "TooManyInvalidFrames"])
        assert.strictEqual(c.closed?.code, 1008)
        assert.isTrue(c.closed?.reason.startsWith("TooManyInvalidFrames"))
      }), { options: { maxInvalidFrames: 5, abuseCloseDelayMs: 0 } }))

  it.live("300 concurrent Subscribes on one connection: at most two sync answers; the rest merge into the waiting one or are refused", () =>
    run((c) =>
      Effect.gen(function*() {
        for (let i = 0; i < 5; i++) yield* receive(c, action("w", i + 1, create(`row-${i}`, `row ${i}`)))
        c.sent.length = 0
        const senders = Array.from({ length: 300 }, () =>
          Effect.forkChild(ActionDispatch.use((d) => d.receive(c, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))), { startImmediately: true }))
        const fibers = yield* Effect.all(senders)
        for (const fiber of fibers) yield* Fiber.join(fiber)
        const frames = decodedFrames(c)
        assert.isAtMost(frames.filter((m) => m._tag === "Synced").length, 2)
        const failures = frames.filter((m): m is Failure => m._tag === "Failure")
        for (const f of failures) assert.include(["TooManyInFlight", "TooManyInvalidFrames"], f.reason)
        assert.isBelow(failures.length, 300)
      })))

  it.effect("two connections with the same id are two connections: each gets its own frames", () => {
    const first = makeMemoryConnection("same-pk")
    const second = makeMemoryConnection("same-pk")
    return Effect.gen(function*() {
      yield* receive(first, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
      yield* receive(second, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
      first.sent.length = 0
      second.sent.length = 0
      const reply = yield* receive(first, action("one", 1, create("a", "from the first socket")))
      assert.deepStrictEqual(reply.map((m) => m._tag), ["Change", "Pushed"])
      // the second socket gets the change as a Change frame of its own, not folded into the first one's reply
      assert.deepStrictEqual(decodedFrames(second).map((m) => m._tag), ["Change"])
    }).pipe(Effect.provide(servicesLayer({ connections: [first, second] })))
  })

  it.effect("an older version's action: upgraded by a declared step, taken as it is when it decodes under the current Schema, else refused Outdated", () => {
    const withStep = Channel.make("todos", { record: todos.record, action: todos.action, version: 2, upgrade: { 1: upgradeFromV1 } })
    // a version raised for a new column, with no step: actions that still decode need none
    const noStep = Channel.make("todos", { record: todos.record, action: todos.action, version: 2 })
    const v1Create = (id: string) => ({ type: "create", payload: { id, text: "old", completed: 0 } })
    const frame = (clientId: string, action: unknown) =>
      JSON.stringify({ _tag: "Push", channel: "todos", clientId, clientKey: `${clientId}-key-0123456789`, actions: [{ seq: 1, action, schema: 1 }] })
    const run = (channel: Channel.Any, clientId: string, action: unknown) => {
      const c = makeMemoryConnection("c")
      return Effect.flatMap(receive(c, frame(clientId, action)), (frames) => {
        const result = outcome(frames, 1)
        return Effect.succeed("reason" in result ? result.reason : `Applied ${JSON.stringify(result.rows.map((r) => r[5]))}`)
      }).pipe(Effect.provide(servicesLayer({ connections: [c], channels: [channel] })))
    }
    return Effect.gen(function*() {
      // the v1 create (no priority) gets the step's normal priority
      assert.strictEqual(yield* run(withStep, "up", v1Create("up")), "Applied [1]")
      // an update is the same in both versions: no step needed
      assert.strictEqual(yield* run(noStep, "same", update("x", { text: "t" })), "Applied []")
      assert.strictEqual(yield* run(noStep, "old", v1Create("old")), "Outdated")
    })
  })
})

describe("ActionDispatch: turns", () => {
  /** A push of `n` creates, seqs 1..n. */
  const push = (clientId: string, n: number, prefix: string) => JSON.stringify(pushOfCreates(clientId, n, "t", prefix))
  /** How many slices a push of 20 was decided in: each slice's changes reach its sender in a Change frame of their own. */
  const slicesOf20 = (connections: Array<ReturnType<typeof makeMemoryConnection>>) =>
    Effect.gen(function*() {
      yield* receive(connections[0]!, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
      const frames = yield* receive(connections[0]!, push("a", 20, "a"))
      assert.strictEqual(pushedIn(frames).results.filter((r) => "rows" in r).length, 20)
      return frames.map((m) => m._tag).join(" ")
    }).pipe(Effect.provide(servicesLayer({ connections, options: { actionsPerTurn: 8, actionsPerTurnAlone: 64 } })))

  it.effect("a push is decided actionsPerTurn actions per transaction while another connection is open, in one while its connection is alone", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* slicesOf20([makeMemoryConnection("c1"), makeMemoryConnection("c2")]), "Change Change Change Pushed")
      assert.strictEqual(yield* slicesOf20([makeMemoryConnection("c1")]), "Change Pushed")
    }))

  /**
   * The rows of the chunks a full sync of 60 todos (of `text`) was sent in, on the first of `connections`; `joins` is
   * added to them once the second chunk is sent.
   */
  const chunksOf60 = (
    connections: Array<ReturnType<typeof makeMemoryConnection>>,
    options: Partial<SyncOptions>,
    joins?: ReturnType<typeof makeMemoryConnection>,
    text = "t"
  ) =>
    Effect.gen(function*() {
      const reader = connections[0]!
      yield* receive(reader, JSON.stringify(pushOfCreates("a", 60, text, "a")))
      const send = reader.send
      let chunks = 0
      reader.send = (frame) => {
        send(frame)
        if (frame.startsWith(`{"_tag":"SyncRows"`) && ++chunks === 2 && joins !== undefined) connections.push(joins)
      }
      const frames = yield* receive(reader, JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null }))
      return frames.flatMap((f) => (f._tag === "SyncRows" ? [f.rows] : []))
    }).pipe(Effect.provide(servicesLayer({ connections, options })))
  const sizes = (chunks: ReadonlyArray<ReadonlyArray<unknown>>) => chunks.map((rows) => rows.length)

  it.effect("a full sync reads syncRowsPerTurn rows a turn while another connection is open, syncRowsPerTurnAlone while its connection is alone (its first chunk syncRowsPerTurn)", () =>
    Effect.gen(function*() {
      const options = { syncRowsPerTurn: 5, syncRowsPerTurnAlone: 25 }
      // the first turn: a chunk of syncRowsPerTurn, then the rest of the turn's 25
      assert.deepStrictEqual(sizes(yield* chunksOf60([makeMemoryConnection("c1")], options)), [5, 20, 25, 10])
      assert.deepStrictEqual(sizes(yield* chunksOf60([makeMemoryConnection("c1"), makeMemoryConnection("c2")], options)), Array(12).fill(5))
      // asked before every chunk: a connection that opens during the sync gets turns from the next chunk on
      assert.deepStrictEqual(sizes(yield* chunksOf60([makeMemoryConnection("c1")], options, makeMemoryConnection("c2"))), [5, 20, ...Array(7).fill(5)])
    }))

  it.effect("a full sync alone in its object reads no more rows a turn than half a frame holds, and never fewer than syncRowsPerTurn", () =>
    Effect.gen(function*() {
      const options = { syncRowsPerTurn: 5, syncRowsPerTurnAlone: 1_000, maxOutboundFrameBytes: 8_000 }
      const chunks = yield* chunksOf60([makeMemoryConnection("c1")], options, undefined, "x".repeat(150))
      assert.strictEqual(chunks.flat().length, 60)
      assert.strictEqual(chunks[0]!.length, 5)
      // each later chunk grew past syncRowsPerTurn, within half a frame (4,000 bytes) of rows
      for (const rows of chunks.slice(1, -1)) {
        assert.isAbove(rows.length, 5)
        assert.isAtMost(JSON.stringify(rows).length, 4_000)
      }
      // rows wider than half a frame would allow keep syncRowsPerTurn
      const wide = yield* chunksOf60([makeMemoryConnection("c1")], { ...options, maxOutboundFrameBytes: 1_800 }, undefined, "x".repeat(150))
      assert.deepStrictEqual(sizes(wide), Array(12).fill(5))
    }))

  it.effect("another connection's push is decided between the slices of a long one", () => {
    const long = makeMemoryConnection("long")
    const short = makeMemoryConnection("short")
    return Effect.gen(function*() {
      const first = yield* Effect.forkChild(receive(long, push("l", 20, "l")))
      const second = yield* Effect.forkChild(receive(short, push("s", 1, "s")))
      const longReply = pushedIn(yield* Fiber.join(first))
      const shortReply = pushedIn(yield* Fiber.join(second))
      assert.isBelow(shortReply.version, longReply.version)
    }).pipe(Effect.provide(servicesLayer({ connections: [long, short], options: { actionsPerTurn: 8, actionsPerTurnAlone: 64 } })))
  })
})
