/**
 * effect-partysync/testing's TestServer: a handler written with effect/sql,
 * migrated tables, an authorizer and the caller, run through the real
 * dispatch path in Node; every refusal arrives as its typed error and leaves
 * nothing behind.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { SqlClient } from "effect/sql"
import * as Channel from "../../src/protocol/Channel.ts"
import { ActionRejected, HandlerFailed, NotAuthorized } from "../../src/protocol/Errors.ts"
import { Caller } from "../../src/services/Caller.ts"
import { Storage } from "../../src/services/Storage.ts"
import * as TestServer from "../../src/testing/TestServer.ts"

const Note = Schema.Tuple([Schema.String, Schema.String, Schema.String, Schema.NullOr(Schema.Number)])
const NoteAction = Schema.Union([
  Schema.Struct({ type: Schema.Literal("add"), id: Schema.String, text: Schema.String }),
  Schema.Struct({ type: Schema.Literal("remove"), id: Schema.String })
])
const notes = Channel.make("notes", { record: Note, action: NoteAction })

const migrations = {
  "1_create_notes": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL, deleted_at INTEGER)`
  }),
  // a column added later: it is synced before deleted_at, as the record declares it
  "2_add_author": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT ''`
  })
}

const server = TestServer.make({
  channels: [notes],
  migrations,
  onAction: (_channel, action) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { principal } = yield* Caller
      switch (action.type) {
        case "add": {
          if (action.text.trim() === "") return yield* new ActionRejected({ message: "a note needs text" })
          const rows = yield* sql`INSERT INTO notes (id, text, author) VALUES (${action.id}, ${action.text}, ${String(principal)}) RETURNING *`
          if (action.text === "boom") return yield* Effect.die(new Error("the handler crashed after writing"))
          return rows
        }
        case "remove":
          return yield* sql`UPDATE notes SET deleted_at = 1 WHERE id = ${action.id} RETURNING *`
      }
    }),
  authorizeAction: (principal, _channel, action) =>
    action.type === "remove" && principal !== "admin" ? Effect.fail(new NotAuthorized({ message: "only admins remove notes" })) : Effect.void
})

const count = (s: TestServer.TestServer<typeof notes>) =>
  Effect.flatMap(s.storage, (storage) => Effect.map(storage.raw("SELECT count(*) FROM notes"), (rows) => rows[0]![0]))

describe("TestServer", () => {
  it.effect("runs a handler written with effect/sql over migrated tables; rows come in wire order, with the caller's principal", () =>
    Effect.gen(function*() {
      const s = yield* server
      const ada = s.connect("ada")
      const rows = yield* ada.send("notes", { type: "add", id: "n1", text: "hello" })
      assert.deepStrictEqual(rows, [["n1", "hello", "ada", null]])
    }))

  it.effect("a business refusal fails send with ActionRejected; a crash with HandlerFailed and its write rolled back", () =>
    Effect.gen(function*() {
      const s = yield* server
      const c = s.connect("ada")
      const refused = yield* Effect.flip(c.send("notes", { type: "add", id: "n1", text: "  " }))
      assert.instanceOf(refused, ActionRejected)
      assert.strictEqual(refused.message, "a note needs text")
      const crashed = yield* Effect.flip(c.send("notes", { type: "add", id: "n2", text: "boom" }))
      assert.instanceOf(crashed, HandlerFailed)
      assert.include(crashed.message, "crashed after writing")
      assert.strictEqual(yield* count(s), 0)
    }))

  it.effect("the authorizer refuses with NotAuthorized per principal", () =>
    Effect.gen(function*() {
      const s = yield* server
      yield* s.connect("ada").send("notes", { type: "add", id: "n1", text: "mine" })
      const denied = yield* Effect.flip(s.connect("bob").send("notes", { type: "remove", id: "n1" }))
      assert.instanceOf(denied, NotAuthorized)
      const removed = yield* s.connect("admin").send("notes", { type: "remove", id: "n1" })
      assert.strictEqual(removed[0]![3], 1)
    }))

  it.effect("after the README's new-column migration, a partysync-style handler returning RETURNING * (table order) is applied; the reply is in wire order", () =>
    Effect.gen(function*() {
      // the column the second migration adds lands after deleted_at in the table
      const seedStyle = yield* TestServer.make({
        channels: [notes],
        migrations,
        onAction: (_channel, action) =>
          Effect.gen(function*() {
            const sql = yield* Storage
            return action.type === "add"
              ? yield* sql.raw("INSERT INTO notes (id, text, author) VALUES (?, ?, 'ada') RETURNING *", action.id, action.text)
              : yield* sql.raw("UPDATE notes SET deleted_at = 5 WHERE id = ? RETURNING *", action.id)
          })
      })
      const c = seedStyle.connect("ada")
      assert.deepStrictEqual(yield* c.send("notes", { type: "add", id: "n1", text: "hello" }), [["n1", "hello", "ada", null]])
      assert.deepStrictEqual(yield* c.send("notes", { type: "remove", id: "n1" }), [["n1", "hello", "ada", 5]])
    }))

  it.effect("what a handler returns is not the reply: the rows the action wrote are", () =>
    Effect.gen(function*() {
      const liar = yield* TestServer.make({
        channels: [notes],
        migrations,
        onAction: (_channel, action) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            if (action.type === "add") yield* sql`INSERT INTO notes (id, text, author) VALUES (${action.id}, ${action.text}, 'ada')`
            return [["ghost", "never written", "nobody", null]]
          })
      })
      assert.deepStrictEqual(yield* liar.connect("ada").send("notes", { type: "add", id: "n1", text: "real" }), [["n1", "real", "ada", null]])
    }))
})
