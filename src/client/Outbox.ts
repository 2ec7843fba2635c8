/**
 * A client's queue of pending actions and the rules for sending them. They
 * go in queue order, one at a time as the socket's budget allows (see
 * Transport). A seq of a fixed client id waits until storage holds a
 * reservation past it (see SyncClient), and no action goes so far ahead of
 * the oldest unanswered seq of its client id that the server would take
 * that one for decided.
 *
 * @since 0.2.0
 */
import type { SendError } from "../protocol/Errors.ts"

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
  /**
   * The decoded action, handed to the optimistic reducer; undefined for an
   * action queued under an older schema that this build cannot read (it is
   * still sent: the server upgrades it or refuses it with a reason).
   */
  readonly action: A | undefined
  /** The action as it travels (and is persisted). */
  readonly encoded: unknown
  /** The channel's schema version `encoded` is in. */
  readonly schema: number
  /** When it was first sent (ms), so a re-send can say so; undefined until then. */
  firstSentAt: number | undefined
  sent: boolean
  waiter: Waiter<any> | undefined
}

/**
 * How many seqs below a client's highest decided one the server tells apart
 * (`DECIDED_WINDOW` in its client ledger): an unanswered seq further below
 * would count as decided, so nothing is sent that far ahead of one.
 */
export const SEQ_WINDOW = 62

/** The pending actions of one channel's client, in the order they are sent. */
export class Outbox<A> {
  readonly pending: Array<PendingAction<A>> = []
  readonly #byRequest = new Map<string, PendingAction<A>>()
  #gate: { readonly clientId: string; readonly below: number } | undefined

  /** Adds actions at the end, or at the front when they predate the queue. */
  add(entries: ReadonlyArray<PendingAction<A>>, atFront = false): void {
    if (atFront) this.pending.unshift(...entries)
    else this.pending.push(...entries)
    for (const e of entries) this.#byRequest.set(e.requestId, e)
  }

  /** True when the action with this request id is queued here. */
  owns(requestId: string): boolean {
    return this.#byRequest.has(requestId)
  }

  /** The queued action with this request id, if any. */
  get(requestId: string): PendingAction<A> | undefined {
    return this.#byRequest.get(requestId)
  }

  /** Removes an answered action from the queue. */
  take(requestId: string): PendingAction<A> | undefined {
    const entry = this.#byRequest.get(requestId)
    if (entry === undefined) return undefined
    this.#byRequest.delete(requestId)
    const i = this.pending.indexOf(entry)
    if (i >= 0) this.pending.splice(i, 1)
    return entry
  }

  /** Empties the queue, returning what it held. */
  clear(): Array<PendingAction<A>> {
    this.#byRequest.clear()
    return this.pending.splice(0)
  }

  /** Everything in flight counts as unsent: the next connection sends it again. */
  unsendAll(): void {
    for (const p of this.pending) p.sent = false
  }

  /** Lets seqs of `clientId` below `below` go; false when that allows nothing new. */
  allowSeqs(clientId: string, below: number): boolean {
    if (this.#gate !== undefined && below <= this.#gate.below) return false
    this.#gate = { clientId, below }
    return true
  }

  /** The next action that may be sent now, if any: the first unsent one, unless a rule holds it back. */
  next(): PendingAction<A> | undefined {
    const gate = this.#gate
    const queue = this.pending
    for (let i = 0; i < queue.length; i++) {
      const p = queue[i]!
      if (p.sent) continue
      if (gate !== undefined && p.clientId === gate.clientId && p.seq >= gate.below) return undefined
      // everything before it is in flight: the oldest unanswered seq of its client id is among them
      for (let j = 0; j < i; j++) {
        const q = queue[j]!
        if (q.clientId === p.clientId && p.seq - q.seq >= SEQ_WINDOW) return undefined
      }
      return p
    }
    return undefined
  }
}
