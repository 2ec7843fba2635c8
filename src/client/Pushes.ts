/**
 * A client's pushes, free of I/O: the queue (Outbox), the one push in
 * flight, what the server may be told it can forget (confirms), seqs the
 * server expects that this client no longer holds (skips), and the queued
 * actions the server refused while nobody waited for them (discarded).
 *
 * The engine decides when a push may go (the socket is open and synced, no
 * backoff runs) and what a settled action means for the UI; this keeps the
 * bookkeeping of which action is where.
 *
 * @since 0.2.0
 */
import type { Failure, Push } from "../protocol/Protocol.ts"
import { Outbox, type PendingAction } from "./Outbox.ts"

/**
 * A queued action the server refused while no `send` was waiting for it (it
 * was queued by an earlier page or another tab): kept so the app can show it.
 */
export interface DiscardedAction<A> {
  readonly clientId: string
  readonly seq: number
  /** The action, when this build can read it (undefined for one encoded for an older version it cannot). */
  readonly action: A | undefined
  /** The action as it was queued. */
  readonly encoded: unknown
  /** The channel version it was encoded for. */
  readonly schema: number
  readonly reason: string
  readonly message: string
}

/** How many discarded actions a client keeps (the newest). */
const DISCARDED_KEPT = 100

/** One action's outcome in a push's reply. */
export interface Result {
  readonly seq: number
  readonly rows?: ReadonlyArray<unknown>
  readonly reason?: Failure["reason"]
  readonly message?: string
}

/** The pushes of one channel's client. */
export class Pushes<A> {
  readonly outbox = new Outbox<A>()
  /** The push in flight: its client id, the seqs not answered yet, and its actions' bytes (until its reply). */
  #inFlight: { readonly clientId: string; readonly seqs: Set<number>; readonly bytes: number } | undefined
  /** Per client id: the highest seq settled for good (its stored record removed), and the last one the server was told. */
  readonly #confirmable = new Map<string, number>()
  readonly #confirmSent = new Map<string, number>()
  /** Per client id: the server expects a seq this client no longer holds; the next push says so. */
  readonly #skip = new Map<string, number>()
  #discarded: ReadonlyArray<DiscardedAction<A>> = []

  readonly channel: string
  readonly ownClientId: string

  constructor(channel: string, ownClientId: string) {
    this.channel = channel
    this.ownClientId = ownClientId
  }

  /** Actions pushed and not answered yet (the socket's budget counts them). */
  get inFlight(): number {
    return this.#inFlight?.seqs.size ?? 0
  }

  /** The encoded bytes of the push in flight (the socket's byte budget counts them until its reply). */
  get inFlightBytes(): number {
    return this.#inFlight?.bytes ?? 0
  }

  /** Whether a push is waiting for its reply. */
  get busy(): boolean {
    return this.#inFlight !== undefined
  }

  /** Queued actions the server refused while nobody waited for them, oldest first (the newest 100). */
  get discarded(): ReadonlyArray<DiscardedAction<A>> {
    return this.#discarded
  }

  /** Forgets the discarded actions; false when there were none. */
  dismiss(): boolean {
    if (this.#discarded.length === 0) return false
    this.#discarded = []
    return true
  }

  /** Keeps a refused action nobody waits for in the discarded list. */
  discard(entry: PendingAction<A>, reason: string, message: string): void {
    if (entry.waiter !== undefined) return
    const next = [...this.#discarded, { clientId: entry.clientId, seq: entry.seq, action: entry.action, encoded: entry.encoded, schema: entry.schema, reason, message }]
    this.#discarded = next.length > DISCARDED_KEPT ? next.slice(-DISCARDED_KEPT) : next
  }

  /** A new connection (or none): whatever was in flight is sent again, and the server is told the confirms again. */
  reset(connected: boolean): void {
    this.#inFlight = undefined
    if (connected) this.#confirmSent.clear()
    this.outbox.unsendAll()
  }

  /** Empties everything (`clearLocalData`): the queue's actions are returned. */
  clear(): Array<PendingAction<A>> {
    this.#inFlight = undefined
    this.#discarded = []
    return this.outbox.clear()
  }

  /** The next push, at most `room` actions and `maxBytes`, marked in flight; undefined when none may go. */
  next(room: number, maxBytes: number): Push | undefined {
    if (this.#inFlight !== undefined) return undefined
    const push = this.outbox.next(room, maxBytes)
    if (push === undefined) return undefined
    for (const p of push.entries) p.sent = true
    this.#inFlight = { clientId: push.clientId, seqs: new Set(push.entries.map((p) => p.seq)), bytes: push.bytes }
    return this.#frame(push.clientId, push.clientKey, push.actions)
  }

  #frame(clientId: string, clientKey: string, actions: Push["actions"]): Push {
    const confirmed = this.#confirmable.get(clientId)
    const skip = this.#skip.get(clientId)
    this.#skip.delete(clientId)
    if (confirmed !== undefined) this.#confirmSent.set(clientId, confirmed)
    return {
      _tag: "Push",
      channel: this.channel,
      clientId,
      clientKey,
      actions,
      ...(confirmed === undefined ? {} : { confirmed }),
      ...(skip === undefined ? {} : { skip })
    }
  }

  /** Seqs of `clientId` up to `seq` are settled and gone from the stored queue: the server may forget their outcomes. */
  confirm(clientId: string, seq: number): void {
    if (seq > (this.#confirmable.get(clientId) ?? 0)) this.#confirmable.set(clientId, seq)
  }

  /** Pushes that carry only confirms, for client ids with nothing queued that the server was not told yet. */
  idleConfirms(keyOf: (clientId: string) => string | undefined): Array<Push> {
    if (this.#inFlight !== undefined) return []
    const out: Array<Push> = []
    for (const [clientId, seq] of this.#confirmable) {
      if ((this.#confirmSent.get(clientId) ?? 0) >= seq || this.outbox.holds(clientId)) continue
      const key = keyOf(clientId)
      if (key !== undefined) out.push(this.#frame(clientId, key, []))
    }
    return out
  }

  /** True when replies to `clientId` belong here. */
  owns(clientId: string): boolean {
    return clientId === this.ownClientId || this.#inFlight?.clientId === clientId || this.outbox.holds(clientId)
  }

  /**
   * A push's reply: takes the decided actions out of the queue (returned with
   * their results, in order); what is at or past `next` goes again.
   */
  replied(clientId: string, next: number, results: ReadonlyArray<Result>): Array<{ readonly entry: PendingAction<A>; readonly result: Result }> {
    const inFlight = this.#inFlight?.clientId === clientId ? this.#inFlight : undefined
    const settled: Array<{ readonly entry: PendingAction<A>; readonly result: Result }> = []
    for (const result of results) {
      inFlight?.seqs.delete(result.seq)
      const entry = this.outbox.take(clientId, result.seq)
      if (entry === undefined) continue
      if (result.reason !== undefined) this.discard(entry, result.reason, result.message ?? "")
      settled.push({ entry, result })
    }
    let lowest: number | undefined
    for (const p of this.outbox.pending) {
      if (p.clientId !== clientId) continue
      if (p.seq >= next && p.sent) {
        p.sent = false
        inFlight?.seqs.delete(p.seq)
      }
      if (lowest === undefined || p.seq < lowest) lowest = p.seq
    }
    // the server expects a seq this client no longer holds (its stored copy was lost): say so, or the queue waits forever
    if (lowest !== undefined && lowest > next && this.outbox.get(clientId, next) === undefined) this.#skip.set(clientId, next)
    if (inFlight !== undefined && inFlight.seqs.size === 0) this.#inFlight = undefined
    return settled
  }

  /**
   * A refused push. Temporary: its actions stay queued, to go again (none
   * dropped). Final: the actions it carried (every queued one of the client
   * id when the id itself is refused) leave the queue and are returned.
   */
  refused(clientId: string, reason: Failure["reason"], message: string, transient: boolean): Array<PendingAction<A>> {
    const inFlight = this.#inFlight?.clientId === clientId ? this.#inFlight : undefined
    if (inFlight !== undefined) this.#inFlight = undefined
    if (transient) {
      for (const p of this.outbox.pending) if (p.clientId === clientId) p.sent = false
      return []
    }
    const whole = reason === "ClientMismatch" || reason === "TooManyClients" || inFlight === undefined
    const dropped = this.outbox.pending.filter((p) => p.clientId === clientId && (whole || inFlight.seqs.has(p.seq)))
    for (const p of dropped) {
      this.outbox.take(clientId, p.seq)
      this.discard(p, reason, message)
    }
    return dropped
  }

  /** The channel is refused: every queued action leaves the queue (returned). */
  dropAll(reason: string, message: string): Array<PendingAction<A>> {
    this.#inFlight = undefined
    const dropped = this.outbox.clear()
    for (const p of dropped) this.discard(p, reason, message)
    return dropped
  }
}
