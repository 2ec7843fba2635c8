/**
 * The client ledger: one row per client id, which makes actions idempotent
 * and their outcomes final, as Replicache and Zero do it.
 *
 * - A client's actions are decided strictly in sequence. The row holds the
 *   last decided seq: a pushed seq at or below it is a re-send (it gets its
 *   first outcome), the next one is decided, and one past it waits (the
 *   reply's `next` tells the client where to resume). No clock is involved.
 * - A client id is bound to the key of its first push; only that key may use
 *   the id again (anyone may *name* an id, only its owner holds the key).
 * - The outcomes of decided actions (the rows applied, or the refusal) are
 *   kept until the client confirms it has settled them, so every re-send
 *   gets the first answer and storage stays bounded by unconfirmed actions.
 * - A client that has confirmed everything and stays idle past the retention
 *   is forgotten: anything it pushes later is new. A client with unconfirmed
 *   outcomes is kept, and a principal may hold at most a configured number of
 *   client ids.
 *
 * Rows of the first releases (a bitmask of the decided seqs below the
 * highest, refusals in `_psync_refused`) are still read, so actions queued
 * before a deploy are decided once.
 *
 * @since 0.2.0
 */
import type { ErrorReason, WireRow } from "../protocol/Protocol.ts"

/** How many seqs below its highest the first releases' bitmask told apart (older ones were decided). */
const LEGACY_WINDOW = 62

/** Stored outcomes larger than this (JSON characters) keep their refusals but drop their rows. */
export const MAX_OUTCOME_CHARS = 256 * 1024

/** The ledger's tables, and the columns this release adds to the first releases' table. */
export const SCHEMA: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS _psync_clients (client_id TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL, ` +
  `seq INTEGER NOT NULL, decided INTEGER, seen INTEGER NOT NULL, principal TEXT, outcomes TEXT) WITHOUT ROWID`,
  // no index on `seen` or `principal`: it would cost a row written per batch for the GC's and the cap's sake
  `DROP INDEX IF EXISTS _psync_clients_by_seen`
]

/** Columns a table of the first releases lacks, with their definitions. */
export const ADDED_COLUMNS: ReadonlyArray<readonly [string, string]> = [["principal", "TEXT"], ["outcomes", "TEXT"]]

/** The refusals of the first releases' clients, read for their re-sends (never written). */
export const LEGACY_REFUSALS = "_psync_refused"

/** Tables of the very first release (no keys): dropped at install. */
export const LEGACY_TABLES: ReadonlyArray<string> = ["_psync_clients", "_psync_refused"]

/** A client's row. */
export const LOAD = `SELECT key, seq, decided, outcomes FROM _psync_clients WHERE client_id = ?`

/** Writes a client's row (a batch writes it once). */
export const SAVE =
  `INSERT INTO _psync_clients (client_id, key, seq, decided, seen, principal, outcomes) VALUES (?, ?, ?, ?, ?, ?, ?) ` +
  `ON CONFLICT (client_id) DO UPDATE SET seq = excluded.seq, decided = excluded.decided, seen = excluded.seen, ` +
  `outcomes = excluded.outcomes`

/** Drops the outcomes a client confirmed while it pushed nothing (the GC writes them). */
export const CONFIRM = `UPDATE _psync_clients SET outcomes = ? WHERE client_id = ?`

/** A legacy refusal of `(client_id, seq)`. */
export const LEGACY_REFUSAL_OF = `SELECT reason, message FROM ${LEGACY_REFUSALS} WHERE client_id = ? AND seq = ?`

/** How many client ids each principal holds (the cap's count after a wake). */
export const COUNT_BY_PRINCIPAL = `SELECT principal, count(*) FROM _psync_clients GROUP BY principal`

/** Frees one place of a principal: its client that has confirmed everything and was seen longest ago. */
export const EVICT_CONFIRMED =
  `DELETE FROM _psync_clients WHERE client_id = (SELECT client_id FROM _psync_clients WHERE principal IS ? ` +
  `AND outcomes IS NULL ORDER BY seen LIMIT 1) RETURNING client_id`

/** Forgets clients with nothing to confirm that were not seen since ?1. */
export const PRUNE = `DELETE FROM _psync_clients WHERE seen < ? AND outcomes IS NULL`

/** Forgets legacy refusals of clients that are gone. */
export const PRUNE_LEGACY = `DELETE FROM ${LEGACY_REFUSALS} WHERE client_id NOT IN (SELECT client_id FROM _psync_clients)`

/** A decided action's outcome, as kept until its client confirms it. */
export type Outcome =
  | { readonly _tag: "Applied"; readonly seq: number; readonly rows: ReadonlyArray<WireRow> }
  | { readonly _tag: "Refused"; readonly seq: number; readonly reason: ErrorReason; readonly message: string }

/** A client's row, as the ledger reads it. */
export interface Client {
  readonly key: string
  /** The last decided seq (for a legacy row: the highest decided one). */
  readonly seq: number
  /** Legacy rows only: seqs below `seq` the first releases never decided (they may still come, and are decided then). */
  readonly holes: ReadonlySet<number>
  /** Outcomes not confirmed yet, by seq. */
  readonly outcomes: ReadonlyMap<number, Outcome>
}

// stored as JSON arrays: [seq, rows] applied, [seq, reason, message] refused, [seq] applied with its rows dropped
type StoredOutcome = readonly [number] | readonly [number, ReadonlyArray<WireRow>] | readonly [number, string, string]

const NO_HOLES: ReadonlySet<number> = new Set()

/** Reads a stored row (`LOAD`'s columns). */
export const parse = (row: ReadonlyArray<unknown>): Client => {
  const outcomes = new Map<number, Outcome>()
  if (typeof row[3] === "string") {
    for (const entry of JSON.parse(row[3]) as ReadonlyArray<StoredOutcome>) {
      const seq = entry[0]
      outcomes.set(
        seq,
        entry.length === 3
          ? { _tag: "Refused", seq, reason: entry[1] as ErrorReason, message: entry[2] }
          : { _tag: "Applied", seq, rows: entry.length === 2 ? entry[1] : [] }
      )
    }
  }
  const holes = typeof row[2] === "string" ? new Set(JSON.parse(row[2]) as Array<number>) : NO_HOLES
  return { key: String(row[0]), seq: Number(row[1]), holes, outcomes }
}

/** The `decided` column of a row: null, or a legacy row's holes as JSON. */
export const serializeHoles = (client: Client): string | null => (client.holes.size === 0 ? null : JSON.stringify([...client.holes]))

/** The outcomes to store, as JSON (null when none): the rows of the largest applied ones go first when over the cap. */
export const serialize = (outcomes: ReadonlyMap<number, Outcome>): string | null => {
  if (outcomes.size === 0) return null
  const entries: Array<StoredOutcome> = []
  for (const o of outcomes.values()) entries.push(o._tag === "Applied" ? [o.seq, o.rows] : [o.seq, o.reason, o.message])
  let text = JSON.stringify(entries)
  if (text.length <= MAX_OUTCOME_CHARS) return text
  // a bulk action's rows: keep that it was applied, not what it wrote
  const sizes = entries.map((e, i) => [e.length === 2 ? JSON.stringify(e[1]).length : 0, i] as const).sort((a, b) => b[0] - a[0])
  for (const [size, i] of sizes) {
    if (size === 0 || text.length <= MAX_OUTCOME_CHARS) break
    entries[i] = [entries[i]![0]]
    text = JSON.stringify(entries)
  }
  return text
}

/**
 * Converts the first releases' rows once (a meta flag records it): each
 * bitmask of decided seqs becomes the list of the seqs it left undecided,
 * computed in SQL, where the 62-bit mask is exact (JavaScript numbers are not).
 */
export const CONVERT_LEGACY: ReadonlyArray<string> = [
  `UPDATE _psync_clients AS c SET decided = (WITH RECURSIVE w(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM w WHERE i < ${
    LEGACY_WINDOW - 1
  }) SELECT CASE WHEN count(*) = 0 THEN NULL ELSE json_group_array(c.seq - 1 - i) END FROM w ` +
  `WHERE ((c.decided >> i) & 1) = 0 AND c.seq - 1 - i >= 1) WHERE typeof(c.decided) = 'integer'`
]

/** The key a principal is counted under for the per-principal cap. */
export const principalKey = (principal: unknown): string | null => {
  if (principal === null || principal === undefined) return null
  if (typeof principal === "string") return principal
  try {
    return JSON.stringify(principal) ?? null
  } catch {
    return String(principal)
  }
}
