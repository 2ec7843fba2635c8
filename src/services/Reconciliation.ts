/**
 * Reconciliation: the change feed of one object. It installs capture
 * (`Capture.ts`), keeps the feed's history and marks (`Histories.ts`), decides
 * pushed batches against the client ledger (`Batch.ts`), publishes committed
 * changes through Broadcast, answers Subscribes and runs the GC.
 *
 * Changes are published only at points where no transaction can be open:
 * after a batch commits, and when the server flushes after an event (a
 * request, an alarm, a WebSocket close) or on `publishChanges()`. The
 * published mark is stored in the same transaction as the reads that justify
 * it: by every flush, and by batches once per `MARK_EVERY` versions, so after
 * a restart up to that many versions are published again (clients skip a
 * `Change` at or below their cursor).
 *
 * Writes, publishing and sync answers run one at a time under one lock:
 * clients see changes in version order, a sync answer never sees an open
 * transaction, and a push's reply is sent before any later change.
 *
 * The log keeps about one entry per row: when more entries were appended
 * since the last compaction than it kept then, it keeps only the newest entry
 * of each row, so a resume reads what changed, not every write to it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import type * as Channel from "../protocol/Channel.ts"
import * as Batch from "./Batch.ts"
import { Broadcast } from "./Broadcast.ts"
import * as Capture from "./Capture.ts"
import * as ChangeLog from "./ChangeLog.ts"
import * as Ledger from "./ClientLedger.ts"
import * as Legacy from "./LedgerLegacy.ts"
import type { SyncConnection } from "./Connections.ts"
import { StorageError, SyncFailure } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import * as FullSync from "./FullSync.ts"
import * as Histories from "./Histories.ts"
import { type SqlValue, Storage, type StorageShape, type StorageUsage } from "./Storage.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"

/** What a GC pass did. */
export interface GcResult {
  /** Soft-deleted rows removed. */
  readonly purged: number
  /** Cursors at or below this version get a reset. */
  readonly horizon: number
  /** Clients forgotten after being idle past the retention with nothing left to confirm. */
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

/** How far a batch's commit lets the stored published mark lag behind the published version. */
export const MARK_EVERY = 64

/** Log entries beyond those kept at the last compaction that trigger the next one (besides doubling). */
const COMPACT_SLACK = 32

const storageError = (cause: unknown) =>
  cause instanceof StorageError ? cause : new StorageError({ message: cause instanceof Error ? cause.message : String(cause), cause })

/** How a Subscribe's full answer is read: the connection's read rule, and the turns it takes with other work. */
export interface SubscribeOptions {
  readonly filter?: FullSync.RowFilter | undefined
  /** Without it, every chunk is read in a row. */
  readonly pacing?: FullSync.Pacing | undefined
}

/** The Reconciliation interface. */
export interface ReconciliationShape {
  /** Creates the bookkeeping tables and the triggers on every channel table; runs on every start. */
  readonly install: Effect.Effect<InstallReport, StorageError>
  /** The identity of this object's history (after install). */
  readonly history: () => string
  /** The feed's current (published) version. */
  readonly version: Effect.Effect<number>
  /** Runs `self` holding the write lock (not re-entrant: never nest it). */
  readonly exclusive: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Decides a pushed batch in one transaction (a savepoint per action),
   * publishes what it changed and returns the reply's content, the sender's
   * own `Change` frames withheld for it. Call it inside `exclusive`.
   */
  readonly decide: <R>(push: Batch.PreparedPush<R>, sender: SyncConnection) => Effect.Effect<Batch.Decided, StorageError, R>
  /**
   * Runs `self` in a transaction as an action's write: the rows it changed
   * are checked against their record Schema (one that does not match fails
   * it with `InvalidRecord` and rolls it back), then published.
   */
  readonly write: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<{ readonly value: A; readonly version: number }, E | StorageError | SyncFailure, R>
  /** Publishes changes committed outside a push (alarms, requests, raw SQL). */
  readonly flush: Effect.Effect<void, StorageError>
  /**
   * Subscribes a connection to a channel and sends it every change after its
   * cursor; a reset is read in chunks (`FullSync.ts`), paced by `options`.
   */
  readonly subscribe: (
    connection: SyncConnection,
    channel: Channel.Any,
    since: number | null,
    history: string | undefined,
    options?: SubscribeOptions
  ) => Effect.Effect<{ readonly reset: boolean; readonly version: number }, StorageError>
  /** Removes old tombstones and log entries, compacts the log and forgets idle clients. */
  readonly gc: (now: number) => Effect.Effect<GcResult, StorageError>
}

/** Builds Reconciliation over Storage, publishing through Broadcast. */
const make = Effect.gen(function*() {
  const storage = yield* Storage
  const channels = yield* Channels
  const broadcast = yield* Broadcast
  const config = yield* SyncConfig
  const lock = yield* Semaphore.make(1)
  const logs = new Map<string, Capture.ChannelLog>()
  // channels whose table may hold rows no check has seen: every one at install (rows from before capture, or from
  // migrations), and any a flush skipped; a full sync answer that finds them all valid takes its channel out
  const unchecked = new Set<string>()
  let feed: Histories.FeedState = { history: "", published: 0, horizon: 0 }
  // the mark as stored: a batch's commit stores it only every MARK_EVERY versions
  let stored = 0
  // log entries kept by the last compaction, and appended since
  let kept = 0
  let appended = 0
  const ledger = Batch.makeLedgerState()

  const exclusive = <A, E, R>(self: Effect.Effect<A, E, R>) => lock.withPermits(1)(self)

  const install = storage.transaction(Effect.try({
    try: () => installSync(storage, channels),
    catch: storageError
  })).pipe(
    Effect.map(({ report, channelLogs, state, size }) => {
      logs.clear()
      unchecked.clear()
      for (const log of channelLogs) {
        logs.set(log.info.channel.name, log)
        unchecked.add(log.info.channel.name)
      }
      feed = state
      stored = state.published
      kept = size
      appended = 0
      ledger.reset()
      return report
    }),
    Effect.withSpan("Reconciliation.install")
  )

  /** Moves the published mark to `version`, storing it when it lags by `lag` or more (0: whenever it moved). */
  const advance = (version: number, lag: number): boolean => {
    const write = version !== stored && version - stored >= lag
    if (write) Histories.storePublished(storage, version)
    return write
  }

  /** After a publish: compacts the log once it holds about twice what the last compaction kept. */
  const maybeCompact = () =>
    Effect.suspend(() => {
      if (appended <= kept + COMPACT_SLACK) return Effect.void
      return storage.transaction(Effect.try({
        try: () => {
          storage.rawUnsafe(ChangeLog.COMPACT)
          kept = Number(storage.rawUnsafe(`SELECT count(*) FROM _psync_log`)[0]?.[0] ?? 0)
          Histories.setMeta(storage, "log_kept", kept)
          appended = 0
        },
        catch: storageError
      }))
    })

  const publish = (changes: ReadonlyArray<ChannelChanges>, version: number, wrote: boolean, sender?: SyncConnection) =>
    Effect.map(broadcast.publish(changes, sender), (withheld) => {
      // versions are the log's keys, and a rolled-back write frees its own: each version published is one entry
      appended += Math.max(0, version - feed.published)
      feed = { ...feed, published: version }
      if (wrote) stored = version
      return withheld
    })

  const decide = <R>(push: Batch.PreparedPush<R>, sender: SyncConnection) =>
    Effect.gen(function*() {
      const run = yield* storage.transaction(Batch.decide(push, {
        storage,
        logs: logs.values(),
        ledger,
        published: feed.published,
        maxClientsPerPrincipal: config.maxClientsPerPrincipal,
        advance: (version) => advance(version, MARK_EVERY)
      })).pipe(Effect.mapError(storageError))
      if (run._tag === "Refused") return run as Batch.Decided
      const withheld = yield* publish(run.changes, run.version, run.stored, sender)
      yield* maybeCompact().pipe(Effect.catch((e) => Effect.logWarning("effect-partysync: log compaction failed", e)))
      return { _tag: "Decided", results: run.results, next: run.next, version: run.version, withheld } satisfies Batch.Decided
    })

  // Rows committed outside a push cannot be rolled back: one that does not decode is still
  // published (clients report it), and said loudly here, where it was written.
  const flushUnlocked = Effect.suspend(() => {
    const subscribed = broadcast.subscribed()
    let collected: Capture.Captured
    if (subscribed.size < logs.size) {
      // changes past the mark in channels nobody receives now: their rows wait for a sync answer's check
      const top = Capture.head(storage)
      if (top > feed.published) for (const name of logs.keys()) if (!subscribed.has(name)) unchecked.add(name)
      collected = Capture.read(storage, logs.values(), feed.published, subscribed)
      collected = { ...collected, version: Math.max(collected.version, top) }
    } else {
      collected = Capture.read(storage, logs.values(), feed.published)
    }
    const wrote = advance(collected.version, 0)
    const report = collected.invalid.length === 0
      ? Effect.void
      : Effect.logError(`effect-partysync: rows written outside onAction do not match their channel's record: ${collected.invalid.join("; ")}`)
    return Effect.andThen(report, publish(collected.changes, collected.version, wrote)).pipe(
      Effect.andThen(maybeCompact())
    )
  }).pipe(Effect.asVoid, Effect.mapError(storageError))

  const subscribe = Effect.fn("Reconciliation.subscribe")(function*(
    connection: SyncConnection,
    channel: Channel.Any,
    since: number | null,
    cursorHistory: string | undefined,
    options: SubscribeOptions = {}
  ) {
    const resumed = yield* exclusive(Effect.gen(function*() {
      yield* flushUnlocked
      const log = logs.get(channel.name)
      if (log === undefined) return yield* new StorageError({ message: `channel ${channel.name} is not installed`, cause: null })
      const version = feed.published
      // a reset is read in chunks, taking turns with other work (below)
      if (Histories.needsReset({ ...feed, version }, since, cursorHistory)) return log
      const changes: ChannelChanges = yield* Effect.try({
        try: () => ({ ...ChangeLog.foldChanges(channel.name, storage.rawUnsafe(log.query, since!)), version }),
        catch: storageError
      })
      // rows written outside onAction while nobody listened are checked here, where they are first served
      const problem = log.check(changes.rows)
      if (problem !== undefined) {
        yield* Effect.logError(`effect-partysync: rows in ${channel.table} do not match the channel's record: ${problem}`)
      }
      yield* broadcast.subscribe(connection, channel.name)
      yield* broadcast.sendSync(connection, changes, false, feed.history)
      return { reset: false, version }
    }))
    if ("reset" in resumed) return resumed
    const version = yield* FullSync.answer({
      storage, log: resumed, connection, exclusive, flush: flushUnlocked, feed: () => feed, unchecked, config,
      subscribe: broadcast.subscribe(connection, channel.name), ...options
    })
    return { reset: true, version }
  })

  const gc = Effect.fn("Reconciliation.gc")(function*(now: number) {
    return yield* exclusive(Effect.gen(function*() {
      yield* flushUnlocked
      const result = yield* storage.transaction(Effect.try({
        try: () => {
          ledger.writeConfirms(storage)
          return gcSync(storage, [...logs.values()], config, now, feed)
        },
        catch: storageError
      }))
      feed = { ...feed, horizon: result.horizon }
      kept = result.kept
      appended = 0
      ledger.forget(result.clientsPruned > 0)
      return { purged: result.purged, horizon: result.horizon, clientsPruned: result.clientsPruned } satisfies GcResult
    }))
  })

  const write = <A, E, R>(self: Effect.Effect<A, E, R>) =>
    exclusive(Effect.gen(function*() {
      const [value, captured, wrote] = yield* storage.transaction(Effect.flatMap(self, (value) =>
        Effect.suspend(() => {
          const captured = Capture.read(storage, logs.values(), feed.published)
          if (captured.invalid.length > 0) {
            return Effect.fail(new SyncFailure({ reason: "InvalidRecord", message: captured.invalid.join("; "), requestId: null, channel: null }))
          }
          return Effect.succeed([value, captured, advance(captured.version, MARK_EVERY)] as const)
        })))
      yield* publish(captured.changes, captured.version, wrote)
      yield* maybeCompact().pipe(Effect.catch((e) => Effect.logWarning("effect-partysync: log compaction failed", e)))
      return { value, version: feed.published }
    }))

  return {
    install,
    history: () => feed.history,
    version: Effect.sync(() => feed.published),
    exclusive,
    decide,
    write,
    flush: exclusive(flushUnlocked),
    subscribe,
    gc
  } satisfies ReconciliationShape
})

/** The Reconciliation service. */
export class Reconciliation extends Context.Service<Reconciliation, ReconciliationShape>()("effect-partysync/Reconciliation") {
  /** Reconciliation over Storage, publishing through Broadcast. */
  static readonly layer = Layer.effect(Reconciliation, make)
}

// ------------------------------------------------------------------ install and GC, synchronous SQL

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
    for (const t of [...ChangeLog.LEGACY_TABLES, ...Legacy.TABLES, "_psync_meta"]) storage.rawUnsafe(`DROP TABLE IF EXISTS ${t}`)
  }
  for (const statement of ChangeLog.SCHEMA) storage.rawUnsafe(statement)
  Legacy.install(storage)
  const { logs, rebuilt } = Capture.install(storage, channels)
  const state = Histories.install(storage, rebuilt)
  const after = storage.usage()
  return {
    channelLogs: logs,
    state: { history: state.history, published: state.published, horizon: state.horizon },
    // the log's size is not read at install (a wake must not scan it): the first compaction comes after that many
    // appends at the latest, and counts it then
    size: Number(Histories.meta(storage, "log_kept") ?? 0),
    report: {
      history: state.history,
      newHistory: state.started,
      replaced: state.replaced || legacy,
      usage: { rowsRead: after.rowsRead - before.rowsRead, rowsWritten: after.rowsWritten - before.rowsWritten }
    } satisfies InstallReport
  }
}

const gcSync = (
  storage: StorageShape,
  logs: ReadonlyArray<Capture.ChannelLog>,
  config: { readonly tombstoneRetentionMs: number; readonly clientRetentionMs: number },
  now: number,
  feed: Histories.FeedState
) => {
  const cutoff = now - config.tombstoneRetentionMs
  let purged = 0
  for (const { info } of logs) {
    const d = ChangeLog.q(info.deletedAt)
    purged += storage.rawUnsafe(`DELETE FROM ${ChangeLog.q(info.channel.table)} WHERE ${d} IS NOT NULL AND ${d} < ? RETURNING 1`, cutoff).length
  }
  // the purge is not a change clients need (they dropped these rows when they were soft deleted), and
  // the soft delete's own entry now finds no row, so a cursor from before it still learns of the delete
  storage.rawUnsafe(`DELETE FROM _psync_log WHERE version > ?`, feed.published)
  storage.rawUnsafe(`INSERT OR REPLACE INTO _psync_checkpoints (at, version) VALUES (?, ?)`, now, feed.published)
  const old = storage.rawUnsafe(`SELECT at, version FROM _psync_checkpoints WHERE at < ? ORDER BY at DESC LIMIT 1`, cutoff)[0]
  let horizon = feed.horizon
  if (old !== undefined) {
    horizon = Math.max(horizon, Number(old[1]))
    storage.rawUnsafe(`DELETE FROM _psync_checkpoints WHERE at < ?`, old[0]!)
    storage.rawUnsafe(ChangeLog.TRUNCATE, horizon)
  }
  storage.rawUnsafe(ChangeLog.COMPACT)
  const kept = Number(storage.rawUnsafe(`SELECT count(*) FROM _psync_log`)[0]?.[0] ?? 0)
  Histories.setMeta(storage, "horizon", horizon)
  Histories.setMeta(storage, "log_kept", kept)
  const idleSince = now - config.clientRetentionMs
  const clientsPruned = Number(storage.rawUnsafe(`SELECT count(*) FROM _psync_clients WHERE seen < ? AND outcomes IS NULL`, idleSince)[0]?.[0] ?? 0)
  if (clientsPruned > 0) {
    storage.rawUnsafe(Ledger.PRUNE, idleSince)
    if (exists(storage, Legacy.REFUSALS)) storage.rawUnsafe(Legacy.PRUNE)
  }
  return { purged, horizon, clientsPruned, kept }
}

/** Row values SQLite may hold, re-exported for handler authors. */
export type { SqlValue }
