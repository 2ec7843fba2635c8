/**
 * effect/sql's `SqlClient` over Storage, so that `onAction` and migrations
 * write `sql\`...\`` as Effect users expect, against the Durable Object's
 * SQLite (or node:sqlite in tests).
 *
 * Durable Object SQL refuses BEGIN, COMMIT and SAVEPOINT, so transactions are
 * not SQL here: `withTransaction` is Storage's transaction (the object's own,
 * synchronous when `synchronousHandlers` is on). Inside an action, or inside
 * another `withTransaction`, it joins the open transaction: there are no
 * savepoints, so a nested failure that is caught does not undo the nested
 * writes. Every statement reads its cursor to the end (an unread write cursor
 * breaks the object's commit).
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Reactivity } from "effect/reactivity"
import * as Stream from "effect/Stream"
import { SqlClient, type SqlConnection, SqlError, Statement } from "effect/sql"
import { StorageError } from "./Errors.ts"
import { type SqlValue, Storage } from "./Storage.ts"

const toSqlError = (operation: string) => (error: StorageError) =>
  new SqlError.SqlError({
    reason: SqlError.classifySqliteError(error.cause ?? error, { message: error.message, operation })
  })

// SQLite binds these; booleans and dates are turned into what a Durable Object stores for them
const bind = (params: ReadonlyArray<unknown>): Array<SqlValue> =>
  params.map((p) =>
    p === undefined ? null : typeof p === "boolean" ? (p ? 1 : 0) : p instanceof Date ? p.getTime() : (p as SqlValue)
  )

/** Builds a SqlClient over the Storage in context. */
export const make = Effect.gen(function*() {
  const storage = yield* Storage
  const objects = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.mapError(storage.exec(sql, ...bind(params)), toSqlError("execute"))
  const arrays = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.mapError(storage.raw(sql, ...bind(params)), toSqlError("executeValues"))
  const rows: SqlConnection.Connection["execute"] = (sql, params, transformRows) =>
    transformRows === undefined ? objects(sql, params) : Effect.map(objects(sql, params), transformRows)
  const connection: SqlConnection.Connection = {
    execute: rows,
    executeUnprepared: rows,
    executeValues: arrays,
    executeValuesUnprepared: arrays,
    executeRaw: objects,
    // the whole result is read at once: a cursor must not stay open across other statements
    executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(rows(sql, params, transformRows))
  }
  const client = yield* SqlClient.make({
    acquirer: Effect.succeed(connection),
    borrower: (f) => f(connection),
    compiler: Statement.makeCompilerSqlite(),
    driver: "sqlite-durable-object",
    spanAttributes: [["db.system.name", "sqlite"]]
  })
  const withTransaction = <R, E, A>(self: Effect.Effect<A, E, R>) =>
    storage.transaction(self).pipe(Effect.catchIf(
      (e): e is StorageError => e instanceof StorageError,
      (e) => Effect.fail(toSqlError("transaction")(e))
    )) as Effect.Effect<A, E | SqlError.SqlError, R>
  return Object.assign(client, { withTransaction }) as SqlClient.SqlClient
})

/** `SqlClient` over the Storage in context. */
export const layer: Layer.Layer<SqlClient.SqlClient, never, Storage> = Layer.effect(SqlClient.SqlClient, make).pipe(
  Layer.provide(Reactivity.layer)
)
