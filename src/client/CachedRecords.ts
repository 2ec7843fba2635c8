/**
 * The confirmed records' side of a client's local cache (the pending
 * queues are PendingStore's): the store's own record cache (IndexedDB) or
 * the KeyValueStore layout, loaded at start, written with what changed since
 * the last write, cleared with the rest.
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
import { type ChangeSet, type Loaded, NATIVE, type RecordCache, type WithRecordCache, type Written } from "./RecordCache.ts"
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
  /** Reports a failed load or write in the status. */
  readonly failed: (cause: any) => Effect.Effect<void>
}

/** The record cache a store provides, or the KeyValueStore layout over it. */
export const recordCache = (kv: KeyValueStore.KeyValueStore, prefix: string): RecordCache =>
  (kv as Partial<WithRecordCache>)[NATIVE]?.(prefix) ?? KvRecordCache.make(kv, prefix)

// The cache before per-row records: `{ cursor, history?, schema?, rows }` in one value.
const legacy = (text: string): Loaded => {
  try {
    const u = JSON.parse(text) as { cursor: unknown; history?: unknown; schema?: unknown; rows: unknown }
    if (
      Array.isArray(u.rows) && (u.cursor === null || Number.isInteger(u.cursor)) &&
      (u.history === undefined || typeof u.history === "string") && (u.schema === undefined || Number.isInteger(u.schema))
    ) {
      return { meta: { cursor: u.cursor as number | null, history: u.history as string | undefined, schema: (u.schema as number | undefined) ?? 1 }, rows: u.rows }
    }
  } catch {
    // reported below
  }
  return { reset: "the cache in the previous format could not be read" }
}

/** Loading, writing and clearing the confirmed records of one client. */
export const make = <R extends Row>(options: CachedRecordsOptions<R>) => {
  const { kv, engine } = options
  const cache = recordCache(kv, options.prefix)
  const legacyKey = `${options.prefix}records`
  // an older cache was loaded: it goes once the new layout holds the table
  let migrating = false
  // the position this client last loaded or stored: with no change since, a write has nothing to add
  let held: { readonly cursor: number | null; readonly history: string | undefined } | undefined

  /** Loads the cache into the engine; true when the table must be written (a migration). */
  const load: Effect.Effect<boolean> = Effect.gen(function*() {
    let loaded = yield* cache.load
    const old = yield* kv.get(legacyKey)
    // left by a migration that stopped before removing it
    if (old !== undefined && loaded !== undefined) yield* kv.remove(legacyKey)
    else if (old !== undefined) {
      loaded = legacy(old)
      // one that cannot be read is reset once; one that can goes with the first write
      if ("reset" in loaded) yield* kv.remove(legacyKey)
      else migrating = true
    }
    if (loaded === undefined) return false
    if ("reset" in loaded) {
      engine.report("CacheReset", `${loaded.reset}: the records sync again from the server`)
      return false
    }
    // rows cached under another version of the channel are another shape: sync them again from scratch
    if (loaded.meta.schema !== options.schema) return false
    const { rows, error } = options.decodeRows(loaded.rows)
    if (error !== null) engine.report("InvalidRecord", `cache: ${error}`)
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
    // taken at one moment, with the cursor: nothing the socket delivers later can slip in
    const drained = table.drain()
    // nothing new since this client's last load or write: an idle or closing client never writes over a later state
    if (!drained.replaced && drained.ids.size === 0 && held?.cursor === engine.cursor && held.history === engine.history) {
      return Effect.void
    }
    const array = drained.replaced ? table.array() : undefined
    const upserts: Array<readonly [RowId, unknown, boolean]> = []
    const deletes: Array<RowId> = []
    const changes: ChangeSet = {
      meta: { cursor: engine.cursor, history: engine.history, schema: options.schema },
      replace: drained.replaced,
      upserts,
      deletes,
      all: array && (() => array.map(options.encode))
    }
    let written: Effect.Effect<Written, unknown>
    try {
      for (const [id, inserted] of drained.ids) {
        const row = table.get(id)
        if (row === undefined) deletes.push(id)
        else upserts.push([id, options.encode(row), inserted])
      }
      written = cache.write(changes)
    } catch (error) {
      written = Effect.die(error)
    }
    return written.pipe(
      Effect.flatMap((how) => {
        // stored nothing: these changes wait for the next write
        if (how === "behind") return Effect.sync(() => table.restore(drained))
        if (how === "whole") {
          // the store is not where this client's changes start from: the whole table goes, now
          table.restore({ replaced: true, ids: drained.ids })
          return Effect.suspend(attempt)
        }
        held = changes.meta
        if (!migrating) return Effect.void
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
