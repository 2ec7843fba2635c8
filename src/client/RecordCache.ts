/**
 * Where a client keeps its confirmed records, in any store: the table in
 * pages (JSON, a few thousand rows each: a reload reads a few large values,
 * which IndexedDB does fast, not 100k small ones, which it does slowly), and
 * after it a log of change sets, one value per write, each holding the rows
 * that write changed; a meta record says where both stand. A change writes
 * its log entry and the meta, never the table. Once the log outgrows half the
 * pages (or a thousand entries), the next write stores the table again and
 * drops the log, so a reload reads at most one and a half tables and each
 * change's bytes are written about three times in all.
 *
 * A log entry names the cursor it starts from and the one it reaches, and a
 * load replays entries only while each starts where the last one ended, so
 * the rows it yields are always the server's rows at the cursor it yields,
 * whatever a crash or a race left behind (IndexedDB writes an entry and the
 * meta in one transaction; the KeyValueStore layout writes the entry first and
 * the meta after it, so an entry the meta does not count is never read).
 * Replaying the log in order also keeps the table's order: an update keeps
 * its row's place, a new row goes last.
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
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
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

/** What a write stores: the rows changed since the writer's base, or (`replace`) the whole table. */
export interface ChangeSet {
  readonly meta: CacheMeta
  /** The table was replaced since the base: only `all()` describes it. */
  readonly replace: boolean
  /** Ids removed, rows updated (encoded), rows new (encoded, in table order). */
  readonly d: ReadonlyArray<RowId>
  readonly u: ReadonlyArray<unknown>
  readonly i: ReadonlyArray<unknown>
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
export interface RecordCache<E = KeyValueStore.KeyValueStoreError> {
  readonly load: Effect.Effect<Loaded | undefined, E>
  readonly write: (changes: ChangeSet) => Effect.Effect<Written, E>
  readonly clear: Effect.Effect<void, E>
}

/** A store that runs the record cache its own way (IndexedDB: in transactions) has its factory under this key. */
export const NATIVE: unique symbol = Symbol.for("effect-partysync/RecordCache") as never

/** A store that runs its own record cache. */
export interface WithRecordCache {
  readonly [NATIVE]: (prefix: string) => RecordCache
}

const position = (cursor: number | null) => cursor ?? -1

/** What a write must store, given the stored meta, the writer's base and where the writer is now. */
export const plan = (stored: CacheMeta | undefined, base: CacheMeta | undefined, changes: ChangeSet): Written => {
  const target = changes.meta
  // a newer build's rows are another shape: this one leaves them alone
  if (stored !== undefined && stored.schema > target.schema) return "behind"
  const same = stored !== undefined && stored.schema === target.schema && stored.history === target.history
  if (same && position(stored.cursor) > position(target.cursor)) return "behind"
  const descends = same && base !== undefined && base.schema === stored.schema && base.history === stored.history &&
    position(base.cursor) <= position(stored.cursor)
  return descends && !changes.replace ? "changes" : changes.all === undefined ? "whole" : "table"
}

/**
 * The meta record: the position at the end of the log; the pages' epoch (new pages go beside
 * the old ones, then the meta switches to them), count, cursor and bytes; the log's bytes and
 * its entries `from` (included) to `to` (excluded).
 */
interface StoredMeta extends CacheMeta {
  readonly epoch: string
  readonly pages: number
  readonly tableCursor: number | null
  readonly tableBytes: number
  readonly logBytes: number
  readonly from: number
  readonly to: number
}

/** A log entry: from and to cursor, history, removed ids, updated rows, new rows (in table order). */
interface Entry {
  readonly f: number | null
  readonly c: number | null
  readonly h: string | undefined
  readonly d: ReadonlyArray<RowId>
  readonly u: ReadonlyArray<unknown>
  readonly i: ReadonlyArray<unknown>
}

const parse = (text: string | undefined): any => {
  try {
    return JSON.parse(text!)
  } catch {
    return undefined
  }
}

/** The stored meta, if it reads as one. */
const metaOf = (text: string | undefined): StoredMeta | undefined => {
  const m = parse(text)
  return typeof m?.epoch === "string" && [m.pages, m.tableBytes, m.logBytes, m.from, m.to, m.schema].every(Number.isInteger) ? m : undefined
}

/** One step of a write: put a value, delete one, or drop every key under some prefixes. */
export type Op = readonly ["put", string, string] | readonly ["delete", string] | readonly ["drop", ReadonlyArray<string>]

/** How a store runs the cache's reads and writes (each in one transaction, where it has them). */
export interface Executor<E> {
  /** Reads the meta, then the keys `more` names for it. */
  readonly read: (metaKey: string, more: (meta: string) => ReadonlyArray<string>) => Effect.Effect<readonly [string | undefined, ReadonlyArray<string | undefined>], E>
  /** Reads the meta and takes the steps `decide` makes of it, in their order; returns its verdict. */
  readonly update: <A>(metaKey: string, decide: (meta: string | undefined) => readonly [A, ReadonlyArray<Op>]) => Effect.Effect<A, E>
}

/** Rows per page. */
const PAGE = 2048

/** The record cache of namespace `prefix`, in the layout above, over a store's executor. */
export const recordCache = <E>(prefix: string, run: Executor<E>): RecordCache<E> => {
  const metaKey = `${prefix}meta`
  const pages = `${prefix}p/`
  const log = `${prefix}l/`
  const drop: Op = ["drop", [pages, log]]
  let base: CacheMeta | undefined

  const load = Effect.map(
    run.read(metaKey, (text) => {
      const meta = metaOf(text)
      const keys: Array<string> = []
      if (meta !== undefined) {
        for (let n = 0; n < meta.pages; n++) keys.push(`${pages}${meta.epoch}/${n}`)
        for (let n = meta.from; n < meta.to; n++) keys.push(`${log}${n}`)
      }
      return keys
    }),
    ([text, values]): Loaded | undefined => {
      base = undefined
      if (text === undefined) return undefined
      const meta = metaOf(text)
      if (meta === undefined) return { reset: "its meta is damaged" }
      let rows: Array<unknown> = []
      for (const page of values.slice(0, meta.pages)) {
        const parsed = parse(page)
        if (!Array.isArray(parsed)) return { reset: "a page of it is missing" }
        for (const row of parsed) rows.push(row)
      }
      // the log, while each entry starts where the last ended: the rows always agree with the cursor
      let cursor = meta.tableCursor
      let to = meta.from
      if (meta.to > to) {
        const table = new Map(rows.map((row) => [(row as Array<RowId>)[0], row]))
        for (const text of values.slice(meta.pages)) {
          const entry: Entry | undefined = parse(text)
          if (entry?.f !== cursor || entry.h !== meta.history) break
          for (const id of entry.d) table.delete(id)
          for (const row of entry.u) table.set((row as Array<RowId>)[0]!, row)
          for (const row of entry.i) {
            table.delete((row as Array<RowId>)[0]!)
            table.set((row as Array<RowId>)[0]!, row)
          }
          cursor = entry.c
          to++
        }
        rows = Array.from(table.values())
      }
      const at = { cursor, history: meta.history, schema: meta.schema }
      // a log that stops short: the rows are those of an earlier cursor, and the next write stores the table
      if (to === meta.to) base = at
      return { meta: at, rows }
    }
  )

  const write = (changes: ChangeSet) =>
    Effect.map(
      run.update(metaKey, (text): readonly [Written, ReadonlyArray<Op>] => {
        const stored = metaOf(text)
        let how = plan(stored, base, changes)
        if (how === "changes") {
          const { to, from, logBytes } = stored!
          const entry = JSON.stringify({ f: stored!.cursor, c: changes.meta.cursor, h: changes.meta.history, d: changes.d, u: changes.u, i: changes.i } satisfies Entry)
          // the log grows to half the pages' bytes (64 KB at least) or a thousand entries; then the table is stored
          if (to - from < 1000 && logBytes + entry.length <= Math.max(65_536, stored!.tableBytes / 2)) {
            const meta: StoredMeta = { ...stored!, ...changes.meta, logBytes: logBytes + entry.length, to: to + 1 }
            // the entry first: no load reads it until the meta counts it
            return [how, [["put", `${log}${to}`, entry], ["put", metaKey, JSON.stringify(meta)]]]
          }
          how = changes.all ? "table" : "whole"
        }
        const ops: Array<Op> = []
        if (how !== "table") return [how, ops]
        // a meta lost or damaged: what it counted is of no use
        if (stored === undefined) ops.push(drop)
        const epoch = Math.random().toString(36).slice(2)
        const rows = changes.all!()
        let tableBytes = 0
        let n = 0
        do {
          const page = JSON.stringify(rows.slice(n * PAGE, ++n * PAGE))
          tableBytes += page.length
          ops.push(["put", `${pages}${epoch}/${n - 1}`, page])
        } while (n * PAGE < rows.length)
        // the new log starts past the old one, so no entry left over from it is ever counted
        const at = stored?.to ?? 0
        const meta: StoredMeta = { ...changes.meta, epoch, pages: n, tableCursor: changes.meta.cursor, tableBytes, logBytes: 0, from: at, to: at }
        ops.push(["put", metaKey, JSON.stringify(meta)])
        // then what it no longer counts
        for (let k = 0; k < (stored?.pages ?? 0); k++) ops.push(["delete", `${pages}${stored!.epoch}/${k}`])
        for (let k = stored?.from ?? 0; k < at; k++) ops.push(["delete", `${log}${k}`])
        return [how, ops]
      }),
      (how) => {
        if (how === "changes" || how === "table") base = changes.meta
        return how
      }
    )

  // the meta first: pages and entries no meta counts are never read
  const clear = run.update(metaKey, () => {
    base = undefined
    return [undefined, [["delete", metaKey], drop]] as const
  })

  return { load, write, clear }
}
