/**
 * Per-channel handlers and the typed principal, through TestServer's real
 * dispatch path in Node: each channel's action reaches its own handler with
 * the connection's principal, a read-only grant refuses with the app's own
 * message, `Caller.principal` checks the principal against the app's
 * Schema, and a declaration that does not say how to run every channel
 * fails with `ServerDefinitionError` instead of dropping actions.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { SqlClient } from "effect/sql"
import { ActionRejected, HandlerFailed, SyncRefused } from "../../src/protocol/Errors.ts"
import { Caller } from "../../src/services/Caller.ts"
import { type Handlers, ServerDefinitionError } from "../../src/services/Handlers.ts"
import * as TestServer from "../../src/testing/TestServer.ts"
import { type Board, cards, comments, migrations, User } from "../helpers/kanban.ts"

const handlers: Handlers<Board, User> = {
  cards: (action, caller) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      switch (action.type) {
        case "add":
          return yield* sql`INSERT INTO cards VALUES (${action.id}, ${action.title}, 'todo', ${caller.principal.id}, NULL) RETURNING *`
        case "move":
          return yield* sql`UPDATE cards SET lane = ${action.lane} WHERE id = ${action.id} RETURNING *`
      }
    }),
  comments: (action) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // an Effect that is not given the caller reads the principal from its context, checked
      const user = yield* Caller.principal(User)
      if (action.type === "remove") return yield* sql`UPDATE comments SET deleted_at = 1 WHERE id = ${action.id} RETURNING *`
      if (action.body.trim() === "") return yield* new ActionRejected({ message: "say something" })
      return yield* sql`INSERT INTO comments VALUES (${action.id}, ${action.card}, ${action.body}, ${user.id}, NULL) RETURNING *`
    })
}

const board = TestServer.make({ channels: [cards, comments], principal: User, migrations, handlers })

describe("handlers per channel", () => {
  it.effect("each channel's action runs its own handler, with the connection's principal", () =>
    Effect.gen(function*() {
      const s = yield* board
      const ada = s.connect({ id: "ada", role: "editor" })
      // both channels have an action called "add": each reaches the handler of the channel it was sent on
      assert.deepStrictEqual(yield* ada.send("cards", { type: "add", id: "c1", title: "write tests" }), [["c1", "write tests", "todo", "ada", null]])
      assert.deepStrictEqual(yield* ada.send("comments", { type: "add", id: "m1", card: "c1", body: "soon" }), [["m1", "c1", "soon", "ada", null]])
      assert.deepStrictEqual(yield* ada.send("cards", { type: "move", id: "c1", lane: "done" }), [["c1", "write tests", "done", "ada", null]])
      const refused = yield* Effect.flip(ada.send("comments", { type: "add", id: "m2", card: "c1", body: " " }))
      assert.instanceOf(refused, ActionRejected)
      assert.strictEqual(refused.message, "say something")
    }))

  it.effect("a read-only grant refuses every action with the app's message (or the default one) and runs no handler", () =>
    Effect.gen(function*() {
      const s = yield* board
      const viewer = s.connect({ id: "vic", role: "viewer" }, { readOnly: "viewers cannot edit this board" })
      const refused = yield* Effect.flip(viewer.send("cards", { type: "add", id: "c1", title: "sneaky" }))
      assert.instanceOf(refused, SyncRefused)
      assert.strictEqual(refused.reason, "ReadOnly")
      assert.strictEqual(refused.message, "viewers cannot edit this board")
      const plain = yield* Effect.flip(s.connect({ id: "vic", role: "viewer" }, { readOnly: true }).send("cards", { type: "add", id: "c1", title: "x" }))
      assert.strictEqual(plain.message, "this connection is read-only")
      const storage = yield* s.storage
      assert.deepStrictEqual(yield* storage.raw("SELECT count(*) FROM cards"), [[0]])
    }))

  it.effect("Caller.principal dies (HandlerFailed, nothing written) when the principal does not match the Schema", () =>
    Effect.gen(function*() {
      // no principal Schema on this server: connect takes anything, as a SyncServer's authorizeConnection could grant
      const s = yield* TestServer.make({
        channels: [cards, comments],
        migrations,
        handlers: {
          cards: () => [],
          comments: () =>
            Effect.gen(function*() {
              const user = yield* Caller.principal(User)
              const sql = yield* SqlClient.SqlClient
              return yield* sql`INSERT INTO comments VALUES ('m1', 'c1', 'hi', ${user.id}, NULL) RETURNING *`
            })
        }
      })
      const failed = yield* Effect.flip(s.connect("ada").send("comments", { type: "add", id: "m1", card: "c1", body: "hi" }))
      assert.instanceOf(failed, HandlerFailed)
      assert.include(failed.message, "does not match the Schema given to Caller.principal")
      const rows = yield* s.connect({ id: "ada", role: "editor" }).send("comments", { type: "add", id: "m1", card: "c1", body: "hi" })
      assert.deepStrictEqual(rows, [["m1", "c1", "hi", "ada", null]])
    }))

  it.effect("connect checks its principal against the principal Schema", () =>
    Effect.gen(function*() {
      const s = yield* board
      // @ts-expect-error the principal is a User: a JavaScript caller gets the runtime check
      assert.throws(() => s.connect({ id: "ada", role: "admin" }), /does not match the principal Schema/)
    }))

  it.effect("the seed's onAction still runs every channel", () =>
    Effect.gen(function*() {
      const s = yield* TestServer.make({
        channels: [cards, comments],
        migrations,
        onAction: (channel, action) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            channel === "comments"
              ? sql`INSERT INTO comments VALUES (${action.id}, ${channel}, '', '', NULL)`
              : sql`INSERT INTO cards VALUES (${action.id}, ${channel}, 'todo', '', NULL)`)
      })
      assert.deepStrictEqual(yield* s.connect().send("comments", { type: "remove", id: "m9" }), [["m9", "comments", "", "", null]])
      assert.deepStrictEqual(yield* s.connect().send("cards", { type: "move", id: "c9", lane: "done" }), [["c9", "cards", "todo", "", null]])
    }))
})

describe("a declaration that does not say how to run every channel", () => {
  const definitionError = (options: unknown) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(TestServer.make(options as TestServer.TestServerOptions<Board>))
      assert.instanceOf(error, ServerDefinitionError)
      return error.message
    })

  it.effect("fails with ServerDefinitionError: both, neither, a missing channel, an unknown one", () =>
    Effect.gen(function*() {
      const channels = [cards, comments]
      assert.include(yield* definitionError({ channels, handlers, onAction: () => [] }), "not both")
      assert.include(yield* definitionError({ channels }), "declare `handlers` (one function per channel) or `onAction`")
      assert.include(yield* definitionError({ channels, handlers: { cards: () => [] } }), "no function for channel \"comments\"")
      assert.include(yield* definitionError({ channels, handlers: { ...handlers, tags: () => [] } }), "`handlers.tags` is not a declared channel")
    }))
})
