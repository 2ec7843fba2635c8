/**
 * The client's state machine for one channel, free of I/O so that it is
 * cheap, synchronous and testable: confirmed records and cursor, the sync
 * answer being buffered, the queue of pending actions (Outbox), the
 * optimistic snapshot (the reducer applied over the confirmed records for
 * every pending action, in order) and what the UI is told about the
 * connection. Its owner feeds it socket events and decoded frames (it is the
 * channel's Route on a shared socket), persists what it reports and calls
 * `retry()` after a backoff when it asks for one.
 *
 * Ordering rules it relies on (see the Protocol): a sync answer is applied
 * whole at `Synced`; actions are sent only once the channel is synced on the
 * connection, so an outdated or refused client sends none; the `Change`
 * frames of an action arrive before its `Ack` on the same socket, so
 * dropping the action at `Ack` never shows an older value; a `Change` whose
 * version is not above the cursor was already applied and is skipped.
 *
 * Refusals: `TooManyInFlight` and `Unavailable` are temporary. A refused
 * action stays queued and nothing after it is sent until the retry; a
 * refused Subscribe is sent again on the retry. `Outdated` and a refused
 * socket (`NotAuthorized`) are shown in the status and keep the queue; any
 * other refused Subscribe (`UnknownChannel`) fails the queue and every
 * later send until a sync succeeds.
 *
 * @since 0.1.0
 */
import { isTransient, type ClientMessage, type Failure, type RowId } from "../protocol/Protocol.ts"
import { type ActionDiscarded, fromFailure } from "../protocol/Errors.ts"
import * as Optimistic from "./Optimistic.ts"
import { Outbox, type PendingAction } from "./Outbox.ts"
import { RecordTable, type Row } from "./RecordTable.ts"
import { type Connection, STICKY, type SyncStatus } from "./Status.ts"
import { SyncAnswer } from "./SyncAnswer.ts"
import type { ServerFrame } from "./Frames.ts"
import type { Route } from "./Transport.ts"

export type { PendingAction, Waiter } from "./Outbox.ts"
export type { SyncStatus } from "./Status.ts"

/** Decodes wire rows with the channel's record Schema. */
export type RowDecoder<R> = (rows: ReadonlyArray<unknown>) => { readonly rows: Array<R>; readonly error: string | null }

/** What the engine needs from its owner. */
export interface EngineOptions<R extends Row, A> {
  readonly channel: string
  /** The channel's schema version this client was built with. */
  readonly schema: number
  readonly decodeRows: RowDecoder<R>
  readonly optimistic?: ((records: ReadonlyArray<R>, action: A) => ReadonlyArray<R>) | undefined
  /** Ids an action touches, besides those the reducer visibly changes. */
  readonly idsOf?: ((action: A) => Iterable<RowId>) | undefined
  /** The most actions this client allows unanswered on its socket (the socket's clients share one budget). */
  readonly maxInFlight: number
  /** Writes a frame (dropped unless the socket is open). */
  readonly transmit: (message: ClientMessage) => void
  /** An action may be sendable: the socket's hub calls `sendNext` while its budget allows. */
  readonly wake: () => void
  /** A temporary refusal: call `retry()` after a backoff; `attempt` is 1 for the first since a success. */
  readonly backoff: (attempt: number) => void
  /** Called (synchronously) after anything visible changed. */
  readonly onChange: () => void
  /** Called after the confirmed records or cursor changed (persist, debounced). */
  readonly onConfirmed: () => void
  /** Called after the pending queue changed (persist now). */
  readonly onPending: () => void
}

/** The synchronous core of a sync client for one channel, and its route on the socket. */
export class SyncEngine<R extends Row, A> implements Route {
  readonly table = new RecordTable<R>()
  cursor: number | null = null
  /** The history the cursor belongs to (from `Synced`). */
  history: string | undefined = undefined
  readonly outbox = new Outbox<A>()
  #connection: Connection = "connecting"
  #lastError: SyncStatus["lastError"] = null
  #open = false
  /** No sync answer yet on this connection: frames other than the answer wait, and no action is sent. */
  #syncing = false
  readonly #answer = new SyncAnswer<R>()
  /** What `retry()` will do: the backoff after a temporary refusal is running. */
  #retry: "subscribe" | "actions" | undefined
  /** Temporary refusals since the last answer that was not one. */
  #attempts = 0
  /** The server refused the channel: sends fail with this until a sync succeeds. */
  #refusal: Failure | undefined
  #snapshot: ReadonlyArray<R> | undefined = []
  #pendingIds: ReadonlySet<RowId> = Optimistic.EMPTY_IDS
  #status: SyncStatus | undefined
  #optimistic: EngineOptions<R, A>["optimistic"]

  readonly options: EngineOptions<R, A>
  readonly channel: string
  readonly maxInFlight: number

  constructor(options: EngineOptions<R, A>) {
    this.options = options
    this.channel = options.channel
    this.maxInFlight = options.maxInFlight
    this.#optimistic = options.optimistic
  }

  /** Actions not yet confirmed, in order. */
  get pending(): ReadonlyArray<PendingAction<A>> {
    return this.outbox.pending
  }

  /** Why the server refused the channel, while it does: sends fail with it. */
  refusal(): Failure | undefined {
    return this.#refusal
  }

  // ---------------------------------------------------------------- reading

  /** The optimistic snapshot: confirmed records with every pending action applied on top. */
  snapshot(): ReadonlyArray<R> {
    if (this.#snapshot === undefined) this.#rebuild()
    return this.#snapshot!
  }

  /** The current status; the same object until something in it changes. */
  status(): SyncStatus {
    if (this.#snapshot === undefined) {
      // with nothing pending no id is: reading the status alone never builds the snapshot (O(table))
      if (this.pending.length > 0) this.#rebuild()
      else if (this.#pendingIds !== Optimistic.EMPTY_IDS) {
        this.#pendingIds = Optimistic.EMPTY_IDS
        this.#status = undefined
      }
    }
    if (this.#status === undefined) {
      this.#status = {
        connection: this.#connection,
        pending: this.pending.length,
        pendingIds: this.#pendingIds,
        lastError: this.#lastError
      }
    }
    return this.#status
  }

  /**
   * Replaces the optimistic reducer. `quiet` (React, during a render): only
   * the cached snapshot goes, so the next read rebuilds it with the new
   * reducer; listeners are not called from inside a render.
   */
  setOptimistic(reducer: EngineOptions<R, A>["optimistic"], quiet = false): void {
    if (reducer === this.#optimistic) return
    this.#optimistic = reducer
    if (this.pending.length === 0) return
    if (quiet) this.#snapshot = undefined
    else this.#dirty()
  }

  #rebuild() {
    const view = Optimistic.build(this.table, this.pending, this.#optimistic, this.options.idsOf ?? Optimistic.defaultIdsOf, (error) => {
      this.#lastError = { reason: "ReducerFailed", message: String(error) }
      this.#status = undefined
    })
    this.#snapshot = view.rows
    // the status object stays the same unless something in it changed
    if (!Optimistic.sameSet(view.ids, this.#pendingIds)) {
      this.#pendingIds = view.ids
      this.#status = undefined
    }
  }

  #dirty() {
    this.#snapshot = undefined
    this.#status = undefined
    this.options.onChange()
  }

  #statusChanged() {
    this.#status = undefined
    this.options.onChange()
  }

  /** Records an error for the UI. */
  report(reason: string, message: string): void {
    this.#lastError = { reason, message }
    this.#statusChanged()
  }

  /** A frame that could not be decoded. */
  garbage(message: string): void {
    this.report("UnknownMessage", message)
  }

  #show(connection: Connection, failure?: Failure) {
    this.#connection = connection
    if (failure !== undefined) this.#lastError = { reason: failure.reason, message: failure.message }
    this.#statusChanged()
  }

  // ---------------------------------------------------------------- lifecycle

  /** Loads the cached confirmed state (before connecting). */
  load(cursor: number | null, history: string | undefined, rows: ReadonlyArray<R>): void {
    this.table.replace(rows)
    this.cursor = cursor
    this.history = history
    this.#dirty()
  }

  /** The socket is open: subscribe from the cursor; pending actions follow once synced. */
  opened(): void {
    this.#open = true
    this.#answer.restart(true)
    this.#retry = undefined
    this.#attempts = 0
    this.outbox.unsendAll()
    this.#subscribe()
    if (!STICKY.has(this.#connection)) this.#connection = "syncing"
    this.#statusChanged()
  }

  #subscribe() {
    this.#syncing = true
    this.#answer.restart(false)
    this.options.transmit({
      _tag: "Subscribe",
      channel: this.channel,
      since: this.cursor,
      ...(this.history === undefined ? {} : { history: this.history }),
      schema: this.options.schema
    })
  }

  /** The socket closed: whatever was in flight is sent again on the next connection. */
  closed(): void {
    this.#open = false
    this.#syncing = false
    this.#answer.restart(true)
    this.#retry = undefined
    this.#attempts = 0
    this.outbox.unsendAll()
    if (!STICKY.has(this.#connection) && this.#connection !== "offline") this.#show("offline")
  }

  /** The backoff after a temporary refusal is over: subscribe again, or let the held actions go. */
  retry(): void {
    const what = this.#retry
    this.#retry = undefined
    if (what === undefined || !this.#open) return
    if (what === "subscribe") this.#subscribe()
    else this.options.wake()
  }

  // Several refusals in one burst share one backoff; a Subscribe retry also covers held actions.
  #backoff(what: "subscribe" | "actions") {
    if (this.#retry === undefined) {
      this.#retry = what
      this.options.backoff(++this.#attempts)
    } else if (what === "subscribe") this.#retry = what
  }

  /** Forgets every record and the cursor; pending actions are rejected. */
  clear(reject: (p: PendingAction<A>) => ActionDiscarded): void {
    for (const p of this.outbox.clear()) p.waiter?.reject(reject(p))
    this.table.replace([])
    this.cursor = null
    this.history = undefined
    this.#lastError = null
    this.options.onPending()
    this.options.onConfirmed()
    this.#dirty()
    if (this.#open) this.opened()
  }

  // ---------------------------------------------------------------- actions

  /** Queues actions (at the front when adopted ones predate ours); they go out as the socket allows. The caller persists them. */
  enqueue(entries: ReadonlyArray<PendingAction<A>>, atFront = false): void {
    if (entries.length === 0) return
    this.outbox.add(entries, atFront)
    this.options.wake()
    this.#dirty()
  }

  /**
   * Holds back actions of `clientId` from seq `below` on: a client with a
   * fixed id sends a seq only once storage says a reloaded client starts
   * past it, or a crash could make that client reuse the seq.
   */
  allowSeqs(clientId: string, below: number): void {
    if (this.outbox.allowSeqs(clientId, below)) this.options.wake()
  }

  /** Sends the next pending action if one may go now (synced, no backoff running). */
  sendNext(): boolean {
    if (!this.#open || this.#syncing || this.#retry !== undefined) return false
    const p = this.outbox.next()
    if (p === undefined) return false
    p.sent = true
    const resent = p.firstSentAt
    if (resent === undefined) p.firstSentAt = Date.now()
    this.options.transmit({
      _tag: "Action",
      requestId: p.requestId,
      channel: this.channel,
      clientId: p.clientId,
      clientKey: p.clientKey,
      seq: p.seq,
      action: p.encoded,
      ...(resent === undefined ? {} : { sentAt: resent }),
      schema: p.schema
    })
    return true
  }

  #settleAction(requestId: string): PendingAction<A> | undefined {
    const entry = this.outbox.take(requestId)
    if (entry === undefined) return undefined
    this.#attempts = 0
    this.options.onPending()
    return entry
  }

  /** True when an `Ack` or `Failure` with this request id belongs to this engine. */
  owns(requestId: string): boolean {
    return this.outbox.owns(requestId)
  }

  // ---------------------------------------------------------------- frames

  /** Handles one decoded frame addressed to this channel (or to one of its requests). */
  receive(frame: ServerFrame): void {
    // a refused Subscribe (requestId null) would otherwise wait behind a sync that never ends
    const urgent = frame._tag === "SyncRows" || frame._tag === "Synced" || (frame._tag === "Failure" && frame.requestId === null)
    if (this.#syncing && !urgent) {
      this.#answer.waiting.push(frame)
      return
    }
    switch (frame._tag) {
      case "SyncRows": {
        if (this.#syncing) this.#answer.add(frame.reset, this.#decode(frame.rows), frame.deleted)
        return
      }
      case "Synced": {
        if (!this.#syncing) return
        const buffered = this.#answer.apply(this.table, frame.reset)
        this.cursor = frame.version
        this.history = frame.history
        this.#syncing = false
        this.#connection = "live"
        this.#refusal = undefined
        this.#attempts = 0
        this.options.onConfirmed()
        this.#dirty()
        for (const f of buffered) this.receive(f)
        this.options.wake()
        return
      }
      case "Change": {
        if (this.cursor !== null && frame.version <= this.cursor) return
        for (const id of frame.deleted) this.table.remove(id)
        for (const row of this.#decode(frame.rows)) this.table.apply(row)
        this.cursor = frame.version
        this.options.onConfirmed()
        this.#dirty()
        return
      }
      case "Ack": {
        const entry = this.#settleAction(frame.requestId)
        if (entry === undefined) return
        const rows = this.#decode(frame.rows)
        this.#dirty()
        entry.waiter?.resolve(rows)
        return
      }
      case "Failure":
        return frame.requestId === null ? this.#refused(frame) : this.#actionFailed(frame, frame.requestId)
    }
  }

  #actionFailed(frame: Failure, requestId: string) {
    if (isTransient(frame.reason)) {
      // not decided on the server: it stays queued, and nothing after it goes before it
      const entry = this.outbox.get(requestId)
      if (entry === undefined) return
      entry.sent = false
      this.#backoff("actions")
      this.report(frame.reason, frame.message)
      return
    }
    const entry = this.#settleAction(requestId)
    if (entry === undefined) return
    this.#lastError = { reason: frame.reason, message: frame.message }
    this.#dirty()
    entry.waiter?.reject(fromFailure(frame))
  }

  // A Failure without a request id: a refused socket, a server that cannot start, or a refused Subscribe.
  #refused(frame: Failure) {
    if (frame.channel === null) {
      if (frame.reason === "NotAuthorized") return this.#show("unauthorized", frame)
      if (frame.reason !== "Unavailable") return this.report(frame.reason, frame.message)
      // none of what we sent was run: subscribe again (actions follow the sync) after a backoff
      this.outbox.unsendAll()
      this.#syncing = true
      this.#backoff("subscribe")
      return this.#show("unavailable", frame)
    }
    // Routed by channel, so every client of the channel on this socket hears it: a client that is
    // synced (by its own answer or by another client's, which reaches it too) has nothing to redo.
    if (!this.#syncing) return
    if (isTransient(frame.reason)) {
      this.#backoff("subscribe")
      return this.#show(frame.reason === "Unavailable" ? "unavailable" : this.#connection, frame)
    }
    if (frame.reason === "Outdated") return this.#show("outdated", frame)
    // the server will not serve this channel: its queued actions can never apply
    this.#refusal = frame
    const error = fromFailure(frame)
    const dropped = this.outbox.clear()
    if (dropped.length > 0) this.options.onPending()
    // the dropped actions leave the optimistic view too
    this.#snapshot = undefined
    this.#show("failed", frame)
    for (const p of dropped) p.waiter?.reject(error)
  }

  #decode(rows: ReadonlyArray<unknown>): Array<R> {
    if (rows.length === 0) return []
    const result = this.options.decodeRows(rows)
    if (result.error !== null) {
      this.#lastError = { reason: "InvalidRecord", message: result.error }
      this.#status = undefined
    }
    return result.rows
  }
}
