/**
 * A full sync read in chunks (src/services/FullSync.ts) over node:sqlite:
 * rows inserted, updated, soft- and hard-deleted between its chunks (by
 * actions that publish, and by plain SQL nobody published) are in the
 * answer, and the client's own code (SyncAnswer over a RecordTable) applies
 * it to exactly the table at `Synced`; a table WITHOUT ROWID is read by its
 * id; a read rule narrows the rows.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { RecordTable } from "../../src/client/RecordTable.ts"
import { SyncAnswer } from "../../src/client/SyncAnswer.ts"
import * as Channel from "../../src/protocol/Channel.ts"
import type { Synced, SyncRows } from "../../src/protocol/Protocol.ts"
import type { Pacing } from "../../src/services/FullSync.ts"
import { Reconciliation } from "../../src/services/Reconciliation.ts"
import { Storage } from "../../src/services/Storage.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { initialState } from "../../src/services/Connections.ts"
import { cards, setup, views } from "../helpers/views.ts"
import { decodedFrames } from "../helpers/memory.ts"
import { servicesLayer } from "../helpers/services.ts"

type Row = ReadonlyArray<unknown>

const exec = (statement: string, ...params: Array<string | number | null>) => Storage.use((sql) => sql.raw(statement, ...params))

/** What a client holds after applying the answer a connection was sent, and the answer's chunks. */
const applied = (connection: ReturnType<typeof makeMemoryConnection>) => {
  const frames = decodedFrames(connection)
  const answer = new SyncAnswer<Row>()
  const table = new RecordTable<Row>()
  for (const f of frames) if (f._tag === "SyncRows") answer.add(f.reset, f.rows, f.deleted)
  const synced = frames.find((f): f is Synced => f._tag === "Synced")!
  answer.apply(table, synced.reset)
  return { table: new Map(table.array().map((r) => [r[0], r])), synced, chunks: frames.filter((f): f is SyncRows => f._tag === "SyncRows") }
}

/** A pacing of one chunk of `rows` a turn that runs `between[i]` at the i-th turn and counts the turns. */
const pacedBy = (rows: number, between: ReadonlyArray<Effect.Effect<unknown, unknown, Reconciliation | Storage>>) => {
  let turns = 0
  return Effect.map(Effect.context<Reconciliation | Storage>(), (context) => {
    const pacing: Pacing = {
      around: (answer) => answer,
      rows: (progress) => (progress.rowsInTurn === 0 ? rows : 0),
      turn: Effect.suspend(() => Effect.orDie(Effect.provide(between[turns++] ?? Effect.void, context)))
    }
    return { pacing, turns: () => turns }
  })
}

const liveRows = (table: string) =>
  Effect.map(exec(`SELECT * FROM ${table} WHERE deleted_at IS NULL`), (rows) => rows)

describe("FullSync", () => {
  it.effect("rows changed between the chunks are in the answer, which applies to exactly the table at Synced", () => {
    const connection = makeMemoryConnection("reader")
    return Effect.gen(function*() {
      const r = yield* Reconciliation
      const insert = (id: string) => exec("INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, 0, 1, 1)", id, `text ${id}`)
      for (let i = 0; i < 95; i++) yield* insert(`r${String(i).padStart(3, "0")}`)
      yield* r.flush
      // published writes (as an action's would be) and plain SQL nobody published, before and after what was sent
      const { pacing, turns } = yield* pacedBy(10, [
        r.write(exec("UPDATE todos SET text = 'changed' WHERE id = 'r001'")),
        r.write(exec("DELETE FROM todos WHERE id = 'r090'")),
        exec("UPDATE todos SET deleted_at = 5 WHERE id = 'r002'"),
        r.write(insert("late")),
        Effect.andThen(exec("UPDATE todos SET text = 'unpublished' WHERE id = 'r093'"), exec("DELETE FROM todos WHERE id = 'r003'"))
      ])
      const result = yield* r.subscribe(connection, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined }, { pacing })
      assert.isTrue(result.reset)
      const { table, synced, chunks } = applied(connection)
      // 95 rows, 10 a turn: 10 chunks and a turn between each two
      assert.strictEqual(turns(), 9)
      assert.isAtLeast(chunks.length, 10)
      assert.strictEqual(synced.version, yield* r.version)
      const expected = new Map((yield* liveRows("todos")).map((row) => [row[0], row]))
      assert.deepStrictEqual([...table.keys()].sort(), [...expected.keys()].sort())
      for (const [id, row] of expected) assert.deepStrictEqual(table.get(id)?.slice(0, 3), row.slice(0, 3), String(id))
      assert.strictEqual(table.get("r001")?.[1], "changed")
      assert.strictEqual(table.get("r093")?.[1], "unpublished")
      for (const gone of ["r002", "r003", "r090"]) assert.isFalse(table.has(gone), gone)
      assert.isTrue(table.has("late"))
      // from Synced on, the connection receives live changes
      assert.deepStrictEqual(connection.state.channels, ["todos"])
    }).pipe(Effect.provide(servicesLayer({ connections: [connection] })))
  })

  it.effect("without pacing, the whole table is read at once", () => {
    const connection = makeMemoryConnection("reader")
    return Effect.gen(function*() {
      const r = yield* Reconciliation
      for (let i = 0; i < 30; i++) yield* exec("INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, 't', 0, 1, 1)", `r${i}`)
      yield* r.subscribe(connection, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined })
      const { table, chunks } = applied(connection)
      assert.strictEqual(table.size, 30)
      assert.strictEqual(chunks.length, 1)
    }).pipe(Effect.provide(servicesLayer({ connections: [connection] })))
  })

  const notes = Channel.make("notes", {
    record: Schema.Tuple([Schema.String, Schema.String, Schema.NullOr(Schema.Number)]),
    action: Schema.Struct({ id: Schema.String })
  })

  it.effect("a table WITHOUT ROWID is read in chunks by its id, and changes between them are in the answer", () => {
    const connection = makeMemoryConnection("reader")
    return Effect.gen(function*() {
      const r = yield* Reconciliation
      for (let i = 0; i < 45; i++) yield* exec("INSERT INTO notes (id, body) VALUES (?, ?)", `n${String(i).padStart(2, "0")}`, `body ${i}`)
      yield* r.flush
      const { pacing, turns } = yield* pacedBy(10, [
        r.write(exec("INSERT INTO notes (id, body) VALUES ('a-first', 'sorts before every chunk read')")),
        r.write(exec("UPDATE notes SET body = 'changed' WHERE id = 'n00'"))
      ])
      yield* r.subscribe(connection, notes, { since: null, history: undefined, sub: "notes", params: undefined, held: undefined }, { pacing })
      const { table } = applied(connection)
      assert.strictEqual(turns(), 4)
      const expected = new Map((yield* liveRows("notes")).map((row) => [row[0], row]))
      assert.deepStrictEqual([...table.keys()].sort(), [...expected.keys()].sort())
      assert.strictEqual(table.get("n00")?.[1], "changed")
    }).pipe(Effect.provide(servicesLayer({
      connections: [connection],
      channels: [notes],
      setup: ["CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL, deleted_at INTEGER) WITHOUT ROWID"]
    })))
  })

  it.effect("a read rule narrows the rows read", () => {
    const connection = makeMemoryConnection("reader")
    return Effect.gen(function*() {
      const r = yield* Reconciliation
      for (let i = 0; i < 40; i++) yield* exec("INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, 't', ?, 1, 1)", `r${i}`, i % 2)
      const { pacing } = yield* pacedBy(7, [])
      yield* r.subscribe(connection, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined }, { pacing, filter: { where: "t.completed = ?", params: [1] } })
      const { table } = applied(connection)
      assert.strictEqual(table.size, 20)
      for (const row of table.values()) assert.strictEqual(row[2], 1)
    }).pipe(Effect.provide(servicesLayer({ connections: [connection] })))
  })

  describe("a view", () => {
    const b1 = { board: "b1" }
    const sub = `cards?{"board":"b1"}`
    const card = (id: string, owner: string, priv: number) =>
      exec("INSERT INTO cards (id, board, owner, private, title) VALUES (?, 'b1', ?, ?, ?)", id, owner, priv, `title ${id}`)
    const request = { since: null, history: undefined, sub, params: b1, held: undefined }
    const layer = (connection: ReturnType<typeof makeMemoryConnection>) =>
      servicesLayer({ connections: [connection], channels: [cards], setup, views })
    const bob = () => makeMemoryConnection("bob", { ...initialState, principal: "bob" })

    it.effect("reads only what its rule admits, and its catch-up removes only ids it sent", () => {
      const connection = bob()
      return Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* exec("INSERT INTO members (user, board) VALUES ('bob', 'b1')")
        for (let i = 0; i < 20; i++) yield* card(`c${String(i).padStart(2, "0")}`, "ann", i % 2)
        yield* r.flush
        const { pacing } = yield* pacedBy(5, [
          // c00 was sent (public), then made private: it goes; c01 is hidden and changes: nothing of it may come
          r.write(exec("UPDATE cards SET private = 1 WHERE id = 'c00'")),
          r.write(exec("UPDATE cards SET title = 'still hidden' WHERE id = 'c01'")),
          r.write(card("new", "bob", 1))
        ])
        const result = yield* r.subscribe(connection, cards, request, { pacing })
        assert.isTrue(result.reset)
        const { table, synced, chunks } = applied(connection)
        assert.strictEqual(synced.sub, sub)
        assert.isTrue(synced.view)
        const expected = (yield* exec("SELECT id FROM cards WHERE deleted_at IS NULL AND (private = 0 OR owner = 'bob') ORDER BY id")).map((row) => row[0])
        assert.deepStrictEqual([...table.keys()].sort(), expected)
        const sent = chunks.flatMap((c) => c.rows.map((row) => row[0]))
        for (const id of chunks.flatMap((c) => c.deleted)) assert.include(sent, id)
        assert.notInclude(JSON.stringify(chunks), "still hidden")
        assert.notInclude(sent, "c01")
      }).pipe(Effect.provide(layer(connection)))
    })

    it.effect("an access change while its chunks go out stops it: Synced where it began, then Resync", () => {
      const connection = bob()
      return Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* exec("INSERT INTO members (user, board) VALUES ('bob', 'b1')")
        for (let i = 0; i < 20; i++) yield* card(`c${String(i).padStart(2, "0")}`, "ann", 1)
        yield* exec("INSERT INTO shares (card, user) SELECT id, 'bob' FROM cards")
        yield* r.flush
        const start = yield* r.version
        const { pacing, turns } = yield* pacedBy(5, [
          Effect.andThen(exec("DELETE FROM shares"), r.refreshAccess((p) => p === "bob"))
        ])
        yield* r.subscribe(connection, cards, request, { pacing })
        const frames = decodedFrames(connection)
        const synced = frames.find((f): f is Synced => f._tag === "Synced")!
        assert.strictEqual(synced.version, start)
        assert.isTrue(synced.history.endsWith(".stale"))
        assert.strictEqual(frames[frames.length - 1]?._tag, "Resync")
        // one chunk went out before the access changed, none after
        assert.strictEqual(turns(), 1)
        assert.strictEqual(frames.filter((f) => f._tag === "SyncRows" && f.rows.length > 0).length, 1)
        // not registered: no live change reaches it until it resubscribes
        assert.deepStrictEqual(connection.state.subs ?? [], [])
      }).pipe(Effect.provide(layer(connection)))
    })
  })
})
