/**
 * Protocol refusals as dispatch builds and sends them: a `SyncFailure` for a
 * frame, the `Failure` frame that tells its sender, and the refusal of a
 * client built for a newer channel version than the server runs.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import type * as Channel from "../protocol/Channel.ts"
import { encodeServerFrame, type ErrorReason } from "../protocol/Protocol.ts"
import type { SyncConnection } from "./Connections.ts"
import { SyncFailure } from "./Errors.ts"

/** A refusal of a frame, naming its channel and client id when known. */
export const fail = (reason: ErrorReason, message: string, channel: string | null = null, clientId?: string): SyncFailure =>
  new SyncFailure({ reason, message, requestId: null, channel, ...(clientId === undefined ? {} : { clientId }) })

/** The same refusal, naming the subscription it answers (one with params). */
export const withSub = (e: SyncFailure, sub: string): SyncFailure =>
  new SyncFailure({ reason: e.reason, message: e.message, requestId: e.requestId, channel: e.channel, sub })

/** Tells a connection that one of its frames was refused. */
export const tell = (connection: SyncConnection, e: SyncFailure): Effect.Effect<void> =>
  Effect.sync(() =>
    connection.send(encodeServerFrame({
      _tag: "Failure",
      requestId: e.requestId,
      channel: e.channel,
      ...(e.sub === undefined ? {} : { sub: e.sub }),
      ...(e.clientId === undefined ? {} : { clientId: e.clientId }),
      reason: e.reason,
      message: e.message
    }))
  )

/** A client built for a newer version of the channel than this server runs: a deploy is on its way, the client retries. */
export const newerThanServer = (schema: number | undefined, channel: Channel.Any, clientId?: string): SyncFailure | undefined =>
  schema !== undefined && schema > channel.version
    ? fail("Unavailable", `this client was built for version ${schema} of channel ${channel.name}; the server still runs version ${channel.version}`, channel.name, clientId)
    : undefined
