/**
 * The change log: the SQL behind change capture, without the service
 * around it.
 *
 * Triggers on every channel table append one entry per row change to
 * `_psync_log`, inside the writer's transaction. The entry's key is its
 * version: an `INTEGER PRIMARY KEY` takes the next value by itself, so a
 * write costs one append and no counter update, and a rolled-back write
 * takes its entries (and their versions) with it. An entry names the row,
 * not its values: readers join the table for the row's current values, so a
 * row whose entry finds nothing was deleted (outright, or purged after a
 * soft delete). Entries for the same row pile up until compaction keeps the
 * newest; entries at or below the horizon are dropped (cursors that old get
 * a reset).
 *
 * @since 0.2.0
 */
import type * as Channel from "../protocol/Channel.ts"
import type { RowId, WireRow } from "../protocol/Protocol.ts"
import type { ChannelChanges } from "./Frames.ts"
import type { SqlRow, SqlValue } from "./Storage.ts"

/** A channel table's shape, read from SQLite at install time. */
export interface TableInfo {
  readonly channel: Channel.Any
  /** The channel's number in the log (`_psync_channels.idx`). */
  readonly index: number
  /**
   * The columns in wire order: the table's order, except that `deleted_at`
   * comes last (a column a migration adds with ALTER TABLE lands after it in
   * the table, before it on the wire).
   */
  readonly columns: ReadonlyArray<string>
  readonly id: string
  readonly deletedAt: string
  readonly hasRowid: boolean
}

/** The wire order of a table's columns: `deleted_at` (or else the last column) moves to the end. */
export const wireColumns = (tableColumns: ReadonlyArray<string>): { readonly columns: ReadonlyArray<string>; readonly deletedAt: string } => {
  const deletedAt = tableColumns.includes("deleted_at") ? "deleted_at" : tableColumns[tableColumns.length - 1]!
  return { columns: [...tableColumns.filter((c) => c !== deletedAt), deletedAt], deletedAt }
}

const selectList = (info: TableInfo, alias: string) => info.columns.map((c) => `${alias}.${q(c)}`).join(", ")

/** Quotes a checked identifier. */
export const q = (identifier: string): string => `"${identifier}"`

/** The library's bookkeeping tables. */
export const SCHEMA: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS _psync_meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS _psync_channels (name TEXT PRIMARY KEY NOT NULL, idx INTEGER NOT NULL UNIQUE) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS _psync_log (version INTEGER PRIMARY KEY, channel INTEGER NOT NULL, id NOT NULL, deleted INTEGER NOT NULL DEFAULT 0)`,
  // when the log had which version: the GC horizon is the version of the newest checkpoint older than the retention
  `CREATE TABLE IF NOT EXISTS _psync_checkpoints (at INTEGER PRIMARY KEY, version INTEGER NOT NULL)`
]

/** Tables of the first release's capture, replaced by the log (a new history starts). */
export const LEGACY_TABLES: ReadonlyArray<string> = ["_psync_changes"]

/** Trigger names of a table. */
export const triggerNames = (table: string): ReadonlyArray<string> =>
  [`_psync_${table}_insert`, `_psync_${table}_update`, `_psync_${table}_delete`]

const append = (index: number, id: string, deleted = "") =>
  deleted === ""
    ? `INSERT INTO _psync_log (channel, id) VALUES (${index}, ${id});`
    : `INSERT INTO _psync_log (channel, id, deleted) VALUES (${index}, ${id}, 1);`

/** The three `CREATE TRIGGER` statements of a channel table (names are checked identifiers). */
export const triggerSql = (info: Pick<TableInfo, "channel" | "index" | "id">): ReadonlyArray<string> => {
  const t = q(info.channel.table)
  const id = q(info.id)
  const [insert, update, del] = triggerNames(info.channel.table)
  return [
    `CREATE TRIGGER ${insert} AFTER INSERT ON ${t} BEGIN ${append(info.index, `NEW.${id}`)} END`,
    // a changed id is the old row's delete and the new row's insert
    `CREATE TRIGGER ${update} AFTER UPDATE ON ${t} BEGIN ` +
    `INSERT INTO _psync_log (channel, id, deleted) SELECT ${info.index}, OLD.${id}, 1 WHERE OLD.${id} IS NOT NEW.${id}; ` +
    `${append(info.index, `NEW.${id}`)} END`,
    `CREATE TRIGGER ${del} AFTER DELETE ON ${t} BEGIN ${append(info.index, `OLD.${id}`, "deleted")} END`
  ]
}

/** The statement that reads a channel's changes after a version, with each row's current values. */
export const changesQuery = (info: TableInfo): string =>
  `SELECT l.version, l.deleted, l.id, ${selectList(info, "t")} FROM _psync_log l LEFT JOIN ${q(info.channel.table)} t ` +
  `ON t.${q(info.id)} = l.id WHERE l.version > ? AND l.channel = ${info.index} ORDER BY l.version`

/** The statement that reads every live row of a channel, in insertion order where the table has one. */
export const allQuery = (info: TableInfo): string =>
  `SELECT ${selectList(info, "t")} FROM ${q(info.channel.table)} t WHERE t.${q(info.deletedAt)} IS NULL${info.hasRowid ? " ORDER BY t.rowid" : ""}`

/**
 * Folds the result of `changesQuery` into changes: each row once, at its
 * newest version, in version order; a row that no longer exists (or whose
 * newest entry is a delete) is listed as deleted.
 */
export const foldChanges = (channel: string, result: ReadonlyArray<SqlRow>): Omit<ChannelChanges, "version"> => {
  // the newest entry of each id wins; walking backwards keeps the first one seen
  const seen = new Set<SqlValue>()
  const rows: Array<WireRow> = []
  const rowVersions: Array<number> = []
  const deleted: Array<RowId> = []
  const deletedVersions: Array<number> = []
  for (let i = result.length - 1; i >= 0; i--) {
    const r = result[i]!
    const id = r[2]!
    if (seen.has(id)) continue
    seen.add(id)
    if (r[1] === 1 || r[3] === null) {
      deleted.push(id as RowId)
      deletedVersions.push(r[0] as number)
    } else {
      rows.push(r.slice(3))
      rowVersions.push(r[0] as number)
    }
  }
  rows.reverse()
  rowVersions.reverse()
  deleted.reverse()
  deletedVersions.reverse()
  return { channel, rows, rowVersions, deleted, deletedVersions }
}

/** The highest version among some changes, 0 when there are none. */
export const highest = (changes: Omit<ChannelChanges, "version">): number =>
  Math.max(changes.rowVersions[changes.rowVersions.length - 1] ?? 0, changes.deletedVersions[changes.deletedVersions.length - 1] ?? 0)

/** Keeps only the newest entry of each row (entries for the same row pile up between passes). */
export const COMPACT =
  `DELETE FROM _psync_log WHERE version NOT IN (SELECT max(version) FROM _psync_log GROUP BY channel, id)`

/**
 * Drops entries at or below the horizon, but never the newest entry: the
 * next version is the highest key plus one, so the log must not empty.
 */
export const TRUNCATE = `DELETE FROM _psync_log WHERE version <= ? AND version < (SELECT max(version) FROM _psync_log)`
