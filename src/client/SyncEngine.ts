/**
 * The client's state machine for one channel, free of I/O so that it is
 * cheap, synchronous and testable: confirmed records and cursor, the sync
 * answer being buffered, the queue of pending actions, and the optimistic
 * snapshot (the reducer applied over the confirmed records for every pending
 * action, in order). Its owner feeds it socket events and decoded frames and
 * persists what it reports.
 *
 * Ordering rules it relies on (see the Protocol): a sync answer is applied
 * whole at `Synced`; the `Change` frames of an action arrive before its
 * `Ack` on the same socket, so dropping the action at `Ack` never shows an
 * older value; a `Change` whose version is not above the cursor was already
 * applied and is skipped.
 *
 * @since 0.1.0
 */
import type { ClientMessage, RowId } from "../protocol/Protocol.ts"
import { type ActionDiscarded, fromFailure, type SendError } from "../protocol/Errors.ts"
import { RecordTable, type Row } from "./RecordTable.ts"
import type { ServerFrame } from "./Frames.ts"

/** The connection and sync state shown to the UI. */
export interface SyncStatus {
  readonly connection: "connecting" | "syncing" | "live" | "offline"
  /** Actions not yet confirmed by the server. */
  readonly pending: number
  /** Ids of the records touched by pending actions (the optimistic rows). */
  readonly pendingIds: ReadonlySet<string | number>
  readonly lastError: { readonly reason: string; readonly message: string } | null
}

/** Someone waiting for an action's outcome. */
export interface Waiter<R> {
  readonly resolve: (rows: ReadonlyArray<R>) => void
  readonly reject: (error: SendError) => void
}

/** A queued action. `(clientId, seq)` is its identity on the server, kept across reloads. */
export interface PendingAction<A> {
  readonly clientId: string
  /** The secret that binds `clientId` on the server; travels with adopted actions. */
  readonly clientKey: string
  readonly seq: number
  readonly requestId: string
  /** The decoded action, handed to the optimistic reducer. */
  readonly action: A
  /** The action as it travels (and is persisted). */
  readonly encoded: unknown
  /** When it was first sent (ms), so a re-send can say so; undefined until then. */
  firstSentAt: number | undefined
  sent: boolean
  waiter: Waiter<any> | undefined
}

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
  /** Most actions sent and not yet answered at once (the server refuses more than it allows). */
  readonly maxInFlight: number
  /** Writes a frame; only called while the socket is open. */
  readonly transmit: (message: ClientMessage) => void
  /** Called (synchronously) after anything visible changed. */
  readonly onChange: () => void
  /** Called after the confirmed records or cursor changed (persist, debounced). */
  readonly onConfirmed: () => void
  /** Called after the pending queue changed (persist now). */
  readonly onPending: () => void
}

const EMPTY_IDS: ReadonlySet<RowId> = new Set()

const defaultIdsOf = (action: unknown): Array<RowId> => {
  if (typeof action !== "object" || action === null) return []
  const a = action as { readonly id?: unknown; readonly payload?: { readonly id?: unknown } }
  const id = a.payload !== null && typeof a.payload === "object" ? a.payload.id : a.id
  return typeof id === "string" || typeof id === "number" ? [id] : []
}

const sameSet = (a: ReadonlySet<RowId>, b: ReadonlySet<RowId>) => {
  if (a.size !== b.size) return false
  for (const x of a) if (!b.has(x)) return false
  return true
}

/** The synchronous core of a sync client. */
export class SyncEngine<R extends Row, A> {
  readonly table = new RecordTable<R>()
  cursor: number | null = null
  /** The history the cursor belongs to (from `Synced`). */
  history: string | undefined = undefined
  readonly pending: Array<PendingAction<A>> = []
  readonly #byRequest = new Map<string, PendingAction<A>>()
  #connection: SyncStatus["connection"] = "connecting"
  #lastError: SyncStatus["lastError"] = null
  #syncing = false
  #syncRows: Array<R> = []
  #syncDeleted: Array<RowId> = []
  #syncReset = false
  #buffered: Array<ServerFrame> = []
  #snapshot: ReadonlyArray<R> | undefined = []
  #pendingIds: ReadonlySet<RowId> = EMPTY_IDS
  #status: SyncStatus | undefined
  #optimistic: EngineOptions<R, A>["optimistic"]
  /** Seqs of this client id at or above `below` are not sent yet: their reservation is not persisted. */
  #gate: { readonly clientId: string; readonly below: number } | undefined

  readonly options: EngineOptions<R, A>

  constructor(options: EngineOptions<R, A>) {
    this.options = options
    this.#optimistic = options.optimistic
  }

  // ---------------------------------------------------------------- reading

  /** The optimistic snapshot: confirmed records with every pending action applied on top. */
  snapshot(): ReadonlyArray<R> {
    if (this.#snapshot === undefined) this.#rebuild()
    return this.#snapshot!
  }

  /** The current status; the same object until something in it changes. */
  status(): SyncStatus {
    if (this.#snapshot === undefined) this.#rebuild()
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

  /** Replaces the optimistic reducer (React passes a new closure each render). */
  setOptimistic(reducer: EngineOptions<R, A>["optimistic"]): void {
    if (reducer === this.#optimistic) return
    this.#optimistic = reducer
    if (this.pending.length > 0) this.#dirty()
  }

  #rebuild() {
    const base = this.table.array()
    const reducer = this.#optimistic
    const idsOf = this.options.idsOf ?? defaultIdsOf
    const ids = new Set<RowId>()
    for (const p of this.pending) for (const id of idsOf(p.action)) ids.add(id)
    let result: ReadonlyArray<R> = base
    if (reducer !== undefined && this.pending.length > 0) {
      for (const p of this.pending) {
        try {
          result = reducer(result, p.action)
        } catch (error) {
          this.#lastError = { reason: "ReducerFailed", message: String(error) }
        }
      }
      if (result !== base) result = this.#settle(result, ids)
    }
    this.#snapshot = result
    const next = ids.size === 0 ? EMPTY_IDS : ids
    if (!sameSet(next, this.#pendingIds)) this.#pendingIds = next
    this.#status = undefined
  }

  // One id, one row: a reducer that appends a row the server already confirmed
  // (its Change arrived, its Ack not yet) must not show it twice. The last
  // value wins at the first position. Rows that differ from the confirmed ones
  // and confirmed rows that vanished are the optimistic rows.
  #settle(rows: ReadonlyArray<R>, ids: Set<RowId>): ReadonlyArray<R> {
    const seen = new Map<RowId, number>()
    let out: Array<R> | undefined
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!
      const id = row[0] as RowId
      const at = seen.get(id)
      if (at !== undefined) {
        out ??= rows.slice(0, i)
        out[at] = row
        continue
      }
      if (out !== undefined) {
        seen.set(id, out.length)
        out.push(row)
      } else seen.set(id, i)
      if (this.table.get(id) !== row) ids.add(id)
    }
    if (seen.size !== this.table.size || out !== undefined) {
      for (const row of this.table.array()) if (!seen.has(row[0] as RowId)) ids.add(row[0] as RowId)
    }
    return out ?? rows
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

  // ---------------------------------------------------------------- lifecycle

  /** Loads the cached confirmed state (before connecting). */
  load(cursor: number | null, history: string | undefined, rows: ReadonlyArray<R>): void {
    this.table.replace(rows)
    this.cursor = cursor
    this.history = history
    this.#dirty()
  }

  /** The socket is open: subscribe from the cursor, then (re)send pending actions in order. */
  connected(): void {
    this.#syncing = true
    this.#syncRows = []
    this.#syncDeleted = []
    this.#syncReset = false
    this.#buffered = []
    this.#connection = "syncing"
    this.options.transmit({
      _tag: "Subscribe",
      channel: this.options.channel,
      since: this.cursor,
      ...(this.history === undefined ? {} : { history: this.history }),
      schema: this.options.schema
    })
    for (const p of this.pending) p.sent = false
    this.#pump()
    this.#statusChanged()
  }

  /** The socket closed: whatever was in flight is sent again on the next connection. */
  disconnected(): void {
    this.#syncing = false
    this.#syncRows = []
    this.#syncDeleted = []
    this.#buffered = []
    for (const p of this.pending) p.sent = false
    if (this.#connection !== "offline") {
      this.#connection = "offline"
      this.#statusChanged()
    }
  }

  /** Forgets every record and the cursor; pending actions are rejected. */
  clear(reject: (p: PendingAction<A>) => ActionDiscarded, connected: boolean): void {
    const dropped = this.pending.splice(0)
    this.#byRequest.clear()
    for (const p of dropped) p.waiter?.reject(reject(p))
    this.table.replace([])
    this.cursor = null
    this.history = undefined
    this.#lastError = null
    this.options.onPending()
    this.options.onConfirmed()
    this.#dirty()
    if (connected) this.connected()
  }

  // ---------------------------------------------------------------- actions

  /** Queues an action; it is sent now if the socket allows. */
  enqueue(entry: PendingAction<A>, open: boolean): void {
    this.pending.push(entry)
    this.#byRequest.set(entry.requestId, entry)
    this.options.onPending()
    if (open && (this.#connection === "syncing" || this.#connection === "live")) this.#pump()
    this.#dirty()
  }

  /** Takes over queued actions of a client that is gone; at the front when they predate ours. */
  adopt(entries: ReadonlyArray<PendingAction<A>>, atFront: boolean, open: boolean): void {
    if (entries.length === 0) return
    if (atFront) this.pending.unshift(...entries)
    else this.pending.push(...entries)
    for (const e of entries) this.#byRequest.set(e.requestId, e)
    if (open && (this.#connection === "syncing" || this.#connection === "live")) this.#pump()
    this.#dirty()
  }

  /**
   * Holds back actions of `clientId` from seq `below` on: a client with a
   * fixed id sends a seq only once storage says a reloaded client starts
   * past it, or a crash could make that client reuse the seq.
   */
  allowSeqs(clientId: string, below: number, open: boolean): void {
    const raised = this.#gate === undefined || below > this.#gate.below
    if (raised) this.#gate = { clientId, below }
    if (raised && open && (this.#connection === "syncing" || this.#connection === "live")) this.#pump()
  }

  #pump() {
    let inFlight = 0
    for (const p of this.pending) if (p.sent) inFlight++
    const gate = this.#gate
    for (const p of this.pending) {
      if (inFlight >= this.options.maxInFlight) break
      if (p.sent) continue
      if (gate !== undefined && p.clientId === gate.clientId && p.seq >= gate.below) break
      p.sent = true
      inFlight++
      const resent = p.firstSentAt
      if (resent === undefined) p.firstSentAt = Date.now()
      this.options.transmit({
        _tag: "Action",
        requestId: p.requestId,
        channel: this.options.channel,
        clientId: p.clientId,
        clientKey: p.clientKey,
        seq: p.seq,
        action: p.encoded,
        ...(resent === undefined ? {} : { sentAt: resent }),
        schema: this.options.schema
      })
    }
  }

  #settleAction(requestId: string): PendingAction<A> | undefined {
    const entry = this.#byRequest.get(requestId)
    if (entry === undefined) return undefined
    this.#byRequest.delete(requestId)
    const i = this.pending.indexOf(entry)
    if (i >= 0) this.pending.splice(i, 1)
    this.options.onPending()
    return entry
  }

  /** True when an `Ack` or `Failure` with this request id belongs to this engine. */
  owns(requestId: string): boolean {
    return this.#byRequest.has(requestId)
  }

  // ---------------------------------------------------------------- frames

  /** Handles one decoded frame addressed to this channel (or to one of its requests). */
  receive(frame: ServerFrame): void {
    // a refused Subscribe (requestId null) would otherwise wait behind a sync that never ends
    const urgent = frame._tag === "SyncRows" || frame._tag === "Synced" || (frame._tag === "Failure" && frame.requestId === null)
    if (this.#syncing && !urgent) {
      this.#buffered.push(frame)
      return
    }
    switch (frame._tag) {
      case "SyncRows": {
        if (!this.#syncing) return
        if (frame.reset && !this.#syncReset) {
          this.#syncReset = true
          this.#syncRows = []
          this.#syncDeleted = []
        }
        const decoded = this.#decode(frame.rows)
        for (const row of decoded) this.#syncRows.push(row)
        for (const id of frame.deleted) this.#syncDeleted.push(id)
        return
      }
      case "Synced": {
        if (!this.#syncing) return
        if (this.#syncReset || frame.reset) this.table.replace(this.#syncRows)
        else {
          for (const id of this.#syncDeleted) this.table.remove(id)
          for (const row of this.#syncRows) this.table.apply(row)
        }
        this.cursor = frame.version
        this.history = frame.history
        this.#syncing = false
        this.#syncRows = []
        this.#syncDeleted = []
        this.#connection = "live"
        const buffered = this.#buffered
        this.#buffered = []
        this.options.onConfirmed()
        this.#dirty()
        for (const f of buffered) this.receive(f)
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
        this.#pump()
        this.#dirty()
        entry.waiter?.resolve(rows)
        return
      }
      case "Failure": {
        if (frame.requestId !== null) {
          const entry = this.#settleAction(frame.requestId)
          if (entry === undefined) return
          this.#lastError = { reason: frame.reason, message: frame.message }
          this.#pump()
          this.#dirty()
          entry.waiter?.reject(fromFailure(frame))
          return
        }
        this.report(frame.reason, frame.message)
        return
      }
    }
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
