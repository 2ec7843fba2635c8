/**
 * The view side of Reconciliation: who may hold which subscription under
 * which rule. It prepares a subscription (authorize, then compute its rule)
 * and registers it on the connection, rechecks the rules of open ones
 * (after a wake, and when the app calls `refreshAccess`), filters an
 * action's reply rows for its sender and picks how a view's cursor is
 * answered.
 *
 * A subscription whose rule changed stops receiving changes and its client
 * is told to `Resync`; one the channel's `authorize` refused is kept as
 * refused, so that a later access change that allows it can say so.
 *
 * Runs under Reconciliation's write lock; no service of its own.
 *
 * @since 0.3.0
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Channel from "../protocol/Channel.ts"
import { type Applied, channelOfSub, paramsOfSub, type Refused, type RowId } from "../protocol/Protocol.ts"
import type { Broadcast } from "./Broadcast.ts"
import type { ChannelLog } from "./Capture.ts"
import type { Connections, SyncConnection } from "./Connections.ts"
import { type NotAuthorized, SyncFailure } from "./Errors.ts"
import type { FeedState } from "./Histories.ts"
import type * as Rule from "./Rule.ts"
import * as Views from "./Views.ts"
import * as ViewSync from "./ViewSync.ts"

/** The rule hash a connection's state keeps for a subscription its channel's `authorize` refused. */
export const REFUSED = "!"

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

/** What the view side needs from Reconciliation. */
export interface ViewAccessDeps {
  readonly views: Views.ViewsShape
  readonly broadcast: Broadcast["Service"]
  readonly connections: Connections["Service"]
  readonly channels: ReadonlyMap<string, Channel.Any>
  readonly logOf: (channel: string) => ChannelLog | undefined
  readonly feed: () => FeedState
}

/** The view side of one object's Reconciliation. */
export const make = ({ views, broadcast, connections, channels, logOf, feed }: ViewAccessDeps) => {
  // subscriptions opened before this start (the object slept) have their rules computed again before any publish
  let cold = views.any

  // counts access refreshes: a full answer in progress checks its rule again only after one
  let epoch = 0

  /**
   * Authorizes a subscription and computes its rule (undefined for a channel
   * without one). A refusal is kept on the connection as refused.
   */
  const prepare = (connection: SyncConnection, channel: Channel.Any, log: ChannelLog, request: SubscribeRequest) =>
    Effect.gen(function*() {
      const { sub } = request
      const principal = connection.state.principal
      const allowed = yield* Effect.exit(views.authorize(principal, channel.name, request.params))
      if (Exit.isFailure(allowed)) {
        // kept as refused (when there is room): a later refreshAccess that allows it tells the client to Resync
        yield* broadcast.subscribe(connection, channel.name, { sub, hash: REFUSED })
        views.of(connection).delete(sub)
        return yield* Effect.failCause(allowed.cause as Cause.Cause<NotAuthorized>)
      }
      return yield* views.compute(principal, channel.name, request.params, log.info.columns)
    })

  const tooMany = (channel: string) =>
    new SyncFailure({
      reason: "TooManySubscriptions",
      message: `this connection holds as many subscriptions as it can keep; open another socket for more`,
      requestId: null,
      channel
    })

  /** Starts the subscription's live changes under its view (fails when the connection cannot hold one more). */
  const register = (connection: SyncConnection, channel: string, sub: string, view: Views.View | undefined) =>
    Effect.gen(function*() {
      const plain = view === undefined && sub === channel
      const registered = yield* broadcast.subscribe(connection, channel, plain ? undefined : { sub, hash: view?.hash ?? "" })
      if (!registered) return yield* tooMany(channel)
      if (view !== undefined) views.of(connection).set(sub, view)
      else views.of(connection).delete(sub)
    })

  /** Refuses at once a subscription the connection could not hold (before a full answer goes out for nothing). */
  const room = (connection: SyncConnection, channel: string, sub: string) =>
    broadcast.fits(connection, sub) ? Effect.void : Effect.fail(tooMany(channel))

  /** Tells a subscription's client to subscribe again (its next Subscribe is exempt from the rate limit). */
  const resync = (connection: SyncConnection, channel: string, sub: string) =>
    Effect.suspend(() => {
      views.resyncs(connection).add(sub)
      return broadcast.send(connection, sub === channel ? { _tag: "Resync", channel } : { _tag: "Resync", channel, sub })
    })

  /** For a full answer under `view`: whether an access refresh since it began changed the subscription's rule. */
  const staleness = (connection: SyncConnection, channel: Channel.Any, log: ChannelLog, request: SubscribeRequest, view: Views.View) => {
    let seen = epoch
    return Effect.suspend(() => {
      if (seen === epoch) return Effect.succeed(false)
      seen = epoch
      return Effect.exit(prepare(connection, channel, log, request)).pipe(
        Effect.map((now) => Exit.isFailure(now) || now.value?.hash !== view.hash)
      )
    })
  }

  /** How a view's cursor is answered: resumed, diffed against the held ids (another rule), or reset. */
  const answerOf = (request: SubscribeRequest, view: Views.View, version: number): ViewSync.Answer => {
    const { since, history, held } = request
    const { history: current, horizon } = feed()
    if (since === null || held === undefined || history === undefined || !history.startsWith(`${current}.`)) return { _tag: "Reset" }
    if (since < horizon || since > version) return { _tag: "Reset" }
    return history === Views.historyOf(current, view) ? { _tag: "Resume", since, held } : { _tag: "Diff", since, held }
  }

  /**
   * A view subscription's rule, computed again: the same as the one its rows
   * were sent under, or the subscription stops and its client is told to
   * `Resync` (it subscribes again with the ids it holds). Returns 1 when told.
   */
  const recheck = (connection: SyncConnection, sub: string, hash: string | undefined): Effect.Effect<number> => {
    const channel = channelOfSub(sub)
    const log = logOf(channel)
    const stop = Effect.as(Effect.andThen(broadcast.unsubscribe(connection, channel, sub), resync(connection, channel, sub)), 1)
    if (log === undefined) return stop
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
        onFailure: () => stop,
        onSuccess: (view) => {
          if (view === undefined && hash === REFUSED) return Effect.succeed(0)
          if (view === undefined || view.hash !== hash) return stop
          views.of(connection).set(sub, view)
          return Effect.succeed(0)
        }
      })
    )
  }

  /** Rechecks the view subscriptions of the connections `match` admits; `known` leaves those whose view is computed. */
  const recheckAll = (match: (principal: unknown) => boolean, known: boolean) =>
    Effect.suspend(() => {
      if (!known) epoch++
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

  /** After a wake: the rules of the subscriptions the sockets kept, computed again (once). */
  const warm = Effect.suspend(() => {
    if (!cold) return Effect.void
    cold = false
    return recheckAll(() => true, true)
  })

  /**
   * An action's reply rows, as its sender may read them: the rows some view
   * of its subscriptions to the channel admits (none without one). An action
   * may write a row its author cannot read: it is applied, without the row.
   */
  const readable = (results: ReadonlyArray<Applied | Refused>, channel: string, sender: SyncConnection): ReadonlyArray<Applied | Refused> => {
    if (!views.has(channel)) return results
    const rules: Array<Rule.Compiled> = []
    for (const [sub, view] of views.of(sender)) if (channelOfSub(sub) === channel) rules.push(view.rule)
    return results.map((r): Applied | Refused => ("rows" in r && r.rows.length > 0 ? { ...r, rows: ViewSync.visible(r.rows, rules) } : r))
  }

  return { prepare, register, room, resync, staleness, answerOf, recheckAll, warm, readable, isCold: () => cold }
}
