/**
 * The client ledger: one row per client id, which makes actions idempotent
 * and their outcomes final, as Replicache and Zero do it.
 *
 * - A client's actions are decided strictly in sequence. The row holds the
 *   last decided seq: a pushed seq at or below it is a re-send (it gets its
 *   first outcome), the next one is decided, and one past it waits (the
 *   reply's `next` tells the client where to resume). No clock is involved.
 * - A client id is bound to the key of its first push; only that key may use
 *   the id again.
 * - Outcomes (`Outcomes.ts`) are kept until the client confirms them.
 * - A client that confirmed everything and stays idle past the retention is
 *   forgotten (what it pushes later is new); one with outcomes to confirm is
 *   kept, and a principal holds at most a configured number of client ids.
 *
 * The first releases' rows are read too (`LedgerLegacy.ts`).
 *
 * @since 0.2.0
 */
import * as Outcomes from "./Outcomes.ts"

/** The ledger's table. No index on `seen` or `principal`: each would cost a row written per batch. */
export const SCHEMA: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS _psync_clients (client_id TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL, ` +
  `seq INTEGER NOT NULL, decided INTEGER, seen INTEGER NOT NULL, principal TEXT, outcomes TEXT) WITHOUT ROWID`,
  `DROP INDEX IF EXISTS _psync_clients_by_seen`
]

/** A client's row. */
export const LOAD = `SELECT key, seq, decided, outcomes FROM _psync_clients WHERE client_id = ?`

/** Writes a client's row (a batch writes it once). */
export const SAVE =
  `INSERT INTO _psync_clients (client_id, key, seq, decided, seen, principal, outcomes) VALUES (?, ?, ?, ?, ?, ?, ?) ` +
  `ON CONFLICT (client_id) DO UPDATE SET seq = excluded.seq, decided = excluded.decided, seen = excluded.seen, outcomes = excluded.outcomes`

/** Drops the outcomes a client confirmed while it pushed nothing (the GC writes them). */
export const CONFIRM = `UPDATE _psync_clients SET outcomes = ? WHERE client_id = ?`

/** How many client ids each principal holds (the cap's count after a wake). */
export const COUNT_BY_PRINCIPAL = `SELECT principal, count(*) FROM _psync_clients GROUP BY principal`

/** Frees one place of a principal: its client that has confirmed everything and was seen longest ago. */
export const EVICT_CONFIRMED =
  `DELETE FROM _psync_clients WHERE client_id = (SELECT client_id FROM _psync_clients WHERE principal IS ? ` +
  `AND outcomes IS NULL ORDER BY seen LIMIT 1) RETURNING client_id`

/** Forgets clients with nothing to confirm that were not seen since ?. */
export const PRUNE = `DELETE FROM _psync_clients WHERE seen < ? AND outcomes IS NULL`

/** A client's row, as the ledger reads it. */
export interface Client {
  readonly key: string
  /** The last decided seq (for a legacy row: the highest decided one). */
  readonly seq: number
  /** Legacy rows only: seqs below `seq` the first releases never decided (decided when they come). */
  readonly holes: ReadonlySet<number>
  /** Outcomes not confirmed yet, by seq. */
  readonly outcomes: ReadonlyMap<number, Outcomes.Outcome>
}

/** Reads a row (`LOAD`'s columns). */
export const parse = (row: ReadonlyArray<unknown>): Client => ({
  key: String(row[0]),
  seq: Number(row[1]),
  holes: typeof row[2] === "string" ? new Set(JSON.parse(row[2]) as Array<number>) : new Set(),
  outcomes: Outcomes.parse(row[3])
})

/** The `decided` column of a row: null, or a legacy row's holes as JSON. */
export const serializeHoles = (holes: ReadonlySet<number>): string | null => (holes.size === 0 ? null : JSON.stringify([...holes]))

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
