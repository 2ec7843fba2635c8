/**
 * The client's local cache in a `KeyValueStore`, one namespace per
 * (host, party, room, channel):
 *
 * - `records`: `{ cursor, rows }` in one value, so a reader never sees rows
 *   from one moment with the cursor of another. Written debounced.
 * - `q/...` and `lease/...`: the pending queue, one record per action, and a
 *   lease per client id (see PendingStore).
 *
 * Several tabs share the namespace. Confirmed records are the server's
 * state at a cursor, so whichever tab writes last leaves a valid cache.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"

/** The persisted confirmed state. */
export interface StoredRecords {
  readonly cursor: number | null
  /** The server history the cursor belongs to. */
  readonly history?: string | undefined
  /** The channel's schema version the rows were written under: another version's rows are not read. */
  readonly schema?: number | undefined
  readonly rows: ReadonlyArray<unknown>
}

const parse = (text: string | undefined): unknown => {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const isRecords = (u: unknown): u is StoredRecords =>
  typeof u === "object" && u !== null && Array.isArray((u as StoredRecords).rows) &&
  ((u as StoredRecords).cursor === null || Number.isInteger((u as StoredRecords).cursor)) &&
  ((u as StoredRecords).history === undefined || typeof (u as StoredRecords).history === "string")

/** The cache namespace of one (location, channel). */
export const namespace = (location: string, channel: string): string =>
  `effect-partysync/v2/${encodeURIComponent(location)}/${channel}/`

/** Access to one namespace of a KeyValueStore. */
export const make = (kv: KeyValueStore.KeyValueStore, prefix: string) => {
  const recordsKey = `${prefix}records`
  return {
    prefix,
    loadRecords: Effect.map(kv.get(recordsKey), (text) => {
      const value = parse(text)
      return isRecords(value) ? value : undefined
    }),
    saveRecords: (records: StoredRecords) => kv.set(recordsKey, JSON.stringify(records)),
    clear: kv.clearPrefix(prefix)
  }
}

/** Access to one namespace. */
export type LocalCache = ReturnType<typeof make>
