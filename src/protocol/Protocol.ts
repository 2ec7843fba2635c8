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
const Seq = /*#__PURE__*/ Schema.Int.check(/*#__PURE__*/ Schema.isGreaterThanOrEqualTo(1))
const Name = /*#__PURE__*/ Schema.String.check(/*#__PURE__*/ Schema.isBetweenLength(1, 128))
/** A channel's schema version, declared with the channel. */
const SchemaVersion = /*#__PURE__*/ Schema.Int.check(/*#__PURE__*/ Schema.isGreaterThanOrEqualTo(1))
/** A subscription's name: its channel and its params. */
const Sub = /*#__PURE__*/ Schema.String.check(/*#__PURE__*/ Schema.isBetweenLength(1, 1024))

/** Params as JSON with sorted keys: the same params give the same text on every side. */
export const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)

/** The name of a subscription: its channel, and its encoded params when it has any. */
export const subOf = (channel: string, params: unknown): string => (params === undefined ? channel : `${channel}?${canonical(params)}`)

/** 64 bits of FNV-1a over a string, as 16 hex characters: a short name for a long one (a rule, a subscription). */
export const hashOf = (text: string): string => {
  let a = 0x811c9dc5
  let b = 0x01000193 ^ 0x5bd1e995
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 13)
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0")
}

/** The channel of a subscription's name. */
export const channelOfSub = (sub: string): string => {
  const at = sub.indexOf("?")
  return at < 0 ? sub : sub.slice(0, at)
}

/** The encoded params of a subscription's name (undefined when it has none). */
export const paramsOfSub = (sub: string): unknown => {
  const at = sub.indexOf("?")
  return at < 0 ? undefined : JSON.parse(sub.slice(at + 1))
}

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
  schema: /*#__PURE__*/ Schema.optionalKey(SchemaVersion),
  /**
   * The subscription's name on this socket when it has params (`subOf`):
   * every frame of the subscription carries it, so one socket may hold two
   * subscriptions of a channel with different params.
   */
  sub: /*#__PURE__*/ Schema.optionalKey(Sub),
  /** The channel's params (its `params` Schema, encoded): what part of the channel the client asks for. */
  params: /*#__PURE__*/ Schema.optionalKey(Schema.Unknown),
  /**
   * A view's resume: the ids the client holds. A row that changed since the
   * cursor and that the view no longer admits is removed only if held (the
   * answer for a hidden row and for a row that never was is the same).
   */
  held: /*#__PURE__*/ Schema.optionalKey(/*#__PURE__*/ Schema.Array(RowId))
})
/** Start (or resume) receiving a channel. */
export type Subscribe = typeof Subscribe.Type

/** Stop receiving a channel's (or one subscription's) live changes. */
export const Unsubscribe = /*#__PURE__*/ Schema.TaggedStruct("Unsubscribe", { channel: Name, sub: /*#__PURE__*/ Schema.optionalKey(Sub) })
/** Stop receiving a channel's live changes. */
export type Unsubscribe = typeof Unsubscribe.Type

/** One action of a `Push`: its sequence number for the client, the action as encoded, and the channel version it was encoded for. */
export const PushAction = /*#__PURE__*/ Schema.Struct({
  seq: Seq,
  action: Schema.Unknown,
  schema: /*#__PURE__*/ Schema.optionalKey(SchemaVersion)
})
/** One action of a `Push`. */
export type PushAction = typeof PushAction.Type

/**
 * Actions of one client, in order. A client's actions are decided strictly in
 * sequence: the server keeps the last decided seq per client id, answers a
 * re-sent one with its first outcome, and never decides a seq before the one
 * it expects (the reply's `next` says which). `clientKey` is the client's
 * secret: the first push of a client id binds the key to it, and only that
 * key may use the id again. `confirmed` is the highest seq whose outcome the
 * client has settled for good: the server may forget the outcomes up to it.
 * `skip` (equal to the server's `next`) says the client no longer holds the
 * seqs from there up to its first action (local data was lost): they are
 * decided as never applied. A push may carry no actions (only `confirmed`).
 */
export const Push = /*#__PURE__*/ Schema.TaggedStruct("Push", {
  channel: Name,
  clientId: Name,
  clientKey: /*#__PURE__*/ Schema.String.check(/*#__PURE__*/ Schema.isBetweenLength(16, 128)),
  actions: /*#__PURE__*/ Schema.Array(PushAction),
  confirmed: /*#__PURE__*/ Schema.optionalKey(Version),
  skip: /*#__PURE__*/ Schema.optionalKey(Seq)
})
/** Actions of one client, in order. */
export type Push = typeof Push.Type

/** Any frame a client may send. */
export const ClientMessage = /*#__PURE__*/ Schema.Union([Subscribe, Unsubscribe, Push])
/** Any frame a client may send. */
export type ClientMessage = typeof ClientMessage.Type

/**
 * Protocol refusals: the frame never reached a handler.
 * - `TooManyInFlight` and `Unavailable` (the server could not start, e.g. a
 *   migration failed) are temporary: clients retry.
 * - `ClientMismatch`: the client id is bound to another client key.
 * - `TooManyClients`: the connection's principal has made more client ids
 *   than the server keeps, and all of them still have outcomes to confirm.
 * - `Skipped`: a client said it no longer held this action (`Push.skip`):
 *   it was decided as never applied.
 * - `InvalidParams`: a Subscribe's params do not match the channel's params
 *   Schema (or the channel takes none).
 * - `TooManySubscriptions`: the connection holds as many subscriptions as
 *   its state can keep.
 * - `Outdated`: the client was built with an older schema version of the
 *   channel than the server's; reload it.
 * - `TooManyConnections`: the socket was refused, over the server's cap on
 *   open sockets per principal or per room (the client reconnects later).
 * - `TooManyInvalidFrames`, `ByteRateExceeded`: the connection broke the
 *   protocol too often, or sent too much, and is closed (1008).
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
  "TooManyClients",
  "Outdated",
  "Skipped",
  "InvalidParams",
  "TooManySubscriptions",
  "TooManyConnections",
  "TooManyInvalidFrames",
  "ByteRateExceeded"
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
  /*#__PURE__*/ Schema.Literals(["InvalidAction", "NotAuthorized", "ActionRejected", "HandlerFailed", "InvalidRecord"])
])
/** Why a frame or an action was refused. */
export type ErrorReason = typeof ErrorReason.Type

// ---------------------------------------------------------------------------
// server -> client
// ---------------------------------------------------------------------------

/**
 * One chunk of a sync answer. A client buffers chunks until `Synced`; when
 * `reset` is set the rows replace its state instead of patching it.
 */
export const SyncRows = /*#__PURE__*/ Schema.TaggedStruct("SyncRows", {
  channel: Name,
  sub: /*#__PURE__*/ Schema.optionalKey(Sub),
  reset: Schema.Boolean,
  rows: /*#__PURE__*/ Schema.Array(WireRow),
  deleted: /*#__PURE__*/ Schema.Array(RowId)
})
/** One chunk of a sync answer. */
export type SyncRows = typeof SyncRows.Type

/**
 * Ends a sync answer: the client's cursor becomes `version` in `history`;
 * live changes follow. `view` says the subscription sees only the rows its
 * read rule admits: its resume carries the ids the client holds. A view's
 * history names its rule too, so a cursor taken under another rule (the
 * access changed) gets a reset.
 */
export const Synced = /*#__PURE__*/ Schema.TaggedStruct("Synced", {
  channel: Name,
  sub: /*#__PURE__*/ Schema.optionalKey(Sub),
  version: Version,
  reset: Schema.Boolean,
  history: Name,
  view: /*#__PURE__*/ Schema.optionalKey(/*#__PURE__*/ Schema.Literal(true))
})
/** Ends a sync answer. */
export type Synced = typeof Synced.Type

/**
 * Committed changes to a channel, in version order. `rows` include soft
 * deleted rows (tombstones); `deleted` lists ids of rows removed outright.
 */
export const Change = /*#__PURE__*/ Schema.TaggedStruct("Change", {
  channel: Name,
  sub: /*#__PURE__*/ Schema.optionalKey(Sub),
  version: Version,
  rows: /*#__PURE__*/ Schema.Array(WireRow),
  deleted: /*#__PURE__*/ Schema.Array(RowId)
})
/** Committed changes to a channel. */
export type Change = typeof Change.Type

/**
 * An action the server applied: the rows its change capture saw in the
 * action's channel, in version order. `duplicate` marks the answer to a
 * re-send (the first answer, again).
 */
export const Applied = /*#__PURE__*/ Schema.Struct({
  seq: Seq,
  rows: /*#__PURE__*/ Schema.Array(WireRow),
  duplicate: /*#__PURE__*/ Schema.optionalKey(/*#__PURE__*/ Schema.Literal(true))
})
/** An action the server applied. */
export type Applied = typeof Applied.Type

/** An action the server refused: nothing it wrote was kept, and every re-send gets this answer (marked `duplicate`). */
export const Refused = /*#__PURE__*/ Schema.Struct({
  seq: Seq,
  reason: ErrorReason,
  message: Schema.String,
  duplicate: /*#__PURE__*/ Schema.optionalKey(/*#__PURE__*/ Schema.Literal(true))
})
/** An action the server refused. */
export type Refused = typeof Refused.Type

/**
 * The reply to a `Push`: the outcome of each action it decided (a re-sent
 * one gets its first outcome), in seq order, and `next`, the seq the server
 * expects next from this client: actions sent and not answered here are not
 * decided yet (send them again from `next`). `version` is the change feed's
 * position after the batch; `changes` are the batch's `Change` frames for the
 * sender's channels (apply them, in order, before settling the actions); when
 * they would make the reply too large they come as separate frames before it.
 */
export const Pushed = /*#__PURE__*/ Schema.TaggedStruct("Pushed", {
  channel: Name,
  clientId: Name,
  version: Version,
  next: Seq,
  results: /*#__PURE__*/ Schema.Array(/*#__PURE__*/ Schema.Union([Applied, Refused])),
  changes: /*#__PURE__*/ Schema.optionalKey(/*#__PURE__*/ Schema.Array(Change))
})
/** The reply to a `Push`. */
export type Pushed = typeof Pushed.Type

/**
 * Part of a push's reply: the rows of one applied action that do not fit in
 * one frame come in these chunks before the `Pushed` (whose result for that
 * seq then has no rows).
 */
export const ResultRows = /*#__PURE__*/ Schema.TaggedStruct("ResultRows", {
  clientId: Name,
  seq: Seq,
  rows: /*#__PURE__*/ Schema.Array(WireRow)
})
/** Part of a push's reply. */
export type ResultRows = typeof ResultRows.Type

/**
 * A refused frame: nothing it asked for was written. A refused push names its
 * client id; a refused Subscribe or a frame that did not decode has none.
 * `requestId` is always null; it is kept so that tabs of the previous release,
 * whose decoder requires it, read every refusal during a deploy.
 */
export const Failure = /*#__PURE__*/ Schema.TaggedStruct("Failure", {
  requestId: /*#__PURE__*/ Schema.NullOr(Schema.String),
  channel: /*#__PURE__*/ Schema.NullOr(Schema.String),
  sub: /*#__PURE__*/ Schema.optionalKey(Sub),
  clientId: /*#__PURE__*/ Schema.optionalKey(Name),
  reason: ErrorReason,
  message: Schema.String
})
/** A refused frame or action. */
export type Failure = typeof Failure.Type

/**
 * The read rule of a view changed (the app re-evaluated its principal's
 * access, or the object woke under another rule): the server stopped its live
 * changes. Subscribe again from the cursor, with the ids held; the answer
 * adds and removes what the new rule says.
 */
export const Resync = /*#__PURE__*/ Schema.TaggedStruct("Resync", {
  channel: Name,
  sub: /*#__PURE__*/ Schema.optionalKey(Sub)
})
/** A view's rule changed: subscribe again. */
export type Resync = typeof Resync.Type

/** Any frame the server may send. */
export const ServerMessage = /*#__PURE__*/ Schema.Union([SyncRows, Synced, Change, ResultRows, Pushed, Failure, Resync])
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
