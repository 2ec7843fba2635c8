/**
 * What the server's refusals (`Failure` frames) do to one client. A
 * temporary one (`TooManyInFlight`, `Unavailable`) changes nothing the server
 * decided: the refused push stays queued, a refused Subscribe is sent again,
 * both after a backoff, which refusals in one burst share. `Outdated` and a
 * refused socket (`NotAuthorized`, `TooManyConnections`) show in the status
 * and keep the queue. Any other refused Subscribe (`UnknownChannel`, or a
 * view's rule refusing it) fails the queue and every later send until a sync
 * succeeds; a refused push fails its own actions.
 *
 * Kept apart from SyncEngine because these rules are one decision table
 * that reads best whole; the engine routes the frames and owns what they
 * act on.
 *
 * @since 0.3.0
 */
import { fromFailure, SyncRefused } from "../protocol/Errors.ts"
import { type Failure, isTransient } from "../protocol/Protocol.ts"
import type { EngineOptions } from "./EngineOptions.ts"
import type { Feed } from "./Feed.ts"
import type { Pushes } from "./Pushes.ts"
import type { Row } from "./RecordTable.ts"
import type { Connection } from "./Status.ts"
import type { StatusBoard } from "./StatusBoard.ts"

/** What the engine does once a backoff is over: send its Subscribe again, or let the held actions go. */
export type Retry = "subscribe" | "actions"

/** One client's refusals: the backoff in progress, and the channel's refusal while it holds. */
export class Refusals<R extends Row, A> {
  /** What `due()` hands back: the backoff after a temporary refusal is running. */
  #retry: Retry | undefined
  /** Temporary refusals since the last answer that was not one. */
  #attempts = 0
  #refusal: Failure | undefined

  readonly #feed: Feed<R>
  readonly #pushes: Pushes<A>
  readonly #board: StatusBoard
  readonly #options: EngineOptions<R, A>
  readonly #dirty: () => void

  /** `dirty`: the snapshot and the status must be rebuilt, and listeners told. */
  constructor(feed: Feed<R>, pushes: Pushes<A>, board: StatusBoard, options: EngineOptions<R, A>, dirty: () => void) {
    this.#feed = feed
    this.#pushes = pushes
    this.#board = board
    this.#options = options
    this.#dirty = dirty
  }

  /** The server refused the channel: sends fail with this until a sync succeeds. */
  get refusal(): Failure | undefined {
    return this.#refusal
  }

  /** A backoff is running: nothing is pushed until it is over. */
  get waiting(): boolean {
    return this.#retry !== undefined
  }

  /** The connection opened or closed: a backoff of the last one no longer applies. */
  reset(): void {
    this.#retry = undefined
    this.#attempts = 0
  }

  /** An answer that was not a temporary refusal: the next backoff starts from the shortest delay. */
  answered(): void {
    this.#attempts = 0
  }

  /** A sync succeeded: the channel is served again. */
  synced(): void {
    this.#refusal = undefined
    this.#attempts = 0
  }

  /** The backoff is over: what to do now (undefined: nothing was waiting for it). */
  due(): Retry | undefined {
    const what = this.#retry
    this.#retry = undefined
    return what
  }

  /** Handles a `Failure` addressed to this client. */
  receive(frame: Failure): void {
    if (frame.clientId === undefined) this.#refused(frame)
    else this.#pushRefused(frame, frame.clientId)
  }

  // Several refusals in one burst share one backoff; a Subscribe retry also covers held actions.
  #backoff(what: Retry) {
    if (this.#retry === undefined) {
      this.#retry = what
      this.#options.backoff(++this.#attempts)
    } else if (what === "subscribe") this.#retry = what
  }

  #show(frame: Failure, connection: Connection = this.#board.connection) {
    this.#board.show(connection, frame)
    this.#options.onChange()
  }

  /** A refused push: a temporary refusal sends it again after a backoff; a final one fails its actions. */
  #pushRefused(frame: Failure, clientId: string) {
    const transient = isTransient(frame.reason)
    const dropped = this.#pushes.refused(clientId, frame.reason, frame.message, transient)
    if (transient) {
      // not decided on the server: it stays queued, and goes again after the backoff
      this.#backoff("actions")
      return this.#show(frame)
    }
    for (const p of dropped) this.#options.onSettled(p)
    this.#board.error(frame.reason, frame.message)
    this.#dirty()
    const error = frame.reason === "UnknownMessage" ? new SyncRefused({ reason: "UnknownMessage", message: frame.message }) : fromFailure(frame)
    for (const p of dropped) p.waiter?.reject(error)
    if (frame.reason === "ClientMismatch") this.#options.mismatch?.(clientId)
    this.#options.wake()
  }

  // A Failure without a client id: a refused socket, a server that cannot start, or a refused Subscribe.
  #refused(frame: Failure) {
    if (frame.channel === null) {
      if (frame.reason === "NotAuthorized") return this.#show(frame, "unauthorized")
      if (frame.reason === "TooManyConnections") return this.#show(frame, "unavailable")
      if (frame.reason !== "Unavailable") return this.#show(frame)
      // none of what we sent was run: subscribe again (actions follow the sync) after a backoff
      this.#pushes.reset(false)
      this.#feed.syncing = true
      this.#backoff("subscribe")
      return this.#show(frame, "unavailable")
    }
    // Routed by channel, so every client of the channel on this socket hears it: a client that is
    // synced (by its own answer or by another client's, which reaches it too) has nothing to redo.
    if (!this.#feed.syncing) return
    if (isTransient(frame.reason)) {
      this.#backoff("subscribe")
      return this.#show(frame, frame.reason === "Unavailable" ? "unavailable" : this.#board.connection)
    }
    if (frame.reason === "Outdated") return this.#show(frame, "outdated")
    // the server will not serve this channel: its queued actions can never apply
    this.#refusal = frame
    if (frame.reason === "NotAuthorized") {
      // no longer allowed to read it: what this client holds of it goes, from memory and from its cache
      this.#feed.load(null, undefined, [])
      this.#options.onConfirmed()
    }
    const error = fromFailure(frame)
    const dropped = this.#pushes.dropAll(frame.reason, frame.message)
    for (const p of dropped) this.#options.onSettled(p)
    // the dropped actions leave the optimistic view too
    this.#board.show(frame.reason === "NotAuthorized" ? "unauthorized" : "failed", frame)
    this.#dirty()
    for (const p of dropped) p.waiter?.reject(error)
  }
}
