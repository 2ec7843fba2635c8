/**
 * Server-side failures. `StorageError` is a refused statement or commit;
 * `SyncFailure` is how the services carry a refusal to the point where it
 * becomes a wire `Failure` for the client. The errors a client can see
 * (`ActionRejected`, `NotAuthorized`, ...) are shared with it and live in
 * `src/protocol/Errors.ts`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ErrorReason } from "../protocol/Protocol.ts"

export { ActionRejected, HandlerFailed, InvalidAction, NotAuthorized, SyncRefused } from "../protocol/Errors.ts"

/** The SQL engine refused a statement or a transaction failed to commit. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

/** A thrown SQL failure as a `StorageError` (one already is passes through). */
export const storageError = (cause: unknown): StorageError =>
  cause instanceof StorageError ? cause : new StorageError({ message: cause instanceof Error ? cause.message : String(cause), cause })

/** A frame or action was refused. Nothing it asked for was written. */
export class SyncFailure extends Schema.TaggedError<SyncFailure>()("SyncFailure", {
  reason: ErrorReason,
  message: Schema.String,
  /** Only for a tab of the previous release, which reads a refusal by its request id. */
  requestId: Schema.NullOr(Schema.String),
  channel: Schema.NullOr(Schema.String),
  /** The client id of a refused push. */
  clientId: Schema.optionalKey(Schema.String),
  /** The subscription of a refused Subscribe that has params. */
  sub: Schema.optionalKey(Schema.String)
}) {}
