/**
 * The client's state machine for one channel, free of I/O so that it is
 * cheap, synchronous and testable: confirmed records and cursor, the sync
 * answer being buffered, the queue of pending actions (Outbox), the
 * optimistic snapshot (the reducer applied over the confirmed records for
 * every pending action, in order) and what the UI is told about the
 * connection (kept by a StatusBoard). Its owner feeds it socket events and
 * decoded frames (it is the channel's Route on a shared socket), persists
 * what it reports and calls `retry()` after a backoff when it asks for one.
 *
 * Ordering rules it relies on (see the Protocol): a sync answer is applied
 * whole at `Synced`; actions are pushed only once the channel is synced on
 * the connection, so an outdated or refused client sends none; the `Change`
 * frames of a push arrive before (or inside) its `Pushed` reply on the same
 * socket, so settling the actions at the reply never shows an older value; a
 * `Change` whose version is not above the cursor was already applied and is
 * skipped. One push is in flight at a time; actions queued meanwhile go in
 * the next one. What a refusal does is in Refusals.ts.
 *
 * @since 0.1.0
 */
import type { Failure } from "../protocol/Protocol.ts"
import { type ActionDiscarded, fromFailure } from "../protocol/Errors.ts"
import type { EngineOptions } from "./EngineOptions.ts"
import * as Optimistic from "./Optimistic.ts"
import type { PendingAction } from "./Outbox.ts"
import { type DiscardedAction, Pushes, type Result } from "./Pushes.ts"
import { Feed } from "./Feed.ts"
import type { RecordTable, Row } from "./RecordTable.ts"
import { Refusals } from "./Refusals.ts"
import type { SyncStatus } from "./Status.ts"
import { StatusBoard } from "./StatusBoard.ts"
import type { ServerFrame } from "./Frames.ts"
import type { Route } from "./Transport.ts"

export type { EngineOptions, RowDecoder } from "./EngineOptions.ts"
export type { PendingAction, Waiter } from "./Outbox.ts"
export type { DiscardedAction } from "./Pushes.ts"

export type { SyncStatus } from "./Status.ts"

/** The synchronous core of a sync client for one channel, and its route on the socket. */
export class SyncEngine<R extends Row, A> implements Route {
  readonly feed = new Feed<R>()
  readonly pushes: Pushes<A>
  readonly #board = new StatusBoard()
  readonly #refusals: Refusals<R, A>
  #open = false
  #snapshot: ReadonlyArray<R> | undefined = []
  /** The last optimistic build: actions queued after it extend it. */
  #view: Optimistic.View<R, A> | undefined
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
    this.#refusals = new Refusals(this.feed, this.pushes, this.#board, options, () => this.#dirty())
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
    return this.#refusals.refusal
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
      else this.#board.pendingIds(Optimistic.EMPTY_IDS)
    }
    return this.#board.read(this.pending.length)
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
      this.#board.error("ReducerFailed", String(error))
    }, this.#view)
    this.#view = view
    this.#snapshot = view.rows
    this.#board.pendingIds(view.ids)
  }

  #dirty() {
    this.#snapshot = undefined
    this.#board.changed()
    this.options.onChange()
  }

  /** Records an error for the UI. */
  report(reason: string, message: string): void {
    this.#board.error(reason, message)
    this.options.onChange()
  }

  /** A frame that could not be decoded. */
  garbage(message: string): void {
    this.report("UnknownMessage", message)
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
    this.#refusals.reset()
    this.pushes.reset(true)
    this.#subscribe()
    this.#board.opened()
    this.options.onChange()
  }

  #subscribe() {
    this.#board.subscribing()
    this.options.transmit(this.feed.subscribe(this.channel, this.sub, this.options.schema, this.options.params))
  }

  /** The socket closed: whatever was in flight is sent again on the next connection. */
  closed(): void {
    this.#open = false
    this.feed.stop()
    this.#refusals.reset()
    this.pushes.reset(false)
    if (this.#board.closed()) this.options.onChange()
  }

  /** The backoff after a temporary refusal is over: subscribe again, or let the held actions go. */
  retry(): void {
    const what = this.#refusals.due()
    if (what === undefined || !this.#open) return
    if (what === "subscribe") this.#subscribe()
    else this.options.wake()
  }

  /** Forgets every record and the cursor; pending actions are rejected. */
  clear(reject: (p: PendingAction<A>) => ActionDiscarded): void {
    for (const p of this.pushes.clear()) p.waiter?.reject(reject(p))
    this.feed.load(null, undefined, [])
    this.#board.clearError()
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

  /** The encoded bytes of the push in flight. */
  get inFlightBytes(): number {
    return this.pushes.inFlightBytes
  }

  /**
   * Sends the next push if one may go now (synced, no backoff running, none
   * in flight), at most `room` actions and about `roomBytes` (one action at
   * least); returns how many actions it carries.
   */
  pushNext(room: number, roomBytes = Infinity): number {
    if (!this.#open || this.feed.syncing || this.#refusals.waiting) return 0
    const push = this.pushes.next(room, Math.min(this.options.maxPushBytes, roomBytes))
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
      this.#refusals.answered()
      this.options.onSettled(entry)
      if (result.reason !== undefined) {
        const failure = { reason: result.reason, message: result.message ?? "" }
        this.#board.error(failure.reason, failure.message)
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
        this.#board.live()
        this.#refusals.synced()
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
        if (this.#open && (!feed.syncing || this.#refusals.refusal !== undefined)) this.#subscribe()
        return
      case "Pushed":
        return this.#pushed(frame.clientId, frame.next, frame.results as ReadonlyArray<Result>)
      case "Failure":
        return this.#refusals.receive(frame)
    }
  }

  #decode(rows: ReadonlyArray<unknown>): Array<R> {
    if (rows.length === 0) return []
    const result = this.options.decodeRows(rows)
    if (result.error !== null) this.#board.error("InvalidRecord", result.error)
    return result.rows
  }
}
