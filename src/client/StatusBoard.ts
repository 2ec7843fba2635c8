/**
 * The status one client shows, kept current: the connection moves by the
 * rules Status.ts states (a refusal's state holds until a sync succeeds, so
 * does a socket refused over the server's caps), `lastError` lives from one
 * successful sync to the next, and the status object keeps its identity
 * until one of its parts changes (React compares it by identity). Kept apart
 * from SyncEngine so that those rules read in one place, not spread over
 * every frame the engine handles. It never notifies: the engine does, once
 * per change.
 *
 * @since 0.3.0
 */
import type { Failure, RowId } from "../protocol/Protocol.ts"
import { EMPTY_IDS, sameSet } from "./Optimistic.ts"
import { type Connection, STICKY, type SyncStatus } from "./Status.ts"

/** The parts of one client's status, and the status object made from them. */
export class StatusBoard {
  #connection: Connection = "connecting"
  #lastError: SyncStatus["lastError"] = null
  /** `lastError` when the current Subscribe went out: a sync that succeeds clears it unless a newer one came since. */
  #errorBeforeSync: SyncStatus["lastError"] = null
  #pendingIds: ReadonlySet<RowId> = EMPTY_IDS
  #status: SyncStatus | undefined

  /** The connection state shown now. */
  get connection(): Connection {
    return this.#connection
  }

  /** The status with `pending` actions queued; the same object until `changed` or a part changes. */
  read(pending: number): SyncStatus {
    if (this.#status === undefined) {
      this.#status = { connection: this.#connection, pending, pendingIds: this.#pendingIds, lastError: this.#lastError }
    }
    return this.#status
  }

  /** Something the status counts changed (the queue): the next read makes a new object. */
  changed(): void {
    this.#status = undefined
  }

  /** Records an error. */
  error(reason: string, message: string): void {
    this.#lastError = { reason, message }
    this.#status = undefined
  }

  /** Forgets the last error (the local data was cleared). */
  clearError(): void {
    this.#lastError = null
    this.#status = undefined
  }

  /** Shows `connection`, and the refusal that led there. */
  show(connection: Connection, failure?: Failure): void {
    this.#connection = connection
    if (failure !== undefined) this.#lastError = { reason: failure.reason, message: failure.message }
    this.#status = undefined
  }

  /** The ids the pending actions touch, from the latest optimistic build. */
  pendingIds(ids: ReadonlySet<RowId>): void {
    if (sameSet(ids, this.#pendingIds)) return
    this.#pendingIds = ids
    this.#status = undefined
  }

  /** The socket opened: `syncing`, unless a state only a sync ends holds. */
  opened(): void {
    if (!STICKY.has(this.#connection) && !this.#socketRefused()) this.#connection = "syncing"
    this.#status = undefined
  }

  /** The socket closed: true when the status changed (it shows `offline`). */
  closed(): boolean {
    if (STICKY.has(this.#connection) || this.#connection === "offline" || this.#socketRefused()) return false
    this.show("offline")
    return true
  }

  /** A Subscribe went out: its success clears the errors reported until now, not those reported after. */
  subscribing(): void {
    this.#errorBeforeSync = this.#lastError
  }

  /** A sync succeeded. */
  live(): void {
    this.#connection = "live"
    if (this.#lastError === this.#errorBeforeSync) this.#lastError = null
    this.#status = undefined
  }

  // A socket refused over the server's connection caps shows `unavailable` until a sync succeeds (partysocket reconnects).
  #socketRefused(): boolean {
    return this.#connection === "unavailable" && this.#lastError?.reason === "TooManyConnections"
  }
}
