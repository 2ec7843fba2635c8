/**
 * How Reconciliation answers a Subscribe: a cursor of the current history
 * is resumed from the change log, a view's cursor as its rule decides
 * (`ViewSync.ts`), and any other gets a reset read in chunks
 * (`FullSync.ts`). Apart from capture and publishing because it only reads
 * what they left: it publishes what is committed first, under the write
 * lock, so that the answer and the live changes after it meet at one
 * version.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import type * as Channel from "../protocol/Channel.ts"
import type { RowId } from "../protocol/Protocol.ts"
import type { Broadcast } from "./Broadcast.ts"
import type * as Capture from "./Capture.ts"
import * as ChangeLog from "./ChangeLog.ts"
import type { SyncConnection } from "./Connections.ts"
import { type NotAuthorized, StorageError, storageError, type SyncFailure } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import * as FullSync from "./FullSync.ts"
import * as Histories from "./Histories.ts"
import type { StorageShape } from "./Storage.ts"
import type { SyncOptions } from "./SyncConfig.ts"
import * as Views from "./Views.ts"
import type * as ViewAccess from "./ViewAccess.ts"
import * as ViewSync from "./ViewSync.ts"

/** How a Subscribe's full answer is read: the connection's read rule, and the turns it takes with other work. */
export interface SubscribeOptions {
  readonly filter?: FullSync.RowFilter | undefined
  /** Without it, every chunk is read in a row. */
  readonly pacing?: FullSync.Pacing | undefined
}

/** How a Subscribe was answered. */
export type Answered = { readonly reset: boolean; readonly version: number }

/** What answering a Subscribe needs from Reconciliation. */
export interface SubscribeContext {
  readonly storage: StorageShape
  readonly broadcast: Broadcast["Service"]
  readonly access: ReturnType<typeof ViewAccess.make>
  readonly config: SyncOptions
  readonly logOf: (channel: string) => Capture.ChannelLog | undefined
  /** The feed's identity and position now. */
  readonly feed: () => Histories.FeedState
  /** Channels whose rows no check has seen yet (`FullSync.AnswerContext.unchecked`). */
  readonly unchecked: Set<string>
  /** Runs its argument under the write lock. */
  readonly exclusive: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Publishes what was committed but not published yet (call it under the lock). */
  readonly flush: Effect.Effect<void, StorageError>
}

/** Answers a Subscribe. */
export type Subscribe = (
  connection: SyncConnection,
  channel: Channel.Any,
  request: ViewAccess.SubscribeRequest,
  options?: SubscribeOptions
) => Effect.Effect<Answered, StorageError | SyncFailure | Views.ViewFailed | NotAuthorized>

/** The Subscribe answer of one object's Reconciliation. */
export const make = (ctx: SubscribeContext): Subscribe => {
  const { storage, broadcast, access, exclusive } = ctx

  /** What a view's full answer adds: its rule as the read's filter, its catch-up, and a check of its access between chunks. */
  const viewAnswer = (connection: SyncConnection, channel: Channel.Any, log: Capture.ChannelLog, request: ViewAccess.SubscribeRequest, view: Views.View) => {
    const sent = new Set<RowId>()
    return {
      filter: view.rule.everything ? undefined : { where: view.rule.where, params: view.rule.params },
      // the rows changed since the read began that the rule admits now, and the removal of those it sent and no longer does
      changesAfter: (after: number): ChannelChanges => {
        const changed = ChangeLog.foldChanges(channel.name, storage.rawUnsafe(log.query, after), log.info.view)
        const rows = changed.rows.filter(view.rule.test)
        const deleted = [...changed.rows.filter((row) => !view.rule.test(row)).map((row) => row[0] as RowId), ...changed.deleted]
          .filter((id) => sent.has(id))
        return { channel: channel.name, rows, rowVersions: rows.map(() => 0), deleted, deletedVersions: deleted.map(() => 0), version: ctx.feed().published }
      },
      view: {
        sub: request.sub,
        history: (history: string) => Views.historyOf(history, view),
        sent,
        stale: access.staleness(connection, channel, log, request, view),
        resync: access.resync(connection, channel.name, request.sub)
      }
    }
  }

  return Effect.fn("Reconciliation.subscribe")(function*(
    connection: SyncConnection,
    channel: Channel.Any,
    request: ViewAccess.SubscribeRequest,
    options: SubscribeOptions = {}
  ) {
    const resumed = yield* exclusive(Effect.gen(function*() {
      yield* ctx.flush
      const log = ctx.logOf(channel.name)
      if (log === undefined) return yield* new StorageError({ message: `channel ${channel.name} is not installed`, cause: null })
      const version = ctx.feed().published
      const { since, history: cursorHistory, sub } = request
      // decided under the lock: an access change the app reports after this sees the subscription registered
      const view = yield* access.prepare(connection, channel, log, request)
      if (view !== undefined) {
        const how = access.answerOf(request, view, version)
        // a reset is read in chunks, taking turns with other work (below)
        if (how._tag === "Reset") {
          yield* access.room(connection, channel.name, sub)
          return { _tag: "Full" as const, log, view }
        }
        yield* access.register(connection, channel.name, sub, view)
        const changes = yield* Effect.try({ try: () => ViewSync.answer(storage, log, view.rule, how, version), catch: storageError })
        const problem = log.check(changes.rows)
        if (problem !== undefined) yield* FullSync.reportMismatch(channel.table, problem)
        yield* broadcast.sendSync(connection, changes, false, Views.historyOf(ctx.feed().history, view), sub, true)
        return { _tag: "Answered" as const, reset: false, version }
      }
      if (Histories.needsReset({ ...ctx.feed(), version }, since, cursorHistory)) {
        yield* access.room(connection, channel.name, sub)
        return { _tag: "Full" as const, log, view: undefined }
      }
      const changes: ChannelChanges = yield* Effect.try({
        try: () => ({ ...ChangeLog.foldChanges(channel.name, storage.rawUnsafe(log.query, since!), log.info.view), version }),
        catch: storageError
      })
      // rows written outside onAction while nobody listened are checked here, where they are first served
      const problem = log.check(changes.rows)
      if (problem !== undefined) yield* FullSync.reportMismatch(channel.table, problem)
      yield* access.register(connection, channel.name, sub, undefined)
      yield* broadcast.sendSync(connection, changes, false, ctx.feed().history, sub)
      return { _tag: "Answered" as const, reset: false, version }
    }))
    if (resumed._tag === "Answered") return { reset: resumed.reset, version: resumed.version } satisfies Answered
    const { log, view } = resumed
    const { sub } = request
    const version = yield* FullSync.answer({
      storage,
      log,
      connection,
      exclusive,
      flush: ctx.flush,
      feed: ctx.feed,
      unchecked: ctx.unchecked,
      config: ctx.config,
      subscribe: access.register(connection, channel.name, sub, view),
      ...options,
      ...(view === undefined ? {} : viewAnswer(connection, channel, log, request, view))
    })
    return { reset: true, version }
  })
}
