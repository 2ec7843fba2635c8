/**
 * The confirmed records' side of a client's local cache (the pending
 * queues are PendingStore's), in RecordCache's layout, run by the store
 * itself where it can (IndexedDB) or key by key (KvRecordCache): loaded at
 * start, written with what changed since the last write (the table tells),
 * cleared with the rest.
 *
 * An older cache, the whole table and cursor in one value (`records`), is
 * loaded once and written in the new layout with the first write, which
 * then removes it; one that cannot be read is dropped and the client syncs
 * from scratch, with the reason in the status (`CacheReset`). The pending
 * queues live elsewhere and are never touched here.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import type * as KeyValueStore from "effect/persistence/KeyValueStore"
import type { RowId } from "../protocol/Protocol.ts"
import * as KvRecordCache from "./KvRecordCache.ts"
import { type Loaded, NATIVE, type RecordCache, type WithRecordCache, type Written } from "./RecordCache.ts"
import type { Row } from "./RecordTable.ts"
import type { SyncEngine } from "./SyncEngine.ts"

/** What the records' cache needs from its client. */
export interface CachedRecordsOptions<R extends Row> {
  readonly kv: KeyValueStore.KeyValueStore
  /** The client's cache namespace. */
  readonly prefix: string
  readonly engine: SyncEngine<R, any>
  /** The channel's schema version. */
  readonly schema: number
  /** A record's stored form (throws if it has none). */
  readonly encode: (row: R) => unknown
  readonly decodeRows: (rows: ReadonlyArray<unknown>) => { readonly rows: Array<R>; readonly error: string | null }
  /**
   * For a record whose stored form is itself: whether a cached row is one. Cached rows are then
   * kept as they were read (JSON's compact arrays), not copied by a decode: a fifth less heap.
   */
  readonly check?: ((row: unknown) => boolean) | undefined
  /** Reports a failed load or write in the status. */
  readonly failed: (cause: any) => Effect.Effect<void>
  /**
   * Whether a view's rows (what one principal may read) are stored: only
   * when the cache is keyed by who is signed in (`userId`). Otherwise they
   * live in memory only, and any a store holds are dropped: the next user of
   * the browser must never see them.
   */
  readonly keepViews: boolean
}

/** A view's history names its rule after a dot. */
const isView = (history: string | undefined) => history?.includes(".") === true

/** The record cache a store runs itself, or the one over its keys. */
export const recordCache = (kv: KeyValueStore.KeyValueStore, prefix: string): RecordCache =>
  (kv as Partial<WithRecordCache>)[NATIVE]?.(prefix) ?? KvRecordCache.make(kv, prefix)

// The cache before this layout: `{ cursor, history?, schema?, rows }` in one value.
const legacy = (text: string): Loaded => {
  try {
    const u = JSON.parse(text)
    if (Array.isArray(u.rows) && (u.cursor === null || Number.isInteger(u.cursor))) {
      return { meta: { cursor: u.cursor, history: u.history, schema: u.schema ?? 1 }, rows: u.rows }
    }
  } catch {
    // reset below
  }
  return { reset: "it is in the previous format and could not be read" }
}

/** Loading, writing and clearing the confirmed records of one client. */
export const make = <R extends Row>(options: CachedRecordsOptions<R>) => {
  const { kv, engine } = options
  // the records' keys are all under `r/`, apart from the pending queues' (and the older cache's `records`)
  const cache = recordCache(kv, `${options.prefix}r/`)
  const legacyKey = `${options.prefix}records`
  // an older cache was loaded: it goes once the new layout holds the table
  let migrating = false
  // the first write also removes an older cache a migration left behind (it stopped before removing it)
  let swept = false
  // the position this client last loaded or stored: with no change since, a write has nothing to add
  let held: { readonly cursor: number | null; readonly history: string | undefined } | undefined

  /** Loads the cache into the engine; true when the table must be written (a migration). */
  const load: Effect.Effect<boolean> = Effect.gen(function*() {
    let loaded = yield* cache.load
    const old = loaded === undefined ? yield* kv.get(legacyKey) : undefined
    if (old !== undefined) {
      loaded = legacy(old)
      // one that cannot be read is reset once; one that can goes with the first write
      if ("reset" in loaded) yield* kv.remove(legacyKey)
      else migrating = true
    }
    if (loaded === undefined) return false
    if ("reset" in loaded) {
      engine.report("CacheReset", `the cached records were dropped (${loaded.reset}): they sync again from the server`)
      return false
    }
    // rows cached under another version of the channel are another shape: sync them again from scratch
    if (loaded.meta.schema !== options.schema) return false
    if (isView(loaded.meta.history) && !options.keepViews) {
      yield* cache.clear
      return false
    }
    const check = options.check
    const { rows, error } = check === undefined
      ? options.decodeRows(loaded.rows)
      : { rows: loaded.rows.filter(check) as Array<R>, error: "a row does not match the record" }
    // the rows that do not are left out
    if (rows.length < loaded.rows.length) engine.report("InvalidRecord", `cache: ${error}`)
    engine.load(loaded.meta.cursor, loaded.meta.history, rows)
    // the table is what the cache holds; a migrated one is written whole
    if (!migrating) {
      engine.table.drain()
      held = loaded.meta
    }
    return migrating
  }).pipe(Effect.catchCause((cause) => Effect.as(options.failed(cause), false)))

  /** Writes what changed since the last write (nothing while another client has stored a later state). */
  const write: Effect.Effect<void> = Effect.suspend(function attempt(): Effect.Effect<void> {
    const table = engine.table
    if (isView(engine.history) && !options.keepViews) {
      table.drain()
      // a cache written before the channel became a view goes too
      if (held === undefined) return Effect.void
      held = undefined
      return cache.clear.pipe(Effect.catchCause(options.failed))
    }
    // taken at one moment, with the cursor: nothing the socket delivers later can slip in
    const drained = table.drain()
    // nothing new since this client's last load or write: an idle or closing client never writes over a later state
    if (!drained.replaced && drained.touched.length === 0 && drained.inserted.length === 0 && held?.cursor === engine.cursor && held.history === engine.history) {
      return Effect.void
    }
    const array = drained.replaced ? table.array() : undefined
    const d: Array<RowId> = []
    const u: Array<unknown> = []
    const i: Array<unknown> = []
    const meta = { cursor: engine.cursor, history: engine.history, schema: options.schema }
    let written: Effect.Effect<Written, unknown>
    try {
      const done = new Set<RowId>()
      // the new rows still there, by each one's last insertion, which is their order in the table
      for (let k = drained.inserted.length - 1; k >= 0; k--) {
        const row = table.get(drained.inserted[k]!)
        if (row !== undefined && !done.has(row[0] as RowId)) i.push(options.encode(row)) && done.add(row[0] as RowId)
      }
      for (const id of drained.touched) {
        if (done.has(id)) continue
        done.add(id)
        const row = table.get(id)
        if (row === undefined) d.push(id)
        else u.push(options.encode(row))
      }
      written = cache.write({
        meta,
        replace: drained.replaced,
        d,
        u,
        i: i.reverse(),
        all: array && (() => array.map(options.encode))
      })
    } catch (error) {
      written = Effect.die(error)
    }
    return written.pipe(
      Effect.flatMap((how) => {
        // stored nothing: these changes wait for the next write
        if (how === "behind") return Effect.sync(() => table.restore(drained))
        if (how === "whole") {
          // the store is not where this client's changes start from: the whole table goes, now
          table.restore({ ...drained, replaced: true })
          return Effect.suspend(attempt)
        }
        held = meta
        if (swept) return Effect.void
        swept = true
        migrating = false
        return kv.remove(legacyKey)
      }),
      Effect.catchCause((cause) => {
        table.restore(drained)
        return options.failed(cause)
      })
    )
  })

  const clear = Effect.suspend(() => {
    held = undefined
    return Effect.andThen(cache.clear, kv.remove(legacyKey))
  }).pipe(Effect.catchCause(options.failed))

  return { load, write, clear }
}
