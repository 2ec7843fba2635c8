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
 * What changed since the last `drain`: each id touched, `true` when it was
 * inserted (in the order the table holds those rows: a row deleted and
 * inserted again moves last, as in the table), `false` when it was only updated
 * or removed; or `replaced`, when the whole table was (then `ids` is empty).
 */
export interface TableChanges {
  readonly replaced: boolean
  readonly ids: ReadonlyMap<RowId, boolean>
}

/** Mutable, id-indexed table of live records (tombstones are removed, not kept). */
export class RecordTable<R extends Row> {
  #rows = new Map<RowId, R>()
  #array: ReadonlyArray<R> | undefined = []
  #changes = new Map<RowId, boolean>()
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
    if (this.#rows.has(id)) {
      if (!this.#changes.has(id)) this.#changes.set(id, false)
    } else {
      // a new row goes last in the table, so last among the new ones too
      this.#changes.delete(id)
      this.#changes.set(id, true)
    }
    this.#rows.set(id, row)
    this.#array = undefined
  }

  /** Removes a hard-deleted row. */
  remove(id: RowId): void {
    if (!this.#rows.delete(id)) return
    if (!this.#changes.has(id)) this.#changes.set(id, false)
    this.#array = undefined
  }

  /** Replaces every record (a reset). */
  replace(rows: ReadonlyArray<R>): void {
    this.#rows = new Map()
    for (const row of rows) if (row[row.length - 1] == null) this.#rows.set(row[0] as RowId, row)
    this.#array = undefined
    this.#changes = new Map()
    this.#replaced = true
  }

  /** The live records in creation order; the same array until the next change. */
  array(): ReadonlyArray<R> {
    if (this.#array === undefined) this.#array = Array.from(this.#rows.values())
    return this.#array
  }

  /** What changed since the last call, which it forgets. */
  drain(): TableChanges {
    const out = { replaced: this.#replaced, ids: this.#changes }
    this.#changes = new Map()
    this.#replaced = false
    return out
  }

  /** Takes back changes a cache write could not store: the next `drain` has them again. */
  restore(changes: TableChanges): void {
    if (changes.replaced) {
      this.#replaced = true
      this.#changes = new Map()
    }
    if (this.#replaced) return
    // what changed since is newer: an id the table has seen again keeps its later entry (and place)
    const later = this.#changes
    this.#changes = new Map(changes.ids)
    for (const [id, inserted] of later) {
      if (inserted) this.#changes.delete(id)
      this.#changes.set(id, inserted || (this.#changes.get(id) ?? false))
    }
  }
}
