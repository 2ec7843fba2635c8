/**
 * A client's queue of pending actions and the rules for pushing them. One
 * push is in flight at a time: whenever it is free, the client pushes every
 * queued action of one client id that follows in seq order and fits (the
 * socket's budget, the frame size). Adopted queues of other client ids go
 * first, one client id per push. A seq of a fixed client id waits until its
 * action is stored (see PendingStore): a reload must never reuse a seq.
 *
 * @since 0.2.0
 */
import type { SendError } from "../protocol/Errors.ts"
import type { PushAction } from "../protocol/Protocol.ts"

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
  /** Its UTF-8 size on the wire, roughly (the push's frame budget). */
  readonly bytes: number
  sent: boolean
  waiter: Waiter<any> | undefined
}

/** A push to send: one client id's actions in seq order. */
export interface OutgoingPush {
  readonly clientId: string
  readonly clientKey: string
  readonly entries: ReadonlyArray<PendingAction<unknown>>
  readonly actions: ReadonlyArray<PushAction>
  /** Its entries' bytes, as `maxBytes` counted them. */
  readonly bytes: number
}

/** The pending actions of one channel's client, in the order they are pushed. */
export class Outbox<A> {
  readonly pending: Array<PendingAction<A>> = []
  readonly #byKey = new Map<string, PendingAction<A>>()
  /** Per fixed client id: seqs below this are stored and may be sent. */
  readonly #stored = new Map<string, number>()

  /** Adds actions at the end, or at the front when they predate the queue. */
  add(entries: ReadonlyArray<PendingAction<A>>, atFront = false): void {
    if (atFront) this.pending.unshift(...entries)
    else this.pending.push(...entries)
    for (const e of entries) this.#byKey.set(keyOf(e.clientId, e.seq), e)
  }

  /** The queued action of `clientId` with this seq, if any. */
  get(clientId: string, seq: number): PendingAction<A> | undefined {
    return this.#byKey.get(keyOf(clientId, seq))
  }

  /** True when some queued action belongs to `clientId`. */
  holds(clientId: string): boolean {
    for (const p of this.pending) if (p.clientId === clientId) return true
    return false
  }

  /** Removes an answered action from the queue. */
  take(clientId: string, seq: number): PendingAction<A> | undefined {
    const key = keyOf(clientId, seq)
    const entry = this.#byKey.get(key)
    if (entry === undefined) return undefined
    this.#byKey.delete(key)
    const i = this.pending.indexOf(entry)
    if (i >= 0) this.pending.splice(i, 1)
    return entry
  }

  /** Empties the queue, returning what it held. */
  clear(): Array<PendingAction<A>> {
    this.#byKey.clear()
    return this.pending.splice(0)
  }

  /** Everything in flight counts as unsent: the next push sends it again. */
  unsendAll(): void {
    for (const p of this.pending) p.sent = false
  }

  /** A fixed client id's seqs below `below` are stored; false when that allows nothing new. */
  allowSeqs(clientId: string, below: number): boolean {
    if ((this.#stored.get(clientId) ?? 1) >= below) return false
    this.#stored.set(clientId, below)
    return true
  }

  /** Holds back a fixed client id's seqs until `allowSeqs` says they are stored. */
  gate(clientId: string): void {
    if (!this.#stored.has(clientId)) this.#stored.set(clientId, 1)
  }

  /**
   * The next push: the first unsent action and those of its client id that
   * follow it in seq order, at most `max` of them and `maxBytes` in all (one
   * at least). Undefined when nothing may go.
   */
  next(max: number, maxBytes: number): OutgoingPush | undefined {
    const queue = this.pending
    let i = 0
    while (i < queue.length && queue[i]!.sent) i++
    if (i >= queue.length || max < 1) return undefined
    const first = queue[i]!
    const stored = this.#stored.get(first.clientId)
    const entries: Array<PendingAction<A>> = []
    let bytes = 0
    for (let j = i; j < queue.length && entries.length < max; j++) {
      const p = queue[j]!
      if (p.clientId !== first.clientId) continue
      if (p.sent || p.seq !== first.seq + entries.length) break
      if (stored !== undefined && p.seq >= stored) break
      if (entries.length > 0 && bytes + p.bytes > maxBytes) break
      entries.push(p)
      bytes += p.bytes
    }
    if (entries.length === 0) return undefined
    return {
      clientId: first.clientId,
      clientKey: first.clientKey,
      entries,
      bytes,
      actions: entries.map((p) => (p.schema === undefined ? { seq: p.seq, action: p.encoded } : { seq: p.seq, action: p.encoded, schema: p.schema }))
    }
  }
}

const keyOf = (clientId: string, seq: number) => `${seq}:${clientId}`
