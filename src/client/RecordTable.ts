/**
 * The confirmed records of one channel: a Map by id that keeps creation
 * order (a Map iterates in insertion order and `set` on an existing key keeps
 * its place). Applying a row is O(1) in table size; the snapshot array is
 * built lazily, at most once between changes.
 *
 * @since 0.1.0
 */
import type { RowId } from "../protocol/Protocol.ts"

/** A record tuple: id first, `deleted_at` last. */
export type Row = ReadonlyArray<unknown>

/** Mutable, id-indexed table of live records (tombstones are removed, not kept). */
export class RecordTable<R extends Row> {
  #rows = new Map<RowId, R>()
  #array: ReadonlyArray<R> | undefined = []

  /** Number of live records. */
  get size(): number {
    return this.#rows.size
  }

  /** The record with this id, if live. */
  get(id: RowId): R | undefined {
    return this.#rows.get(id)
  }

  /** Applies one row: a tombstone (last element not null) removes it, anything else upserts. */
  apply(row: R): void {
    const id = row[0] as RowId
    if (row[row.length - 1] != null) {
      if (this.#rows.delete(id)) this.#array = undefined
    } else {
      this.#rows.set(id, row)
      this.#array = undefined
    }
  }

  /** Removes a hard-deleted row. */
  remove(id: RowId): void {
    if (this.#rows.delete(id)) this.#array = undefined
  }

  /**
   * Replaces every record (a reset) with `rows`, applied in order: a later
   * row of an id wins, and a tombstone removes the id (a full answer ends
   * with what changed while it was read).
   */
  replace(rows: ReadonlyArray<R>): void {
    this.#rows = new Map()
    for (const row of rows) {
      if (row[row.length - 1] == null) this.#rows.set(row[0] as RowId, row)
      else this.#rows.delete(row[0] as RowId)
    }
    this.#array = undefined
  }

  /** The live records in creation order; the same array until the next change. */
  array(): ReadonlyArray<R> {
    if (this.#array === undefined) this.#array = Array.from(this.#rows.values())
    return this.#array
  }
}
