/**
 * What a client tells its UI about its connection: the state, the pending
 * count and ids, and the last error. The states a server's refusal leads to
 * (unauthorized, outdated, failed) say what the app should do about it, and
 * hold until a sync succeeds, so a reconnect attempt never hides them.
 *
 * @since 0.2.0
 */

/** The connection and sync state shown to the UI. */
export interface SyncStatus {
  /**
   * - `connecting`, `syncing`, `live`, `offline`: the usual life of a connection.
   * - `unavailable`: the server cannot serve the channel now (it could not start); retried on a backoff.
   * - `unauthorized`: the server refused the socket (401 or 403, why in `lastError`); actions stay queued.
   *   Or the channel's read rule refused this subscription: its rows are cleared (memory and cache) and its
   *   pending and new sends fail with `NotAuthorized`.
   * - `outdated`: this build is older than the server's channel: reload the app; actions stay queued for it.
   * - `failed`: the server refused the channel (`UnknownChannel`); pending and new sends fail.
   *
   * The last three hold until a sync succeeds.
   */
  readonly connection: "connecting" | "syncing" | "live" | "offline" | "unavailable" | "unauthorized" | "outdated" | "failed"
  /** Actions not yet confirmed by the server. */
  readonly pending: number
  /** Ids of the records touched by pending actions (the optimistic rows). */
  readonly pendingIds: ReadonlySet<string | number>
  /**
   * The last error since the last successful sync began, or null: a
   * refusal of the server's (`reason` and `message` as sent) or the
   * client's own (`InvalidRecord`, `PersistenceFailed`, `ReducerFailed`,
   * ...). So the refusal that made the status `unauthorized`, `unavailable`,
   * `outdated` or `failed` shows until a sync succeeds, and is gone once the
   * status is `live`; an error raised by that sync's own answer (a row that
   * does not decode) or while `live` (a refused action) stays until the
   * next successful sync (after a reconnect) or `clearLocalData()`.
   */
  readonly lastError: { readonly reason: string; readonly message: string } | null
}

/** A client's connection state. */
export type Connection = SyncStatus["connection"]

/** States that only a successful sync ends: a reconnect alone changes nothing about them. */
export const STICKY: ReadonlySet<Connection> = new Set<Connection>(["unauthorized", "outdated", "failed"])
