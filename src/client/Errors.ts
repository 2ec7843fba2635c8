/**
 * The typed failures of a client `send`. A rejected action was refused by
 * the server (nothing written) or dropped locally; an invalid action failed
 * the channel's Schema and never left the client.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ErrorReason } from "../services/Protocol.ts"

/** Why an action did not apply: a server `ErrorReason`, or a client-side cause. */
export const RejectionReason = Schema.Union([
  ErrorReason,
  // clearLocalData discarded the queued action before the server confirmed it
  Schema.Literal("Cleared"),
  // the client closed first; the action stays queued and the next client for the room sends it
  Schema.Literal("Closed")
])
/** Why an action did not apply. */
export type RejectionReason = typeof RejectionReason.Type

/** The server refused the action (or the client dropped it); it was rolled back. */
export class ActionRejected extends Schema.TaggedError<ActionRejected>()("ActionRejected", {
  reason: RejectionReason,
  message: Schema.String
}) {}

/** The action does not match the channel's action Schema; it was not sent. */
export class InvalidAction extends Schema.TaggedError<InvalidAction>()("InvalidAction", {
  message: Schema.String
}) {}
