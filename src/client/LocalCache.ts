/**
 * The client's local cache in a `KeyValueStore`, one namespace per
 * (host, party, room, channel):
 *
 * - `r/meta`, `r/p/<epoch>/<n>`, `r/l/<n>`: the confirmed records and
 *   cursor, see RecordCache. Written with what changed, debounced.
 * - `pending/<clientId>`: the queue of one client instance, each entry with
 *   its own `(clientId, seq)`, plus a heartbeat. Written on every change.
 *
 * Several tabs share the namespace (how they share the records: see
 * RecordCache). Pending queues are per client instance, so tabs never
 * overwrite each other's; a queue whose heartbeat is older than the lease
 * (its tab closed or crashed) is adopted by a running client, which sends
 * its actions under their original `(clientId, seq)`. If two tabs adopt the
 * same queue, the server's dedupe by `(clientId, seq)` still applies each
 * action once.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"

/** One persisted pending action. */
export interface StoredAction {
  readonly clientId: string
  /** The key that binds `clientId` on the server. */
  readonly clientKey: string
  readonly seq: number
  readonly action: unknown
  /** The channel's schema version the action was encoded with. */
  readonly schema?: number | undefined
  /** When it was first sent (ms), if it was. */
  readonly firstSentAt?: number | undefined
}

/** A persisted queue. `heartbeat` 0 means its client closed cleanly. */
export interface StoredQueue {
  readonly owner: string
  /** The owner's client key. */
  readonly key: string
  readonly heartbeat: number
  readonly nextSeq: number
  readonly entries: ReadonlyArray<StoredAction>
}

const parse = (text: string | undefined): unknown => {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const isQueue = (u: unknown): u is StoredQueue =>
  typeof u === "object" && u !== null && typeof (u as StoredQueue).owner === "string" &&
  typeof (u as StoredQueue).key === "string" &&
  typeof (u as StoredQueue).heartbeat === "number" && Array.isArray((u as StoredQueue).entries) &&
  (u as StoredQueue).entries.every((e) =>
    typeof e === "object" && e !== null && typeof e.clientId === "string" && typeof e.clientKey === "string" &&
    Number.isInteger(e.seq) && e.seq >= 1
  )

/** The cache namespace of one (location, channel). */
export const namespace = (location: string, channel: string): string =>
  `effect-partysync/v2/${encodeURIComponent(location)}/${channel}/`

/** Access to one namespace of a KeyValueStore. */
export const make = (kv: KeyValueStore.KeyValueStore, prefix: string) => {
  const queuePrefix = `${prefix}pending/`
  return {
    prefix,
    saveQueue: (queue: StoredQueue) => kv.set(queuePrefix + queue.owner, JSON.stringify(queue)),
    removeQueue: (clientId: string) => kv.remove(queuePrefix + clientId),
    /** Every queue in the namespace. */
    queues: Effect.gen(function*() {
      const keys = yield* kv.keys
      const out: Array<StoredQueue> = []
      for (const key of keys) {
        if (!key.startsWith(queuePrefix)) continue
        const value = parse(yield* kv.get(key))
        if (isQueue(value)) out.push(value)
      }
      return out
    }),
    clear: kv.clearPrefix(prefix)
  }
}

/** Access to one namespace. */
export type LocalCache = ReturnType<typeof make>
