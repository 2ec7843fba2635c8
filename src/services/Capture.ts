/**
 * Change capture over the change log (`ChangeLog.ts`): the channel tables'
 * shapes and triggers, installed at every start, and reading what changed
 * after a version with each row checked against its channel's record Schema.
 *
 * Synchronous SQL, no service: Reconciliation runs it inside its
 * transactions and under its lock.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import type * as Channel from "../protocol/Channel.ts"
import type { RowId, WireRow } from "../protocol/Protocol.ts"
import * as ChangeLog from "./ChangeLog.ts"
import { StorageError } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import type { StorageShape } from "./Storage.ts"

/** A channel's table, its prepared log query and its record check. */
export interface ChannelLog {
  readonly info: ChangeLog.TableInfo
  /** `changesQuery` for this channel. */
  readonly query: string
  /** Every live row, in insertion order where the table has one. */
  readonly all: string
  /** The reason the first row that does not decode with the record Schema fails (naming the column), if any. */
  readonly check: (rows: ReadonlyArray<WireRow>) => string | undefined
}

/** A check's message for a client: a view's names no row and no value (the rule may hide the row from its writer). */
export const publicProblem = (log: ChannelLog, problem: string): string =>
  log.info.view ? `a row written in ${log.info.channel.name} does not match the channel's record (the server log has the details)` : problem

/** What a read of the log found. */
export interface Captured {
  /** Per channel with changes: each row once, at its newest version, in version order. */
  readonly changes: Array<ChannelChanges>
  /** The highest version read (the `after` given when nothing changed). */
  readonly version: number
  /** Why rows do not match their channel's record, one message per channel. */
  readonly invalid: Array<string>
  /** The same, as a client may read them (`publicProblem`). */
  readonly invalidPublic: Array<string>
  /** The log entries read, by what wrote them (compaction counts what may need it). */
  readonly entries: Entries
}

/** Log entries read: how many, and how many were inserts and removals (the rest are updates). */
export interface Entries {
  readonly read: number
  readonly inserts: number
  readonly removals: number
}

/** No entries. */
export const NO_ENTRIES: Entries = { read: 0, inserts: 0, removals: 0 }

/** The entries of several reads. */
export const addEntries = (a: Entries, b: Entries): Entries =>
  ({ read: a.read + b.read, inserts: a.inserts + b.inserts, removals: a.removals + b.removals })

/** Checks rows against the channel's record Schema; the message names the column. */
const recordChecker = (info: ChangeLog.TableInfo) => {
  const decode = Schema.decodeUnknownExit(info.channel.record)
  return (rows: ReadonlyArray<WireRow>): string | undefined => {
    for (const row of rows) {
      const exit = decode(row)
      if (Exit.isSuccess(exit)) continue
      const error = Cause.findErrorOption(exit.cause)
      const message = error._tag === "Some" ? error.value.message : "does not decode"
      // Schema reports a tuple position as `at [n]`
      const named = message.replace(/at \[(\d+)\]/g, (at, n: string) => {
        const column = info.columns[Number(n)]
        return column === undefined ? at : `${at} (column ${column})`
      })
      return `${info.channel.name} row ${JSON.stringify(row[0])}: ${named.replace(/\s*\n\s*/g, " ")}`
    }
    return undefined
  }
}

const describe = (storage: StorageShape, channel: Channel.Any, index: number, view: boolean): ChangeLog.TableInfo => {
  const tableColumns = storage.rawUnsafe(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, channel.table).map((r) => String(r[0]))
  if (tableColumns.length < 2) {
    throw new StorageError({
      message: `table ${channel.table} for channel ${channel.name} must exist (with the id first and deleted_at last) before the server starts`,
      cause: null
    })
  }
  let hasRowid = true
  try {
    storage.rawUnsafe(`SELECT rowid FROM ${ChangeLog.q(channel.table)} LIMIT 0`)
  } catch {
    hasRowid = false
  }
  const { columns, deletedAt } = ChangeLog.wireColumns(tableColumns)
  return { channel, index, columns, id: tableColumns[0]!, deletedAt, hasRowid, view }
}

/**
 * Installs the triggers of every channel table (inside the install
 * transaction). `rebuilt` is true when a channel captured before had lost
 * its triggers: changes may have gone uncaptured, so a new history must start.
 * Triggers that exist but differ (an older release's, or a channel that
 * gained or lost a read rule) are replaced without that: they captured every
 * change all along.
 */
export const install = (
  storage: StorageShape,
  channels: ReadonlyMap<string, Channel.Any>,
  isView: (channel: string) => boolean
): { readonly logs: Array<ChannelLog>; readonly rebuilt: boolean } => {
  let rebuilt = false
  const logColumns = storage.rawUnsafe(`SELECT name FROM pragma_table_info('_psync_log')`).map((r) => String(r[0]))
  if (!logColumns.includes("old")) storage.rawUnsafe(ChangeLog.ADD_OLD)
  const logs: Array<ChannelLog> = []
  for (const channel of channels.values()) {
    const known = storage.rawUnsafe(`SELECT idx FROM _psync_channels WHERE name = ?`, channel.name)[0]?.[0]
    const index = known === undefined
      ? Number(storage.rawUnsafe(
        `INSERT INTO _psync_channels (name, idx) SELECT ?, coalesce(max(idx), 0) + 1 FROM _psync_channels RETURNING idx`,
        channel.name
      )[0]![0])
      : Number(known)
    const info = describe(storage, channel, index, isView(channel.name))
    const wanted = ChangeLog.triggerSql(info)
    const have = new Set(storage.rawUnsafe(
      `SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND name LIKE '\\_psync\\_%' ESCAPE '\\'`,
      channel.table
    ).map((r) => String(r[0])))
    if (have.size !== wanted.length || wanted.some((statement) => !have.has(statement))) {
      const names = ChangeLog.triggerNames(channel.table)
      const present = storage.rawUnsafe(
        `SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (${names.map(() => "?").join(", ")})`,
        ...names
      )[0]?.[0]
      for (const name of names) storage.rawUnsafe(`DROP TRIGGER IF EXISTS ${name}`)
      for (const statement of wanted) storage.rawUnsafe(statement)
      // a channel captured before whose triggers were (partly) gone lost changes meanwhile
      if (known !== undefined && Number(present) < names.length) rebuilt = true
    }
    logs.push({ info, query: ChangeLog.changesQuery(info), all: ChangeLog.allQuery(info), check: recordChecker(info) })
  }
  return { logs, rebuilt }
}

/**
 * Every change after `after`, each row once at its newest version, checked
 * against its channel's record. With `only`, channels outside it are not
 * read (nobody receives them now; a later sync answer serves them).
 */
export const read = (
  storage: StorageShape,
  logs: Iterable<ChannelLog>,
  after: number,
  only?: ReadonlySet<string>
): Captured => {
  const changes: Array<ChannelChanges> = []
  const invalid: Array<string> = []
  const invalidPublic: Array<string> = []
  let version = after
  let read = 0
  let inserts = 0
  let removals = 0
  for (const log of logs) {
    if (only !== undefined && !only.has(log.info.channel.name)) continue
    const result = storage.rawUnsafe(log.query, after)
    if (result.length === 0) continue
    read += result.length
    for (const r of result) {
      if (r[1] === ChangeLog.INSERTED) inserts++
      else if (r[1] === ChangeLog.REMOVED) removals++
    }
    const found = ChangeLog.foldChanges(log.info.channel.name, result, log.info.view)
    const last = ChangeLog.highest(found)
    const problem = log.check(found.rows)
    if (problem !== undefined) {
      invalid.push(problem)
      invalidPublic.push(publicProblem(log, problem))
    }
    changes.push({ ...found, version: last })
    version = Math.max(version, last)
  }
  return { changes, version, invalid, invalidPublic, entries: read === 0 ? NO_ENTRIES : { read, inserts, removals } }
}

/** The log's highest version (0 when empty). */
export const head = (storage: StorageShape): number =>
  Number(storage.rawUnsafe(`SELECT coalesce(max(version), 0) FROM _psync_log`)[0]?.[0] ?? 0)

/** Merges changes read in several steps: each row once, at its newest version (later steps win). */
export const merge = (steps: ReadonlyArray<ReadonlyArray<ChannelChanges>>): Array<ChannelChanges> => {
  if (steps.length === 1) return [...steps[0]!]
  const byChannel = new Map<string, Array<ChannelChanges>>()
  for (const step of steps) {
    for (const c of step) {
      const list = byChannel.get(c.channel)
      if (list === undefined) byChannel.set(c.channel, [c])
      else list.push(c)
    }
  }
  const out: Array<ChannelChanges> = []
  for (const [channel, list] of byChannel) {
    if (list.length === 1) {
      out.push(list[0]!)
      continue
    }
    // newest entry per id wins; rebuilt in version order
    const latest = new Map<unknown, { readonly version: number; readonly row?: WireRow; readonly deleted?: unknown }>()
    // a view's previous images: the earliest step's is the one before all of them
    let olds: Map<RowId, string | null> | undefined
    for (const c of list) {
      if (c.olds !== undefined) {
        olds ??= new Map()
        for (const [id, old] of c.olds) if (!olds.has(id)) olds.set(id, old)
      }
      c.rows.forEach((row, i) => latest.set(row[0], { version: c.rowVersions[i]!, row }))
      c.deleted.forEach((id, i) => latest.set(id, { version: c.deletedVersions[i]!, deleted: id }))
    }
    const entries = [...latest.values()].sort((a, b) => a.version - b.version)
    const rows: Array<WireRow> = []
    const rowVersions: Array<number> = []
    const deleted: Array<any> = []
    const deletedVersions: Array<number> = []
    for (const e of entries) {
      if (e.row !== undefined) {
        rows.push(e.row)
        rowVersions.push(e.version)
      } else {
        deleted.push(e.deleted)
        deletedVersions.push(e.version)
      }
    }
    const version = entries[entries.length - 1]!.version
    out.push(olds === undefined ? { channel, rows, rowVersions, deleted, deletedVersions, version } : { channel, rows, rowVersions, deleted, deletedVersions, version, olds })
  }
  return out
}
