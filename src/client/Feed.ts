/**
 * The confirmed side of one subscription on a client: the server's rows
 * as of the cursor, the history the cursor belongs to, and the sync answer
 * being received. It builds the Subscribe that resumes from the cursor (a
 * view's carries the ids it holds) and applies sync answers and live
 * changes; SyncEngine decides when.
 *
 * @since 0.3.0
 */
import type { ClientMessage, RowId } from "../protocol/Protocol.ts"
import type { ServerFrame } from "./Frames.ts"
import { RecordTable, type Row } from "./RecordTable.ts"
import { SyncAnswer } from "./SyncAnswer.ts"

/** The most ids a view's resume carries; past that it asks for a reset (the Subscribe would pass 100 KB). */
export const MAX_HELD = 2_000

/** A subscription's confirmed rows and cursor. */
export class Feed<R extends Row> {
  readonly table = new RecordTable<R>()
  cursor: number | null = null
  /** The history the cursor belongs to (from `Synced`); a view's names its rule after a dot. */
  history: string | undefined = undefined
  /** A Subscribe is out and its answer has not ended: frames other than the answer wait. */
  syncing = false
  readonly answer = new SyncAnswer<R>()

  /** Replaces the confirmed state (a cached one, or nothing). */
  load(cursor: number | null, history: string | undefined, rows: ReadonlyArray<R>): void {
    this.table.replace(rows)
    this.cursor = cursor
    this.history = history
  }

  /** The Subscribe that resumes from the cursor; the answer it asks for starts now. */
  subscribe(channel: string, sub: string, schema: number, params: unknown): ClientMessage {
    this.syncing = true
    this.answer.restart(false)
    // a view's cursor resumes with the ids held: the server removes those its rule no longer admits
    const held = this.history?.includes(".") === true && this.cursor !== null
      ? this.table.array().map((row) => row[0] as RowId)
      : undefined
    const resume = held === undefined || held.length <= MAX_HELD
    return {
      _tag: "Subscribe",
      channel,
      since: resume ? this.cursor : null,
      ...(this.history === undefined || !resume ? {} : { history: this.history }),
      schema,
      ...(sub === channel ? {} : { sub, params }),
      ...(held === undefined || !resume ? {} : { held })
    }
  }

  /** The connection ended: the answer in progress and the frames waiting for it go. */
  stop(): void {
    this.syncing = false
    this.answer.restart(true)
  }

  /** A sync answer's end: applies it whole; returns the frames that waited for it. */
  synced(version: number, history: string, reset: boolean): Array<ServerFrame> {
    const waiting = this.answer.apply(this.table, reset)
    this.cursor = version
    this.history = history
    this.syncing = false
    return waiting
  }

  /** A live change past the cursor (false: applied already). */
  change(version: number, rows: ReadonlyArray<R>, deleted: ReadonlyArray<RowId>): boolean {
    if (this.cursor !== null && version <= this.cursor) return false
    for (const id of deleted) this.table.remove(id)
    for (const row of rows) this.table.apply(row)
    this.cursor = version
    return true
  }
}
