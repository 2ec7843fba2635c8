/**
 * ActionDispatch: one inbound frame, start to finish. It decodes the frame
 * with the Protocol Schema, looks the channel up among the declared ones,
 * decodes the action with that channel's Schema, authorizes it, runs the
 * handler in a transaction together with the client's sequence number, and
 * replies with an `Ack` or a typed `Failure`. Bad input never reaches SQL,
 * writes nothing and leaves the connection usable.
 *
 * An action's outcome is decided once: an applied action's re-send gets a
 * duplicate `Ack`, a refused one (by authorization or by its handler) the
 * same refusal, from the client ledger. The reply is sent under the write
 * lock, so no later change can reach the sender before it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import * as Channel from "../protocol/Channel.ts"
import { ActionRejected, NotAuthorized } from "../protocol/Errors.ts"
import { type Action, ClientMessage, type ErrorReason, type Subscribe, type WireRow } from "../protocol/Protocol.ts"
import { ActionHandler, Authorizer } from "./ActionHandler.ts"
import { Broadcast } from "./Broadcast.ts"
import { Caller } from "./Caller.ts"
import type { SyncConnection } from "./Connections.ts"
import { StorageError, SyncFailure } from "./Errors.ts"
import { fitsIn } from "./Frames.ts"
import { type ActionKey, type Claim, Reconciliation, type WriteResult } from "./Reconciliation.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"

const messageOf = (error: unknown): string => {
  // a failed statement: the engine's reason goes to the client, the statement's text stays in the server log
  if (error instanceof StorageError) return `storage error: ${error.cause instanceof Error ? error.cause.message : "the statement failed"}`
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" && error.message !== "") {
    return error.message
  }
  return String(error)
}

/** Best effort: the request id and channel of a frame that failed to decode, so the error can name them. */
export const idsOf = (value: unknown): { requestId: string | null; channel: string | null } => {
  if (typeof value !== "object" || value === null) return { requestId: null, channel: null }
  const { requestId, channel } = value as Record<string, unknown>
  return {
    requestId: typeof requestId === "string" && requestId.length <= 128 ? requestId : null,
    channel: typeof channel === "string" && channel.length <= 128 ? channel : null
  }
}

/** How a failed handler is reported: business refusals and denials are expected, the rest is logged with its cause. */
const classify = (cause: Cause.Cause<unknown>): { readonly reason: ErrorReason; readonly message: string; readonly expected: boolean } => {
  const found = Cause.findErrorOption(cause)
  const error = found._tag === "Some" ? found.value : Cause.squash(cause)
  if (error instanceof ActionRejected) return { reason: "ActionRejected", message: error.message, expected: true }
  if (error instanceof NotAuthorized) return { reason: "NotAuthorized", message: error.message, expected: true }
  if (error instanceof SyncFailure) return { reason: error.reason, message: error.message, expected: false }
  return { reason: "HandlerFailed", message: messageOf(error), expected: false }
}

/** Sync answers a connection gets per channel before `minSyncIntervalMs` applies. */
const SYNC_BURST = 2

/** One connection's queue of frames. */
interface Lane {
  readonly semaphore: Semaphore.Semaphore
  frames: number
  actions: number
  syncs: number
  /** Subscribes waiting in the lane, by channel: a later one merges into the waiting one. */
  readonly waiting: Map<string, { since: number | null; history: string | undefined }>
}

/** The ActionDispatch service. */
export class ActionDispatch extends Context.Service<ActionDispatch, {
  /** Handles one inbound frame. Never fails: every refusal becomes a `Failure` frame. */
  readonly receive: (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView) => Effect.Effect<void>
}>()("effect-partysync/ActionDispatch") {
  /** ActionDispatch over Reconciliation, Broadcast and the application's handler. */
  static readonly layer = Layer.effect(
    ActionDispatch,
    Effect.gen(function*() {
      const channels = yield* Channels
      const config = yield* SyncConfig
      const reconciliation = yield* Reconciliation
      const broadcast = yield* Broadcast
      const handler = yield* ActionHandler
      const authorizer = yield* Authorizer
      const decodeMessage = Schema.decodeUnknownExit(ClientMessage)
      const actionDecoders = new Map<string, (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>>()
      for (const channel of channels.values()) actionDecoders.set(channel.name, Schema.decodeUnknownExit(channel.action))

      const fail = (reason: ErrorReason, message: string, requestId: string | null = null, channel: string | null = null) =>
        new SyncFailure({ reason, message, requestId, channel })

      /** A client built for a newer version of the channel than this server runs: a deploy is on its way, the client retries. */
      const newerThanServer = (schema: number | undefined, channel: Channel.Any, requestId: string | null) =>
        schema !== undefined && schema > channel.version
          ? fail("Unavailable", `this client was built for version ${schema} of channel ${channel.name}; the server still runs version ${channel.version}`, requestId, channel.name)
          : undefined

      const lookup = (name: string, requestId: string | null): Channel.Any | SyncFailure =>
        channels.get(name) ?? fail("UnknownChannel", `unknown channel ${JSON.stringify(name)}`, requestId, name)

      const channelOf = (name: string, requestId: string | null) => {
        const channel = lookup(name, requestId)
        return channel instanceof SyncFailure ? Effect.fail(channel) : Effect.succeed(channel)
      }

      const decodeFrame = (frame: string | ArrayBuffer | ArrayBufferView): ClientMessage | SyncFailure => {
        if (typeof frame !== "string") {
          return fail("UnknownMessage", "binary frames are not part of the protocol")
        }
        if (!fitsIn(frame, config.maxInboundFrameBytes)) {
          return fail("FrameTooLarge", `frame exceeds ${config.maxInboundFrameBytes} bytes`, null, null)
        }
        // parsed here rather than through a JSON-string Schema: one parse serves both the decode and the ids a
        // refusal names, without the Schema's per-call wrapper
        let json: unknown
        try {
          json = JSON.parse(frame)
        } catch {
          return fail("MalformedJson", "frame is not valid JSON")
        }
        const exit = decodeMessage(json)
        if (Exit.isSuccess(exit)) return exit.value
        const ids = idsOf(json)
        const error = Cause.findErrorOption(exit.cause)
        return fail(
          "UnknownMessage",
          `not a valid message: ${error._tag === "Some" ? error.value.message : "unknown shape"}`,
          ids.requestId,
          ids.channel
        )
      }

      /** The reply to an action whose seq was already decided (or is not this client's to use). */
      const answer = (
        connection: SyncConnection,
        message: Action,
        claim: Exclude<Claim, { _tag: "New" }>,
        withheld: ReadonlyArray<string>
      ): Effect.Effect<void, SyncFailure | StorageError> => {
        const { requestId, channel } = message
        let failure: SyncFailure
        switch (claim._tag) {
          case "Decided": {
            const decision = claim.decision
            if (decision._tag === "Applied") {
              return Effect.flatMap(reconciliation.version, (version) =>
                broadcast.ack(connection, { _tag: "Ack", requestId, version, rows: [], duplicate: true }, withheld))
            }
            failure = fail(decision.reason, decision.message, requestId, channel)
            break
          }
          case "Mismatch":
            failure = fail("ClientMismatch", `client id ${JSON.stringify(message.clientId)} belongs to another client (its key differs)`, requestId, channel)
            break
          case "Expired":
            failure = fail(
              "ClientExpired",
              `the server no longer remembers client ${JSON.stringify(message.clientId)} and this action was first sent before it forgot: it may have been applied, so it is not applied again`,
              requestId,
              channel
            )
        }
        return Effect.suspend(() => {
          for (const frame of withheld) connection.send(frame)
          return Effect.fail(failure)
        })
      }

      /** The checks that need no storage, and the action decoded with its channel's Schema. */
      const prepare = (connection: SyncConnection, message: Action): SyncFailure | { readonly channel: Channel.Any; readonly action: unknown } => {
        const channel = lookup(message.channel, message.requestId)
        if (channel instanceof SyncFailure) return channel
        const readOnly = connection.state.readOnly
        if (readOnly === true || typeof readOnly === "string") {
          return fail("ReadOnly", typeof readOnly === "string" && readOnly !== "" ? readOnly : "this connection is read-only", message.requestId, channel.name)
        }
        const newer = newerThanServer(message.schema, channel, message.requestId)
        if (newer !== undefined) return newer
        let encoded = message.action
        if (message.schema !== undefined && message.schema < channel.version) {
          try {
            encoded = Channel.upgradeAction(channel, message.schema, message.action)
          } catch (error) {
            const why = error instanceof Error ? error.message : String(error)
            return fail("Outdated", `this action was encoded for version ${message.schema} of channel ${channel.name} and cannot be upgraded to ${channel.version}: ${why}`, message.requestId, channel.name)
          }
        }
        const decoded = actionDecoders.get(channel.name)!(encoded)
        if (Exit.isFailure(decoded)) {
          const error = Cause.findErrorOption(decoded.cause)
          return fail("InvalidAction", error._tag === "Some" ? error.value.message : "invalid action", message.requestId, channel.name)
        }
        return { channel, action: decoded.value }
      }

      type Outcome = { readonly claim: Claim; readonly rows: ReadonlyArray<WireRow> }

      // Written as a chain rather than a generator: it runs for every action, and each step allocates.
      const runAction = (connection: SyncConnection, message: Action): Effect.Effect<void, SyncFailure | StorageError> => {
        const prepared = prepare(connection, message)
        if (prepared instanceof SyncFailure) return Effect.fail(prepared)
        const { channel, action } = prepared
        const principal = connection.state.principal
        const key: ActionKey = { clientId: message.clientId, clientKey: message.clientKey, seq: message.seq, sentAt: message.sentAt }

        const refuse = (now: number, reason: ErrorReason, text: string): Effect.Effect<void, SyncFailure | StorageError> =>
          Effect.flatMap(reconciliation.refuse(key, reason, text, now), (claim) =>
            claim._tag === "New"
              ? Effect.fail(fail(reason, text, message.requestId, channel.name))
              : answer(connection, message, claim, []))

        const apply = (now: number): Effect.Effect<Outcome, unknown> =>
          Effect.flatMap(reconciliation.claim(key, now), (claim): Effect.Effect<Outcome, unknown> => {
            if (claim._tag !== "New") return Effect.succeed({ claim, rows: [] })
            const caller = Caller.of({ principal, connectionId: connection.id, clientId: message.clientId, seq: message.seq, requestId: message.requestId })
            return Effect.flatMap(Effect.provideService(handler.run(channel, action), Caller, caller), (result) => {
              const { rows, problem } = reconciliation.wireRows(channel, result)
              return problem === undefined
                ? Effect.succeed({ claim, rows })
                : Effect.fail(fail("InvalidRecord", `onAction returned a row that does not match the channel's record: ${problem}`))
            })
          })

        const settle = (now: number, exit: Exit.Exit<WriteResult<Outcome>, unknown>): Effect.Effect<void, SyncFailure | StorageError> => {
          if (Exit.isSuccess(exit)) {
            const { value: { claim, rows }, version, withheld } = exit.value
            if (claim._tag !== "New") return answer(connection, message, claim, withheld)
            return broadcast.ack(connection, { _tag: "Ack", requestId: message.requestId, version, rows, duplicate: false }, withheld)
          }
          const outcome = classify(exit.cause)
          const refused = refuse(now, outcome.reason, outcome.message)
          // business refusals are part of the app: no stack trace for them
          return outcome.expected ? refused : Effect.andThen(Effect.logWarning(`effect-partysync: action ${message.requestId} failed`, exit.cause), refused)
        }

        return Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.flatMap(Effect.exit(authorizer.authorizeAction(principal, channel, action)), (authorized) =>
            reconciliation.exclusive(
              Exit.isFailure(authorized)
                ? refuse(now, "NotAuthorized", classify(authorized.cause).message)
                : Effect.flatMap(Effect.exit(reconciliation.commit(apply(now), connection)), (exit) => settle(now, exit))
            )))
      }

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

      /**
       * Each connection's frames run one after another, in arrival order: an
       * authorizer that awaits must not let action n+1 overtake action n, and a
       * Subscribe sent on reconnect must be answered before the actions re-sent
       * after it. Actions are counted from arrival (at most
       * `maxInFlightPerConnection`); a Subscribe for a channel that already has
       * one waiting merges into it, and at most two per declared channel wait.
       * Lanes are keyed by the connection itself: ids are the client's choice.
       */
      const lanes = new Map<SyncConnection, Lane>()

      const inLane = (connection: SyncConnection, message: ClientMessage) => {
        // a new lane is registered only once a frame is queued on it: a frame refused here must not leave an
        // empty lane behind for a connection that then closes
        const l: Lane = lanes.get(connection) ?? { semaphore: Semaphore.makeUnsafe(1), frames: 0, actions: 0, syncs: 0, waiting: new Map() }
        let counted: "action" | "sync" | undefined
        let run: Effect.Effect<void, SyncFailure>
        switch (message._tag) {
          case "Action": {
            if (l.actions >= config.maxInFlightPerConnection) {
              return Effect.fail(fail("TooManyInFlight", `more than ${config.maxInFlightPerConnection} actions in flight`, message.requestId, message.channel))
            }
            counted = "action"
            // the ledger itself failed: nothing was decided, so the client may send it again
            run = runAction(connection, message).pipe(Effect.catchTag("StorageError", (e) =>
              Effect.fail(fail("Unavailable", messageOf(e), message.requestId, message.channel))))
            break
          }
          case "Subscribe": {
            const waiting = l.waiting.get(message.channel)
            if (waiting !== undefined) {
              // the waiting one will answer for both: from the older cursor, or a reset when they disagree
              if (message.since === null || waiting.since === null || message.history !== waiting.history) {
                waiting.since = null
                waiting.history = undefined
              } else waiting.since = Math.min(waiting.since, message.since)
              return Effect.void
            }
            if (l.syncs >= syncLimit) {
              return Effect.fail(fail("TooManyInFlight", `more than ${syncLimit} subscriptions waiting`, null, message.channel))
            }
            const limited = rateLimited(connection, message.channel)
            if (limited !== undefined) return Effect.fail(fail("TooManyInFlight", limited, null, message.channel))
            const request = { since: message.since, history: message.history }
            l.waiting.set(message.channel, request)
            counted = "sync"
            run = subscribe(connection, message, l, request)
            break
          }
          case "Unsubscribe": {
            // a later Subscribe must not merge into one from before this Unsubscribe
            l.waiting.delete(message.channel)
            run = Effect.flatMap(channelOf(message.channel, null), (channel) => broadcast.unsubscribe(connection, channel.name))
            break
          }
        }
        if (l.frames++ === 0) lanes.set(connection, l)
        if (counted === "action") l.actions++
        else if (counted === "sync") l.syncs++
        return l.semaphore.withPermits(1)(run).pipe(
          Effect.ensuring(Effect.sync(() => {
            if (counted === "action") l.actions--
            else if (counted === "sync") l.syncs--
            if (--l.frames === 0 && lanes.get(connection) === l) lanes.delete(connection)
          }))
        )
      }

      const subscribe = (
        connection: SyncConnection,
        message: Subscribe,
        lane: Lane,
        request: { since: number | null; history: string | undefined }
      ) =>
        Effect.gen(function*() {
          if (lane.waiting.get(message.channel) === request) lane.waiting.delete(message.channel)
          const channel = yield* channelOf(message.channel, null)
          if (message.schema !== undefined && message.schema < channel.version) {
            return yield* fail(
              "Outdated",
              `this client was built for version ${message.schema} of channel ${channel.name}; the server has version ${channel.version}: reload the app`,
              null,
              channel.name
            )
          }
          const newer = newerThanServer(message.schema, channel, null)
          if (newer !== undefined) return yield* newer
          yield* reconciliation.subscribe(connection, channel, request.since, request.history).pipe(
            Effect.mapError((e) => fail("Unavailable", messageOf(e), null, channel.name))
          )
        })

      const refused = (connection: SyncConnection, e: SyncFailure) =>
        broadcast.send(connection, { _tag: "Failure", requestId: e.requestId, channel: e.channel, reason: e.reason, message: e.message })

      const receive = (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView) =>
        // suspended: a throw while decoding or checking becomes a logged defect, not a rejected onMessage
        Effect.suspend(() => {
          const message = decodeFrame(frame)
          return message instanceof SyncFailure ? Effect.fail(message) : inLane(connection, message)
        }).pipe(
          Effect.catchCause((cause) => {
            const failure = Cause.findErrorOption(cause)
            if (failure._tag === "Some" && failure.value instanceof SyncFailure) return refused(connection, failure.value)
            // no span here: this runs per frame, and the span and its stack trace cost more than a small action
            return Effect.logError("effect-partysync: frame handling failed", cause)
          })
        )

      return ActionDispatch.of({ receive })
    })
  )
}
