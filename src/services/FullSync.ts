/**
 * A full sync (a reset answer) that never holds the room: the channel's
 * table is read in chunks, one statement each (a rowid range, or an id range
 * for a table WITHOUT ROWID), each chunk under the write lock and sent at
 * once, and other work takes its turn between them (the pacing says how many
 * rows each chunk reads, and when a turn ends). Rows change while the
 * chunks are read, so the answer ends with a catch-up from the change log:
 * every row changed, added or deleted since the read began, at its current
 * value (a deleted one by its id). The client applies the whole answer at
 * `Synced` (rows in order, the later value of a row winning, then the
 * deletes), so what it holds then is the table at `Synced`'s version.
 *
 * A view narrows the read to its rule (a SQL condition over the table's
 * columns, the table aliased `t`): its catch-up sends the rows the rule
 * admits now and removes only ids the answer sent. If the principal's
 * access changes while the chunks go out, the answer stops reading, ends at
 * the version it started from, and the client is told to `Resync`: it
 * resubscribes with the ids it holds and gets the difference.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import { encodeServerFrame, type RowId, type WireRow } from "../protocol/Protocol.ts"
import type * as Capture from "./Capture.ts"
import { foldChanges, q, type TableInfo } from "./ChangeLog.ts"
import type { SyncConnection } from "./Connections.ts"
import { type StorageError, storageError, type SyncFailure } from "./Errors.ts"
import { type ChannelChanges, syncFrames } from "./Frames.ts"
import type { SqlValue, StorageShape } from "./Storage.ts"
import type { SyncOptions } from "./SyncConfig.ts"

/** The rows one connection may read: `where` is a SQL condition over the table's columns, bound to `params`. */
export interface RowFilter {
  readonly where: string
  readonly params: ReadonlyArray<SqlValue>
}

/** What a full sync has read so far: the bytes per row its last chunk was sent in, and what it read in this turn. */
export interface Progress {
  /** Undefined before the first chunk. */
  readonly bytesPerRow: number | undefined
  readonly rowsInTurn: number
  readonly bytesInTurn: number
}

/**
 * How a full sync shares the room: `around` wraps the whole answer (waiting
 * for a budget), `rows` is how many rows the next chunk reads in this turn
 * (asked before each; 0 gives the turn away first), `turn` runs between
 * turns.
 */
export interface Pacing {
  readonly around: <A, E, R>(answer: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly rows: (progress: Progress) => number
  readonly turn: Effect.Effect<void>
}

/** No pacing: the whole table in one chunk (tests, and callers outside the scheduler). */
export const unpaced: Pacing = { around: (answer) => answer, rows: () => Infinity, turn: Effect.void }


/** One chunk of the table. */
export interface Chunk {
  readonly rows: Array<WireRow>
  /** No rows after these. */
  readonly done: boolean
}

/** How a table's chunks are keyed: its rowid, its id (the primary key of a table WITHOUT ROWID), or none (read whole). */
const keyOf = (storage: StorageShape, info: TableInfo): "rowid" | "id" | undefined => {
  if (info.hasRowid) return "rowid"
  const pk = storage.rawUnsafe(`SELECT name FROM pragma_table_info(?) WHERE pk > 0`, info.channel.table)
  return pk.length === 1 && String(pk[0]![0]) === info.id ? "id" : undefined
}

/**
 * Reads a channel's live rows (`deleted_at` null), in key order, a chunk of
 * up to `rows` at each `next`. A table WITHOUT ROWID whose primary key is not
 * the id alone is read in one chunk.
 */
export const reader = (storage: StorageShape, info: TableInfo, filter?: RowFilter | undefined) => {
  const key = keyOf(storage, info)
  const columns = info.columns.map((c) => `t.${q(c)}`).join(", ")
  const keyColumn = key === "rowid" ? "t.rowid" : `t.${q(info.id)}`
  const live = `t.${q(info.deletedAt)} IS NULL${filter === undefined ? "" : ` AND (${filter.where})`}`
  const params = filter?.params ?? []
  const from = `FROM ${q(info.channel.table)} t WHERE ${live}`
  const first = key === undefined
    ? `SELECT ${columns} ${from}`
    : `SELECT ${keyColumn}, ${columns} ${from} ORDER BY ${keyColumn} LIMIT ?`
  const after = `SELECT ${keyColumn}, ${columns} ${from} AND ${keyColumn} > ? ORDER BY ${keyColumn} LIMIT ?`
  let last: SqlValue | undefined
  let started = false
  let done = false
  return {
    /** The next chunk of up to `rows` (any number when not finite; reads nothing once done). */
    next: (rows: number): Chunk => {
      if (done) return { rows: [], done }
      if (key === undefined) {
        done = true
        return { rows: storage.rawUnsafe(first, ...params), done }
      }
      const limit = Number.isFinite(rows) ? Math.max(1, Math.floor(rows)) : -1
      const result = started ? storage.rawUnsafe(after, ...params, last!, limit) : storage.rawUnsafe(first, ...params, limit)
      started = true
      done = limit < 0 || result.length < limit
      if (result.length > 0) last = result[result.length - 1]![0]!
      return { rows: result.map((r) => r.slice(1)), done }
    }
  }
}

/** What a full sync answer needs from Reconciliation. */
export interface AnswerContext {
  readonly storage: StorageShape
  readonly log: Capture.ChannelLog
  readonly connection: SyncConnection
  /** Runs its argument under the write lock. */
  readonly exclusive: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Publishes what was committed but not published yet (call it under the lock). */
  readonly flush: Effect.Effect<void, StorageError>
  /** The feed's published version and history now. */
  readonly feed: () => { readonly published: number; readonly history: string }
  /** Starts delivering the channel's live changes to the connection (under the lock). */
  readonly subscribe: Effect.Effect<void, SyncFailure>
  /**
   * Channels whose table may hold rows no record check has seen: their rows
   * are checked as they are read, and an unfiltered answer that finds them
   * all valid takes the channel out.
   */
  readonly unchecked: Set<string>
  readonly config: Pick<SyncOptions, "maxOutboundFrameBytes">
  /** The connection's read rule. */
  readonly filter?: RowFilter | undefined
  /** Without it, the table is read in one chunk. */
  readonly pacing?: Pacing | undefined
  /** Every change of the channel after a version, as a resume reads them (default: the log, unfiltered). */
  readonly changesAfter?: ((version: number) => ChannelChanges) | undefined
  /** A view's answer (its frames name `sub` when it has params). */
  readonly view?: ViewAnswer | undefined
}

/** What a view's full answer adds. */
export interface ViewAnswer {
  readonly sub: string
  /** The history its `Synced` names (the feed's and the rule's). */
  readonly history: (feed: string) => string
  /** Filled with the ids the chunks sent: the catch-up removes only these. */
  readonly sent: Set<RowId>
  /** Under the lock, before a chunk: whether the principal's access changed the rule since the answer began. */
  readonly stale: Effect.Effect<boolean>
  /** The answer stopped for a changed rule: the client is told to resync (under the lock, after `Synced`). */
  readonly resync: Effect.Effect<void>
}

/** Logs rows of a table that do not match its channel's record Schema (written outside a handler, or by a migration). */
export const reportMismatch = (table: string, problem: string): Effect.Effect<void> =>
  Effect.logError(`effect-partysync: rows in ${table} do not match the channel's record: ${problem}`)

/**
 * Sends a reset answer in chunks, then the catch-up and `Synced`; the
 * connection receives live changes from `Synced`'s version on. Returns that
 * version.
 */
export const answer = (ctx: AnswerContext): Effect.Effect<number, StorageError | SyncFailure> => {
  const { log, connection, view } = ctx
  const channel = log.info.channel
  const pacing = ctx.pacing ?? unpaced
  const check = ctx.unchecked.has(channel.name) ? log.check : undefined
  const changesAfter = ctx.changesAfter ??
    ((after: number) => ({ ...foldChanges(channel.name, ctx.storage.rawUnsafe(log.query, after)), version: ctx.feed().published }))
  const sub = view === undefined || view.sub === channel.name ? undefined : view.sub
  /** Sends changes in frames; returns their bytes. */
  const send = (changes: ChannelChanges) => {
    let bytes = 0
    for (const frame of syncFrames(changes, true, ctx.config.maxOutboundFrameBytes, sub)) {
      connection.send(frame)
      bytes += frame.length
    }
    return bytes
  }
  const synced = (version: number, history: string) =>
    encodeServerFrame({
      _tag: "Synced",
      channel: channel.name,
      ...(sub === undefined ? {} : { sub }),
      version,
      reset: true,
      history,
      ...(view === undefined ? {} : { view: true as const })
    })
  const onlyRows = (rows: ReadonlyArray<WireRow>): ChannelChanges =>
    ({ channel: channel.name, rows, rowVersions: rows.map(() => 0), deleted: [], deletedVersions: [], version: 0 })
  return pacing.around(Effect.gen(function*() {
    let problem: string | undefined
    let sent = false
    let progress: Progress = { bytesPerRow: undefined, rowsInTurn: 0, bytesInTurn: 0 }
    const read = yield* ctx.exclusive(Effect.try({
      try: () => ({ start: ctx.feed().published, rows: reader(ctx.storage, log.info, ctx.filter) }),
      catch: storageError
    }))
    for (;;) {
      let rows = pacing.rows(progress)
      if (rows <= 0) {
        yield* pacing.turn
        progress = { ...progress, rowsInTurn: 0, bytesInTurn: 0 }
        rows = Math.max(1, pacing.rows(progress))
      }
      const chunk = yield* ctx.exclusive(Effect.gen(function*() {
        // a view whose rule changed meanwhile reads nothing more under the old one
        if (view !== undefined && (yield* view.stale)) return undefined
        return yield* Effect.try({ try: () => read.rows.next(rows), catch: storageError })
      }))
      if (chunk === undefined) {
        // ends where it began: the client's resubscribe from there gets every row changed since, under the new rule
        return yield* ctx.exclusive(Effect.gen(function*() {
          if (!sent) send(onlyRows([]))
          connection.send(synced(read.start, `${ctx.feed().history}.stale`))
          yield* view!.resync
          return read.start
        }))
      }
      problem ??= check?.(chunk.rows)
      if (chunk.rows.length > 0) {
        if (view !== undefined) for (const row of chunk.rows) view.sent.add(row[0] as RowId)
        const bytes = send(onlyRows(chunk.rows))
        progress = {
          bytesPerRow: bytes / chunk.rows.length,
          rowsInTurn: progress.rowsInTurn + chunk.rows.length,
          bytesInTurn: progress.bytesInTurn + bytes
        }
        sent = true
      }
      if (chunk.done) break
    }
    return yield* ctx.exclusive(Effect.gen(function*() {
      yield* ctx.flush
      const catchUp = yield* Effect.try({ try: () => changesAfter(read.start), catch: storageError })
      if (catchUp.rows.length > 0) problem ??= check?.(catchUp.rows)
      if (problem !== undefined) {
        yield* reportMismatch(channel.table, problem)
      } else if (check !== undefined && ctx.filter === undefined) ctx.unchecked.delete(channel.name)
      yield* ctx.subscribe
      const { published, history } = ctx.feed()
      // the catch-up's rows and deletes, or one empty chunk so that every answer has a reset chunk
      if (catchUp.rows.length > 0 || catchUp.deleted.length > 0 || !sent) send(catchUp)
      connection.send(synced(published, view === undefined ? history : view.history(history)))
      return published
    }))
  }))
}
