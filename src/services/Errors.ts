/**
 * Typed failures, one class per failure domain. `SyncFailure` is what a
 * client is told about a refused frame or action; its `reason` is the wire
 * `ErrorReason`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ErrorReason } from "./Protocol.ts"

/** The SQL engine refused a statement or a transaction failed to commit. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

/** A frame or action was refused. Nothing it asked for was written. */
export class SyncFailure extends Schema.TaggedError<SyncFailure>()("SyncFailure", {
  reason: ErrorReason,
  message: Schema.String,
  requestId: Schema.NullOr(Schema.String),
  channel: Schema.NullOr(Schema.String)
}) {}

/**
 * Fail an action handler with this to refuse the action with a message the
 * client sees (for example "text must be 1 to 200 characters").
 */
export class ActionRejected extends Schema.TaggedError<ActionRejected>()("ActionRejected", {
  message: Schema.String
}) {}

/** Fail an authorization hook with this to refuse a connection or an action. */
export class NotAuthorized extends Schema.TaggedError<NotAuthorized>()("NotAuthorized", {
  message: Schema.String,
  status: Schema.optional(Schema.Literals([401, 403]))
}) {}
