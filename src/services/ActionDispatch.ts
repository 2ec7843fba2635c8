/**
 * ActionDispatch: one inbound frame, start to finish. It decodes the frame
 * with the Protocol Schema, looks the channel up among the declared ones,
 * and accepts it on its connection's lane (`Lanes.ts`). A push's actions
 * are prepared there, in order: each decoded with its channel's Schema (and
 * upgraded from an older version), authorized, and bound to the handler;
 * then the batch is decided in one transaction (`Batch.ts`) in its fair turn,
 * and answered with one `Pushed` reply. Bad input never reaches SQL, writes
 * nothing and leaves the connection usable.
 *
 * An action refused before it runs (not authorized, invalid, outdated, on a
 * read-only connection) is decided all the same: its refusal is its final
 * outcome, so the client's later actions are not held up behind it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Channel from "../protocol/Channel.ts"
import * as Result from "effect/Result"
import { ClientMessage, type ErrorReason, type Push, type RowId, type Subscribe, subOf } from "../protocol/Protocol.ts"
import { ActionHandler, Authorizer } from "./ActionHandler.ts"
import * as Batch from "./Batch.ts"
import { Broadcast } from "./Broadcast.ts"
import { Caller } from "./Caller.ts"
import { principalKey } from "./ClientLedger.ts"
import type { SyncConnection } from "./Connections.ts"
import { SyncFailure } from "./Errors.ts"
import { fitsIn } from "./Frames.ts"
import * as Lanes from "./Lanes.ts"
import { Reconciliation } from "./Reconciliation.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"
import * as Views from "./Views.ts"

/** Best effort: the channel and client id of a frame that failed to decode, so the error can name them. */
export const idsOf = (value: unknown): { channel: string | null; clientId?: string } => {
  if (typeof value !== "object" || value === null) return { channel: null }
  const { channel, clientId } = value as Record<string, unknown>
  const named = typeof channel === "string" && channel.length <= 128 ? channel : null
  return typeof clientId === "string" && clientId.length >= 1 && clientId.length <= 128 ? { channel: named, clientId } : { channel: named }
}

/** Sync answers a connection gets per channel before `minSyncIntervalMs` applies. */
const SYNC_BURST = 2

/** The ActionDispatch service. */
export class ActionDispatch extends Context.Service<ActionDispatch, {
  /** Handles one inbound frame. Never fails: every refusal becomes a `Failure` frame or a refused outcome. */
  readonly receive: (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView) => Effect.Effect<void>
}>()("effect-partysync/ActionDispatch") {
  /** ActionDispatch over Reconciliation, Broadcast and the application's handler. */
  static readonly layer = Layer.effect(ActionDispatch, Effect.suspend(() => make))
}

const make = Effect.gen(function*() {
  const channels = yield* Channels
  const config = yield* SyncConfig
  const reconciliation = yield* Reconciliation
  const broadcast = yield* Broadcast
  const handler = yield* ActionHandler
  const authorizer = yield* Authorizer
  const views = yield* Views.Views
  const lanes = Lanes.make()
  // each frame decoded by its own tag's Schema: a union would try the members in turn
  const decoders = new Map<unknown, (u: unknown) => Exit.Exit<ClientMessage, Schema.SchemaError>>(
    ClientMessage.members.map((member) => [member.fields._tag.schema.literal, Schema.decodeUnknownExit(member)] as const)
  )
  const actionDecoders = new Map<string, (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>>()
  for (const channel of channels.values()) actionDecoders.set(channel.name, Schema.decodeUnknownExit(channel.action))

  const fail = (reason: ErrorReason, message: string, channel: string | null = null, clientId?: string) =>
    new SyncFailure({ reason, message, requestId: null, channel, ...(clientId === undefined ? {} : { clientId }) })

  const withSub = (e: SyncFailure, sub: string) =>
    new SyncFailure({ reason: e.reason, message: e.message, requestId: e.requestId, channel: e.channel, sub })

  const refused = (connection: SyncConnection, e: SyncFailure) =>
    broadcast.send(connection, {
      _tag: "Failure",
      requestId: null,
      channel: e.channel,
      ...(e.sub === undefined ? {} : { sub: e.sub }),
      ...(e.clientId === undefined ? {} : { clientId: e.clientId }),
      reason: e.reason,
      message: e.message
    })

  /** A client built for a newer version of the channel than this server runs: a deploy is on its way, the client retries. */
  const newerThanServer = (schema: number | undefined, channel: Channel.Any, clientId?: string) =>
    schema !== undefined && schema > channel.version
      ? fail("Unavailable", `this client was built for version ${schema} of channel ${channel.name}; the server still runs version ${channel.version}`, channel.name, clientId)
      : undefined

  const decodeFrame = (frame: string | ArrayBuffer | ArrayBufferView): ClientMessage | SyncFailure => {
    if (typeof frame !== "string") return fail("UnknownMessage", "binary frames are not part of the protocol")
    if (!fitsIn(frame, config.maxInboundFrameBytes)) return fail("FrameTooLarge", `frame exceeds ${config.maxInboundFrameBytes} bytes`)
    // parsed here rather than through a JSON-string Schema: one parse serves both the decode and the ids a
    // refusal names, without the Schema's per-call wrapper
    let json: unknown
    try {
      json = JSON.parse(frame)
    } catch {
      return fail("MalformedJson", "frame is not valid JSON")
    }
    const decode = decoders.get((json as { _tag?: unknown } | null)?._tag)
    const exit = decode === undefined ? undefined : decode(json)
    if (exit !== undefined && Exit.isSuccess(exit)) return exit.value
    const ids = idsOf(json)
    if ((json as { _tag?: unknown })?._tag === "Action") {
      // a tab of the previous release: it keeps a temporary refusal's action queued, and the reloaded app sends it
      const requestId = (json as { requestId?: unknown }).requestId
      return new SyncFailure({
        reason: "Unavailable",
        message: "this server speaks a newer protocol: reload the app (queued actions are kept)",
        requestId: typeof requestId === "string" && requestId.length <= 128 ? requestId : null,
        channel: ids.channel
      })
    }
    const error = exit === undefined ? undefined : Cause.findErrorOption(exit.cause)
    return fail("UnknownMessage", `not a valid message: ${error?._tag === "Some" ? error.value.message : "unknown shape"}`, ids.channel, ids.clientId)
  }

  // ---------------------------------------------------------------- pushes

  /** An action's refusal before it runs, or its handler bound to its Caller. */
  const prepareAction = (
    connection: SyncConnection,
    channel: Channel.Any,
    clientId: string,
    entry: Push["actions"][number]
  ): Effect.Effect<Batch.PreparedAction<never>> => {
    const { seq } = entry
    const refuse = (reason: ErrorReason, message: string) => Effect.succeed({ seq, refused: { reason, message } })
    const readOnly = connection.state.readOnly
    if (readOnly === true || typeof readOnly === "string") return refuse("ReadOnly", typeof readOnly === "string" ? readOnly : "this connection is read-only")
    let encoded = entry.action
    if (entry.schema !== undefined && entry.schema < channel.version) {
      try {
        encoded = Channel.upgradeAction(channel, entry.schema, entry.action)
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error)
        return refuse("Outdated", `this action was encoded for version ${entry.schema} of channel ${channel.name} and cannot be upgraded to ${channel.version}: ${why}`)
      }
    }
    const decoded = actionDecoders.get(channel.name)!(encoded)
    if (Exit.isFailure(decoded)) {
      const error = Cause.findErrorOption(decoded.cause)
      const why = error._tag === "Some" ? error.value.message : "invalid action"
      // an older version's action that no declared step brings to this Schema
      return entry.schema !== undefined && entry.schema < channel.version
        ? refuse("Outdated", `this action was encoded for version ${entry.schema} of channel ${channel.name} and does not decode under version ${channel.version} (declare an upgrade step): ${why}`)
        : refuse("InvalidAction", why)
    }
    const action = decoded.value
    const principal = connection.state.principal
    const caller = Caller.of({ principal, connectionId: connection.id, clientId, seq, requestId: `${clientId}:${seq}` })
    const run = Effect.provideService(handler.run(channel, action), Caller, caller)
    return Effect.map(
      Effect.exit(authorizer.authorizeAction(principal, channel, action)),
      (authorized): Batch.PreparedAction<never> =>
        Exit.isSuccess(authorized) ? { seq, run } : { seq, refused: { reason: "NotAuthorized", message: Batch.classify(authorized.cause).message } }
    )
  }

  const acceptPush = (connection: SyncConnection, lane: Lanes.Lane, pushed: Push) => {
    const channel = channels.get(pushed.channel)
    if (channel === undefined) return Effect.fail(fail("UnknownChannel", `unknown channel ${JSON.stringify(pushed.channel)}`, pushed.channel, pushed.clientId))
    // as many actions as the connection's budget has room for: the rest stay undecided, and the reply's `next`
    // says to send them again (a push larger than the server's limit would otherwise never get through)
    const room = config.maxInFlightPerConnection - lane.actions
    if (room <= 0 && pushed.actions.length > 0) {
      return Effect.fail(fail("TooManyInFlight", `more than ${config.maxInFlightPerConnection} actions in flight`, channel.name, pushed.clientId))
    }
    const message = pushed.actions.length > room ? { ...pushed, actions: pushed.actions.slice(0, room) } : pushed
    const count = message.actions.length
    let newest: number | undefined
    for (const a of message.actions) if (a.schema !== undefined && (newest === undefined || a.schema > newest)) newest = a.schema
    const newer = newerThanServer(newest, channel, message.clientId)
    if (newer !== undefined) return Effect.fail(newer)
    for (let i = 1; i < count; i++) {
      if (message.actions[i]!.seq !== message.actions[i - 1]!.seq + 1) {
        return Effect.fail(fail("UnknownMessage", "a push's actions must have consecutive seqs", channel.name, message.clientId))
      }
    }
    lane.actions += count
    const release = Effect.sync(() => {
      lane.actions -= count
    })
    const prepared = Effect.map(
      Effect.forEach(message.actions, (entry) => prepareAction(connection, channel, message.clientId, entry)),
      (actions): Batch.PreparedPush<never> => ({
        channel,
        clientId: message.clientId,
        clientKey: message.clientKey,
        principal: connection.state.principal,
        confirmed: message.confirmed,
        skip: message.skip,
        actions
      })
    )
    const unit = (push: Batch.PreparedPush<never>) =>
      reconciliation.exclusive(reconciliation.decide(push, connection)).pipe(
        Effect.flatMap((decided) =>
          decided._tag === "Refused"
            ? refused(connection, decided.failure)
            : broadcast.pushed(connection, {
              _tag: "Pushed",
              channel: channel.name,
              clientId: message.clientId,
              version: decided.version,
              next: decided.next,
              results: decided.results
            }, decided.withheld)
        ),
        // the ledger itself failed: nothing was decided, so the client may push again
        Effect.catchTag("StorageError", (e) => refused(connection, fail("Unavailable", Batch.messageOf(e), channel.name, message.clientId))),
        Effect.ensuring(release)
      )
    return Effect.as(Effect.tap(Effect.onInterrupt(prepared, () => release), (push) => Effect.sync(() => lanes.enqueue(lane, unit(push)))), true)
  }

  // ---------------------------------------------------------------- subscriptions

  const syncLimit = Math.max(2, 2 * channels.size)

  /**
   * Sync answers are the expensive frames (a reset reads the whole table), so
   * each connection gets `SYNC_BURST` per channel at once, then one per
   * `minSyncIntervalMs`; a Subscribe over that is refused as `TooManyInFlight`,
   * which clients retry after a pause. Keyed by the connection itself.
   */
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

  const answer = (connection: SyncConnection, message: Subscribe, lane: Lanes.Lane, sub: string, request: Waiting) =>
    Effect.gen(function*() {
      if (lane.waiting.get(sub) === request) lane.waiting.delete(sub)
      const channel = channels.get(message.channel)
      if (channel === undefined) return yield* fail("UnknownChannel", `unknown channel ${JSON.stringify(message.channel)}`, message.channel)
      const named = (e: SyncFailure) => (sub === channel.name ? e : withSub(e, sub))
      if (message.schema !== undefined && message.schema < channel.version) {
        return yield* fail(
          "Outdated",
          `this client was built for version ${message.schema} of channel ${channel.name}; the server has version ${channel.version}: reload the app`,
          channel.name
        ).pipe(Effect.mapError(named))
      }
      const newer = newerThanServer(message.schema, channel)
      if (newer !== undefined) return yield* Effect.fail(named(newer))
      const params = Views.decodeParams(channel, message.params)
      if (Result.isFailure(params)) return yield* Effect.fail(named(fail("InvalidParams", params.failure, channel.name)))
      yield* reconciliation.subscribe(connection, channel, { ...request, sub, params: params.success }).pipe(
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
    }).pipe(Effect.catchTag("SyncFailure", (e) => refused(connection, e)))

  const acceptSubscribe = (connection: SyncConnection, lane: Lanes.Lane, message: Subscribe) => {
    const sub = subOf(message.channel, message.params)
    if (sub.length > 1024) return Effect.fail(fail("InvalidParams", "the params are longer than a subscription's name may be (1,024 characters as JSON)", message.channel))
    if (message.sub !== undefined && message.sub !== sub) {
      return Effect.fail(withSub(fail("InvalidParams", "the subscription's name does not match its params", message.channel), message.sub))
    }
    const waiting = lane.waiting.get(sub)
    if (waiting !== undefined) {
      // the waiting one will answer for both: from the older cursor, or a reset when they disagree
      if (message.since === null || waiting.since === null || message.history !== waiting.history || waiting.held !== undefined || message.held !== undefined) {
        waiting.since = null
        waiting.history = undefined
        waiting.held = undefined
      } else waiting.since = Math.min(waiting.since, message.since)
      return Effect.succeed(false)
    }
    const named = (e: SyncFailure) => (sub === message.channel ? e : withSub(e, sub))
    if (lane.syncs >= syncLimit) return Effect.fail(named(fail("TooManyInFlight", `more than ${syncLimit} subscriptions waiting`, message.channel)))
    // a subscription the server told to resync comes back at once, whatever the rate
    const limited = views.resyncs(connection).delete(sub) ? undefined : rateLimited(connection, sub)
    if (limited !== undefined) return Effect.fail(named(fail("TooManyInFlight", limited, message.channel)))
    const request: Waiting = { since: message.since, history: message.history, held: message.held === undefined ? undefined : [...new Set(message.held)] }
    lane.waiting.set(sub, request)
    lane.syncs++
    lanes.enqueue(lane, Effect.ensuring(answer(connection, message, lane, sub, request), Effect.sync(() => lane.syncs--)))
    return Effect.succeed(true)
  }

  // ---------------------------------------------------------------- frames

  /**
   * Each connection's frames are accepted one after another, in arrival
   * order: an authorizer that awaits must not let a later push overtake an
   * earlier one, and a Subscribe sent on reconnect is answered before the
   * pushes sent after it. Lanes are keyed by the connection itself: ids are
   * the client's choice.
   */
  const accept = (connection: SyncConnection, message: ClientMessage): Effect.Effect<void, SyncFailure> => {
    const lane = lanes.laneOf(connection, principalKey(connection.state.principal))
    lanes.begin(lane)
    const accepted: Effect.Effect<boolean, SyncFailure> = message._tag === "Push"
      ? acceptPush(connection, lane, message)
      : message._tag === "Subscribe"
      ? acceptSubscribe(connection, lane, message)
      : Effect.sync(() => {
        // a later Subscribe must not merge into one from before this Unsubscribe
        lane.waiting.delete(message.sub ?? message.channel)
        const channel = channels.get(message.channel)
        lanes.enqueue(lane, channel === undefined
          ? refused(connection, fail("UnknownChannel", `unknown channel ${JSON.stringify(message.channel)}`, message.channel))
          : broadcast.unsubscribe(connection, channel.name, message.sub))
        return true
      })
    return lane.preparing.withPermits(1)(accepted).pipe(
      Effect.onExit((exit) => Exit.isSuccess(exit) && exit.value ? Effect.void : Effect.sync(() => lanes.done(lane))),
      Effect.flatMap((queued) => (queued ? lanes.run : Effect.void))
    )
  }

  const receive = (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView) =>
    // suspended: a throw while decoding or checking becomes a logged defect, not a rejected onMessage
    Effect.suspend(() => {
      const message = decodeFrame(frame)
      return message instanceof SyncFailure ? Effect.fail(message) : accept(connection, message)
    }).pipe(
      Effect.catchCause((cause) => {
        const failure = Cause.findErrorOption(cause)
        if (failure._tag === "Some" && failure.value instanceof SyncFailure) {
          const e = failure.value
          // a tab of the previous release reads this refusal by its request id
          if (e.requestId !== null) {
            return broadcast.send(connection, { _tag: "Failure", requestId: e.requestId, channel: e.channel, reason: e.reason, message: e.message })
          }
          return refused(connection, e)
        }
        // no span here: this runs per frame, and the span and its stack trace cost more than a small action
        return Effect.logError("effect-partysync: frame handling failed", cause)
      })
    )

  return ActionDispatch.of({ receive })
})
