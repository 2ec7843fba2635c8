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
 * The log keeps about one entry per row (`Compaction.ts`), so a resume reads
 * what changed, not every write to it.
 *
 * Views (`ViewAccess.ts`): a subscription of a channel with a read rule is
 * answered and fed only what its rule admits; install and GC are in
 * `Housekeeping.ts`, the answer to a Subscribe in `SubscribeAnswer.ts`.
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
import * as Compaction from "./Compaction.ts"
import { gcSync, installSync } from "./Housekeeping.ts"
import { Connections, type SyncConnection } from "./Connections.ts"
import { type NotAuthorized, type StorageError, storageError, SyncFailure } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import * as Histories from "./Histories.ts"
import { type SqlValue, Storage, type StorageUsage } from "./Storage.ts"
import * as SubscribeAnswer from "./SubscribeAnswer.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"
import * as Views from "./Views.ts"
import * as ViewAccess from "./ViewAccess.ts"

export type { SubscribeOptions } from "./SubscribeAnswer.ts"
export type { SubscribeRequest } from "./ViewAccess.ts"

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
   * sends it every change after its cursor that its view admits; a reset is
   * read in chunks (`FullSync.ts`), paced by `options`. Fails with
   * `SyncFailure` when the connection cannot hold one more subscription,
   * `NotAuthorized` when the channel's `authorize` refuses it and
   * `ViewFailed` when its read rule fails.
   */
  readonly subscribe: (
    connection: SyncConnection,
    channel: Channel.Any,
    request: ViewAccess.SubscribeRequest,
    options?: SubscribeAnswer.SubscribeOptions
  ) => Effect.Effect<{ readonly reset: boolean; readonly version: number }, StorageError | SyncFailure | Views.ViewFailed | NotAuthorized>
  /**
   * Computes again the views of the connections whose principal `match`
   * admits (every connection without it): a subscription whose rule changed
   * stops receiving changes and is told to `Resync`. Returns how many were.
   */
  readonly refreshAccess: (match?: (principal: unknown) => boolean) => Effect.Effect<number>
  /** Removes old tombstones and log entries, compacts the log and forgets idle clients. */
  readonly gc: (now: number) => Effect.Effect<GcResult, StorageError>
  /** Waits for the log compaction the last publish scheduled, if any (it runs in a turn of its own). */
  readonly compacted: Effect.Effect<void>
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
  const logs = new Map<string, Capture.ChannelLog>()
  // channels whose table may hold rows no check has seen: every one at install (rows from before capture, or from
  // migrations), and any a flush skipped; a full sync answer that finds them all valid takes its channel out
  const unchecked = new Set<string>()
  let feed: Histories.FeedState = { history: "", published: 0, horizon: 0 }
  // the mark as stored: a batch's commit stores it only every MARK_EVERY versions
  let stored = 0
  const ledger = Batch.makeLedgerState()

  const access = ViewAccess.make({ views, broadcast, connections, channels, logOf: (channel) => logs.get(channel), feed: () => feed })

  const exclusive = <A, E, R>(self: Effect.Effect<A, E, R>) =>
    lock.withPermits(1)(Effect.suspend(() => (access.isCold() ? Effect.andThen(access.warm, self) : self)))

  const compaction = Compaction.make({ storage, exclusive, published: () => feed.published, scope: yield* Effect.scope })

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
      compaction.reset(size)
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

  const publish = (changes: ReadonlyArray<ChannelChanges>, version: number, wrote: boolean, entries: Capture.Entries, sender?: SyncConnection) =>
    Effect.map(broadcast.publish(changes, sender), (withheld) => {
      // versions are the log's keys, and a rolled-back write frees its own: each version published is one entry
      compaction.wrote(Math.max(0, version - feed.published), entries)
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
      const withheld = yield* publish(run.changes, run.version, run.stored, run.entries, sender)
      yield* compaction.soon
      const results = access.readable(run.results, push.channel.name, sender)
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
    return Effect.andThen(report, publish(collected.changes, collected.version, wrote, collected.entries)).pipe(
      Effect.andThen(compaction.soon)
    )
  }).pipe(Effect.asVoid, Effect.mapError(storageError))

  const subscribe = SubscribeAnswer.make({
    storage,
    broadcast,
    access,
    config,
    logOf: (channel) => logs.get(channel),
    feed: () => feed,
    unchecked,
    exclusive,
    flush: flushUnlocked
  })

  const refreshAccess = (match: (principal: unknown) => boolean = () => true) =>
    exclusive(Effect.gen(function*() {
      // publish what is committed under the rules its subscribers hold, then check the rules
      yield* flushUnlocked.pipe(Effect.catch((e) => Effect.logWarning("effect-partysync: publishing before an access refresh failed", e)))
      return yield* access.recheckAll(match, false)
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
      compaction.reset(result.kept)
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
      yield* publish(captured.changes, captured.version, wrote, captured.entries)
      yield* compaction.soon
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
    gc,
    compacted: compaction.compacted
  } satisfies ReconciliationShape
})

/** The Reconciliation service. */
export class Reconciliation extends Context.Service<Reconciliation, ReconciliationShape>()("effect-partysync/Reconciliation") {
  /** Reconciliation over Storage, publishing through Broadcast. */
  static readonly layer = Layer.effect(Reconciliation, make)
}

/** Row values SQLite may hold, re-exported for handler authors. */
export type { SqlValue }
