/**
 * The persisted pending queue (see LocalCache for the namespace). One record
 * per action (`q/<clientId>/<seq>`): queueing an action writes its record,
 * settling it removes it, so a long offline session costs O(1) per action.
 * A lease per client id (`lease/<clientId>`: holder, heartbeat, key) keeps
 * other tabs off the actions of a running client; a client id whose lease
 * expired or was released (heartbeat 0, at close) is adopted by a running
 * client, which sends its actions under their original `(clientId, seq)`.
 *
 * - A tab whose status is `outdated`, `failed` or `unauthorized` adopts
 *   nothing and releases what it holds: another tab can send it.
 * - A fixed client id outlives this instance, so its action is sent only once
 *   its record is stored, and its lease keeps the next seq: a crash never
 *   makes a reload reuse a seq.
 * - The server may forget an action's outcome once the client confirms it;
 *   the client confirms a seq only once its record is removed, so a reload
 *   never sends an action the server was told it may forget.
 *
 * Queues of the previous release (`pending/<owner>`, one value per client)
 * are converted to records when found.
 *
 * @since 0.2.0
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Channel from "../protocol/Channel.ts"
import type { PendingAction } from "./Outbox.ts"
import { STICKY } from "./Status.ts"
import type { SyncEngine } from "./SyncEngine.ts"

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
export const randomKey = (): string =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("")

/** One stored action. */
interface StoredAction {
  /** The key that binds its client id on the server. */
  readonly k: string
  readonly a: unknown
  /** The channel version it was encoded for. */
  readonly s?: number | undefined
}

/** A client id's lease. `heartbeat` 0: released, for the next client to adopt at once. */
interface Lease {
  readonly holder: string
  readonly heartbeat: number
  readonly key: string
  /** A fixed client id's next seq. */
  readonly next?: number | undefined
}

/** A queue of the previous release: one value per client instance. */
interface OldQueue {
  readonly owner: string
  readonly key: string
  readonly heartbeat: number
  readonly nextSeq?: number
  readonly entries: ReadonlyArray<{ readonly clientId: string; readonly clientKey: string; readonly seq: number; readonly action: unknown; readonly schema?: number }>
}

const parse = (text: string | undefined): unknown => {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const isLease = (u: unknown): u is Lease =>
  typeof u === "object" && u !== null && typeof (u as Lease).holder === "string" && typeof (u as Lease).heartbeat === "number" &&
  typeof (u as Lease).key === "string"

const isStored = (u: unknown): u is StoredAction => typeof u === "object" && u !== null && typeof (u as StoredAction).k === "string"

const isOldQueue = (u: unknown): u is OldQueue =>
  typeof u === "object" && u !== null && typeof (u as OldQueue).owner === "string" && typeof (u as OldQueue).key === "string" &&
  typeof (u as OldQueue).heartbeat === "number" && Array.isArray((u as OldQueue).entries) &&
  (u as OldQueue).entries.every((e) =>
    typeof e === "object" && e !== null && typeof e.clientId === "string" && typeof e.clientKey === "string" && Number.isInteger(e.seq) && e.seq >= 1
  )

/** What the store needs. */
export interface PendingStoreOptions<A> {
  readonly kv: KeyValueStore.KeyValueStore
  /** The cache namespace (see `LocalCache.namespace`). */
  readonly prefix: string
  readonly engine: SyncEngine<any, A>
  readonly clientId: string
  /** The app chose the client id (it outlives this instance). */
  readonly fixedId: boolean
  /** A lease whose heartbeat is older than this (ms) is adopted. */
  readonly leaseMs: number
  readonly decodeAction: (encoded: unknown) => Exit.Exit<A, unknown>
  /** The channel: its version and its upgrades of queued actions. */
  readonly channel: Channel.Any
}

/** The persisted queue of one client, and the seqs and key it hands out. */
export const make = <A>(options: PendingStoreOptions<A>) => {
  const { kv, prefix, engine, clientId, fixedId } = options
  const queuePrefix = `${prefix}q/`
  const leasePrefix = `${prefix}lease/`
  const oldPrefix = `${prefix}pending/`
  const recordKey = (id: string, seq: number) => `${queuePrefix}${encodeURIComponent(id)}/${seq}`
  const leaseKey = (id: string) => `${leasePrefix}${encodeURIComponent(id)}`
  let nextSeq = 1
  // binds our client id on the server; a fixed id keeps its key in its lease
  let clientKey = randomKey()
  // client ids whose actions this instance holds (ours, and adopted ones), with their keys
  const held = new Map<string, string>([[clientId, clientKey]])
  let released = false
  // store operations, in order; the writer fiber applies them
  const ops: Array<{ readonly put: boolean; readonly entry: PendingAction<A> }> = []
  // nothing of a fixed id goes out before its record is stored
  if (fixedId) engine.gateSeqs(clientId)

  const failed = (cause: Cause.Cause<unknown>) => Effect.sync(() => engine.report("PersistenceFailed", messageOf(cause)))
  const blocked = () => STICKY.has(engine.status().connection)

  const writeLease = (id: string, heartbeat: number) =>
    kv.set(leaseKey(id), JSON.stringify({
      holder: clientId,
      heartbeat,
      key: held.get(id) ?? clientKey,
      ...(fixedId && id === clientId ? { next: nextSeq } : {})
    } satisfies Lease))

  /**
   * A stored action, brought up to this build's schema version when the
   * channel declares how. One this build cannot read is kept as it is, with
   * no optimistic effect, and sent all the same: the server upgrades it or
   * refuses it with a reason the status shows. Nothing queued is dropped here.
   */
  const toPending = (id: string, seq: number, stored: StoredAction): PendingAction<A> => {
    const { channel } = options
    let encoded = stored.a
    let schema = stored.s ?? channel.version
    let decoded: Exit.Exit<A, unknown> | undefined
    if (schema < channel.version) {
      try {
        // declared steps, or none: an action that decodes under this build's Schema needs none
        const upgraded = Channel.upgradeAction(channel, schema, encoded)
        const exit = options.decodeAction(upgraded)
        if (Exit.isSuccess(exit)) {
          encoded = upgraded
          schema = channel.version
          decoded = exit
        }
      } catch {
        // left for the server, which refuses it with the reason (the client lists it among the discarded)
      }
    } else {
      decoded = options.decodeAction(encoded)
      if (Exit.isFailure(decoded)) engine.report("InvalidAction", `queued action: ${messageOf(decoded.cause)}`)
    }
    return {
      clientId: id,
      clientKey: stored.k,
      seq,
      action: decoded !== undefined && Exit.isSuccess(decoded) ? decoded.value : undefined,
      encoded,
      schema,
      bytes: JSON.stringify(encoded)?.length ?? 4,
      sent: false,
      waiter: undefined
    }
  }

  /** Converts the previous release's queues that no live tab holds into records and released leases. */
  const convertOld = (keys: ReadonlyArray<string>, now: number) =>
    Effect.gen(function*() {
      for (const key of keys) {
        if (!key.startsWith(oldPrefix)) continue
        const queue = parse(yield* kv.get(key))
        if (!isOldQueue(queue)) {
          yield* kv.remove(key)
          continue
        }
        if (queue.heartbeat > now - options.leaseMs) continue
        const keysOf = new Map<string, string>()
        for (const e of queue.entries) {
          keysOf.set(e.clientId, e.clientKey)
          yield* kv.set(recordKey(e.clientId, e.seq), JSON.stringify({ k: e.clientKey, a: e.action, s: e.schema } satisfies StoredAction))
        }
        for (const [id, key] of keysOf) {
          yield* kv.set(leaseKey(id), JSON.stringify({ holder: "", heartbeat: 0, key, next: id === queue.owner ? queue.nextSeq : undefined } satisfies Lease))
        }
        // a fixed id of the previous release keeps its key and its next seq
        if (queue.entries.length === 0) {
          yield* kv.set(leaseKey(queue.owner), JSON.stringify({ holder: "", heartbeat: 0, key: queue.key, next: queue.nextSeq } satisfies Lease))
        }
        yield* kv.remove(key)
      }
    })

  /**
   * Takes over the actions of client ids nobody holds; at start (`atFront`)
   * also our own (a fixed id's) and its key and next seq.
   */
  const adopt = (atFront: boolean): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (blocked()) return yield* release
      released = false
      const now = Date.now()
      const keys = (yield* kv.keys).filter((k) => k.startsWith(prefix))
      yield* convertOld(keys, now)
      const all = (yield* kv.keys).filter((k) => k.startsWith(queuePrefix) || k.startsWith(leasePrefix))
      const groups = new Map<string, Array<number>>()
      for (const key of all) {
        if (!key.startsWith(queuePrefix)) continue
        const [id, seq] = key.slice(queuePrefix.length).split("/")
        const n = Number(seq)
        if (id === undefined || !Number.isInteger(n)) continue
        const name = decodeURIComponent(id)
        const list = groups.get(name)
        if (list === undefined) groups.set(name, [n])
        else list.push(n)
      }
      if (atFront) {
        const own = parse(yield* kv.get(leaseKey(clientId)))
        if (fixedId && isLease(own)) {
          clientKey = own.key
          held.set(clientId, clientKey)
          nextSeq = Math.max(nextSeq, own.next ?? 1)
        }
      }
      const taken: Array<PendingAction<A>> = []
      for (const [id, seqs] of groups) {
        const mine = id === clientId
        if (mine ? !atFront : held.has(id)) continue
        const lease = parse(yield* kv.get(leaseKey(id)))
        if (!mine && isLease(lease) && lease.holder !== clientId && lease.heartbeat > now - options.leaseMs) continue
        seqs.sort((a, b) => a - b)
        for (const seq of seqs) {
          if (mine) nextSeq = Math.max(nextSeq, seq + 1)
          if (engine.outbox.get(id, seq) !== undefined) continue
          const stored = parse(yield* kv.get(recordKey(id, seq)))
          if (isStored(stored)) taken.push(toPending(id, seq, stored))
        }
        if (!mine) {
          held.set(id, isLease(lease) ? lease.key : taken.find((p) => p.clientId === id)?.clientKey ?? randomKey())
          yield* writeLease(id, now)
        }
      }
      if (fixedId) engine.allowSeqs(clientId, nextSeq)
      // our own lease first: no other tab takes what we now hold while we run
      if (atFront) yield* writeLease(clientId, now)
      engine.enqueue(taken, atFront)
    }).pipe(Effect.catchCause(failed))

  /** Writes the queued store operations, in order, then confirms what left the store for good. */
  const write: Effect.Effect<void> = Effect.gen(function*() {
    const removed = new Map<string, number>()
    while (ops.length > 0) {
      const { put, entry } = ops.shift()!
      const key = recordKey(entry.clientId, entry.seq)
      if (put) {
        yield* kv.set(key, JSON.stringify({ k: entry.clientKey, a: entry.encoded, s: entry.schema } satisfies StoredAction))
        if (fixedId && entry.clientId === clientId) {
          // the lease keeps the next seq past this one before it may be sent
          yield* writeLease(clientId, Date.now())
          engine.allowSeqs(clientId, entry.seq + 1)
        }
      } else {
        yield* kv.remove(key)
        removed.set(entry.clientId, Math.max(removed.get(entry.clientId) ?? 0, entry.seq))
      }
    }
    for (const [id, seq] of removed) {
      let lowest: number | undefined
      for (const p of engine.pending) if (p.clientId === id && (lowest === undefined || p.seq < lowest)) lowest = p.seq
      engine.confirm(id, lowest === undefined ? seq : Math.min(seq, lowest - 1))
      // an adopted client id whose actions are all settled: its lease goes too
      if (lowest === undefined && id !== clientId) {
        held.delete(id)
        yield* kv.remove(leaseKey(id))
      }
    }
  }).pipe(Effect.catchCause(failed))

  /** Keeps the leases of what we hold fresh, and releases them while this tab cannot send. */
  const heartbeat: Effect.Effect<void> = Effect.suspend(() => {
    if (blocked()) return release
    released = false
    const now = Date.now()
    return Effect.forEach([...held.keys()], (id) => (id === clientId || engine.outbox.holds(id) ? writeLease(id, now) : Effect.void), {
      discard: true
    })
  }).pipe(Effect.catchCause(failed))

  /** Releases every lease (heartbeat 0): the next client of the room adopts them at once. */
  const release: Effect.Effect<void> = Effect.suspend(() => {
    if (released) return Effect.void
    released = true
    return Effect.forEach([...held.keys()], (id) => writeLease(id, 0), { discard: true })
  }).pipe(Effect.catchCause(failed))

  return {
    adopt,
    write,
    heartbeat,
    release,
    failed,
    /** Queues the store write of a new action (call `write` after). */
    put: (entry: PendingAction<A>) => ops.push({ put: true, entry }),
    /** Queues the removal of a settled or dropped action (call `write` after). */
    remove: (entry: PendingAction<A>) => ops.push({ put: false, entry }),
    /** The identity of a new action of ours. */
    take: (): { readonly seq: number; readonly clientKey: string } => ({ seq: nextSeq++, clientKey }),
    /** The key of a client id this instance holds. */
    keyOf: (id: string): string | undefined => held.get(id)
  }
}
