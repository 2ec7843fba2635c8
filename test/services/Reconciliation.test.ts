/**
 * Reconciliation over node:sqlite: trigger capture from any code path,
 * monotonic versions, delta vs reset sync answers, tombstone GC and the
 * horizon, and the per-client sequence numbers.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { initialState } from "../../src/services/Connections.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"
import type { SyncRows } from "../../src/protocol/Protocol.ts"
import { APPLIED_WINDOW, Reconciliation } from "../../src/services/Reconciliation.ts"
import { Storage } from "../../src/services/Storage.ts"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { changesOf, decodedFrames } from "../helpers/memory.ts"
import { servicesLayer, TODO_TABLE } from "../helpers/services.ts"

const DAY = 24 * 60 * 60 * 1000

/** A fresh database with one subscribed connection, the services and helpers. */
const withRoom = <A, E>(body: (room: {
  readonly watcher: ReturnType<typeof makeMemoryConnection>
  readonly insert: (id: string, deletedAt?: number | null) => Effect.Effect<void, unknown, Storage>
}) => Effect.Effect<A, E, Reconciliation | Storage>) => {
  const watcher = makeMemoryConnection("watcher")
  const insert = (id: string, deletedAt: number | null = null) =>
    Storage.use((sql) =>
      sql.raw("INSERT INTO todos (id, text, completed, created_at, updated_at, deleted_at) VALUES (?, ?, 0, 1, 1, ?)", id, `text ${id}`, deletedAt)
    )
  return body({ watcher, insert }).pipe(Effect.provide(servicesLayer({ connections: [watcher] })))
}

/** Subscribes a new connection and returns its decoded sync answer. */
const sync = (since: number | null) =>
  Effect.gen(function*() {
    const r = yield* Reconciliation
    const connection = makeMemoryConnection("syncer")
    const result = yield* r.subscribe(connection, todos, since)
    const frames = decodedFrames(connection)
    const chunks = frames.filter((m): m is SyncRows => m._tag === "SyncRows")
    const last = frames[frames.length - 1]!
    assert.strictEqual(last._tag, "Synced")
    return {
      ...result,
      synced: last,
      ids: chunks.flatMap((c) => c.rows.map((row) => row[0])),
      rows: chunks.flatMap((c) => c.rows),
      deleted: chunks.flatMap((c) => c.deleted),
      connection
    }
  })

describe("Reconciliation", () => {
  it.effect("triggers capture inserts, updates and hard deletes made with plain SQL outside write", () =>
    withRoom(({ watcher, insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const sql = yield* Storage
        yield* r.subscribe(watcher, todos, null)
        watcher.sent.length = 0
        yield* insert("a")
        yield* r.flush
        yield* sql.raw("UPDATE todos SET text = 'changed' WHERE id = 'a'")
        yield* r.flush
        yield* sql.raw("DELETE FROM todos WHERE id = 'a'")
        yield* r.flush
        const changes = changesOf(watcher)
        assert.deepStrictEqual(changes.map((c) => [c.rows.map((row) => row.slice(0, 2)), c.deleted]), [
          [[["a", "text a"]], []],
          [[["a", "changed"]], []],
          [[], ["a"]]
        ])
        assert.deepStrictEqual(changes.map((c) => c.version), [1, 2, 3])
        assert.strictEqual(yield* r.version, 3)
      })))

  it.effect("an update that changes a row's id reports the old id as deleted", () =>
    withRoom(({ watcher, insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* insert("old")
        yield* r.subscribe(watcher, todos, null)
        watcher.sent.length = 0
        yield* r.write(Storage.use((sql) => sql.raw("UPDATE todos SET id = 'new' WHERE id = 'old'")))
        const [change] = changesOf(watcher)
        assert.deepStrictEqual(change!.deleted, ["old"])
        assert.deepStrictEqual(change!.rows.map((row) => row[0]), ["new"])
      })))

  it.effect("versions increase by one per row change, across writes and transactions", () =>
    withRoom(({ insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const seen: Array<number> = [yield* r.version]
        for (const id of ["a", "b"]) {
          const result = yield* r.write(insert(id))
          seen.push(result.version)
        }
        const multi = yield* r.write(Effect.all([insert("c"), insert("d"), insert("e")]))
        seen.push(multi.version)
        assert.deepStrictEqual(seen, [0, 1, 2, 5])
      })))

  it.effect("a failed write publishes nothing and leaves the version where it was", () =>
    withRoom(({ watcher, insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.subscribe(watcher, todos, null)
        watcher.sent.length = 0
        const exit = yield* Effect.exit(r.write(Effect.andThen(insert("x"), Effect.fail("no"))))
        assert.strictEqual(exit._tag, "Failure")
        assert.strictEqual(yield* r.version, 0)
        yield* r.flush
        assert.deepStrictEqual(watcher.sent, [])
        const after = yield* sync(null)
        assert.deepStrictEqual(after.ids, [])
      })))

  it.effect("subscribe without a cursor gets a reset with live rows only; with a cursor, the delta incl. tombstones", () =>
    withRoom(({ insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(Effect.all([insert("a"), insert("b"), insert("c")]))
        const cursor = yield* r.version
        yield* r.write(Storage.use((sql) => sql.raw("UPDATE todos SET text = 'b2' WHERE id = 'b'")))
        yield* r.write(Storage.use((sql) => sql.raw("UPDATE todos SET deleted_at = 5 WHERE id = 'c'")))
        yield* r.write(Storage.use((sql) => sql.raw("DELETE FROM todos WHERE id = 'a'")))
        yield* r.write(insert("d"))

        const full = yield* sync(null)
        assert.isTrue(full.reset)
        assert.deepStrictEqual(full.ids.sort(), ["b", "d"])
        assert.deepStrictEqual(full.deleted, [])
        assert.strictEqual(full.version, yield* r.version)

        const delta = yield* sync(cursor)
        assert.isFalse(delta.reset)
        assert.isFalse(delta.synced._tag === "Synced" && delta.synced.reset)
        assert.deepStrictEqual(delta.ids, ["b", "c", "d"]) // in version order
        assert.strictEqual(delta.rows.find((row) => row[0] === "c")![5], 5) // the tombstone travels
        assert.deepStrictEqual(delta.deleted, ["a"])

        const none = yield* sync(yield* r.version)
        assert.isFalse(none.reset)
        assert.deepStrictEqual([none.ids, none.deleted], [[], []])
      })))

  it.effect("a cursor newer than the current version gets a reset", () =>
    withRoom(({ insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(insert("a"))
        const future = yield* sync(50)
        assert.isTrue(future.reset)
        assert.deepStrictEqual(future.ids, ["a"])
        assert.strictEqual(future.version, 1)
      })))

  it.effect("GC removes old tombstones, moves the horizon, and an older cursor then gets a reset", () =>
    withRoom(({ watcher, insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const now = 100 * DAY
        yield* r.write(Effect.all([insert("live"), insert("old"), insert("young")]))
        const before = yield* r.version // 3
        yield* r.write(Storage.use((sql) => sql.raw("UPDATE todos SET deleted_at = ? WHERE id = 'old'", now - 8 * DAY)))
        const tombstone = yield* r.version // 4
        yield* r.write(Storage.use((sql) => sql.raw("UPDATE todos SET deleted_at = ? WHERE id = 'young'", now - 1 * DAY)))
        yield* r.subscribe(watcher, todos, null)
        watcher.sent.length = 0

        const result = yield* r.gc(now)
        assert.deepStrictEqual(result, { purged: 1, horizon: tombstone })
        assert.deepStrictEqual((yield* Storage.use((sql) => sql.raw("SELECT id FROM todos ORDER BY id"))).map((row) => row[0]), ["live", "young"])
        // the purge is not a change for connected clients: they dropped the row when it was soft deleted
        assert.deepStrictEqual(watcher.sent, [])

        const old = yield* sync(before)
        assert.isTrue(old.reset)
        assert.deepStrictEqual(old.ids.sort(), ["live"])
        const atHorizon = yield* sync(tombstone)
        assert.isFalse(atHorizon.reset)
        assert.deepStrictEqual(atHorizon.ids, ["young"])

        // a second pass with nothing to purge keeps the horizon
        assert.deepStrictEqual(yield* r.gc(now), { purged: 0, horizon: tombstone })
        // later writes continue above the horizon
        const next = yield* r.write(insert("next"))
        assert.isAbove(next.version, tombstone)
      })))

  it.effect("claim takes each seq once: new highest, then lower ones it has not seen, never one it has", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const claim = (client: string, seq: number) => Effect.map(r.write(r.claim(client, seq)), (w) => w.value)
        assert.strictEqual(yield* r.lastSeq("c1"), 0)
        assert.isTrue(yield* claim("c1", 3))
        assert.isTrue(yield* claim("c2", 1))
        assert.strictEqual(yield* r.lastSeq("c1"), 3)
        assert.isFalse(yield* claim("c1", 3))
        // 1 and 2 were never applied: each may be claimed once, below the highest
        assert.isTrue(yield* claim("c1", 1))
        assert.isFalse(yield* claim("c1", 1))
        assert.isTrue(yield* claim("c1", 10))
        assert.isTrue(yield* claim("c1", 2))
        assert.isFalse(yield* claim("c1", 2))
        assert.isFalse(yield* claim("c1", 3))
        assert.isTrue(yield* claim("c1", 9))
        assert.strictEqual(yield* r.lastSeq("c1"), 10)
        // past the window, lower seqs count as applied
        assert.isTrue(yield* claim("c1", 10 + APPLIED_WINDOW + 5))
        assert.isFalse(yield* claim("c1", 4))
        assert.strictEqual(yield* r.lastSeq("c2"), 1)
        // a claim rolled back with its action leaves the seq free
        const failed = yield* Effect.exit(r.write(Effect.andThen(r.claim("c3", 1), Effect.fail("refused"))))
        assert.isTrue(failed._tag === "Failure")
        assert.isTrue(yield* claim("c3", 1))
        // sequence bookkeeping is not a channel change
        assert.strictEqual(yield* r.version, 0)
      })))

  it.effect("install gives a clients table from before the applied-seq window its column, keeping the seqs", () =>
    Effect.gen(function*() {
      const r = yield* Reconciliation
      assert.strictEqual(yield* r.lastSeq("old"), 7)
      assert.isFalse(yield* Effect.map(r.write(r.claim("old", 7)), (w) => w.value))
      assert.isTrue(yield* Effect.map(r.write(r.claim("old", 8)), (w) => w.value))
    }).pipe(Effect.provide(servicesLayer({
      connections: [],
      setup: [
        TODO_TABLE,
        "CREATE TABLE _psync_clients (client_id TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL)",
        "INSERT INTO _psync_clients VALUES ('old', 7)"
      ]
    }))))

  it.effect("install again (a woken object) keeps versions and does not duplicate triggers", () =>
    withRoom(({ insert }) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(insert("a"))
        yield* r.install
        yield* r.install
        const triggers = yield* Storage.use((sql) => sql.raw("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"))
        assert.deepStrictEqual(triggers.map((row) => row[0]), ["_psync_todos_delete", "_psync_todos_insert", "_psync_todos_update"])
        assert.strictEqual(yield* r.version, 1)
        const next = yield* r.write(insert("b"))
        assert.strictEqual(next.version, 2)
      })))

  it.effect("changes committed but not published before a restart are published after the next install", () => {
    const dir = mkdtempSync(join(tmpdir(), "psync-recon-"))
    const path = join(dir, "db.sqlite")
    // a connection that stayed subscribed through the restart (a hibernated socket keeps its state)
    const survivor = makeMemoryConnection("survivor", { ...initialState, channels: ["todos"] })
    const before = Effect.gen(function*() {
      const r = yield* Reconciliation
      yield* r.write(Storage.use((sql) => sql.raw("INSERT INTO todos VALUES ('sent', 's', 0, 1, 1, NULL)")))
      // committed by code that never flushed, then the object went away
      yield* Storage.use((sql) => sql.raw("INSERT INTO todos VALUES ('unsent', 'u', 0, 1, 1, NULL)"))
    }).pipe(Effect.provide(servicesLayer({ connections: [], path })))
    const after = Effect.gen(function*() {
      const r = yield* Reconciliation
      yield* r.flush
      const changes = changesOf(survivor)
      assert.deepStrictEqual(changes.flatMap((c) => c.rows.map((row) => row[0])), ["unsent"])
      assert.deepStrictEqual(changes.map((c) => c.version), [2])
      // and only once
      yield* r.flush
      assert.strictEqual(changesOf(survivor).length, 1)
    }).pipe(Effect.provide(servicesLayer({ connections: [survivor], path })))
    return Effect.andThen(before, after).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })

  it.effect("rows that existed before install are part of a reset", () => {
    const connection = makeMemoryConnection("c", initialState)
    return Effect.gen(function*() {
      const result = yield* sync(null)
      assert.deepStrictEqual(result.ids, ["pre"])
      assert.strictEqual(result.version, 0)
    }).pipe(Effect.provide(servicesLayer({
      connections: [connection],
      setup: [
        TODO_TABLE,
        "INSERT INTO todos VALUES ('pre', 'before install', 0, 1, 1, NULL)"
      ]
    })))
  })
})
