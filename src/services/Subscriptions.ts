/**
 * Subscribes and Unsubscribes on a connection's lane. Sync answers are the
 * expensive frames, so they are bounded three ways:
 * - per connection and subscription: two answers at once, then one per
 *   `minSyncIntervalMs` (more get `TooManyInFlight`, which clients retry;
 *   the resubscribe a `Resync` asked for is exempt), and a Subscribe for a
 *   subscription that has one waiting merges into it;
 * - a full sync (a reset) is read in chunks, one per turn of the scheduler,
 *   so other connections' work runs between them (`FullSync.ts`); a
 *   connection alone in the object reads larger chunks, as nobody waits for
 *   its turns (asked before each chunk);
 * - full syncs in progress at once are bounded per room and per connection
 *   (`SyncBudget.ts`): past that they wait, and are never refused for it.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import type * as Channel from "../protocol/Channel.ts"
import { type RowId, type Subscribe, subOf, type Unsubscribe } from "../protocol/Protocol.ts"
import * as Batch from "./Batch.ts"
import type { Broadcast } from "./Broadcast.ts"
import type { SyncConnection } from "./Connections.ts"
import type { SyncFailure } from "./Errors.ts"
import type * as FullSync from "./FullSync.ts"
import type * as Lanes from "./Lanes.ts"
import type { Limits } from "./Limits.ts"
import type { Reconciliation } from "./Reconciliation.ts"
import { fail, newerThanServer, tell, withSub } from "./Refusals.ts"
import * as SyncBudget from "./SyncBudget.ts"
import type { SyncOptions } from "./SyncConfig.ts"
import * as Views from "./Views.ts"

/** Sync answers a connection gets per channel before `minSyncIntervalMs` applies. */
const SYNC_BURST = 2

/** What the Subscribe side of dispatch works with. */
export interface SubscriptionsContext {
  readonly channels: ReadonlyMap<string, Channel.Any>
  readonly config: SyncOptions
  readonly reconciliation: Reconciliation["Service"]
  readonly broadcast: Broadcast["Service"]
  readonly limits: Limits["Service"]
  readonly lanes: Lanes.Lanes
  readonly views: Views.ViewsShape
  /** True when no other connection is open in the object. */
  readonly alone: (connection: SyncConnection) => boolean
}

/** How a frame was accepted: the wait for its unit, or undefined when it needed none. */
export type Accepted = Effect.Effect<void> | undefined

/** The Subscribe side of dispatch. */
export const make = (ctx: SubscriptionsContext) => {
  const { channels, config, reconciliation, limits, lanes, views } = ctx
  const syncLimit = Math.max(2, 2 * channels.size)
  const budget = SyncBudget.make({ room: config.maxFullSyncsPerRoom, connection: config.maxFullSyncsPerConnection }, limits)

  /** Per connection and channel: how many answers, and when the last one went (keyed by the connection itself). */
  const syncsSent = new WeakMap<SyncConnection, Map<string, { count: number; last: number }>>()
  const rateLimited = (connection: SyncConnection, channel: string): string | undefined => {
    let byChannel = syncsSent.get(connection)
    if (byChannel === undefined) syncsSent.set(connection, (byChannel = new Map()))
    const now = Date.now()
    const seen = byChannel.get(channel)
    if (seen === undefined) {
      byChannel.set(channel, { count: 1, last: now })
      return undefined
    }
    if (seen.count < SYNC_BURST || now - seen.last >= config.minSyncIntervalMs) {
      seen.count++
      seen.last = now
      return undefined
    }
    return `sync answers for ${channel} are limited to one per ${config.minSyncIntervalMs} ms on a connection; retry later`
  }

  type Waiting = { since: number | null; history: string | undefined; held: ReadonlyArray<RowId> | undefined }

  /**
   * The rows a full sync's next chunk reads in this turn (0: give the turn
   * away first): one chunk of `syncRowsPerTurn` a turn, or while the
   * connection is alone in the object up to `syncRowsPerTurnAlone` a turn
   * within half a frame's bytes. Its first chunk is `syncRowsPerTurn` rows,
   * which shows how large they are; a turn may then read on, sized by bytes,
   * so wide rows never make a turn larger than `syncRowsPerTurn` of them.
   */
  const rowsPerTurn = (connection: SyncConnection, progress: FullSync.Progress): number => {
    const per = config.syncRowsPerTurn
    const { bytesPerRow, rowsInTurn, bytesInTurn } = progress
    if (bytesPerRow === undefined) return per
    if (!(config.syncRowsPerTurnAlone > per) || !ctx.alone(connection)) return rowsInTurn === 0 ? per : 0
    const left = Math.min(config.syncRowsPerTurnAlone - rowsInTurn, Math.floor((config.maxOutboundFrameBytes / 2 - bytesInTurn) / bytesPerRow))
    // within a turn, read on only while a chunk of `syncRowsPerTurn` still fits
    return rowsInTurn === 0 ? Math.max(per, left) : left >= per ? left : 0
  }

  const answer = (connection: SyncConnection, message: Subscribe, lane: Lanes.Lane, sub: string, request: Waiting, turns: Lanes.Turns) =>
    Effect.gen(function*() {
      if (lane.waiting.get(sub) === request) lane.waiting.delete(sub)
      const named = (e: SyncFailure) => (sub === message.channel ? e : withSub(e, sub))
      const channel = channels.get(message.channel)
      if (channel === undefined) return yield* Effect.fail(named(fail("UnknownChannel", `unknown channel ${JSON.stringify(message.channel)}`, message.channel)))
      if (message.schema !== undefined && message.schema < channel.version) {
        return yield* Effect.fail(named(fail(
          "Outdated",
          `this client was built for version ${message.schema} of channel ${channel.name}; the server has version ${channel.version}: reload the app`,
          channel.name
        )))
      }
      const newer = newerThanServer(message.schema, channel)
      if (newer !== undefined) return yield* Effect.fail(named(newer))
      const params = Views.decodeParams(channel, message.params)
      if (Result.isFailure(params)) return yield* Effect.fail(named(fail("InvalidParams", params.failure, channel.name)))
      // a full answer waits (away from the scheduler) for a place in the budget, then reads a chunk per turn
      const queued = () => limits.hit("fullSyncQueued", { connection, id: connection.id, principal: lane.principal })
      const pacing: FullSync.Pacing = {
        around: (full) => budget.within(connection, lane.principal, queued, full, turns.away),
        rows: (progress) => rowsPerTurn(connection, progress),
        turn: turns.turn
      }
      yield* reconciliation.subscribe(connection, channel, { ...request, sub, params: params.success }, { pacing }).pipe(
        Effect.mapError((e) =>
          named(
            e._tag === "SyncFailure"
              ? e
              : e._tag === "NotAuthorized"
              ? fail("NotAuthorized", e.message, channel.name)
              : e._tag === "ViewFailed"
              ? fail("HandlerFailed", e.message, channel.name)
              : fail("Unavailable", Batch.messageOf(e), channel.name)
          )
        )
      )
    }).pipe(Effect.catchTag("SyncFailure", (e: SyncFailure) => tell(connection, e)))

  /** A Subscribe: merged into one waiting, refused over the limits, or queued as a unit. */
  const subscribe = (connection: SyncConnection, lane: Lanes.Lane, message: Subscribe): Effect.Effect<Accepted, SyncFailure> =>
    Effect.suspend(() => {
      if (!channels.has(message.channel)) return Effect.fail(fail("UnknownChannel", `unknown channel ${JSON.stringify(message.channel)}`, message.channel))
      const sub = subOf(message.channel, message.params)
      if (sub.length > 1024) {
        return Effect.fail(fail("InvalidParams", "the params are longer than a subscription's name may be (1,024 characters as JSON)", message.channel))
      }
      if (message.sub !== undefined && message.sub !== sub) {
        return Effect.fail(withSub(fail("InvalidParams", "the subscription's name does not match its params", message.channel), message.sub))
      }
      const named = (e: SyncFailure) => (sub === message.channel ? e : withSub(e, sub))
      const waiting = lane.waiting.get(sub)
      if (waiting !== undefined) {
        // the waiting one will answer for both: from the older cursor, or a reset when they disagree
        if (message.since === null || waiting.since === null || message.history !== waiting.history || waiting.held !== undefined || message.held !== undefined) {
          waiting.since = null
          waiting.history = undefined
          waiting.held = undefined
        } else waiting.since = Math.min(waiting.since, message.since)
        return Effect.succeed(undefined)
      }
      // a subscription the server told to resync comes back at once, whatever the rate
      const limited = lane.syncs >= syncLimit
        ? `more than ${syncLimit} subscriptions waiting`
        : views.resyncs(connection).delete(sub) ? undefined : rateLimited(connection, sub)
      if (limited !== undefined) {
        limits.hit("syncRate", { connection, id: connection.id, principal: lane.principal })
        return Effect.fail(named(fail("TooManyInFlight", limited, message.channel)))
      }
      const request: Waiting = { since: message.since, history: message.history, held: message.held === undefined ? undefined : [...new Set(message.held)] }
      lane.waiting.set(sub, request)
      lane.syncs++
      return Effect.succeed(lanes.enqueue(lane, (turns) =>
        Effect.ensuring(
          answer(connection, message, lane, sub, request, turns),
          Effect.sync(() => {
            lane.syncs--
          })
        )))
    })

  /** An Unsubscribe: queued behind the lane's earlier work. */
  const unsubscribe = (connection: SyncConnection, lane: Lanes.Lane, message: Unsubscribe): Effect.Effect<Accepted> =>
    Effect.sync(() => {
      // a later Subscribe must not merge into one from before this Unsubscribe
      lane.waiting.delete(message.sub ?? message.channel)
      const channel = channels.get(message.channel)
      return lanes.enqueue(lane, () =>
        channel === undefined
          ? tell(connection, fail("UnknownChannel", `unknown channel ${JSON.stringify(message.channel)}`, message.channel))
          : ctx.broadcast.unsubscribe(connection, channel.name, message.sub))
    })

  return { subscribe, unsubscribe, budget }
}
