/**
 * The Storage contract: cases every Storage implementation must pass. This
 * module is neutral (Effect and src/services only, no test runner), so the
 * same cases run in Node against `layerNodeSqlite` (test/services/Storage.test.ts)
 * and inside workerd against `Storage.layer` over a real Durable Object's
 * `ctx.storage` (test/server/contract-worker.ts).
 *
 * A case fails by failing its Effect (or dying) with a message.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { StorageError } from "../../src/services/Errors.ts"
import { Storage } from "../../src/services/Storage.ts"

/** One contract case. */
export interface ContractCase {
  readonly name: string
  readonly run: Effect.Effect<void, unknown, Storage>
}

class Boom {
  readonly _tag = "Boom"
}

const fail = (message: string) => Effect.die(new Error(message))
const same = (actual: unknown, expected: unknown, what: string) => {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  return a === e ? Effect.void : fail(`${what}: expected ${e}, got ${a}`)
}

const table = Effect.gen(function*() {
  const sql = yield* Storage
  yield* sql.raw("CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL, note TEXT)")
  return sql
})

const ids = Effect.gen(function*() {
  const sql = yield* Storage
  return (yield* sql.raw("SELECT id FROM items ORDER BY id")).map((r) => r[0])
})

/** Every contract case, in a stable order. */
export const cases: ReadonlyArray<ContractCase> = [
  {
    name: "raw returns rows as arrays in column order",
    run: Effect.gen(function*() {
      const sql = yield* table
      yield* sql.raw("INSERT INTO items (id, n, note) VALUES (?, ?, ?), (?, ?, ?)", "a", 1, "x", "b", 2, null)
      yield* same(yield* sql.raw("SELECT id, n, note FROM items ORDER BY id"), [["a", 1, "x"], ["b", 2, null]], "raw rows")
      yield* same(yield* sql.raw("SELECT note, id FROM items WHERE id = ?", "a"), [["x", "a"]], "column order")
    })
  },
  {
    name: "exec returns rows as objects keyed by column name",
    run: Effect.gen(function*() {
      const sql = yield* table
      yield* sql.raw("INSERT INTO items (id, n) VALUES (?, ?)", "a", 7)
      yield* same(yield* sql.exec("SELECT id, n, note FROM items"), [{ id: "a", n: 7, note: null }], "exec rows")
    })
  },
  {
    name: "statements without result rows return an empty array",
    run: Effect.gen(function*() {
      const sql = yield* table
      yield* same(yield* sql.raw("INSERT INTO items (id, n) VALUES ('a', 1)"), [], "raw insert")
      yield* same(yield* sql.exec("UPDATE items SET n = 2"), [], "exec update")
      yield* same(yield* sql.raw("SELECT * FROM items WHERE id = 'none'"), [], "empty select")
    })
  },
  {
    name: "a write with RETURNING returns every returned row",
    run: Effect.gen(function*() {
      const sql = yield* table
      const inserted = yield* sql.raw(
        "INSERT INTO items (id, n) VALUES ('a', 1), ('b', 2), ('c', 3) RETURNING id, n"
      )
      yield* same(inserted, [["a", 1], ["b", 2], ["c", 3]], "inserted rows")
      // inside a transaction too: an unread write cursor would break the commit on a Durable Object
      const updated = yield* sql.transaction(sql.raw("UPDATE items SET n = n * 10 RETURNING id, n"))
      yield* same(updated.map((r) => r[1]).sort(), [10, 20, 30], "updated rows")
      yield* same(yield* sql.raw("SELECT n FROM items ORDER BY id"), [[10], [20], [30]], "committed values")
    })
  },
  {
    name: "values round-trip: integers and reals as numbers, text, null",
    run: Effect.gen(function*() {
      const sql = yield* Storage
      yield* sql.raw("CREATE TABLE v (i INTEGER, r REAL, t TEXT, z)")
      yield* sql.raw("INSERT INTO v VALUES (?, ?, ?, ?)", 42, 1.5, "héllo ✓", null)
      yield* same(yield* sql.raw("SELECT i, r, t, z, typeof(i) FROM v"), [[42, 1.5, "héllo ✓", null, "integer"]], "values")
    })
  },
  {
    name: "bound values are never interpreted as SQL",
    run: Effect.gen(function*() {
      const sql = yield* table
      const hostile = "x'); DROP TABLE items; --"
      yield* sql.raw("INSERT INTO items (id, n) VALUES (?, ?)", hostile, 1)
      yield* same(yield* sql.raw("SELECT id FROM items"), [[hostile]], "stored as text")
    })
  },
  {
    name: "a transaction commits all its writes and returns its value",
    run: Effect.gen(function*() {
      const sql = yield* table
      const value = yield* sql.transaction(Effect.gen(function*() {
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('a', 1)")
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('b', 2)")
        return "done"
      }))
      yield* same(value, "done", "transaction value")
      yield* same(yield* ids, ["a", "b"], "committed rows")
    })
  },
  {
    name: "a failing transaction leaves nothing it wrote and fails with the same error",
    run: Effect.gen(function*() {
      const sql = yield* table
      yield* sql.raw("INSERT INTO items (id, n) VALUES ('before', 0)")
      const exit = yield* Effect.exit(sql.transaction(Effect.gen(function*() {
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('a', 1)")
        yield* sql.raw("UPDATE items SET n = 99 WHERE id = 'before'")
        return yield* Effect.fail(new Boom())
      })))
      if (Exit.isSuccess(exit)) return yield* fail("transaction should have failed")
      const error = exit.cause.reasons.find((r) => r._tag === "Fail")
      if (error === undefined || !(error.error instanceof Boom)) return yield* fail(`expected Boom, got ${String(exit.cause)}`)
      yield* same(yield* ids, ["before"], "rows after rollback")
      yield* same(yield* sql.raw("SELECT n FROM items"), [[0]], "update rolled back")
      // the storage is usable afterwards
      yield* sql.transaction(sql.raw("INSERT INTO items (id, n) VALUES ('after', 1)"))
      yield* same(yield* ids, ["after", "before"], "rows after a later commit")
    })
  },
  {
    name: "a transaction that dies rolls back too",
    run: Effect.gen(function*() {
      const sql = yield* table
      const exit = yield* Effect.exit(sql.transaction(Effect.gen(function*() {
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('a', 1)")
        return yield* Effect.die(new Error("defect"))
      })))
      if (Exit.isSuccess(exit)) return yield* fail("transaction should have died")
      yield* same(yield* ids, [], "rows after a defect")
    })
  },
  {
    name: "a StorageError inside a transaction rolls back the writes before it",
    run: Effect.gen(function*() {
      const sql = yield* table
      const exit = yield* Effect.exit(sql.transaction(Effect.gen(function*() {
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('a', 1)")
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('a', 2)") // primary key conflict
      })))
      if (Exit.isSuccess(exit)) return yield* fail("transaction should have failed")
      const error = exit.cause.reasons.find((r) => r._tag === "Fail")
      if (error === undefined || !(error.error instanceof StorageError)) return yield* fail(`expected StorageError, got ${String(exit.cause)}`)
      yield* same(yield* ids, [], "rows after rollback")
    })
  },
  {
    name: "a nested transaction joins the outer one: the outer failure rolls back the inner writes",
    run: Effect.gen(function*() {
      const sql = yield* table
      const exit = yield* Effect.exit(sql.transaction(Effect.gen(function*() {
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('outer', 1)")
        yield* sql.transaction(sql.raw("INSERT INTO items (id, n) VALUES ('inner', 2)"))
        return yield* Effect.fail(new Boom())
      })))
      if (Exit.isSuccess(exit)) return yield* fail("transaction should have failed")
      yield* same(yield* ids, [], "rows after the outer failure")
    })
  },
  {
    name: "a nested transaction commits with the outer one",
    run: Effect.gen(function*() {
      const sql = yield* table
      yield* sql.transaction(Effect.gen(function*() {
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('outer', 1)")
        yield* sql.transaction(sql.raw("INSERT INTO items (id, n) VALUES ('inner', 2)"))
      }))
      yield* same(yield* ids, ["inner", "outer"], "rows after commit")
    })
  },
  {
    name: "a transaction started by another fiber does not join an open one: the first one's failure keeps the second's writes",
    run: Effect.gen(function*() {
      const sql = yield* table
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      // A opens a transaction, writes, and waits (as an async handler would) before failing
      const a = yield* Effect.forkChild(sql.transaction(Effect.gen(function*() {
        yield* sql.raw("INSERT INTO items (id, n) VALUES ('a', 1)")
        yield* Deferred.succeed(started, undefined)
        yield* Deferred.await(release)
        return yield* Effect.fail(new Boom())
      })), { startImmediately: true })
      yield* Deferred.await(started)
      // B, another fiber, runs its own transaction meanwhile
      const b = yield* Effect.forkChild(sql.transaction(sql.raw("INSERT INTO items (id, n) VALUES ('b', 2)")), { startImmediately: true })
      yield* Effect.yieldNow
      yield* Deferred.succeed(release, undefined)
      const exitA = yield* Fiber.await(a)
      const exitB = yield* Fiber.await(b)
      if (Exit.isSuccess(exitA)) return yield* fail("A should have failed")
      if (Exit.isFailure(exitB)) return yield* fail(`B should have committed: ${String(exitB.cause)}`)
      yield* same(yield* ids, ["b"], "rows after A's rollback and B's commit")
    })
  },
  {
    name: "bad SQL fails with a StorageError naming the statement",
    run: Effect.gen(function*() {
      const sql = yield* table
      const attempts: Array<Effect.Effect<unknown, StorageError>> = [
        sql.raw("SELEKT * FROM items"),
        sql.exec("SELECT nope FROM items"),
        sql.raw("SELECT * FROM missing_table")
      ]
      for (const run of attempts) {
        const exit = yield* Effect.exit(run)
        if (Exit.isSuccess(exit)) return yield* fail("bad SQL should fail")
        const error = exit.cause.reasons.find((r) => r._tag === "Fail")
        if (error === undefined || !(error.error instanceof StorageError)) return yield* fail(`expected StorageError, got ${String(exit.cause)}`)
        if (!error.error.message.includes("items") && !error.error.message.includes("missing_table")) {
          return yield* fail(`message should name the statement: ${error.error.message}`)
        }
      }
      // the storage is still usable
      yield* sql.raw("INSERT INTO items (id, n) VALUES ('ok', 1)")
      yield* same(yield* ids, ["ok"], "rows after bad SQL")
    })
  }
]
