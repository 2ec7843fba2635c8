/**
 * What a SyncEngine needs from its owner: the subscription it serves, its
 * limits, and the callbacks through which it sends, asks for a backoff and
 * reports changes, as it does no I/O of its own. The owner (`makeCore`, or a
 * test driving the engine by hand) implements this, and the engine's
 * refusal handling acts through it too, so it stands apart from both.
 *
 * @since 0.3.0
 */
import type { ClientMessage, RowId } from "../protocol/Protocol.ts"
import type { PendingAction } from "./Outbox.ts"
import type { Row } from "./RecordTable.ts"

/** Decodes wire rows with the channel's record Schema. */
export type RowDecoder<R> = (rows: ReadonlyArray<unknown>) => { readonly rows: Array<R>; readonly error: string | null }

/** What the engine needs from its owner. */
export interface EngineOptions<R extends Row, A> {
  readonly channel: string
  /** The subscription's name when it has params (`subOf`), and the params as they travel. */
  readonly sub?: string | undefined
  readonly params?: unknown
  /** The channel's schema version this client was built with. */
  readonly schema: number
  readonly decodeRows: RowDecoder<R>
  readonly optimistic?: ((records: ReadonlyArray<R>, action: A) => ReadonlyArray<R>) | undefined
  /** Ids an action touches, besides those the reducer visibly changes. */
  readonly idsOf?: ((action: A) => Iterable<RowId>) | undefined
  /** The most actions this client allows unanswered on its socket (the socket's clients share one budget). */
  readonly maxInFlight: number
  /** The largest push frame to send, in bytes (the server's `maxInboundFrameBytes` or less). */
  readonly maxPushBytes: number
  /** This client's own id (replies to it are routed here even when nothing is queued). */
  readonly clientId: string
  /** The server bound `clientId` to another key: its actions were refused. */
  readonly mismatch?: ((clientId: string) => void) | undefined
  /** Writes a frame (dropped unless the socket is open). */
  readonly transmit: (message: ClientMessage) => void
  /** An action may be sendable: the socket's hub calls `pushNext` while its budget allows. */
  readonly wake: () => void
  /** A temporary refusal: call `retry()` after a backoff; `attempt` is 1 for the first since a success. */
  readonly backoff: (attempt: number) => void
  /** Called (synchronously) after anything visible changed. */
  readonly onChange: () => void
  /** Called after the confirmed records or cursor changed (persist, debounced). */
  readonly onConfirmed: () => void
  /** Called when a queued action leaves the queue (settled or dropped): its stored record goes. */
  readonly onSettled: (entry: PendingAction<A>) => void
}
