/**
 * The optimistic view of one channel: the reducer applied over the
 * confirmed records for every pending action, in order, and the ids of the
 * records those actions touch (the rows a UI marks as pending). Pure, so
 * that the engine can rebuild it lazily, at most once between changes.
 *
 * @since 0.2.0
 */
import type { RowId } from "../protocol/Protocol.ts"
import type { RecordTable, Row } from "./RecordTable.ts"

/** No ids: shared, so that an unchanged status keeps its identity. */
export const EMPTY_IDS: ReadonlySet<RowId> = new Set()

/** Ids of an action by convention: `action.payload.id`, else `action.id`. */
export const defaultIdsOf = (action: unknown): Array<RowId> => {
  if (typeof action !== "object" || action === null) return []
  const a = action as { readonly id?: unknown; readonly payload?: { readonly id?: unknown } }
  const id = a.payload !== null && typeof a.payload === "object" ? a.payload.id : a.id
  return typeof id === "string" || typeof id === "number" ? [id] : []
}

/** True when both sets hold the same ids. */
export const sameSet = (a: ReadonlySet<RowId>, b: ReadonlySet<RowId>): boolean => {
  if (a.size !== b.size) return false
  for (const x of a) if (!b.has(x)) return false
  return true
}

/** Builds the view; `onError` hears a reducer that threw (that action is skipped). */
export const build = <R extends Row, A>(
  table: RecordTable<R>,
  pending: ReadonlyArray<{ readonly action: A | undefined }>,
  reducer: ((records: ReadonlyArray<R>, action: A) => ReadonlyArray<R>) | undefined,
  idsOf: (action: A) => Iterable<RowId>,
  onError: (error: unknown) => void
): { readonly rows: ReadonlyArray<R>; readonly ids: ReadonlySet<RowId> } => {
  const base = table.array()
  const ids = new Set<RowId>()
  for (const p of pending) if (p.action !== undefined) for (const id of idsOf(p.action)) ids.add(id)
  let rows: ReadonlyArray<R> = base
  if (reducer !== undefined && pending.length > 0) {
    for (const p of pending) {
      if (p.action === undefined) continue
      try {
        rows = reducer(rows, p.action)
      } catch (error) {
        onError(error)
      }
    }
    if (rows !== base) rows = settle(table, rows, ids)
  }
  return { rows, ids: ids.size === 0 ? EMPTY_IDS : ids }
}

// One id, one row: a reducer that appends a row the server already confirmed
// (its Change arrived, its Ack not yet) must not show it twice. The last
// value wins at the first position. Rows that differ from the confirmed ones
// and confirmed rows that vanished are the optimistic rows.
const settle = <R extends Row>(table: RecordTable<R>, rows: ReadonlyArray<R>, ids: Set<RowId>): ReadonlyArray<R> => {
  const seen = new Map<RowId, number>()
  let out: Array<R> | undefined
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    const id = row[0] as RowId
    const at = seen.get(id)
    if (at !== undefined) {
      out ??= rows.slice(0, i)
      out[at] = row
      continue
    }
    if (out !== undefined) {
      seen.set(id, out.length)
      out.push(row)
    } else seen.set(id, i)
    if (table.get(id) !== row) ids.add(id)
  }
  if (seen.size !== table.size || out !== undefined) {
    for (const row of table.array()) if (!seen.has(row[0] as RowId)) ids.add(row[0] as RowId)
  }
  return out ?? rows
}
