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
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import type * as Channel from "../protocol/Channel.ts"
import * as Batch from "./Batch.ts"
import { Broadcast } from "./Broadcast.ts"
import * as Capture from "./Capture.ts"
import * as ChangeLog from "./ChangeLog.ts"
import * as Ledger from "./ClientLedger.ts"
import * as Legacy from "./LedgerLegacy.ts"
import { channelOfSub, paramsOfSub, type Applied, type Refused, type RowId } from "../protocol/Protocol.ts"
import { Connections, type SyncConnection } from "./Connections.ts"
import { type NotAuthorized, StorageError, SyncFailure } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import * as Histories from "./Histories.ts"
import { type SqlValue, Storage, type StorageShape, type StorageUsage } from "./Storage.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"
import type * as Rule from "./Rule.ts"
import * as Views from "./Views.ts"
import * as ViewSync from "./ViewSync.ts"

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

/** The rule hash a connection's state keeps for a subscription its channel's `authorize` refused. */
const REFUSED = "!"

/** Log entries beyond those kept at the last compaction that trigger the next one (besides doubling). */
const COMPACT_SLACK = 32

const storageError = (cause: unknown) =>
  cause instanceof StorageError ? cause : new StorageError({ message: cause instanceof Error ? cause.message : String(cause), cause })

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
   * Subscribes a connection to a channel (or one subscription of it) and
   * sends it every change after its cursor that its view admits. Fails with
   * `SyncFailure` when the connection cannot hold one more subscription, and
   * `ViewFailed` when the channel's read rule fails.
   */
  readonly subscribe: (
    connection: SyncConnection,
    channel: Channel.Any,
    request: SubscribeRequest
  ) => Effect.Effect<{ readonly reset: boolean; readonly version: number }, StorageError | SyncFailure | Views.ViewFailed | NotAuthorized>
  /**
   * Computes again the views of the connections whose principal `match`
   * admits (every connection without it): a subscription whose rule changed
   * stops receiving changes and is told to `Resync`. Returns how many were.
   */
  readonly refreshAccess: (match?: (principal: unknown) => boolean) => Effect.Effect<number>
  /** Removes old tombstones and log entries, compacts the log and forgets idle clients. */
  readonly gc: (now: number) => Effect.Effect<GcResult, StorageError>
}

/** What a Subscribe asks for, its params decoded. */
export interface SubscribeRequest {
  readonly since: number | null
  readonly history: string | undefined
  /** The subscription's name (the channel's, without params). */
  readonly sub: string
  readonly params: unknown
  /** A view's resume: the ids the client holds. */
  readonly held: ReadonlyArray<RowId> | undefined
}

/** Builds Reconciliation over Storage, publishing through Broadcast. */
const make = Effect.gen(function*() {
  const storage = yield* Storage
  const channels = yield* Channels
  const broadcast = yield* Broadcast
  const config = yield* SyncConfig
  const views = yield* Views.Views
  const connections = yield* Connections
  const lock = yield* Semaphore.make(1)
  // the views of subscriptions opened before this start (the object slept) are computed again before anything is published
  let cold = views.any
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

  /**
   * A view subscription's rule, computed again: the same as the one its rows
   * were sent under, or the subscription stops and its client is told to
   * `Resync` (it subscribes again with the ids it holds).
   */
  const recheck = (connection: SyncConnection, sub: string, hash: string | undefined) => {
    const channel = channelOfSub(sub)
    const log = logs.get(channel)
    const stop = Effect.andThen(
      broadcast.unsubscribe(connection, channel, sub),
      Effect.suspend(() => {
        views.resyncs(connection).add(sub)
        return broadcast.send(connection, sub === channel ? { _tag: "Resync", channel } : { _tag: "Resync", channel, sub })
      })
    )
    if (log === undefined) return Effect.as(stop, 1)
    const principal = connection.state.principal
    return Effect.gen(function*() {
      const params = yield* Effect.try(() => paramsOfSub(sub)).pipe(
        Effect.flatMap((raw) => Effect.fromResult(Views.decodeParams(channels.get(channel)!, raw)))
      )
      const allowed = yield* Effect.exit(views.authorize(principal, channel, params))
      // refused before and still refused: nothing to tell
      if (Exit.isFailure(allowed)) return hash === REFUSED ? undefined : yield* Effect.failCause(allowed.cause)
      return yield* views.compute(principal, channel, params, log.info.columns)
    }).pipe(
      Effect.matchEffect({
        onFailure: () => Effect.as(stop, 1),
        onSuccess: (view) => {
          if (view === undefined && hash === REFUSED) return Effect.succeed(0)
          if (view === undefined || view.hash !== hash) return Effect.as(stop, 1)
          views.of(connection).set(sub, view)
          return Effect.succeed(0)
        }
      })
    )
  }

  /** Rechecks the view subscriptions of the connections `match` admits; `known` leaves those whose view is computed. */
  const recheckAll = (match: (principal: unknown) => boolean, known: boolean) =>
    Effect.suspend(() => {
      const work: Array<Effect.Effect<number>> = []
      for (const connection of connections.all()) {
        const state = connection.state
        if (!match(state.principal)) continue
        const cached = views.of(connection)
        // a channel served whole before a deploy gave it a read rule
        for (const channel of state.channels) if (views.has(channel)) work.push(recheck(connection, channel, undefined))
        for (const [sub, hash] of state.subs ?? []) {
          if (!views.has(channelOfSub(sub)) || (known && cached.has(sub))) continue
          work.push(recheck(connection, sub, hash))
        }
      }
      return Effect.map(Effect.all(work), (counts) => counts.reduce((a, b) => a + b, 0))
    })

  const warm = Effect.suspend(() => {
    if (!cold) return Effect.void
    cold = false
    return recheckAll(() => true, true)
  })

  const exclusive = <A, E, R>(self: Effect.Effect<A, E, R>) => lock.withPermits(1)(cold ? Effect.andThen(warm, self) : self)

  const install = storage.transaction(Effect.try({
    try: () => installSync(storage, channels, views.has),
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
          storage.rawUnsafe(ChangeLog.COMPACT, feed.published, feed.published)
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
      const results = views.has(push.channel.name) ? readable(run.results, push.channel.name, sender) : run.results
      return { _tag: "Decided", results, next: run.next, version: run.version, withheld } satisfies Batch.Decided
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

  /**
   * An action's reply rows, as its sender may read them: the rows some view
   * of its subscriptions to the channel admits (none without one). An action
   * may write a row its author cannot read: it is applied, without the row.
   */
  const readable = (results: ReadonlyArray<Applied | Refused>, channel: string, sender: SyncConnection) => {
    const rules: Array<Rule.Compiled> = []
    for (const [sub, view] of views.of(sender)) if (channelOfSub(sub) === channel) rules.push(view.rule)
    return results.map((r) => ("rows" in r && r.rows.length > 0 ? { ...r, rows: ViewSync.visible(r.rows, rules) } : r))
  }

  const subscribe = Effect.fn("Reconciliation.subscribe")(function*(
    connection: SyncConnection,
    channel: Channel.Any,
    request: SubscribeRequest
  ) {
    return yield* exclusive(Effect.gen(function*() {
      yield* flushUnlocked
      const log = logs.get(channel.name)
      if (log === undefined) return yield* new StorageError({ message: `channel ${channel.name} is not installed`, cause: null })
      const version = feed.published
      const { since, history: cursorHistory, sub } = request
      // decided under the lock: an access change the app reports after this sees the subscription registered
      const principal = connection.state.principal
      const allowed = yield* Effect.exit(views.authorize(principal, channel.name, request.params))
      if (Exit.isFailure(allowed)) {
        // kept as refused (when there is room): a later refreshAccess that allows it tells the client to Resync
        yield* broadcast.subscribe(connection, channel.name, { sub, hash: REFUSED })
        views.of(connection).delete(sub)
        return yield* Effect.failCause(allowed.cause)
      }
      const view = yield* views.compute(principal, channel.name, request.params, log.info.columns)
      const registered = yield* broadcast.subscribe(
        connection,
        channel.name,
        view === undefined && sub === channel.name ? undefined : { sub, hash: view?.hash ?? "" }
      )
      if (!registered) {
        return yield* new SyncFailure({
          reason: "TooManySubscriptions",
          message: `this connection holds as many subscriptions as it can keep; open another socket for more`,
          requestId: null,
          channel: channel.name
        })
      }
      if (view !== undefined) views.of(connection).set(sub, view)
      else views.of(connection).delete(sub)
      if (view !== undefined) {
        const history = Views.historyOf(feed.history, view)
        const how = viewAnswer(request, view, version)
        const changes = yield* Effect.try({ try: () => ViewSync.answer(storage, log, view.rule, how, version), catch: storageError })
        const problem = log.check(changes.rows)
        if (problem !== undefined) yield* Effect.logError(`effect-partysync: rows in ${channel.table} do not match the channel's record: ${problem}`)
        const reset = how._tag === "Reset"
        yield* broadcast.sendSync(connection, changes, reset, history, sub, true)
        return { reset, version }
      }
      const reset = Histories.needsReset({ ...feed, version }, since, cursorHistory)
      const changes: ChannelChanges = yield* Effect.try({
        try: () => {
          if (!reset) return { ...ChangeLog.foldChanges(channel.name, storage.rawUnsafe(log.query, since!), log.info.view), version }
          const rows = storage.rawUnsafe(log.all) as Array<ReadonlyArray<unknown>>
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
      yield* broadcast.sendSync(connection, changes, reset, feed.history, sub)
      return { reset, version }
    }))
  })

  /** How a view's cursor is answered: resumed, diffed against the held ids (another rule), or reset. */
  const viewAnswer = (request: SubscribeRequest, view: Views.View, version: number): ViewSync.Answer => {
    const { since, history, held } = request
    const prefix = `${feed.history}.`
    if (since === null || held === undefined || history === undefined || !history.startsWith(prefix)) return { _tag: "Reset" }
    if (since < feed.horizon || since > version) return { _tag: "Reset" }
    return history === Views.historyOf(feed.history, view) ? { _tag: "Resume", since, held } : { _tag: "Diff", since, held }
  }

  const refreshAccess = (match: (principal: unknown) => boolean = () => true) =>
    exclusive(Effect.gen(function*() {
      // publish what is committed under the rules its subscribers hold, then check the rules
      yield* flushUnlocked.pipe(Effect.catch((e) => Effect.logWarning("effect-partysync: publishing before an access refresh failed", e)))
      return yield* recheckAll(match, false)
    }))

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
    refreshAccess,
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
const installSync = (storage: StorageShape, channels: ReadonlyMap<string, Channel.Any>, isView: (channel: string) => boolean) => {
  const before = storage.usage()
  // the first release's bookkeeping: start over with a new history
  const legacy = ChangeLog.LEGACY_TABLES.some((t) => exists(storage, t))
  if (legacy) {
    for (const t of [...ChangeLog.LEGACY_TABLES, ...Legacy.TABLES, "_psync_meta"]) storage.rawUnsafe(`DROP TABLE IF EXISTS ${t}`)
  }
  for (const statement of ChangeLog.SCHEMA) storage.rawUnsafe(statement)
  Legacy.install(storage)
  const { logs, rebuilt } = Capture.install(storage, channels, isView)
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
  storage.rawUnsafe(ChangeLog.COMPACT, feed.published, feed.published)
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
