/**
 * A sync answer on its way to a client: `SyncRows` chunks are buffered and
 * applied whole at `Synced`, so a UI never sees half an answer, and live
 * frames that arrive before the answer ends wait, to be replayed after it
 * (a `Change` at or below the answer's version is then skipped).
 *
 * @since 0.2.0
 */
import type { RowId } from "../protocol/Protocol.ts"
import type { ServerFrame } from "./Frames.ts"
import type { RecordTable, Row } from "./RecordTable.ts"

/** The answer being received, and the frames waiting for it. */
export class SyncAnswer<R extends Row> {
  #rows: Array<R> = []
  #deleted: Array<RowId> = []
  #reset = false
  /** Frames that arrived before the answer ended. */
  waiting: Array<ServerFrame> = []

  /** A new Subscribe went out: its answer starts from nothing; `dropWaiting` on a new connection. */
  restart(dropWaiting: boolean): void {
    this.#rows = []
    this.#deleted = []
    this.#reset = false
    if (dropWaiting) this.waiting = []
  }

  /** One chunk; a reset chunk discards what came before it. */
  add(reset: boolean, rows: ReadonlyArray<R>, deleted: ReadonlyArray<RowId>): void {
    if (reset && !this.#reset) this.restart(false)
    this.#reset ||= reset
    for (const row of rows) this.#rows.push(row)
    for (const id of deleted) this.#deleted.push(id)
  }

  /**
   * Applies the whole answer at `Synced`; returns the frames that waited for
   * it, in order. A reset replaces the table with its rows, then drops its
   * deletes: a full answer read in chunks ends with the rows changed and
   * deleted meanwhile.
   */
  apply(table: RecordTable<R>, reset: boolean): Array<ServerFrame> {
    if (this.#reset || reset) {
      table.replace(this.#rows)
      for (const id of this.#deleted) table.remove(id)
    } else {
      for (const id of this.#deleted) table.remove(id)
      for (const row of this.#rows) table.apply(row)
    }
    const waiting = this.waiting
    this.restart(true)
    return waiting
  }
}
