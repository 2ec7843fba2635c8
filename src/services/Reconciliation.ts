/**
 * Reconciliation: change capture, versions, histories and the client ledger.
 *
 * Triggers on every channel table append each committed change to the change
 * log (`ChangeLog.ts`) in the writer's own transaction, so a write from an
 * alarm, a method or raw SQL reaches clients too. Changes are published only
 * at points where no transaction can be open: after the library's own
 * writes commit, and when the server flushes after an event (a request, an
 * alarm, a WebSocket message or close) or on `publishChanges()`. The
 * published mark is stored in the same transaction as the reads that justify
 * it, so it never gets ahead of what is durable: by every flush, and by
 * actions once per `MARK_EVERY` versions, so after a restart up to that many
 * versions are published again (and `version` reads the stored mark until the
 * first flush or action).
 *
 * Writes, publishing and sync answers run one at a time under one lock:
 * clients see changes in version order, a sync answer never sees an open
 * transaction, and an action's reply is sent before any later change.
 *
 * Each object's history has an identity. Cursors carry it; a cursor from
 * another history (the storage was wiped, or capture had to be rebuilt),
 * older than the horizon, or newer than the object, gets a reset.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import type * as Channel from "../protocol/Channel.ts"
import type { ErrorReason, WireRow } from "../protocol/Protocol.ts"
import { type HandlerRows, toRows } from "./ActionHandler.ts"
import { Broadcast } from "./Broadcast.ts"
import * as ChangeLog from "./ChangeLog.ts"
import * as Ledger from "./ClientLedger.ts"
import type { SyncConnection } from "./Connections.ts"
import { StorageError, SyncFailure } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import { type SqlValue, Storage, type StorageShape, type StorageUsage } from "./Storage.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"

/** What a GC pass did. */
export interface GcResult {
  /** Soft-deleted rows removed. */
  readonly purged: number
  /** Cursors at or below this version get a reset. */
  readonly horizon: number
  /** Clients forgotten after being idle past the retention. */
  readonly clientsPruned: number
}

/** What install did, and what it cost. */
export interface InstallReport {
  readonly history: string
  /** A new history started (first start, wiped storage, or capture rebuilt): every client resets. */
  readonly newHistory: boolean
  /** The new history replaced one this storage had (capture rebuilt, or the first release's bookkeeping). */
  readonly replaced: boolean
  readonly usage: StorageUsage
}

/** An action's identity in the client ledger. */
export interface ActionKey {
  readonly clientId: string
  readonly clientKey: string
  readonly seq: number
  /** When it was first sent (client clock, ms), on a re-send. */
  readonly sentAt?: number | undefined
}

/** Whether an action may run now. */
export type Claim =
  | { readonly _tag: "New" }
  | { readonly _tag: "Decided"; readonly decision: Ledger.Decision }
  | { readonly _tag: "Mismatch" }
  | { readonly _tag: "Expired" }

/** What a committed write produced. */
export interface WriteResult<A> {
  readonly value: A
  /** The feed's version after it. */
  readonly version: number
  /** The `Change` frames withheld from the sender (they belong in its reply). */
  readonly withheld: ReadonlyArray<string>
}

const NEW: Claim = { _tag: "New" }

/** How far an action's commit lets the stored published mark lag behind the published version. */
export const MARK_EVERY = 64

const storageError = (cause: unknown) =>
  cause instanceof StorageError ? cause : new StorageError({ message: cause instanceof Error ? cause.message : String(cause), cause })

/** A random history id: 16 hex characters. */
const newHistoryId = () => {
  const bytes = crypto.getRandomValues(new Uint8Array(8))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
}

/** The Reconciliation interface. */
export interface ReconciliationShape {
  /** Creates the bookkeeping tables and the triggers on every channel table; runs on every start. */
  readonly install: Effect.Effect<InstallReport, StorageError>
  /** The identity of this object's history (after install). */
  readonly history: () => string
  /** The feed's current (published) version. */
  readonly version: Effect.Effect<number, StorageError>
  /** Runs `self` holding the write lock (not re-entrant: never nest it). */
  readonly exclusive: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Runs `self` in a transaction, checks every captured row against its
   * channel's record Schema (a row that does not decode fails the write with
   * `InvalidRecord` and rolls it back), then publishes the changes, withholding
   * the sender's. Call it inside `exclusive`.
   */
  readonly commit: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    sender?: SyncConnection
  ) => Effect.Effect<WriteResult<A>, E | StorageError | SyncFailure, R>
  /** `commit` inside `exclusive`. */
  readonly write: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    sender?: SyncConnection
  ) => Effect.Effect<WriteResult<A>, E | StorageError | SyncFailure, R>
  /** Publishes changes committed outside `write` (alarms, requests, raw SQL). */
  readonly flush: Effect.Effect<void, StorageError>
  /** Subscribes a connection to a channel and sends it every change after its cursor. */
  readonly subscribe: (
    connection: SyncConnection,
    channel: Channel.Any,
    since: number | null,
    history: string | undefined
  ) => Effect.Effect<{ readonly reset: boolean; readonly version: number }, StorageError>
  /** Claims an action's seq, inside the action's transaction (a refused action releases it). */
  readonly claim: (key: ActionKey, now: number) => Effect.Effect<Claim, StorageError>
  /**
   * Records that an action was refused, in its own transaction, so every
   * re-send gets the same refusal. When the seq was decided meanwhile (or
   * the key does not match), returns that instead and records nothing.
   * Call it inside `exclusive`.
   */
  readonly refuse: (key: ActionKey, reason: ErrorReason, message: string, now: number) => Effect.Effect<Claim, StorageError>
  /** Removes old tombstones and log entries, compacts the log and forgets idle clients. */
  readonly gc: (now: number) => Effect.Effect<GcResult, StorageError>
  /**
   * A handler's result as wire rows (objects laid out by column name), or the
   * reason one does not match the channel's record Schema (naming the column).
   */
  readonly wireRows: (channel: Channel.Any, result: HandlerRows) => { readonly rows: ReadonlyArray<WireRow>; readonly problem: string | undefined }
}

/** Builds Reconciliation over Storage, publishing through Broadcast. */
const make = Effect.gen(function*() {
  const storage = yield* Storage
  const channels = yield* Channels
  const broadcast = yield* Broadcast
  const config = yield* SyncConfig
  const lock = yield* Semaphore.make(1)
  const tables = new Map<string, ChannelLog>()
  // channels whose table may hold rows no check has seen: every one at install (rows from before capture, or from
  // migrations), and any a flush skipped; a full sync answer that finds them all valid takes its channel out
  const unchecked = new Set<string>()
  let history = ""
  let published = 0
  // the mark as stored: an action's commit stores it only every MARK_EVERY versions (see `commit`)
  let stored = 0
  let horizon = 0

  const exclusive = <A, E, R>(self: Effect.Effect<A, E, R>) => lock.withPermits(1)(self)

  const install = storage.transaction(Effect.try({
    try: () => installSync(storage, channels),
    catch: storageError
  })).pipe(
    Effect.map(({ report, logs, state }) => {
      tables.clear()
      unchecked.clear()
      for (const log of logs) {
        tables.set(log.info.channel.name, log)
        unchecked.add(log.info.channel.name)
      }
      history = state.history
      published = state.published
      stored = state.published
      horizon = state.horizon
      return report
    }),
    Effect.withSpan("Reconciliation.install")
  )

  /**
   * Every change after `published`, checked against the record Schemas, and
   * the new mark, stored in the same transaction once it is `lag` or more
   * versions past the stored one (0: whenever it moved). With
   * `only`, channels outside it are not read: nobody receives them now, a
   * later sync answer serves (and checks) their rows, and the mark moves past
   * them all the same.
   */
  const collect = (
    lag: number,
    only?: ReadonlySet<string>
  ): { readonly changes: Array<ChannelChanges>; readonly version: number; readonly invalid: Array<string>; readonly stored: boolean } => {
    const changes: Array<ChannelChanges> = []
    const invalid: Array<string> = []
    let version = published
    if (only !== undefined && only.size < tables.size) {
      version = Math.max(version, Number(storage.rawUnsafe(`SELECT coalesce(max(version), 0) FROM _psync_log`)[0]?.[0] ?? 0))
    }
    // changes past the mark in channels nobody receives now: their rows wait for a sync answer's check
    const skipped = version > published
    for (const log of tables.values()) {
      if (only !== undefined && !only.has(log.info.channel.name)) {
        if (skipped) unchecked.add(log.info.channel.name)
        continue
      }
      const found = ChangeLog.foldChanges(log.info.channel.name, storage.rawUnsafe(log.query, published))
      const last = ChangeLog.highest(found)
      if (last === 0) continue
      const problem = log.check(found.rows, checked)
      if (problem !== undefined) {
        invalid.push(problem)
        unchecked.add(log.info.channel.name)
      }
      changes.push({ ...found, version: last })
      version = Math.max(version, last)
    }
    const write = version !== stored && version - stored >= lag
    if (write) storage.rawUnsafe(`UPDATE _psync_meta SET value = ? WHERE key = 'published'`, version)
    return { changes, version, invalid, stored: write }
  }

  // rows the running action returned that passed the check, by id: its captured rows equal to them are not decoded again
  const checked = new Map<unknown, WireRow>()
  const wireRows = (channel: Channel.Any, result: HandlerRows) => {
    const log = tables.get(channel.name)
    if (log === undefined) return { rows: [], problem: `channel ${channel.name} is not installed` }
    const rows = toRows(result, log.info.columns)
    const problem = log.check(rows)
    if (problem === undefined) for (const row of rows) checked.set(row[0], row)
    return { rows, problem }
  }

  /*
   * An action's commit publishes everything past the mark in the same
   * synchronous run, so its stored copy may lag: storing it every time would
   * cost a row written per action. After a restart the lag (at most
   * `MARK_EVERY` versions) is published again; a client skips a Change not
   * above its cursor, and one that missed rows committed but never
   * published (a write outside onAction that no event flushed) gets them
   * with their current values. A flush publishes rows written outside
   * onAction and always stores the mark, so those are never lost.
   */
  const commit = <A, E, R>(self: Effect.Effect<A, E, R>, sender?: SyncConnection) =>
    Effect.flatMap(
      storage.transaction(Effect.flatMap(self, (value) =>
        Effect.suspend(() => {
          const collected = collect(MARK_EVERY)
          checked.clear()
          return collected.invalid.length > 0
            ? Effect.fail(new SyncFailure({ reason: "InvalidRecord", message: collected.invalid.join("; "), requestId: null, channel: null }))
            : Effect.succeed([value, collected] as const)
        }))),
      ([value, collected]) =>
        Effect.map(broadcast.publish(collected.changes, sender), (withheld) => {
          published = collected.version
          if (collected.stored) stored = published
          return { value, version: published, withheld } satisfies WriteResult<A>
        })
    )

  // Rows committed outside `commit` cannot be rolled back: one that does not decode is still
  // published (clients report it), and said loudly here, where it was written.
  const flushUnlocked = Effect.suspend(() => {
    const collected = collect(0, broadcast.subscribed())
    published = collected.version
    stored = published
    const report = collected.invalid.length === 0
      ? Effect.void
      : Effect.logError(`effect-partysync: rows written outside onAction do not match their channel's record: ${collected.invalid.join("; ")}`)
    return Effect.andThen(report, broadcast.publish(collected.changes))
  }).pipe(Effect.asVoid, Effect.mapError(storageError))

  const subscribe = Effect.fn("Reconciliation.subscribe")(function*(
    connection: SyncConnection,
    channel: Channel.Any,
    since: number | null,
    cursorHistory: string | undefined
  ) {
    return yield* exclusive(Effect.gen(function*() {
      yield* flushUnlocked
      const log = tables.get(channel.name)
      if (log === undefined) return yield* new StorageError({ message: `channel ${channel.name} is not installed`, cause: null })
      const version = published
      const reset = since === null || cursorHistory !== history || since < horizon || since > version
      const changes: ChannelChanges = yield* Effect.try({
        try: () => {
          if (!reset) return { ...ChangeLog.foldChanges(channel.name, storage.rawUnsafe(log.query, since!)), version }
          const rows = storage.rawUnsafe(log.all) as Array<WireRow>
          return { channel: channel.name, rows, rowVersions: rows.map(() => version), deleted: [], deletedVersions: [], version }
        },
        catch: storageError
      })
      // rows written outside onAction while nobody listened are checked here, where they are first served; a full
      // answer skips the check when every row of the table has passed one since install
      const problem = reset && !unchecked.has(channel.name) ? undefined : log.check(changes.rows)
      if (reset && problem === undefined) unchecked.delete(channel.name)
      if (problem !== undefined) {
        yield* Effect.logError(`effect-partysync: rows in ${channel.table} do not match the channel's record: ${problem}`)
      }
      yield* broadcast.subscribe(connection, channel.name)
      yield* broadcast.sendSync(connection, changes, reset, history)
      return { reset, version }
    }))
  })

  // ---------------------------------------------------------------- ledger

  const firstOf = (rows: ReadonlyArray<ReadonlyArray<SqlValue>>) => rows[0]?.[0]

  /** Why a claim found nothing: another key, or a decision (applied, or a recorded refusal). */
  const explain = (key: ActionKey): Claim => {
    const owner = firstOf(storage.rawUnsafe(Ledger.KEY_OF, key.clientId))
    if (owner !== undefined && owner !== key.clientKey) return { _tag: "Mismatch" }
    return { _tag: "Decided", decision: Ledger.decisionOf(storage.rawUnsafe(Ledger.REFUSAL_OF, key.clientId, key.seq)) }
  }

  const claimSync = (key: ActionKey, now: number): Claim => {
    if (key.sentAt !== undefined && key.sentAt < now - config.clientRetentionMs + Ledger.CLOCK_MARGIN_MS) {
      // a re-send from long ago: if we no longer know its client, it may have been applied before we forgot
      if (firstOf(storage.rawUnsafe(Ledger.KEY_OF, key.clientId)) === undefined) return { _tag: "Expired" }
    }
    const claimed = storage.rawUnsafe(Ledger.CLAIM, key.clientId, key.clientKey, key.seq, now)
    return claimed.length > 0 ? NEW : explain(key)
  }

  const claim = (key: ActionKey, now: number) => Effect.try({ try: () => claimSync(key, now), catch: storageError })

  const refuse = (key: ActionKey, reason: ErrorReason, message: string, now: number) =>
    storage.transaction(Effect.try({
      try: () => {
        const claimed = claimSync(key, now)
        if (claimed._tag !== "New") return claimed
        storage.rawUnsafe(Ledger.RECORD_REFUSAL, key.clientId, key.seq, reason, message)
        storage.rawUnsafe(Ledger.TRIM_REFUSALS, key.clientId)
        return claimed
      },
      catch: storageError
    }))

  // ---------------------------------------------------------------- GC

  const gc = Effect.fn("Reconciliation.gc")(function*(now: number) {
    return yield* exclusive(Effect.gen(function*() {
      yield* flushUnlocked
      const result = yield* storage.transaction(Effect.try({
        try: () => gcSync(storage, [...tables.values()], config, now, published, horizon),
        catch: storageError
      }))
      horizon = result.horizon
      return result
    }))
  })

  return {
    install,
    history: () => history,
    version: Effect.sync(() => published),
    exclusive,
    commit,
    write: (self, sender) => exclusive(commit(self, sender)),
    flush: exclusive(flushUnlocked),
    subscribe,
    claim,
    refuse,
    gc,
    wireRows
  } satisfies ReconciliationShape
})

/** The Reconciliation service. */
export class Reconciliation extends Context.Service<Reconciliation, ReconciliationShape>()("effect-partysync/Reconciliation") {
  /** Reconciliation over Storage, publishing through Broadcast. */
  static readonly layer = Layer.effect(Reconciliation, make)
}

// ------------------------------------------------------------------ install and GC, synchronous SQL

/** A channel's table, its prepared log query and its record check. */
interface ChannelLog {
  readonly info: ChangeLog.TableInfo
  /** `changesQuery` for this channel. */
  readonly query: string
  /** Every live row, in insertion order where the table has one. */
  readonly all: string
  readonly check: (rows: ReadonlyArray<WireRow>, checked?: ReadonlyMap<unknown, WireRow>) => string | undefined
}

/** Whether two wire rows hold the same values. */
const sameRow = (a: WireRow, b: WireRow) => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Checks rows against the channel's record Schema. `checked` holds rows that
 * passed moments ago (an action's own rows, usually the very rows it then
 * captures): an equal row is not decoded twice.
 */
const recordChecker = (info: ChangeLog.TableInfo) => {
  const decode = Schema.decodeUnknownExit(info.channel.record)
  return (rows: ReadonlyArray<WireRow>, checked?: ReadonlyMap<unknown, WireRow>): string | undefined => {
    for (const row of rows) {
      const seen = checked?.get(row[0])
      if (seen !== undefined && sameRow(seen, row)) continue
      const exit = decode(row)
      if (Exit.isSuccess(exit)) continue
      const error = Cause.findErrorOption(exit.cause)
      const message = error._tag === "Some" ? error.value.message : "does not decode"
      // name the column: Schema reports a tuple position as `at [n]`
      const named = message.replace(/at \[(\d+)\]/g, (at, n: string) => {
        const column = info.columns[Number(n)]
        return column === undefined ? at : `${at} (column ${column})`
      })
      return `${info.channel.name} row ${JSON.stringify(row[0])}: ${named.replace(/\s*\n\s*/g, " ")}`
    }
    return undefined
  }
}

const describe = (storage: StorageShape, channel: Channel.Any, index: number): ChangeLog.TableInfo => {
  const tableColumns = storage.rawUnsafe(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, channel.table).map((r) => String(r[0]))
  if (tableColumns.length < 2) {
    throw new StorageError({
      message: `table ${channel.table} for channel ${channel.name} must exist (with the id first and deleted_at last) before the server starts`,
      cause: null
    })
  }
  let hasRowid = true
  try {
    storage.rawUnsafe(`SELECT rowid FROM ${ChangeLog.q(channel.table)} LIMIT 0`)
  } catch {
    hasRowid = false
  }
  const { columns, deletedAt } = ChangeLog.wireColumns(tableColumns)
  return { channel, index, columns, id: tableColumns[0]!, deletedAt, hasRowid }
}

const meta = (storage: StorageShape, key: string): SqlValue | undefined =>
  storage.rawUnsafe(`SELECT value FROM _psync_meta WHERE key = ?`, key)[0]?.[0]

const setMeta = (storage: StorageShape, key: string, value: SqlValue) =>
  storage.rawUnsafe(`INSERT OR REPLACE INTO _psync_meta (key, value) VALUES (?, ?)`, key, value)

const exists = (storage: StorageShape, table: string) =>
  storage.rawUnsafe(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`, table).length > 0

/**
 * Install, inside one transaction. Its cost does not depend on table sizes:
 * it reads the schema, the channel map and the meta rows, never a table.
 */
const installSync = (storage: StorageShape, channels: ReadonlyMap<string, Channel.Any>) => {
  const before = storage.usage()
  // the first release's bookkeeping: start over with a new history
  const legacy = ChangeLog.LEGACY_TABLES.some((t) => exists(storage, t))
  if (legacy) {
    for (const t of [...ChangeLog.LEGACY_TABLES, ...Ledger.LEGACY_TABLES, "_psync_meta"]) storage.rawUnsafe(`DROP TABLE IF EXISTS ${t}`)
  }
  for (const statement of [...ChangeLog.SCHEMA, ...Ledger.SCHEMA]) storage.rawUnsafe(statement)

  let rebuilt = false
  const logs: Array<ChannelLog> = []
  for (const channel of channels.values()) {
    const known = storage.rawUnsafe(`SELECT idx FROM _psync_channels WHERE name = ?`, channel.name)[0]?.[0]
    const index = known === undefined
      ? Number(storage.rawUnsafe(
        `INSERT INTO _psync_channels (name, idx) SELECT ?, coalesce(max(idx), 0) + 1 FROM _psync_channels RETURNING idx`,
        channel.name
      )[0]![0])
      : Number(known)
    const info = describe(storage, channel, index)
    const wanted = ChangeLog.triggerSql(info)
    const have = new Set(storage.rawUnsafe(
      `SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND name LIKE '\\_psync\\_%' ESCAPE '\\'`,
      channel.table
    ).map((r) => String(r[0])))
    if (have.size !== wanted.length || wanted.some((statement) => !have.has(statement))) {
      for (const name of ChangeLog.triggerNames(channel.table)) storage.rawUnsafe(`DROP TRIGGER IF EXISTS ${name}`)
      for (const statement of wanted) storage.rawUnsafe(statement)
      // a channel that was captured before lost changes while its triggers were missing or different
      if (known !== undefined) rebuilt = true
    }
    logs.push({ info, query: ChangeLog.changesQuery(info), all: ChangeLog.allQuery(info), check: recordChecker(info) })
  }

  let history = meta(storage, "history")
  const replaced = (history !== undefined && rebuilt) || legacy
  const newHistory = history === undefined || rebuilt
  if (newHistory) {
    history = newHistoryId()
    storage.rawUnsafe(`DELETE FROM _psync_log`)
    storage.rawUnsafe(`DELETE FROM _psync_checkpoints`)
    setMeta(storage, "history", history)
    setMeta(storage, "published", 0)
    setMeta(storage, "horizon", 0)
  }
  const after = storage.usage()
  return {
    logs,
    state: {
      history: String(history),
      published: Number(meta(storage, "published") ?? 0),
      horizon: Number(meta(storage, "horizon") ?? 0)
    },
    report: {
      history: String(history),
      newHistory,
      replaced,
      usage: { rowsRead: after.rowsRead - before.rowsRead, rowsWritten: after.rowsWritten - before.rowsWritten }
    } satisfies InstallReport
  }
}

const gcSync = (
  storage: StorageShape,
  logs: ReadonlyArray<ChannelLog>,
  config: { readonly tombstoneRetentionMs: number; readonly clientRetentionMs: number },
  now: number,
  published: number,
  horizon: number
): GcResult => {
  const cutoff = now - config.tombstoneRetentionMs
  let purged = 0
  for (const { info } of logs) {
    const d = ChangeLog.q(info.deletedAt)
    purged += storage.rawUnsafe(`DELETE FROM ${ChangeLog.q(info.channel.table)} WHERE ${d} IS NOT NULL AND ${d} < ? RETURNING 1`, cutoff).length
  }
  // the purge is not a change clients need (they dropped these rows when they were soft deleted), and
  // the soft delete's own entry now finds no row, so a cursor from before it still learns of the delete
  storage.rawUnsafe(`DELETE FROM _psync_log WHERE version > ?`, published)
  storage.rawUnsafe(`INSERT OR REPLACE INTO _psync_checkpoints (at, version) VALUES (?, ?)`, now, published)
  const old = storage.rawUnsafe(`SELECT at, version FROM _psync_checkpoints WHERE at < ? ORDER BY at DESC LIMIT 1`, cutoff)[0]
  let next = horizon
  if (old !== undefined) {
    next = Math.max(horizon, Number(old[1]))
    storage.rawUnsafe(`DELETE FROM _psync_checkpoints WHERE at < ?`, old[0]!)
    storage.rawUnsafe(ChangeLog.TRUNCATE, next)
  }
  storage.rawUnsafe(ChangeLog.COMPACT)
  setMeta(storage, "horizon", next)
  const idleSince = now - config.clientRetentionMs
  const clientsPruned = Number(storage.rawUnsafe(`SELECT count(*) FROM _psync_clients WHERE seen < ?`, idleSince)[0]?.[0] ?? 0)
  if (clientsPruned > 0) for (const statement of Ledger.PRUNE) storage.rawUnsafe(statement, idleSince)
  return { purged, horizon: next, clientsPruned }
}

/** Row values SQLite may hold, re-exported for handler authors. */
export type { SqlValue }
