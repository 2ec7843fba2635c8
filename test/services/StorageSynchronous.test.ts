/**
 * Storage with synchronous transactions (`syncOptions.synchronousHandlers`):
 * bodies commit or roll back as usual, and a body that awaits fails with a
 * StorageError and keeps nothing, instead of running twice or half outside
 * its transaction.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { Storage } from "../../src/services/Storage.ts"
import { layerNodeSqlite } from "../../src/testing/StorageSqlite.ts"

const setup = Effect.gen(function*() {
  const sql = yield* Storage
  yield* sql.raw("CREATE TABLE items (id TEXT PRIMARY KEY, n INTEGER)")
  return sql
})

describe("Storage with synchronous transactions", () => {
  it.effect("commits a body that never awaits, and rolls a failing one back", () =>
    Effect.gen(function*() {
      const sql = yield* setup
      yield* sql.transaction(sql.raw("INSERT INTO items VALUES ('a', 1)"))
      const failed = yield* Effect.exit(sql.transaction(Effect.andThen(sql.raw("INSERT INTO items VALUES ('b', 2)"), Effect.fail("no"))))
      assert.isTrue(Exit.isFailure(failed))
      assert.deepStrictEqual(yield* sql.raw("SELECT id FROM items ORDER BY id"), [["a"]])
    }).pipe(Effect.provide(layerNodeSqlite(":memory:", { synchronous: true }))))

  it.effect("a nested transaction joins the outer one", () =>
    Effect.gen(function*() {
      const sql = yield* setup
      const exit = yield* Effect.exit(sql.transaction(Effect.gen(function*() {
        yield* sql.transaction(sql.raw("INSERT INTO items VALUES ('inner', 1)"))
        return yield* Effect.fail("outer fails")
      })))
      assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(yield* sql.raw("SELECT id FROM items"), [])
    }).pipe(Effect.provide(layerNodeSqlite(":memory:", { synchronous: true }))))

  it.live("a body that awaits fails with a StorageError, keeps nothing and runs once", () =>
    Effect.gen(function*() {
      const sql = yield* setup
      let runs = 0
      const exit = yield* Effect.exit(sql.transaction(Effect.gen(function*() {
        runs++
        yield* sql.raw("INSERT INTO items VALUES ('before-await', 1)")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        yield* sql.raw("INSERT INTO items VALUES ('after-await', 2)")
      })))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
      assert.strictEqual(error?._tag === "Fail" ? (error.error as { _tag: string })._tag : undefined, "StorageError")
      // the interrupted body must not continue after its await
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
      assert.strictEqual(runs, 1)
      assert.deepStrictEqual(yield* sql.raw("SELECT id FROM items"), [])
      // and the storage still works
      yield* sql.transaction(sql.raw("INSERT INTO items VALUES ('later', 3)"))
      assert.deepStrictEqual(yield* sql.raw("SELECT id FROM items"), [["later"]])
    }).pipe(Effect.provide(layerNodeSqlite(":memory:", { synchronous: true }))))
})
