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
 * An entry's `deleted` says what wrote it: 0 an insert, 1 a removal (a
 * delete, or the old id of an update that changed it), 2 an update. An
 * update or a removal leaves an older entry of its row behind, and so does
 * an insert of an id removed before; an insert of a new row leaves none, so
 * compaction counts by kind (`Compaction.ts`).
 *
 * A channel with a read rule (a view) also logs the row's image before the
 * change (`old`, a JSON array in wire order; NULL for an insert): a live
 * change removes a row from a client only if the rule admitted what that
 * client last received, so a hidden row's id is never sent as a removal.
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
  /** The channel has a read rule: its entries carry the row's previous image. */
  readonly view: boolean
}

/** The wire order of a table's columns: `deleted_at` (or else the last column) moves to the end. */
export const wireColumns = (tableColumns: ReadonlyArray<string>): { readonly columns: ReadonlyArray<string>; readonly deletedAt: string } => {
  const deletedAt = tableColumns.includes("deleted_at") ? "deleted_at" : tableColumns[tableColumns.length - 1]!
  return { columns: [...tableColumns.filter((c) => c !== deletedAt), deletedAt], deletedAt }
}

const selectList = (info: TableInfo, alias: string) => info.columns.map((c) => `${alias}.${q(c)}`).join(", ")

/** Quotes a checked identifier. */
export const q = (identifier: string): string => `"${identifier}"`

/** What wrote a log entry, in its `deleted` column. */
export const INSERTED = 0
/** A delete, or an update's old id when the update changed the id. */
export const REMOVED = 1
/** An update (its new id, when it changed the id). */
export const UPDATED = 2

/** The library's bookkeeping tables. */
export const SCHEMA: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS _psync_meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS _psync_channels (name TEXT PRIMARY KEY NOT NULL, idx INTEGER NOT NULL UNIQUE) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS _psync_log (version INTEGER PRIMARY KEY, channel INTEGER NOT NULL, id NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, old TEXT)`,
  // when the log had which version: the GC horizon is the version of the newest checkpoint older than the retention
  `CREATE TABLE IF NOT EXISTS _psync_checkpoints (at INTEGER PRIMARY KEY, version INTEGER NOT NULL)`
]

/** Adds the previous-image column to a log created before views. */
export const ADD_OLD = `ALTER TABLE _psync_log ADD COLUMN old TEXT`

/** Tables of the first release's capture, replaced by the log (a new history starts). */
export const LEGACY_TABLES: ReadonlyArray<string> = ["_psync_changes"]

/** Trigger names of a table. */
export const triggerNames = (table: string): ReadonlyArray<string> =>
  [`_psync_${table}_insert`, `_psync_${table}_update`, `_psync_${table}_delete`]

/** The row's image in wire order, as JSON: what a view's rule is tested on when the row changes. */
const image = (info: Pick<TableInfo, "columns">, alias: string) => `json_array(${info.columns.map((c) => `${alias}.${q(c)}`).join(", ")})`

/** The three `CREATE TRIGGER` statements of a channel table (names are checked identifiers). */
export const triggerSql = (info: Pick<TableInfo, "channel" | "index" | "id" | "columns" | "view">): ReadonlyArray<string> => {
  const t = q(info.channel.table)
  const id = q(info.id)
  const [insert, update, del] = triggerNames(info.channel.table)
  const n = info.index
  if (!info.view) {
    return [
      `CREATE TRIGGER ${insert} AFTER INSERT ON ${t} BEGIN INSERT INTO _psync_log (channel, id) VALUES (${n}, NEW.${id}); END`,
      // a changed id is the old row's delete and the new row's insert
      `CREATE TRIGGER ${update} AFTER UPDATE ON ${t} BEGIN ` +
      `INSERT INTO _psync_log (channel, id, deleted) SELECT ${n}, OLD.${id}, ${REMOVED} WHERE OLD.${id} IS NOT NEW.${id}; ` +
      `INSERT INTO _psync_log (channel, id, deleted) VALUES (${n}, NEW.${id}, ${UPDATED}); END`,
      `CREATE TRIGGER ${del} AFTER DELETE ON ${t} BEGIN INSERT INTO _psync_log (channel, id, deleted) VALUES (${n}, OLD.${id}, ${REMOVED}); END`
    ]
  }
  const old = image(info, "OLD")
  return [
    `CREATE TRIGGER ${insert} AFTER INSERT ON ${t} BEGIN INSERT INTO _psync_log (channel, id) VALUES (${n}, NEW.${id}); END`,
    // the new id had no row before (it would have conflicted): its entry has no previous image
    `CREATE TRIGGER ${update} AFTER UPDATE ON ${t} BEGIN ` +
    `INSERT INTO _psync_log (channel, id, deleted, old) SELECT ${n}, OLD.${id}, ${REMOVED}, ${old} WHERE OLD.${id} IS NOT NEW.${id}; ` +
    `INSERT INTO _psync_log (channel, id, deleted, old) VALUES (${n}, NEW.${id}, ${UPDATED}, CASE WHEN OLD.${id} IS NEW.${id} THEN ${old} END); END`,
    `CREATE TRIGGER ${del} AFTER DELETE ON ${t} BEGIN INSERT INTO _psync_log (channel, id, deleted, old) VALUES (${n}, OLD.${id}, ${REMOVED}, ${old}); END`
  ]
}

/** The statement that reads a channel's changes after a version, with each row's current values. */
export const changesQuery = (info: TableInfo): string =>
  `SELECT l.version, l.deleted, l.id, ${info.view ? "l.old, " : ""}${selectList(info, "t")} FROM _psync_log l LEFT JOIN ${q(info.channel.table)} t ` +
  `ON t.${q(info.id)} = l.id WHERE l.version > ? AND l.channel = ${info.index} ORDER BY l.version`

/** The statement that reads every live row of a channel, in insertion order where the table has one. */
export const allQuery = (info: TableInfo): string =>
  `SELECT ${selectList(info, "t")} FROM ${q(info.channel.table)} t WHERE t.${q(info.deletedAt)} IS NULL${info.hasRowid ? " ORDER BY t.rowid" : ""}`

/**
 * Folds the result of `changesQuery` into changes: each row once, at its
 * newest version, in version order; a row that no longer exists (or whose
 * newest entry is a delete) is listed as deleted. A view's query also gives
 * each row's image before its oldest entry read (`olds`).
 */
export const foldChanges = (channel: string, result: ReadonlyArray<SqlRow>, view = false): Omit<ChannelChanges, "version"> => {
  // the newest entry of each id wins; walking backwards keeps the first one seen
  const seen = new Set<SqlValue>()
  const rows: Array<WireRow> = []
  const rowVersions: Array<number> = []
  const deleted: Array<RowId> = []
  const deletedVersions: Array<number> = []
  const at = view ? 4 : 3
  const olds = view ? new Map<RowId, string | null>() : undefined
  for (let i = result.length - 1; i >= 0; i--) {
    const r = result[i]!
    const id = r[2]!
    // walking backwards, the last write of an id's previous image is its oldest entry's
    if (olds !== undefined) olds.set(id as RowId, r[3] as string | null)
    if (seen.has(id)) continue
    seen.add(id)
    if (r[1] === REMOVED || r[at] === null) {
      deleted.push(id as RowId)
      deletedVersions.push(r[0] as number)
    } else {
      rows.push(r.slice(at))
      rowVersions.push(r[0] as number)
    }
  }
  rows.reverse()
  rowVersions.reverse()
  deleted.reverse()
  deletedVersions.reverse()
  return olds === undefined ? { channel, rows, rowVersions, deleted, deletedVersions } : { channel, rows, rowVersions, deleted, deletedVersions, olds }
}

/** The highest version among some changes, 0 when there are none. */
export const highest = (changes: Omit<ChannelChanges, "version">): number =>
  Math.max(changes.rowVersions[changes.rowVersions.length - 1] ?? 0, changes.deletedVersions[changes.deletedVersions.length - 1] ?? 0)

/**
 * Keeps only the newest entry of each row at or below the published mark
 * (entries for the same row pile up between passes). Entries not published
 * yet are left whole: the oldest of them holds the image live clients last
 * received. Bind the mark twice.
 */
export const COMPACT =
  `DELETE FROM _psync_log WHERE version <= ? AND version NOT IN (SELECT max(version) FROM _psync_log WHERE version <= ? GROUP BY channel, id)`

/**
 * Drops entries at or below the horizon, but never the newest entry: the
 * next version is the highest key plus one, so the log must not empty.
 */
export const TRUNCATE = `DELETE FROM _psync_log WHERE version <= ? AND version < (SELECT max(version) FROM _psync_log)`
