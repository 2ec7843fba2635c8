/**
 * The first releases' client ledger, read so that actions queued before a
 * deploy are decided once. Those rows kept a bitmask of the decided seqs
 * below the highest (`decided`, NOT NULL) and refusals in `_psync_refused`.
 * At the first start of this release the table is rebuilt with this
 * release's columns and each bitmask becomes the list of the seqs it left
 * undecided (a meta flag records that it ran); `_psync_refused` is still
 * read for the re-sends of those refusals, and pruned with its clients.
 *
 * @since 0.2.0
 */
import * as Ledger from "./ClientLedger.ts"
import * as Histories from "./Histories.ts"
import type { StorageShape } from "./Storage.ts"

/** How many seqs below its highest the first releases' bitmask told apart (older ones were decided). */
const WINDOW = 62

/** The refusals of the first releases' clients, read for their re-sends (never written). */
export const REFUSALS = "_psync_refused"

/** Tables of the very first release (no keys): dropped at install. */
export const TABLES: ReadonlyArray<string> = ["_psync_clients", "_psync_refused"]

/** Columns a table of the first releases lacks, with their definitions. */
const ADDED_COLUMNS: ReadonlyArray<readonly [string, string]> = [["principal", "TEXT"], ["outcomes", "TEXT"]]

/** A legacy refusal of `(client_id, seq)`. */
export const REFUSAL_OF = `SELECT reason, message FROM ${REFUSALS} WHERE client_id = ? AND seq = ?`

/** Forgets legacy refusals of clients that are gone. */
export const PRUNE = `DELETE FROM ${REFUSALS} WHERE client_id NOT IN (SELECT client_id FROM _psync_clients)`

/**
 * Each bitmask becomes the list of the seqs it left undecided, computed in
 * SQL, where the 62-bit mask is exact (JavaScript numbers are not).
 */
const CONVERT =
  `UPDATE _psync_clients AS c SET decided = (WITH RECURSIVE w(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM w WHERE i < ${WINDOW - 1}) ` +
  `SELECT CASE WHEN count(*) = 0 THEN NULL ELSE json_group_array(c.seq - 1 - i) END FROM w ` +
  `WHERE ((c.decided >> i) & 1) = 0 AND c.seq - 1 - i >= 1) WHERE typeof(c.decided) = 'integer'`

/** Whether a table exists. */
export const exists = (storage: StorageShape, table: string): boolean =>
  storage.rawUnsafe(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`, table).length > 0

/** Creates the ledger's table, or brings a first releases' one to this release (once). */
export const install = (storage: StorageShape): void => {
  if (Histories.meta(storage, "ledger") !== 2) {
    const columns = storage.rawUnsafe(`SELECT name, "notnull" FROM pragma_table_info('_psync_clients')`)
    if (columns.length > 0) {
      const names = new Set(columns.map((r) => String(r[0])))
      if (columns.some((r) => r[0] === "decided" && Number(r[1]) === 1)) {
        // `decided` was NOT NULL: the table is rebuilt with it nullable
        storage.rawUnsafe(`ALTER TABLE _psync_clients RENAME TO _psync_clients_old`)
        for (const statement of Ledger.SCHEMA) storage.rawUnsafe(statement)
        storage.rawUnsafe(`INSERT INTO _psync_clients (client_id, key, seq, decided, seen) SELECT client_id, key, seq, decided, seen FROM _psync_clients_old`)
        storage.rawUnsafe(`DROP TABLE _psync_clients_old`)
      } else {
        for (const [name, type] of ADDED_COLUMNS) if (!names.has(name)) storage.rawUnsafe(`ALTER TABLE _psync_clients ADD COLUMN ${name} ${type}`)
      }
      storage.rawUnsafe(CONVERT)
    }
    Histories.setMeta(storage, "ledger", 2)
  }
  for (const statement of Ledger.SCHEMA) storage.rawUnsafe(statement)
}
