/**
 * What a view sends: the live changes one rule admits, and the sync answers
 * of a view subscription. Synchronous SQL and plain functions: Broadcast
 * and Reconciliation run them under the write lock.
 *
 * A live change sends a row the rule admits now, and removes one it admitted
 * in the image the client last received (the log's previous image) and no
 * longer does. A resume has no such image (compaction merged entries): it
 * removes the ids the client says it holds that the rule does not admit now,
 * checked row by row, so a hidden row and a row that never was get the same
 * answer and a forged id learns nothing.
 *
 * @since 0.3.0
 */
import type { RowId, WireRow } from "../protocol/Protocol.ts"
import type { ChannelLog } from "./Capture.ts"
import * as ChangeLog from "./ChangeLog.ts"
import type { ChannelChanges } from "./Frames.ts"
import type { Compiled } from "./Rule.ts"
import type { StorageShape } from "./Storage.ts"

/** Parses previous images once per publish, whatever the number of rules testing them. */
export const imagesOf = (changes: ChannelChanges): (id: RowId) => WireRow | null => {
  const parsed = new Map<RowId, WireRow | null>()
  return (id) => {
    let image = parsed.get(id)
    if (image === undefined) {
      const text = changes.olds?.get(id)
      image = text === undefined || text === null ? null : (JSON.parse(text) as WireRow)
      parsed.set(id, image)
    }
    return image
  }
}

/**
 * The part of live changes a rule's subscribers receive: rows it admits,
 * and removals of rows whose previous image it admitted. Undefined when
 * nothing is left for them.
 */
export const filterLive = (changes: ChannelChanges, rule: Compiled, imageOf: (id: RowId) => WireRow | null): ChannelChanges | undefined => {
  if (rule.everything) return changes
  const rows: Array<WireRow> = []
  const rowVersions: Array<number> = []
  const removed: Array<{ readonly id: RowId; readonly version: number }> = []
  // a client holds a row it was sent live (a soft-deleted one it drops) while the rule admitted it
  const held = (id: RowId) => {
    const image = imageOf(id)
    return image !== null && image[image.length - 1] === null && rule.test(image)
  }
  changes.rows.forEach((row, i) => {
    if (rule.test(row)) {
      rows.push(row)
      rowVersions.push(changes.rowVersions[i]!)
    } else if (held(row[0] as RowId)) removed.push({ id: row[0] as RowId, version: changes.rowVersions[i]! })
  })
  changes.deleted.forEach((id, i) => {
    if (held(id)) removed.push({ id, version: changes.deletedVersions[i]! })
  })
  if (rows.length === 0 && removed.length === 0) return undefined
  removed.sort((a, b) => a.version - b.version)
  return {
    channel: changes.channel,
    rows,
    rowVersions,
    deleted: removed.map((r) => r.id),
    deletedVersions: removed.map((r) => r.version),
    version: changes.version
  }
}

/** Keeps the rows a rule admits (an action's reply rows, for its sender). */
export const visible = (rows: ReadonlyArray<WireRow>, rules: ReadonlyArray<Compiled>): ReadonlyArray<WireRow> =>
  rules.some((r) => r.everything) ? rows : rows.filter((row) => rules.some((r) => r.test(row)))

/** How a view's sync answer is built. */
export type Answer =
  /** Every row the rule admits; the client replaces what it holds. */
  | { readonly _tag: "Reset" }
  /** The same rule since the cursor: rows changed since, and removals among the held ids. */
  | { readonly _tag: "Resume"; readonly since: number; readonly held: ReadonlyArray<RowId> }
  /** Another rule since the cursor: as a resume, plus every admitted row the client does not hold. */
  | { readonly _tag: "Diff"; readonly since: number; readonly held: ReadonlyArray<RowId> }

const live = (log: ChannelLog) => `t.${ChangeLog.q(log.info.deletedAt)} IS NULL`
const select = (log: ChannelLog) => log.info.columns.map((c) => `t.${ChangeLog.q(c)}`).join(", ")
const from = (log: ChannelLog) => `${ChangeLog.q(log.info.channel.table)} t`

/** A view's sync answer at `version`, the current published version. */
export const answer = (storage: StorageShape, log: ChannelLog, rule: Compiled, how: Answer, version: number): ChannelChanges => {
  const channel = log.info.channel.name
  const order = log.info.hasRowid ? " ORDER BY t.rowid" : ""
  if (how._tag === "Reset") {
    const rows = storage.rawUnsafe(`SELECT ${select(log)} FROM ${from(log)} WHERE ${live(log)} AND ${rule.where}${order}`, ...rule.params)
    return { channel, rows, rowVersions: rows.map(() => version), deleted: [], deletedVersions: [], version }
  }
  const held = JSON.stringify(how.held)
  const id = `t.${ChangeLog.q(log.info.id)}`
  const changed = ChangeLog.foldChanges(channel, storage.rawUnsafe(log.query, how.since), log.info.view)
  const rows: Array<WireRow> = changed.rows.filter(rule.test)
  if (how._tag === "Diff") {
    const seen = new Set(rows.map((row) => row[0]))
    const added = storage.rawUnsafe(
      `SELECT ${select(log)} FROM ${from(log)} WHERE ${live(log)} AND ${rule.where} AND ${id} NOT IN (SELECT value FROM json_each(?))${order}`,
      ...rule.params,
      held
    )
    for (const row of added) if (!seen.has(row[0])) rows.push(row)
  }
  const kept = new Set<unknown>(
    how.held.length === 0 ? [] : storage.rawUnsafe(
      `SELECT ${id} FROM ${from(log)} WHERE ${id} IN (SELECT value FROM json_each(?)) AND ${live(log)} AND ${rule.where}`,
      held,
      ...rule.params
    ).map((r) => r[0])
  )
  const deleted = how.held.filter((h) => !kept.has(h))
  return { channel, rows, rowVersions: rows.map(() => version), deleted, deletedVersions: deleted.map(() => version), version }
}
