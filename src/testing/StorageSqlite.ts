/**
 * Storage over Node's `node:sqlite`, for unit tests in Node. It adapts
 * `DatabaseSync` to the Durable Object's behaviour that Storage relies on:
 * rows as arrays, numbers for integers, explicit transactions.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DatabaseSync, type SQLInputValue } from "node:sqlite"
import { make, Storage, type SqlValue } from "../services/Storage.ts"

const bind = (params: ReadonlyArray<SqlValue>): Array<SQLInputValue> =>
  params.map((p) => (p instanceof ArrayBuffer ? new Uint8Array(p) : p))

/** A Storage over a fresh in-memory `node:sqlite` database (or the file at `path`). */
export const layerNodeSqlite = (path = ":memory:", options: { readonly synchronous?: boolean } = {}) =>
  Layer.effect(
    Storage,
    Effect.acquireRelease(Effect.sync(() => new DatabaseSync(path)), (db) => Effect.sync(() => db.close())).pipe(
      Effect.map((db) => {
        // Durable Object SQL caches prepared statements by text; so does this Layer
        const statements = new Map<string, ReturnType<DatabaseSync["prepare"]>>()
        const prepare = (sql: string) => {
          let stmt = statements.get(sql)
          if (stmt === undefined) {
            stmt = db.prepare(sql)
            if (statements.size > 500) statements.clear()
            statements.set(sql, stmt)
          }
          return stmt
        }
        const all = (sql: string, params: ReadonlyArray<SqlValue>, arrays: boolean) => {
          const stmt = prepare(sql)
          stmt.setReturnArrays(arrays)
          if (stmt.columns().length === 0) {
            stmt.run(...bind(params))
            return []
          }
          return stmt.all(...bind(params))
        }
        // savepoints rather than BEGIN, so that transactions nest like the Durable Object's
        let savepoints = 0
        const savepoint = () => {
          const name = `sp${savepoints++}`
          db.exec(`SAVEPOINT ${name}`)
          return {
            release: () => db.exec(`RELEASE ${name}`),
            rollback: () => {
              db.exec(`ROLLBACK TO ${name}`)
              db.exec(`RELEASE ${name}`)
            }
          }
        }
        return make({
          raw: (sql, params) => all(sql, params, true) as unknown as Array<Array<SqlValue>>,
          objects: (sql, params) => all(sql, params, false) as Array<Record<string, SqlValue>>,
          atomicallySync: options.synchronous !== true ? undefined : (body) => {
            const sp = savepoint()
            try {
              const result = body()
              sp.release()
              return result
            } catch (e) {
              sp.rollback()
              throw e
            }
          },
          atomically: async (body) => {
            const sp = savepoint()
            try {
              const result = await body()
              sp.release()
              return result
            } catch (e) {
              sp.rollback()
              throw e
            }
          }
        })
      })
    )
  )
