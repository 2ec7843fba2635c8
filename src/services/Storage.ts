/**
 * Storage: SQL over a Durable Object's SQLite, with transactions.
 *
 * Statements read their cursor to the end before returning: an unread write
 * cursor (`INSERT ... RETURNING`) makes the Durable Object's commit fail.
 * `transaction` runs an Effect atomically: when it fails, nothing it wrote
 * stays. A transaction nested in another (same fiber or its children) joins
 * the outer one; transactions of unrelated fibers run one after the other,
 * so an async handler's open transaction never swallows another's writes.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import { StorageError } from "./Errors.ts"
import { SyncConfig } from "./SyncConfig.ts"

/** A value SQLite can bind or return. */
export type SqlValue = string | number | null | ArrayBuffer | Uint8Array

/** A row as an array, in column order. */
export type SqlRow = ReadonlyArray<SqlValue>

/** The slice of a Durable Object's `ctx.storage` this library needs. */
export interface DurableObjectSql {
  readonly sql: {
    exec(query: string, ...bindings: Array<unknown>): {
      raw(): IterableIterator<Array<SqlValue>> & { toArray?(): Array<Array<SqlValue>> }
      toArray(): Array<Record<string, SqlValue>>
      /** Rows read and written so far by this statement (billed on Cloudflare); final once the cursor is consumed. */
      readonly rowsRead?: number
      readonly rowsWritten?: number
    }
  }
  transaction<T>(closure: () => Promise<T>): Promise<T>
  transactionSync<T>(closure: () => T): T
}

/** The Durable Object storage the `Storage.layer` runs on. */
export class DurableObjectStorage extends Context.Service<DurableObjectStorage, DurableObjectSql>()(
  "effect-partysync/DurableObjectStorage"
) {}

/** The Storage interface. */
export interface StorageShape {
  /** Runs one statement and returns its rows as arrays. */
  readonly raw: (sql: string, ...params: ReadonlyArray<SqlValue>) => Effect.Effect<Array<Array<SqlValue>>, StorageError>
  /** Runs one statement and returns its rows as objects keyed by column name. */
  readonly exec: (
    sql: string,
    ...params: ReadonlyArray<SqlValue>
  ) => Effect.Effect<Array<Record<string, SqlValue>>, StorageError>
  /** Synchronous `raw`, for library code on hot paths that already runs inside Storage. */
  readonly rawUnsafe: (sql: string, ...params: ReadonlyArray<SqlValue>) => Array<Array<SqlValue>>
  /** Runs `self` in a transaction: its writes commit together or not at all. Inside another, it joins that one. */
  readonly transaction: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StorageError, R>
  /**
   * Runs `self` in a transaction of its own, nested in the open one if any (a
   * savepoint): when it fails, only its own writes are rolled back.
   */
  readonly savepoint: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StorageError, R>
  /** Rows read and written by every statement so far, as the engine counts them (zeros where it does not). */
  readonly usage: () => StorageUsage
}

/** Rows read and written, as Cloudflare bills them. */
export interface StorageUsage {
  readonly rowsRead: number
  readonly rowsWritten: number
}

let instances = 0

/** Builds a Storage from a synchronous statement runner and a transaction primitive. */
export const make = (options: {
  readonly raw: (sql: string, params: ReadonlyArray<SqlValue>) => Array<Array<SqlValue>>
  readonly objects: (sql: string, params: ReadonlyArray<SqlValue>) => Array<Record<string, SqlValue>>
  /** Runs `body` atomically; rolls back when it throws. */
  readonly atomically: <T>(body: () => Promise<T>) => Promise<T>
  /**
   * When given, transactions run synchronously with this (`transactionSync`):
   * faster, but a body that awaits fails instead of committing.
   */
  readonly atomicallySync?: (<T>(body: () => T) => T) | undefined
  /** The engine's running counts of rows read and written, when it keeps them. */
  readonly usage?: (() => StorageUsage) | undefined
}): StorageShape => {
  const failed = (sql: string) => (cause: unknown) =>
    new StorageError({ message: `${cause instanceof Error ? cause.message : String(cause)} (in: ${sql.slice(0, 120)})`, cause })
  const rollback = Symbol("rollback")
  // Whether the running fiber is inside one of this Storage's transactions. A
  // fiber-scoped flag, not a shared counter: a counter made an unrelated fiber's
  // transaction join an open one and vanish with its rollback.
  const inTransaction = Context.Reference<boolean>(`effect-partysync/Storage/inTransaction/${++instances}`, {
    defaultValue: () => false
  })
  const oneAtATime = Semaphore.makeUnsafe(1)
  const run = <A, E, R>(self: Effect.Effect<A, E, R>, context: Context.Context<R>) =>
    Effect.flatten(Effect.promise(async (): Promise<Exit.Exit<A, E | StorageError>> => {
      let exit: Exit.Exit<A, E> | undefined
      try {
        await options.atomically(async () => {
          exit = await Effect.runPromiseExitWith(context)(self)
          if (Exit.isFailure(exit)) throw rollback
        })
      } catch (cause) {
        if (cause !== rollback || exit === undefined) {
          return Exit.fail(failed("COMMIT")(cause))
        }
      }
      return exit!
    }))
  // With `atomicallySync`, bodies run synchronously inside `transactionSync`, which
  // costs a fraction of the async `transaction` and its promise hops. A body that
  // awaits is interrupted at that point, rolled back and fails: it is never run twice.
  const runSync = <A, E, R>(self: Effect.Effect<A, E, R>, context: Context.Context<R>): Exit.Exit<A, E | StorageError> => {
    let exit: Exit.Exit<A, E> | undefined
    let suspended = false
    try {
      options.atomicallySync!(() => {
        exit = Effect.runSyncExitWith(context)(self)
        if (Exit.isFailure(exit)) {
          for (const reason of exit.cause.reasons) {
            if (reason._tag === "Die" && Cause.isAsyncFiberError(reason.defect)) {
              suspended = true
              reason.defect.fiber.interruptUnsafe()
            }
          }
          throw rollback
        }
      })
    } catch (cause) {
      if (cause !== rollback || exit === undefined) return Exit.fail(failed("COMMIT")(cause))
    }
    if (suspended) {
      return Exit.fail(new StorageError({
        message: "a transaction body awaited, but this Storage runs transactions synchronously (syncOptions.synchronousHandlers); nothing it wrote was kept",
        cause: null
      }))
    }
    return exit!
  }
  const noUsage: StorageUsage = { rowsRead: 0, rowsWritten: 0 }
  return {
    usage: options.usage ?? (() => noUsage),
    rawUnsafe: (sql, ...params) => options.raw(sql, params),
    raw: (sql, ...params) => Effect.try({ try: () => options.raw(sql, params), catch: failed(sql) }),
    exec: (sql, ...params) => Effect.try({ try: () => options.objects(sql, params), catch: failed(sql) }),
    transaction: <A, E, R>(self: Effect.Effect<A, E, R>) =>
      // one context read and one context for the body: this runs for every action
      Effect.flatMap(Effect.context<R>(), (context): Effect.Effect<A, E | StorageError, R> => {
        if (Context.get(context, inTransaction)) return self
        const inside = Context.add(context, inTransaction, true)
        // a synchronous body runs to its end in one go: no other fiber can start a transaction meanwhile
        if (options.atomicallySync !== undefined) return runSync(self, inside)
        return oneAtATime.withPermits(1)(run(self, inside))
      }),
    savepoint: <A, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.flatMap(Effect.context<R>(), (context): Effect.Effect<A, E | StorageError, R> => {
        const nested = Context.get(context, inTransaction)
        const inside = nested ? context : Context.add(context, inTransaction, true)
        if (options.atomicallySync !== undefined) return runSync(self, inside)
        // the outer transaction holds the turn: a nested one runs inside it
        return nested ? run(self, inside) : oneAtATime.withPermits(1)(run(self, inside))
      })
  }
}

/** The Storage service. */
export class Storage extends Context.Service<Storage, StorageShape>()("effect-partysync/Storage") {
  /** Storage over the Durable Object's `ctx.storage.sql`. */
  static readonly layer = Layer.effect(
    Storage,
    Effect.gen(function*() {
      const storage = yield* DurableObjectStorage
      const { synchronousHandlers } = yield* SyncConfig
      let rowsRead = 0
      let rowsWritten = 0
      const count = (cursor: { readonly rowsRead?: number; readonly rowsWritten?: number }) => {
        rowsRead += cursor.rowsRead ?? 0
        rowsWritten += cursor.rowsWritten ?? 0
      }
      return make({
        raw: (sql, params) => {
          const cursor = storage.sql.exec(sql, ...params)
          // workerd's raw iterator reads every row in one call; iterating crosses into the runtime per row
          const iterator = cursor.raw()
          const rows = iterator.toArray === undefined ? Array.from(iterator) : iterator.toArray()
          count(cursor)
          return rows
        },
        objects: (sql, params) => {
          const cursor = storage.sql.exec(sql, ...params)
          const rows = cursor.toArray()
          count(cursor)
          return rows
        },
        usage: () => ({ rowsRead, rowsWritten }),
        atomically: (body) => storage.transaction(body),
        atomicallySync: synchronousHandlers ? (body) => storage.transactionSync(body) : undefined
      })
    })
  )
}
