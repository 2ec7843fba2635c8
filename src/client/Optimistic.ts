/**
 * The optimistic view of one channel: the reducer applied over the
 * confirmed records for every pending action, in order, and the ids of the
 * records those actions touch (the rows a UI marks as pending). Pure, so
 * that the engine can rebuild it lazily, at most once between changes, and
 * extend the last build when actions were only queued since.
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

/**
 * A built view, and what it was built from: the confirmed array, the reducer,
 * the pending actions it applied (the first and the last of them, and how
 * many), the reducer's output before `settle` and the ids the actions name.
 */
export interface View<R extends Row, A> {
  readonly rows: ReadonlyArray<R>
  readonly ids: ReadonlySet<RowId>
  readonly base: ReadonlyArray<R>
  readonly reducer: ((records: ReadonlyArray<R>, action: A) => ReadonlyArray<R>) | undefined
  readonly count: number
  readonly first: unknown
  readonly last: unknown
  readonly reduced: ReadonlyArray<R>
  readonly named: ReadonlySet<RowId>
}

/**
 * Builds the view; `onError` hears a reducer that threw (that action is
 * skipped). Given the previous view, when nothing changed since but actions
 * queued after it, only those are applied: each enqueue of a long offline
 * session costs the same, not one reducer call per queued action. The queue
 * only grows at either end and loses entries, so the same first and last
 * entries at the same distance mean the same entries in between.
 */
export const build = <R extends Row, A>(
  table: RecordTable<R>,
  pending: ReadonlyArray<{ readonly action: A | undefined }>,
  reducer: ((records: ReadonlyArray<R>, action: A) => ReadonlyArray<R>) | undefined,
  idsOf: (action: A) => Iterable<RowId>,
  onError: (error: unknown) => void,
  previous?: View<R, A>
): View<R, A> => {
  const base = table.array()
  const from = previous?.base === base && previous.reducer === reducer && pending[0] === previous.first &&
      pending[previous.count - 1] === previous.last
    ? previous.count
    : 0
  const named = new Set(from > 0 ? previous!.named : undefined)
  let rows = from > 0 ? previous!.reduced : base
  for (let k = from; k < pending.length; k++) {
    const action = pending[k]!.action
    if (action === undefined) continue
    for (const id of idsOf(action)) named.add(id)
    if (reducer === undefined) continue
    try {
      rows = reducer(rows, action)
    } catch (error) {
      onError(error)
    }
  }
  const ids = new Set(named)
  const reduced = rows
  if (rows !== base) rows = settle(table, rows, ids)
  return {
    rows,
    ids: ids.size === 0 ? EMPTY_IDS : ids,
    base,
    reducer,
    count: pending.length,
    first: pending[0],
    last: pending[pending.length - 1],
    reduced,
    named
  }
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
