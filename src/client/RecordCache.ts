/**
 * Where a client keeps its confirmed records: one row per record, keyed by
 * id, and a meta record (cursor, history, schema version), so a change writes
 * only the rows it changed. Rows and meta move together: the IndexedDB
 * layout writes them in one transaction; the KeyValueStore layout, which has
 * no transactions, marks the meta while it writes and reads a marked meta as
 * a torn write (the cache is then reset, with the reason in the status).
 *
 * Several tabs (clients sharing a store) write one namespace. Each stored
 * state is the server's state at the stored cursor, and a writer stores only
 * what changed since the state it last stored or loaded (its base), so it
 * writes:
 * - nothing, when the store holds a later cursor of the same history (it is
 *   behind: its changes wait until it catches up);
 * - its changes, when the stored cursor lies between its base and its own
 *   (they cover everything the stored state lacks);
 * - the whole table otherwise (another history, a reset, a store that went
 *   back, no base).
 *
 * Each row also has a place (`ord`): a row is stored with a number above every
 * stored one when it is new, and rows load in that order, the order the table
 * held them in.
 *
 * @since 0.3.0
 */
import type * as Effect from "effect/Effect"
import type * as KeyValueStore from "effect/persistence/KeyValueStore"
import type { RowId } from "../protocol/Protocol.ts"

/** The confirmed state's position: what its rows are the server's state at. */
export interface CacheMeta {
  readonly cursor: number | null
  /** The server history the cursor belongs to. */
  readonly history: string | undefined
  /** The channel's schema version the rows are encoded in. */
  readonly schema: number
}

/** The meta record: the position, and the place the next new row takes. */
export interface StoredMeta extends CacheMeta {
  readonly next: number
}

/** What a write stores: the rows changed since the writer's base, or (`replace`) the whole table. */
export interface ChangeSet {
  readonly meta: CacheMeta
  /** The table was replaced since the base: only `all()` describes it. */
  readonly replace: boolean
  /** Changed rows: id, encoded row, and whether it is new (then in table order). */
  readonly upserts: ReadonlyArray<readonly [RowId, unknown, boolean]>
  readonly deletes: ReadonlyArray<RowId>
  /**
   * Every encoded row in table order, for a write of the whole table: present when the
   * table was replaced (the rows are those of the moment the changes were taken).
   */
  readonly all: (() => ReadonlyArray<unknown>) | undefined
}

/** A loaded cache: its position and encoded rows in table order, or why it was dropped. */
export type Loaded =
  | { readonly meta: CacheMeta; readonly rows: ReadonlyArray<unknown> }
  | { readonly reset: string }

/**
 * How a write went: it stored the changes, or the whole table; or nothing, because the
 * store holds a later state (`behind`: try again later) or because it needs the whole table
 * and the change set has none (`whole`: write again with it).
 */
export type Written = "changes" | "table" | "behind" | "whole"

/** The records part of a client's cache, for one namespace; it remembers the writer's base. */
export interface RecordCache {
  readonly load: Effect.Effect<Loaded | undefined, KeyValueStore.KeyValueStoreError>
  readonly write: (changes: ChangeSet) => Effect.Effect<Written, KeyValueStoreError>
  readonly clear: Effect.Effect<void, KeyValueStoreError>
}
type KeyValueStoreError = KeyValueStore.KeyValueStoreError

/** A store with a layout of its own (IndexedDB) has a record cache factory under this key. */
export const NATIVE: unique symbol = Symbol.for("effect-partysync/RecordCache") as never

/** A store that provides its own record cache. */
export interface WithRecordCache {
  readonly [NATIVE]: (prefix: string) => RecordCache
}

const position = (cursor: number | null) => cursor ?? -1

/** What a write must store, given the stored meta, the writer's base and where the writer is now. */
export const plan = (stored: StoredMeta | undefined, base: CacheMeta | undefined, changes: ChangeSet): Written => {
  const target = changes.meta
  // a newer build's rows are another shape: this one leaves them alone
  if (stored !== undefined && stored.schema > target.schema) return "behind"
  const same = stored !== undefined && stored.schema === target.schema && stored.history === target.history
  if (same && position(stored.cursor) > position(target.cursor)) return "behind"
  const descends = same && base !== undefined && base.schema === stored.schema && base.history === stored.history &&
    position(base.cursor) <= position(stored.cursor)
  return descends && !changes.replace ? "changes" : changes.all === undefined ? "whole" : "table"
}

/** Valid stored meta, or undefined. */
export const readMeta = (u: unknown): StoredMeta | undefined => {
  const m = u as StoredMeta | null | undefined
  return typeof m === "object" && m !== null && (m.cursor === null || Number.isInteger(m.cursor)) &&
      (m.history === undefined || typeof m.history === "string") && Number.isInteger(m.schema) && Number.isInteger(m.next)
    ? { cursor: m.cursor, history: m.history, schema: m.schema, next: m.next }
    : undefined
}

/** Loaded rows put in their places (`ords[i]` is the place of `rows[i]`). */
export const inOrder = (rows: ReadonlyArray<unknown>, ords: ReadonlyArray<number>): Array<unknown> => {
  const n = rows.length
  if (n === 0) return []
  let min = Infinity
  let max = -Infinity
  for (const o of ords) {
    if (o < min) min = o
    if (o > max) max = o
  }
  if (max - min < 4 * n) {
    // places are dense: one pass into slots, holes dropped (two rows in one place: sorted below instead)
    const slots: Array<unknown> = new Array(max - min + 1)
    let i = 0
    for (; i < n && slots[ords[i]! - min] === undefined; i++) slots[ords[i]! - min] = rows[i]
    if (i === n) return slots.filter((row) => row !== undefined)
  }
  const index = Array.from(rows, (_, i) => i).sort((a, b) => ords[a]! - ords[b]!)
  return index.map((i) => rows[i])
}
