/**
 * The failures a client can see, shared by server and client. A refused
 * action reaches the client's `send` as exactly one of these, so an app can
 * tell a business refusal from a denied permission, a crash or a protocol
 * problem:
 *
 * - `ActionRejected`: the handler refused the action (a business rule); its
 *   message is meant for the user. Server handlers fail with this class.
 * - `NotAuthorized`: authorization refused the connection or the action.
 * - `HandlerFailed`: the handler crashed, a statement failed (a constraint),
 *   or a row did not match the channel's record Schema.
 * - `InvalidAction`: the action does not match the channel's action Schema.
 * - `SyncRefused`: the server refused the frame for a protocol reason.
 * - `ActionDiscarded`: the client dropped the action before it was confirmed.
 *
 * Nothing a refused action wrote is kept.
 *
 * @since 0.2.0
 */
import * as Schema from "effect/Schema"
import { type ErrorReason, ProtocolReason } from "./Protocol.ts"

/** The handler refused the action; `message` is the handler's, meant for the user. */
export class ActionRejected extends Schema.TaggedError<ActionRejected>()("ActionRejected", {
  message: Schema.String
}) {}

/** Authorization refused a connection (401 or 403) or an action. */
export class NotAuthorized extends Schema.TaggedError<NotAuthorized>()("NotAuthorized", {
  message: Schema.String,
  status: Schema.optional(Schema.Literals([401, 403]))
}) {}

/** Why a handler failed: it crashed or a statement failed (`Failed`), or a row did not decode (`InvalidRecord`). */
export const HandlerFailure = Schema.Literals(["Failed", "InvalidRecord"])
/** Why a handler failed. */
export type HandlerFailure = typeof HandlerFailure.Type

/** The handler crashed, a statement failed, or a row did not match the record Schema. Nothing was written. */
export class HandlerFailed extends Schema.TaggedError<HandlerFailed>()("HandlerFailed", {
  reason: HandlerFailure,
  message: Schema.String
}) {}

/** The action does not match the channel's action Schema; the client never sends such an action. */
export class InvalidAction extends Schema.TaggedError<InvalidAction>()("InvalidAction", {
  message: Schema.String
}) {}

/** The server refused a frame for a protocol reason (unknown channel, read-only connection, ...). */
export class SyncRefused extends Schema.TaggedError<SyncRefused>()("SyncRefused", {
  reason: ProtocolReason,
  message: Schema.String
}) {}

/** Why the client dropped an action: its client closed first (it stays queued), or `clearLocalData` discarded it. */
export const DiscardReason = Schema.Literals(["Closed", "Cleared"])
/** Why the client dropped an action. */
export type DiscardReason = typeof DiscardReason.Type

/** The client stopped waiting for the action before the server confirmed it. */
export class ActionDiscarded extends Schema.TaggedError<ActionDiscarded>()("ActionDiscarded", {
  reason: DiscardReason,
  message: Schema.String
}) {}

/** Every way `send` can fail. */
export type SendError = ActionRejected | NotAuthorized | HandlerFailed | InvalidAction | SyncRefused | ActionDiscarded

/** The error a client's `send` fails with for a server `Failure`. */
export const fromFailure = (failure: { readonly reason: ErrorReason; readonly message: string }): Exclude<SendError, ActionDiscarded> => {
  const { reason, message } = failure
  switch (reason) {
    case "ActionRejected":
      return new ActionRejected({ message })
    case "NotAuthorized":
      return new NotAuthorized({ message })
    case "HandlerFailed":
      return new HandlerFailed({ reason: "Failed", message })
    case "InvalidRecord":
      return new HandlerFailed({ reason: "InvalidRecord", message })
    case "InvalidAction":
      return new InvalidAction({ message })
    default:
      return new SyncRefused({ reason, message })
  }
}
