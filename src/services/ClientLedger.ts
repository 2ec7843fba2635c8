/**
 * The client ledger: which actions of which client were decided, and how.
 * This is what makes actions idempotent and their outcomes final.
 *
 * - A client id is bound to a client key on its first action; only that key
 *   may use the id again (anyone may *name* an id, only its owner holds the
 *   key), so no connection can advance another client's sequence space.
 * - Per client: the highest decided seq, and a bitmask of which of the
 *   `DECIDED_WINDOW` seqs below it were decided (applied or refused). A
 *   seq older than the window counts as decided.
 * - Refused seqs keep their reason and message, so that every re-send of a
 *   refused action gets the same refusal (the newest `REFUSALS_KEPT` per
 *   client; a client re-sends only its few unanswered actions).
 * - Clients idle past the retention are forgotten. An action of a forgotten
 *   client that was first sent before then may have been applied, so it is
 *   refused (`ClientExpired`) rather than applied again.
 *
 * @since 0.2.0
 */
import type { ErrorReason } from "../protocol/Protocol.ts"

/** How many seqs below a client's highest decided one are told apart; older ones count as decided. */
export const DECIDED_WINDOW = 62
const MASK = "4611686018427387903" // 2^62 - 1

/** Refusals remembered per client (the newest). */
export const REFUSALS_KEPT = 256

/** The ledger's tables. */
export const SCHEMA: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS _psync_clients (client_id TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL, ` +
  `seq INTEGER NOT NULL, decided INTEGER NOT NULL DEFAULT 0, seen INTEGER NOT NULL) WITHOUT ROWID`,
  // no index on `seen`: it would cost a row written per action for the hourly prune's sake
  `DROP INDEX IF EXISTS _psync_clients_by_seen`,
  `CREATE TABLE IF NOT EXISTS _psync_refused (client_id TEXT NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL, ` +
  `message TEXT NOT NULL, PRIMARY KEY (client_id, seq)) WITHOUT ROWID`
]

/** Tables of the first release's ledger (no keys): dropped at install. */
export const LEGACY_TABLES: ReadonlyArray<string> = ["_psync_clients", "_psync_refused"]

/**
 * Claims `(client_id = ?1, seq = ?3)` under key ?2 at time ?4 in one
 * statement: returns a row when the seq was undecided (it is now decided),
 * none when the key does not match, the seq was decided, or it is older than
 * the window. Bit i of `decided` says seq - 1 - i was decided.
 */
export const CLAIM =
  `INSERT INTO _psync_clients AS c (client_id, key, seq, decided, seen) VALUES (?1, ?2, ?3, 0, ?4) ` +
  `ON CONFLICT (client_id) DO UPDATE SET ` +
  `decided = CASE WHEN excluded.seq > c.seq THEN ` +
  `(CASE WHEN excluded.seq - c.seq > ${DECIDED_WINDOW} THEN 0 ` +
  `ELSE (c.decided << (excluded.seq - c.seq)) | (1 << (excluded.seq - c.seq - 1)) END) & ${MASK} ` +
  `ELSE c.decided | (1 << (c.seq - 1 - excluded.seq)) END, ` +
  `seq = max(c.seq, excluded.seq), seen = excluded.seen ` +
  `WHERE c.key = excluded.key AND (excluded.seq > c.seq OR (excluded.seq < c.seq AND c.seq - 1 - excluded.seq < ${DECIDED_WINDOW} ` +
  `AND (c.decided & (1 << (c.seq - 1 - excluded.seq))) = 0)) RETURNING seq`

/** A client's key, for telling a mismatch from a decided seq once a claim found nothing. */
export const KEY_OF = `SELECT key FROM _psync_clients WHERE client_id = ?`

/** The recorded refusal of `(client_id, seq)`, if any. */
export const REFUSAL_OF = `SELECT reason, message FROM _psync_refused WHERE client_id = ? AND seq = ?`

/** Records a refusal (the seq must have been claimed in the same transaction). */
export const RECORD_REFUSAL = `INSERT OR REPLACE INTO _psync_refused (client_id, seq, reason, message) VALUES (?, ?, ?, ?)`

/** Keeps the newest `REFUSALS_KEPT` refusals of a client. */
export const TRIM_REFUSALS =
  `DELETE FROM _psync_refused WHERE client_id = ?1 AND seq <= ` +
  `(SELECT seq FROM _psync_refused WHERE client_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ${REFUSALS_KEPT})`

/** Forgets clients (and their refusals) not seen since ?1. */
export const PRUNE: ReadonlyArray<string> = [
  `DELETE FROM _psync_refused WHERE client_id IN (SELECT client_id FROM _psync_clients WHERE seen < ?1)`,
  `DELETE FROM _psync_clients WHERE seen < ?1`
]

/** A recorded outcome of an action. */
export type Decision =
  | { readonly _tag: "Applied" }
  | { readonly _tag: "Refused"; readonly reason: ErrorReason; readonly message: string }

/** Reads a refusal row, or "applied" when there is none. */
export const decisionOf = (rows: ReadonlyArray<ReadonlyArray<unknown>>): Decision => {
  const row = rows[0]
  return row === undefined
    ? { _tag: "Applied" }
    : { _tag: "Refused", reason: String(row[0]) as ErrorReason, message: String(row[1]) }
}

/** Unknown clients whose re-sent action was first sent this long before the retention (ms) are refused, not applied. */
export const CLOCK_MARGIN_MS = 24 * 60 * 60 * 1000
