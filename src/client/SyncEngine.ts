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
 * whole at `Synced`; actions are pushed only once the channel is synced on
 * the connection, so an outdated or refused client sends none; the `Change`
 * frames of a push arrive before (or inside) its `Pushed` reply on the same
 * socket, so settling the actions at the reply never shows an older value; a
 * `Change` whose version is not above the cursor was already applied and is
 * skipped. One push is in flight at a time; actions queued meanwhile go in
 * the next one.
 *
 * Refusals: `TooManyInFlight` and `Unavailable` are temporary. A refused push
 * stays queued and is sent again after a backoff; a refused Subscribe is sent
 * again on the retry. `Outdated` and a refused socket (`NotAuthorized`) are
 * shown in the status and keep the queue; any other refused Subscribe
 * (`UnknownChannel`) fails the queue and every later send until a sync
 * succeeds.
 *
 * @since 0.1.0
 */
import { isTransient, type ClientMessage, type Failure, type RowId } from "../protocol/Protocol.ts"
import { type ActionDiscarded, fromFailure, SyncRefused } from "../protocol/Errors.ts"
import * as Optimistic from "./Optimistic.ts"
import type { PendingAction } from "./Outbox.ts"
import { type DiscardedAction, Pushes, type Result } from "./Pushes.ts"
import { Feed } from "./Feed.ts"
import type { RecordTable, Row } from "./RecordTable.ts"
import { type Connection, STICKY, type SyncStatus } from "./Status.ts"
import type { ServerFrame } from "./Frames.ts"
import type { Route } from "./Transport.ts"

export type { PendingAction, Waiter } from "./Outbox.ts"
export type { DiscardedAction } from "./Pushes.ts"

export type { SyncStatus } from "./Status.ts"

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

/** The synchronous core of a sync client for one channel, and its route on the socket. */
export class SyncEngine<R extends Row, A> implements Route {
  readonly feed = new Feed<R>()
  readonly pushes: Pushes<A>
  #connection: Connection = "connecting"
  #lastError: SyncStatus["lastError"] = null
  /** `lastError` when the current Subscribe went out: a sync that succeeds clears it unless a newer one came since. */
  #errorBeforeSync: SyncStatus["lastError"] = null
  #open = false
  /** What `retry()` will do: the backoff after a temporary refusal is running. */
  #retry: "subscribe" | "actions" | undefined
  /** Temporary refusals since the last answer that was not one. */
  #attempts = 0
  /** The server refused the channel: sends fail with this until a sync succeeds. */
  #refusal: Failure | undefined
  #snapshot: ReadonlyArray<R> | undefined = []
  #pendingIds: ReadonlySet<RowId> = Optimistic.EMPTY_IDS
  /** The last optimistic build: actions queued after it extend it. */
  #view: Optimistic.View<R, A> | undefined
  #status: SyncStatus | undefined
  #optimistic: EngineOptions<R, A>["optimistic"]

  readonly options: EngineOptions<R, A>
  readonly channel: string
  readonly sub: string
  readonly maxInFlight: number

  constructor(options: EngineOptions<R, A>) {
    this.options = options
    this.channel = options.channel
    this.sub = options.sub ?? options.channel
    this.maxInFlight = options.maxInFlight
    this.#optimistic = options.optimistic
    this.pushes = new Pushes<A>(options.channel, options.clientId)
  }

  /** The confirmed records. */
  get table(): RecordTable<R> {
    return this.feed.table
  }

  /** The cursor of the confirmed records. */
  get cursor(): number | null {
    return this.feed.cursor
  }

  /** The history the cursor belongs to (from `Synced`). */
  get history(): string | undefined {
    return this.feed.history
  }

  /** The queue of pending actions. */
  get outbox() {
    return this.pushes.outbox
  }

  /** Actions not yet confirmed, in order. */
  get pending(): ReadonlyArray<PendingAction<A>> {
    return this.outbox.pending
  }

  /** Queued actions the server refused while nobody waited for them, oldest first (the newest 100). */
  discarded(): ReadonlyArray<DiscardedAction<A>> {
    return this.pushes.discarded
  }

  /** Forgets the discarded actions (the app has shown them). */
  dismissDiscarded(): void {
    if (this.pushes.dismiss()) this.options.onChange()
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
    }, this.#view)
    this.#view = view
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
    this.feed.load(cursor, history, rows)
    this.#dirty()
  }

  /** The socket is open: subscribe from the cursor; pending actions follow once synced. */
  opened(): void {
    this.#open = true
    this.feed.stop()
    this.#retry = undefined
    this.#attempts = 0
    this.pushes.reset(true)
    this.#subscribe()
    if (!STICKY.has(this.#connection) && !this.#socketRefused()) this.#connection = "syncing"
    this.#statusChanged()
  }

  #subscribe() {
    this.#errorBeforeSync = this.#lastError
    this.options.transmit(this.feed.subscribe(this.channel, this.sub, this.options.schema, this.options.params))
  }

  /** The socket closed: whatever was in flight is sent again on the next connection. */
  closed(): void {
    this.#open = false
    this.feed.stop()
    this.#retry = undefined
    this.#attempts = 0
    this.pushes.reset(false)
    if (!STICKY.has(this.#connection) && this.#connection !== "offline" && !this.#socketRefused()) this.#show("offline")
  }

  // A socket refused over the server's connection caps shows `unavailable` until a sync succeeds (partysocket reconnects).
  #socketRefused(): boolean {
    return this.#connection === "unavailable" && this.#lastError?.reason === "TooManyConnections"
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
    for (const p of this.pushes.clear()) p.waiter?.reject(reject(p))
    this.feed.load(null, undefined, [])
    this.#lastError = null
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

  /** A fixed client id's seqs below `below` are stored: they may be sent (a reload never reuses them). */
  allowSeqs(clientId: string, below: number): void {
    if (this.outbox.allowSeqs(clientId, below)) this.options.wake()
  }

  /** Holds a fixed client id's seqs back until `allowSeqs` says they are stored. */
  gateSeqs(clientId: string): void {
    this.outbox.gate(clientId)
  }

  /** Actions pushed and not answered yet (the socket's budget counts them). */
  get inFlight(): number {
    return this.pushes.inFlight
  }

  /** Sends the next push if one may go now (synced, no backoff running, none in flight); returns how many actions it carries. */
  pushNext(room: number): number {
    if (!this.#open || this.feed.syncing || this.#retry !== undefined) return 0
    const push = this.pushes.next(room, this.options.maxPushBytes)
    if (push === undefined) return 0
    this.options.transmit(push)
    return push.actions.length
  }

  /** Seqs of `clientId` up to `seq` are settled and gone from the stored queue: the server may forget their outcomes. */
  confirm(clientId: string, seq: number): void {
    this.pushes.confirm(clientId, seq)
  }

  /** Tells the server what was settled since the last push, when no push will carry it soon (the queue is idle). */
  confirmIdle(keyOf: (clientId: string) => string | undefined): void {
    if (!this.#open || this.feed.syncing) return
    for (const push of this.pushes.idleConfirms(keyOf)) this.options.transmit(push)
  }

  /** True when replies to `clientId` belong to this engine. */
  owns(clientId: string): boolean {
    return this.pushes.owns(clientId)
  }

  /** A push's reply: settle what it decided; what is at or past `next` goes again. */
  #pushed(clientId: string, next: number, results: ReadonlyArray<Result>) {
    const settled = this.pushes.replied(clientId, next, results)
    const calls: Array<() => void> = []
    for (const { entry, result } of settled) {
      this.#attempts = 0
      this.options.onSettled(entry)
      if (result.reason !== undefined) {
        const failure = { reason: result.reason, message: result.message ?? "" }
        this.#lastError = failure
        calls.push(() => entry.waiter?.reject(fromFailure(failure)))
      } else {
        const rows = this.#decode(result.rows ?? [])
        calls.push(() => entry.waiter?.resolve(rows))
      }
    }
    if (calls.length > 0) this.#dirty()
    for (const f of calls) f()
    if (!this.pushes.busy) this.options.wake()
  }

  /** A refused push: a temporary refusal sends it again after a backoff; a final one fails its actions. */
  #pushRefused(frame: Failure, clientId: string) {
    const transient = isTransient(frame.reason)
    const dropped = this.pushes.refused(clientId, frame.reason, frame.message, transient)
    if (transient) {
      // not decided on the server: it stays queued, and goes again after the backoff
      this.#backoff("actions")
      this.report(frame.reason, frame.message)
      return
    }
    for (const p of dropped) this.options.onSettled(p)
    this.#lastError = { reason: frame.reason, message: frame.message }
    this.#dirty()
    const error = frame.reason === "UnknownMessage" ? new SyncRefused({ reason: "UnknownMessage", message: frame.message }) : fromFailure(frame)
    for (const p of dropped) p.waiter?.reject(error)
    if (frame.reason === "ClientMismatch") this.options.mismatch?.(clientId)
    this.options.wake()
  }

  // ---------------------------------------------------------------- frames

  /** Handles one decoded frame addressed to this channel (or to one of its requests). */
  receive(frame: ServerFrame): void {
    // a refused Subscribe (no client id) would otherwise wait behind a sync that never ends
    const urgent = frame._tag === "SyncRows" || frame._tag === "Synced" || frame._tag === "Resync" ||
      (frame._tag === "Failure" && frame.clientId === undefined)
    const feed = this.feed
    if (feed.syncing && !urgent) {
      feed.answer.waiting.push(frame)
      return
    }
    switch (frame._tag) {
      case "SyncRows": {
        if (feed.syncing) feed.answer.add(frame.reset, this.#decode(frame.rows), frame.deleted)
        return
      }
      case "Synced": {
        if (!feed.syncing) return
        const buffered = feed.synced(frame.version, frame.history, frame.reset)
        this.#connection = "live"
        if (this.#lastError === this.#errorBeforeSync) this.#lastError = null
        this.#refusal = undefined
        this.#attempts = 0
        this.options.onConfirmed()
        this.#dirty()
        for (const f of buffered) this.receive(f)
        this.options.wake()
        return
      }
      case "Change": {
        if (feed.cursor !== null && frame.version <= feed.cursor) return
        feed.change(frame.version, this.#decode(frame.rows), frame.deleted)
        this.options.onConfirmed()
        this.#dirty()
        return
      }
      case "Resync":
        // the view's rule changed (or a refused one now allows us): the server stopped its changes until we
        // subscribe again; while our Subscribe is out, its answer (on its way) already follows the new rule
        if (this.#open && (!feed.syncing || this.#refusal !== undefined)) this.#subscribe()
        return
      case "Pushed":
        return this.#pushed(frame.clientId, frame.next, frame.results as ReadonlyArray<Result>)
      case "Failure":
        return frame.clientId === undefined ? this.#refused(frame) : this.#pushRefused(frame, frame.clientId)
    }
  }

  // A Failure without a client id: a refused socket, a server that cannot start, or a refused Subscribe.
  #refused(frame: Failure) {
    if (frame.channel === null) {
      if (frame.reason === "NotAuthorized") return this.#show("unauthorized", frame)
      if (frame.reason === "TooManyConnections") return this.#show("unavailable", frame)
      if (frame.reason !== "Unavailable") return this.report(frame.reason, frame.message)
      // none of what we sent was run: subscribe again (actions follow the sync) after a backoff
      this.pushes.reset(false)
      this.feed.syncing = true
      this.#backoff("subscribe")
      return this.#show("unavailable", frame)
    }
    // Routed by channel, so every client of the channel on this socket hears it: a client that is
    // synced (by its own answer or by another client's, which reaches it too) has nothing to redo.
    if (!this.feed.syncing) return
    if (isTransient(frame.reason)) {
      this.#backoff("subscribe")
      return this.#show(frame.reason === "Unavailable" ? "unavailable" : this.#connection, frame)
    }
    if (frame.reason === "Outdated") return this.#show("outdated", frame)
    // the server will not serve this channel: its queued actions can never apply
    this.#refusal = frame
    if (frame.reason === "NotAuthorized") {
      // no longer allowed to read it: what this client holds of it goes, from memory and from its cache
      this.feed.load(null, undefined, [])
      this.options.onConfirmed()
    }
    const error = fromFailure(frame)
    const dropped = this.pushes.dropAll(frame.reason, frame.message)
    for (const p of dropped) this.options.onSettled(p)
    // the dropped actions leave the optimistic view too
    this.#snapshot = undefined
    this.#show(frame.reason === "NotAuthorized" ? "unauthorized" : "failed", frame)
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
