/**
 * The confirmed records of one channel: a Map by id that keeps creation
 * order (a Map iterates in insertion order and `set` on an existing key keeps
 * its place). Applying a row is O(1) in table size; the snapshot array is
 * built lazily, at most once between changes.
 *
 * The table also remembers what changed since the local cache last took it
 * (`drain`): the ids touched, whether each one is new (so the cache can give
 * it a place after every stored row), or that the whole table was replaced.
 * So a cache write costs what changed, never the table.
 *
 * @since 0.1.0
 */
import type { RowId } from "../protocol/Protocol.ts"

/** A record tuple: id first, `deleted_at` last. */
export type Row = ReadonlyArray<unknown>

/**
 * What changed since the last `drain`, as logged (an id may appear more than
 * once): the ids updated or removed, and the ids inserted, in the order of
 * insertion (so an id's last insertion is its place in the table); or
 * `replaced`, when the whole table was (then both are empty). Look each id
 * up: a row inserted and removed again is named in both.
 */
export interface TableChanges {
  readonly replaced: boolean
  readonly touched: ReadonlyArray<RowId>
  readonly inserted: ReadonlyArray<RowId>
}

/** Mutable, id-indexed table of live records (tombstones are removed, not kept). */
export class RecordTable<R extends Row> {
  #rows = new Map<RowId, R>()
  #array: ReadonlyArray<R> | undefined = []
  // a log, not a set: a push per change is all the hot path pays (the writer sorts it out)
  #touched: Array<RowId> = []
  #inserted: Array<RowId> = []
  #replaced = false

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
    if (row[row.length - 1] != null) return this.remove(id)
    const size = this.#rows.size
    this.#rows.set(id, row)
    if (this.#rows.size !== size) this.#inserted.push(id)
    else this.#touched.push(id)
    this.#array = undefined
  }

  /** Removes a hard-deleted row. */
  remove(id: RowId): void {
    if (!this.#rows.delete(id)) return
    this.#touched.push(id)
    this.#array = undefined
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
    this.#touched = []
    this.#inserted = []
    this.#replaced = true
  }

  /** The live records in creation order; the same array until the next change. */
  array(): ReadonlyArray<R> {
    if (this.#array === undefined) this.#array = Array.from(this.#rows.values())
    return this.#array
  }

  /** What changed since the last call, which it forgets. */
  drain(): TableChanges {
    const out = { replaced: this.#replaced, touched: this.#touched, inserted: this.#inserted }
    this.#touched = []
    this.#inserted = []
    this.#replaced = false
    return out
  }

  /** Takes back changes a cache write could not store: the next `drain` has them again, before the later ones. */
  restore(changes: TableChanges): void {
    this.#replaced ||= changes.replaced
    if (this.#replaced) {
      this.#touched = []
      this.#inserted = []
    } else {
      this.#touched = changes.touched.concat(this.#touched)
      this.#inserted = changes.inserted.concat(this.#inserted)
    }
  }
}
