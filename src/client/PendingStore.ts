/**
 * The persisted pending queue of one client instance (see LocalCache): it
 * is written on every change of the engine's queue, with a heartbeat that
 * keeps other clients off it, and a queue whose client is gone is adopted
 * (its actions are sent under their original `(clientId, seq)`).
 *
 * A fixed client id outlives this instance, so its stored `nextSeq` is a
 * reservation `SEQ_RESERVE` past the seqs in use, and the engine sends a seq
 * of that id only once a stored reservation covers it: a crash between
 * sending and saving never makes the next instance reuse a seq, which the
 * server would take for a duplicate. Gaps between seqs are fine on the server.
 *
 * @since 0.2.0
 */
import type * as Cause from "effect/Cause"
import * as Channel from "../protocol/Channel.ts"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as LocalCache from "./LocalCache.ts"
import type { PendingAction } from "./Outbox.ts"
import type { SyncEngine } from "./SyncEngine.ts"

/** Seqs a client with a fixed id reserves in storage ahead of the ones it sends. */
export const SEQ_RESERVE = 32

/**
 * The message of a failure, for the status: its first error or defect.
 * (`Cause.pretty` would bring its printer, over 1 KB gzipped, into browser bundles.)
 */
export const messageOf = (cause: Cause.Cause<unknown>): string => {
  for (const r of cause.reasons) {
    const error = r._tag === "Fail" ? r.error : r._tag === "Die" ? r.defect : undefined
    if (error !== undefined) return error instanceof Error ? error.message : String(error)
  }
  return "interrupted"
}

/** A fresh client key: 128 random bits as hex. */
const randomKey = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("")

/** What the store needs. */
export interface PendingStoreOptions<A> {
  readonly cache: LocalCache.LocalCache
  readonly engine: SyncEngine<any, A>
  readonly clientId: string
  /** The app chose the client id (it outlives this instance). */
  readonly fixedId: boolean
  /** A queue whose heartbeat is older than this (ms) is adopted. */
  readonly leaseMs: number
  readonly decodeAction: (encoded: unknown) => Exit.Exit<A, unknown>
  /** The channel: its version and its upgrades of queued actions. */
  readonly channel: Channel.Any
}

/** The persisted queue of one client, and the seqs and key it hands out. */
export const make = <A>(options: PendingStoreOptions<A>) => {
  const { cache, engine, clientId, fixedId } = options
  let nextSeq = 1
  // binds our client id on the server; a fixed id keeps its key in the stored queue
  let clientKey = randomKey()
  // nothing of a fixed id goes out before a reservation is stored (or found at start)
  if (fixedId) engine.allowSeqs(clientId, 1)

  const failed = (cause: Cause.Cause<unknown>) => Effect.sync(() => engine.report("PersistenceFailed", messageOf(cause)))

  const queueOf = (heartbeat: number | undefined): LocalCache.StoredQueue => ({
    owner: clientId,
    key: clientKey,
    heartbeat: heartbeat ?? Date.now(),
    nextSeq: fixedId ? nextSeq + SEQ_RESERVE : nextSeq,
    entries: engine.pending.map((p) => ({
      clientId: p.clientId,
      clientKey: p.clientKey,
      seq: p.seq,
      action: p.encoded,
      schema: p.schema,
      // JSON leaves it out while undefined
      firstSentAt: p.firstSentAt
    }))
  })

  /** Saves the queue (heartbeat 0: released, for the next client to adopt at once). */
  const write = (heartbeat?: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      // an empty queue of a generated id has nothing for anyone; a fixed id keeps its key and reservation
      if (engine.pending.length === 0 && !fixedId) return cache.removeQueue(clientId)
      const queue = queueOf(heartbeat)
      return Effect.andThen(cache.saveQueue(queue), Effect.sync(() => {
        if (fixedId) engine.allowSeqs(clientId, queue.nextSeq)
      }))
    }).pipe(Effect.catchCause(failed))

  /**
   * A stored action, brought up to this build's schema version when the
   * channel declares how. One this build cannot read is kept as it is, with
   * no optimistic effect, and sent all the same: the server upgrades it or
   * refuses it with a reason the status shows. Nothing queued is dropped here.
   */
  const toPending = (stored: LocalCache.StoredAction): PendingAction<A> => {
    const { channel } = options
    let encoded = stored.action
    let schema = stored.schema ?? channel.version
    if (schema < channel.version) {
      try {
        encoded = Channel.upgradeAction(channel, schema, encoded)
        schema = channel.version
      } catch {
        // left for the server, which upgrades it or says why it cannot
      }
    }
    const decoded = schema === channel.version ? options.decodeAction(encoded) : undefined
    if (decoded !== undefined && Exit.isFailure(decoded)) {
      engine.report("InvalidAction", `queued action: ${messageOf(decoded.cause)}`)
    }
    return {
      clientId: stored.clientId,
      clientKey: stored.clientKey,
      seq: stored.seq,
      requestId: `${stored.clientId}:${stored.seq}`,
      action: decoded !== undefined && Exit.isSuccess(decoded) ? decoded.value : undefined,
      encoded,
      schema,
      firstSentAt: stored.firstSentAt,
      sent: false,
      waiter: undefined
    }
  }

  /** Takes over the queues of clients that are gone; at start (`atFront`) also our own stored one. */
  const adopt = (atFront: boolean): Effect.Effect<void> =>
    Effect.gen(function*() {
      const now = Date.now()
      const queues = yield* cache.queues
      const taken: Array<PendingAction<A>> = []
      const owners: Array<string> = []
      for (const q of queues) {
        const mine = q.owner === clientId
        // our own queue is ours to load once, at start; later it is only what we wrote
        if (mine ? !atFront : q.heartbeat > now - options.leaseMs) continue
        if (mine) {
          nextSeq = Math.max(nextSeq, q.nextSeq)
          clientKey = q.key
        }
        owners.push(q.owner)
        for (const e of q.entries) {
          if (e.clientId === clientId) nextSeq = Math.max(nextSeq, e.seq + 1)
          if (engine.owns(`${e.clientId}:${e.seq}`)) continue
          taken.push(toPending(e))
        }
      }
      // seqs below a stored reservation were reserved by the instance that stored it
      if (atFront && fixedId) engine.allowSeqs(clientId, nextSeq)
      if (owners.length === 0) return
      engine.enqueue(taken, atFront)
      // save ours (now holding them) before removing theirs, so a crash in between loses nothing
      yield* write()
      for (const owner of owners) if (owner !== clientId) yield* cache.removeQueue(owner)
    }).pipe(Effect.catchCause(failed))

  /** The identity of a new action of ours. */
  const take = (): { readonly seq: number; readonly clientKey: string } => ({ seq: nextSeq++, clientKey })

  return { write, adopt, take, failed }
}
