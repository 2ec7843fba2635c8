/**
 * The wire protocol shared by server and client. Every frame in either
 * direction is one of these Schemas encoded as a JSON string; neither side
 * parses JSON by hand.
 *
 * Versions are per Durable Object and per row: every committed change to a
 * channel row takes the next value of one counter, so a client's cursor is
 * the highest version it has applied, together with the identity of the
 * object's history (`history`): a cursor from another history (the object's
 * storage was wiped) always gets a reset.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** Outbound frames are chunked to stay below this many bytes (hibernated sockets fail near 1 MB). */
export const MAX_OUTBOUND_FRAME_BYTES = 900_000

/** Default largest inbound frame the server accepts. */
export const DEFAULT_MAX_INBOUND_FRAME_BYTES = 256 * 1024

/** A row as it travels: the record tuple before the channel's Schema decodes it. */
export const WireRow = /*#__PURE__*/ Schema.Array(Schema.Unknown)
/** A row as it travels. */
export type WireRow = typeof WireRow.Type

/** A row id: the record tuple's first element. */
export const RowId = /*#__PURE__*/ Schema.Union([Schema.String, Schema.Number])
/** A row id. */
export type RowId = typeof RowId.Type

const Version = /*#__PURE__*/ Schema.Int.check(/*#__PURE__*/ Schema.isGreaterThanOrEqualTo(0))
const Name = /*#__PURE__*/ Schema.String.check(/*#__PURE__*/ Schema.isBetweenLength(1, 128))
/** A channel's schema version, declared with the channel. */
const SchemaVersion = /*#__PURE__*/ Schema.Int.check(/*#__PURE__*/ Schema.isGreaterThanOrEqualTo(1))

// ---------------------------------------------------------------------------
// client -> server
// ---------------------------------------------------------------------------

/**
 * Start (or resume) receiving a channel: every change after `since`, then
 * live changes. `history` is the one the cursor was taken in (from
 * `Synced`); without it, or from another history, the answer is a reset.
 * `schema` is the channel's schema version the client was built with.
 */
export const Subscribe = /*#__PURE__*/ Schema.TaggedStruct("Subscribe", {
  channel: Name,
  since: /*#__PURE__*/ Schema.NullOr(Version),
  history: /*#__PURE__*/ Schema.optionalKey(Name),
  schema: /*#__PURE__*/ Schema.optionalKey(SchemaVersion)
})
/** Start (or resume) receiving a channel. */
export type Subscribe = typeof Subscribe.Type

/** Stop receiving a channel's live changes. */
export const Unsubscribe = /*#__PURE__*/ Schema.TaggedStruct("Unsubscribe", { channel: Name })
/** Stop receiving a channel's live changes. */
export type Unsubscribe = typeof Unsubscribe.Type

/**
 * Run an action on the server. `(clientId, seq)` identifies it across
 * retries: the server decides each pair once and answers every re-send with
 * that outcome. `clientKey` is the client's secret: the first action of a
 * client id binds the key to it, and only that key may use the id again.
 * `sentAt` (client clock, ms) is when this action was first sent, on a
 * re-send; `schema` the channel's schema version the action was encoded with.
 */
export const Action = /*#__PURE__*/ Schema.TaggedStruct("Action", {
  requestId: Name,
  channel: Name,
  clientId: Name,
  clientKey: /*#__PURE__*/ Schema.String.check(/*#__PURE__*/ Schema.isBetweenLength(16, 128)),
  seq: /*#__PURE__*/ Schema.Int.check(/*#__PURE__*/ Schema.isGreaterThanOrEqualTo(1)),
  action: Schema.Unknown,
  sentAt: /*#__PURE__*/ Schema.optionalKey(Schema.Finite),
  schema: /*#__PURE__*/ Schema.optionalKey(SchemaVersion)
})
/** Run an action on the server. */
export type Action = typeof Action.Type

/** Any frame a client may send. */
export const ClientMessage = /*#__PURE__*/ Schema.Union([Subscribe, Unsubscribe, Action])
/** Any frame a client may send. */
export type ClientMessage = typeof ClientMessage.Type

// ---------------------------------------------------------------------------
// server -> client
// ---------------------------------------------------------------------------

/**
 * One chunk of a sync answer. A client buffers chunks until `Synced`; when
 * `reset` is set the rows replace its state instead of patching it.
 */
export const SyncRows = /*#__PURE__*/ Schema.TaggedStruct("SyncRows", {
  channel: Name,
  reset: Schema.Boolean,
  rows: Schema.Array(WireRow),
  deleted: Schema.Array(RowId)
})
/** One chunk of a sync answer. */
export type SyncRows = typeof SyncRows.Type

/** Ends a sync answer: the client's cursor becomes `version` in `history`; live changes follow. */
export const Synced = /*#__PURE__*/ Schema.TaggedStruct("Synced", {
  channel: Name,
  version: Version,
  reset: Schema.Boolean,
  history: Name
})
/** Ends a sync answer. */
export type Synced = typeof Synced.Type

/**
 * Committed changes to a channel, in version order. `rows` include soft
 * deleted rows (tombstones); `deleted` lists ids of rows removed outright.
 */
export const Change = /*#__PURE__*/ Schema.TaggedStruct("Change", {
  channel: Name,
  version: Version,
  rows: Schema.Array(WireRow),
  deleted: Schema.Array(RowId)
})
/** Committed changes to a channel. */
export type Change = typeof Change.Type

/**
 * The reply to an action. `version` is the change feed position after it:
 * once a client has applied changes up to `version`, the action's effects
 * are in its confirmed state. `duplicate` marks an action applied earlier.
 * `changes` are the action's `Change` frames for the sender's channels
 * (apply them, in order, before settling the action); when they would make
 * the reply too large they come as separate `Change` frames before it.
 */
export const Ack = /*#__PURE__*/ Schema.TaggedStruct("Ack", {
  requestId: Name,
  version: Version,
  rows: Schema.Array(WireRow),
  duplicate: Schema.Boolean,
  changes: Schema.optionalKey(Schema.Array(Change))
})
/** The reply to an action. */
export type Ack = typeof Ack.Type

/**
 * Part of an action's reply: the handler's rows when they do not fit in one
 * frame come in these chunks, before the `Ack` (whose `rows` is then empty).
 */
export const AckRows = /*#__PURE__*/ Schema.TaggedStruct("AckRows", {
  requestId: Name,
  rows: Schema.Array(WireRow)
})
/** Part of an action's reply. */
export type AckRows = typeof AckRows.Type

/**
 * Protocol refusals: the frame never reached a handler.
 * - `TooManyInFlight` and `Unavailable` (the server could not start, e.g. a
 *   migration failed) are temporary: clients retry.
 * - `ClientMismatch`: the client id is bound to another client key.
 * - `ClientExpired`: the server no longer remembers the client and the
 *   action was first sent before that horizon, so it may have been applied.
 * - `Outdated`: the client was built with an older schema version of the
 *   channel than the server's; reload it.
 */
export const ProtocolReason = /*#__PURE__*/ Schema.Literals([
  "MalformedJson",
  "UnknownMessage",
  "FrameTooLarge",
  "TooManyInFlight",
  "UnknownChannel",
  "ReadOnly",
  "Unavailable",
  "ClientMismatch",
  "ClientExpired",
  "Outdated"
])
/** Protocol refusals. */
export type ProtocolReason = typeof ProtocolReason.Type

/** Refusals a client retries on its own: the same frame may succeed later. */
export const isTransient = (reason: ErrorReason): boolean => reason === "TooManyInFlight" || reason === "Unavailable"

/**
 * Why a frame or an action was refused: a protocol reason, or the action's
 * own outcome (`InvalidAction`, `NotAuthorized`, `ActionRejected` by the
 * handler's rule, `HandlerFailed`, `InvalidRecord` when a row it wrote does
 * not match the channel's record Schema).
 */
export const ErrorReason = /*#__PURE__*/ Schema.Union([
  ProtocolReason,
  Schema.Literals(["InvalidAction", "NotAuthorized", "ActionRejected", "HandlerFailed", "InvalidRecord"])
])
/** Why a frame or an action was refused. */
export type ErrorReason = typeof ErrorReason.Type

/** A refused frame or action. Nothing was written. */
export const Failure = /*#__PURE__*/ Schema.TaggedStruct("Failure", {
  requestId: Schema.NullOr(Schema.String),
  channel: Schema.NullOr(Schema.String),
  reason: ErrorReason,
  message: Schema.String
})
/** A refused frame or action. */
export type Failure = typeof Failure.Type

/** Any frame the server may send. */
export const ServerMessage = /*#__PURE__*/ Schema.Union([SyncRows, Synced, Change, AckRows, Ack, Failure])
/** Any frame the server may send. */
export type ServerMessage = typeof ServerMessage.Type

/** JSON text <-> client frame. */
export const ClientMessageJson = /*#__PURE__*/ Schema.fromJsonString(ClientMessage)
/** JSON text <-> server frame. */
export const ServerMessageJson = /*#__PURE__*/ Schema.fromJsonString(ServerMessage)

/** Decodes a client frame from JSON text. */
export const decodeClientMessage = /*#__PURE__*/ Schema.decodeUnknownExit(ClientMessageJson)
/** Encodes a client frame as JSON text. */
export const encodeClientMessage = /*#__PURE__*/ Schema.encodeSync(ClientMessageJson)
/**
 * Encodes a server frame on the server's hot path. No ServerMessage Schema
 * transforms its fields (each encodes to itself), so the Schema encoding is
 * `JSON.stringify` of the typed value; test/services/Protocol.test.ts checks
 * that the two agree for every kind of frame.
 */
export const encodeServerFrame = (message: ServerMessage): string => JSON.stringify(message)
/** Decodes a server frame from JSON text. */
export const decodeServerMessage = /*#__PURE__*/ Schema.decodeUnknownExit(ServerMessageJson)
/** Encodes a server frame as JSON text. */
export const encodeServerMessage = /*#__PURE__*/ Schema.encodeSync(ServerMessageJson)
