/**
 * The client's local cache in a `KeyValueStore`, one namespace per
 * (host, party, room, user, subscription):
 *
 * - `r/meta`, `r/p/<epoch>/<n>`, `r/l/<n>`: the confirmed records and
 *   cursor, see RecordCache. Written with what changed, debounced.
 * - `q/...` and `lease/...`: the pending queue, one record per action, and a
 *   lease per client id (see PendingStore).
 *
 * Several tabs share the namespace (how they share the records: see
 * RecordCache; the queues: see PendingStore).
 *
 * @since 0.1.0
 */
import * as KeyValueStore from "effect/persistence/KeyValueStore"

/**
 * The cache namespace of one (location, user, subscription): the user the
 * app says is signed in (none: shared by whoever uses the browser), and a
 * channel's name, or its subscription's name (`subOf`) when it has params.
 */
export const namespace = (location: string, sub: string, userId?: string): string =>
  `effect-partysync/v2/${encodeURIComponent(location)}/${userId === undefined ? "" : `@${encodeURIComponent(userId)}/`}${encodeURIComponent(sub)}/`

/** Access to one namespace of a KeyValueStore. */
export const make = (kv: KeyValueStore.KeyValueStore, prefix: string) => ({
  prefix,
  clear: kv.clearPrefix(prefix)
})

/** Access to one namespace. */
export type LocalCache = ReturnType<typeof make>
