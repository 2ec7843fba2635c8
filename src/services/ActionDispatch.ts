/**
 * ActionDispatch: one inbound frame, start to finish. It decodes the frame
 * with the Protocol Schema, looks the channel up among the declared ones,
 * decodes the action with that channel's Schema, authorizes it, runs the
 * handler in a transaction together with the client's sequence number, and
 * replies with an `Ack` or a typed `Failure`. Bad input never reaches SQL,
 * writes nothing and leaves the connection usable.
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
import { ActionHandler, Authorizer } from "./ActionHandler.ts"
import type * as Channel from "../protocol/Channel.ts"
import type { SyncConnection } from "./Connections.ts"
import { StorageError, SyncFailure } from "./Errors.ts"
import { Broadcast } from "./Broadcast.ts"
import { utf8Length } from "./Frames.ts"
import { type Action, type ClientMessage, decodeClientMessage, type ErrorReason } from "../protocol/Protocol.ts"
import { Reconciliation } from "./Reconciliation.ts"
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
const idsOf = (value: unknown): { requestId: string | null; channel: string | null } => {
  if (typeof value !== "object" || value === null) return { requestId: null, channel: null }
  const { requestId, channel } = value as Record<string, unknown>
  return {
    requestId: typeof requestId === "string" && requestId.length <= 128 ? requestId : null,
    channel: typeof channel === "string" && channel.length <= 128 ? channel : null
  }
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
      const actionDecoders = new Map<string, (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>>()
      for (const channel of channels.values()) actionDecoders.set(channel.name, Schema.decodeUnknownExit(channel.action))

      const fail = (reason: ErrorReason, message: string, requestId: string | null = null, channel: string | null = null) =>
        new SyncFailure({ reason, message, requestId, channel })

      const channelOf = (name: string, requestId: string | null) => {
        const channel = channels.get(name)
        return channel === undefined
          ? Effect.fail(fail("UnknownChannel", `unknown channel ${JSON.stringify(name)}`, requestId, name))
          : Effect.succeed(channel)
      }

      const decodeFrame = (frame: string | ArrayBuffer | ArrayBufferView) => {
        if (typeof frame !== "string") {
          return Effect.fail(fail("UnknownMessage", "binary frames are not part of the protocol"))
        }
        if (frame.length > config.maxInboundFrameBytes || utf8Length(frame) > config.maxInboundFrameBytes) {
          return Effect.fail(fail("FrameTooLarge", `frame exceeds ${config.maxInboundFrameBytes} bytes`, null, null))
        }
        const exit = decodeClientMessage(frame)
        if (Exit.isSuccess(exit)) return Effect.succeed(exit.value)
        let json: unknown
        try {
          json = JSON.parse(frame)
        } catch {
          return Effect.fail(fail("MalformedJson", "frame is not valid JSON"))
        }
        const ids = idsOf(json)
        const error = Cause.findErrorOption(exit.cause)
        return Effect.fail(fail(
          "UnknownMessage",
          `not a valid message: ${error._tag === "Some" ? error.value.message : "unknown shape"}`,
          ids.requestId,
          ids.channel
        ))
      }

      const runAction = Effect.fnUntraced(function*(connection: SyncConnection, message: Action) {
        const channel: Channel.Any = yield* channelOf(message.channel, message.requestId)
        if (connection.state.readOnly) {
          return yield* fail("ReadOnly", "this connection is read-only", message.requestId, channel.name)
        }
        const decoded = actionDecoders.get(channel.name)!(message.action)
        if (Exit.isFailure(decoded)) {
          const error = Cause.findErrorOption(decoded.cause)
          return yield* fail(
            "InvalidAction",
            error._tag === "Some" ? error.value.message : "invalid action",
            message.requestId,
            channel.name
          )
        }
        const action = decoded.value
        const authorize = authorizer.authorizeAction(connection.state.principal, channel, action).pipe(
          Effect.mapError((e) => fail("NotAuthorized", e.message, message.requestId, channel.name))
        )
        const write = reconciliation.write(Effect.gen(function*() {
          if (!(yield* reconciliation.claim(message.clientId, message.seq))) {
            return { rows: [], duplicate: true, refused: yield* reconciliation.refusal(message.clientId, message.seq) }
          }
          const rows = yield* handler.run(channel, action)
          return { rows, duplicate: false, refused: undefined }
        }), connection).pipe(
          Effect.catchCause((cause) => {
            const error = Cause.findErrorOption(cause)
            const reason = error._tag === "Some" ? messageOf(error.value) : messageOf(Cause.squash(cause))
            return Effect.logWarning("effect-partysync: action failed", cause).pipe(
              Effect.andThen(reconciliation.recordRefusal(message.clientId, message.seq, reason)),
              Effect.ignore,
              Effect.andThen(Effect.fail(fail("HandlerFailed", reason, message.requestId, channel.name)))
            )
          }),
          // a re-sent action refused the first time gets the same refusal, not a duplicate Ack
          Effect.flatMap((result) =>
            result.value.refused === undefined
              ? Effect.succeed(result)
              : Effect.fail(fail("HandlerFailed", result.value.refused, message.requestId, channel.name))
          )
        )
        const result = yield* Effect.andThen(authorize, write)
        yield* broadcast.ack(connection, {
          _tag: "Ack",
          requestId: message.requestId,
          version: result.version,
          rows: result.value.rows,
          duplicate: result.value.duplicate
        }, result.withheld)
      })

      /**
       * Each connection's frames run one after another, in arrival order: an
       * authorizer that awaits must not let action n+1 overtake action n (the
       * sequence check would then take n for a re-send), and a Subscribe sent
       * on reconnect must be answered before the actions re-sent after it.
       * Actions are counted from arrival, so a connection cannot queue more
       * than `maxInFlightPerConnection` of them.
       */
      const lanes = new Map<string, { readonly semaphore: Semaphore.Semaphore; frames: number; actions: number }>()

      const inLane = (connection: SyncConnection, message: ClientMessage) => {
        let lane = lanes.get(connection.id)
        if (lane === undefined) {
          lane = { semaphore: Semaphore.makeUnsafe(1), frames: 0, actions: 0 }
          lanes.set(connection.id, lane)
        }
        const isAction = message._tag === "Action"
        if (isAction && lane.actions >= config.maxInFlightPerConnection) {
          return Effect.fail(fail("TooManyInFlight", `more than ${config.maxInFlightPerConnection} actions in flight`, message.requestId, message.channel))
        }
        const l = lane
        l.frames++
        if (isAction) l.actions++
        return l.semaphore.withPermits(1)(handle(connection, message)).pipe(
          Effect.ensuring(Effect.sync(() => {
            if (isAction) l.actions--
            if (--l.frames === 0 && lanes.get(connection.id) === l) lanes.delete(connection.id)
          }))
        )
      }

      const handle = (connection: SyncConnection, message: ClientMessage) =>
        Effect.gen(function*() {
          switch (message._tag) {
            case "Subscribe": {
              const channel = yield* channelOf(message.channel, null)
              yield* reconciliation.subscribe(connection, channel, message.since).pipe(
                Effect.mapError((e) => fail("HandlerFailed", messageOf(e), null, channel.name))
              )
              return
            }
            case "Unsubscribe": {
              const channel = yield* channelOf(message.channel, null)
              return yield* broadcast.unsubscribe(connection, channel.name)
            }
            case "Action":
              return yield* runAction(connection, message)
          }
        })

      const receive = (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView) =>
        Effect.flatMap(decodeFrame(frame), (message) => inLane(connection, message)).pipe(
          Effect.catchTag("SyncFailure", (e) =>
            broadcast.send(connection, {
              _tag: "Failure",
              requestId: e.requestId,
              channel: e.channel,
              reason: e.reason,
              message: e.message
            })),
          // no span here: this runs per frame, and the span and its stack trace cost more than a small action
          Effect.catchCause((cause) => Effect.logError("effect-partysync: frame handling failed", cause))
        )

      return ActionDispatch.of({ receive })
    })
  )
}
