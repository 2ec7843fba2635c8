/**
 * Histories: each object's change feed has an identity, and its position is
 * kept in `_psync_meta`: the history id, the published mark (the highest
 * version clients may have seen) and the horizon (cursors at or below it get
 * a reset, their log entries are gone).
 *
 * A cursor carries its history. A cursor from another history (the storage
 * was wiped, capture had to be rebuilt), older than the horizon or newer than
 * the object gets a reset.
 *
 * @since 0.2.0
 */
import type { SqlValue, StorageShape } from "./Storage.ts"

/** The feed's identity and position, as stored. */
export interface FeedState {
  readonly history: string
  readonly published: number
  readonly horizon: number
}

/** A random history id: 16 hex characters. */
export const newHistoryId = (): string => {
  const bytes = crypto.getRandomValues(new Uint8Array(8))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
}

/** Reads a meta value. */
export const meta = (storage: StorageShape, key: string): SqlValue | undefined =>
  storage.rawUnsafe(`SELECT value FROM _psync_meta WHERE key = ?`, key)[0]?.[0]

/** Writes a meta value. */
export const setMeta = (storage: StorageShape, key: string, value: SqlValue): void => {
  storage.rawUnsafe(`INSERT OR REPLACE INTO _psync_meta (key, value) VALUES (?, ?)`, key, value)
}

/** Stores the published mark. */
export const storePublished = (storage: StorageShape, version: number): void => {
  storage.rawUnsafe(`UPDATE _psync_meta SET value = ? WHERE key = 'published'`, version)
}

/**
 * The feed's state at install; starts a new history (and empties the log)
 * when there is none yet or `restart` says capture may have missed changes.
 */
export const install = (storage: StorageShape, restart: boolean): FeedState & { readonly started: boolean; readonly replaced: boolean } => {
  const existing = meta(storage, "history")
  if (existing === undefined || restart) {
    const history = newHistoryId()
    storage.rawUnsafe(`DELETE FROM _psync_log`)
    storage.rawUnsafe(`DELETE FROM _psync_checkpoints`)
    setMeta(storage, "history", history)
    setMeta(storage, "published", 0)
    setMeta(storage, "horizon", 0)
    return { history, published: 0, horizon: 0, started: true, replaced: existing !== undefined }
  }
  return {
    history: String(existing),
    published: Number(meta(storage, "published") ?? 0),
    horizon: Number(meta(storage, "horizon") ?? 0),
    started: false,
    replaced: false
  }
}

/** Whether a cursor can be resumed in this feed, or needs a reset. */
export const needsReset = (state: FeedState & { readonly version: number }, since: number | null, history: string | undefined): boolean =>
  since === null || history !== state.history || since < state.horizon || since > state.version
