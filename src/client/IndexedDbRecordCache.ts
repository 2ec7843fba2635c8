/**
 * The record cache in IndexedDB, a database of its own (the KeyValueStore's
 * name + "/records", so the store's database, which older builds of this
 * library open at version 1, never needs a version change). Three object
 * stores, each keyed by namespace: `meta` (the position, key `namespace`),
 * `rows` (the encoded row, key `[namespace, id]`) and `order` (the row's place,
 * the same key; written only when the row is new, so an update writes the row
 * alone). A write is one transaction over the three: it reads the meta, then
 * stores the changed rows and the new meta, or nothing; a crash at any point
 * leaves the last committed state, rows and cursor together.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import type { RowId } from "../protocol/Protocol.ts"
import { connection, failure, type IndexedDbOptions, request } from "./IndexedDbConnection.ts"
import { type CacheMeta, inOrder, plan, type RecordCache, readMeta } from "./RecordCache.ts"

const STORES = ["meta", "rows", "order"] as const

/** The factory of record caches of one database (the store's `NATIVE` member). */
export const database = (options: IndexedDbOptions) => {
  const transact = connection(options, options.database!, STORES)
  return (prefix: string): RecordCache => {
    // every key of the namespace, and nothing else: arrays sort after numbers and strings
    const range = IDBKeyRange.bound([prefix], [prefix, []])
    const key = (id: RowId) => [prefix, id]
    let base: CacheMeta | undefined

    const load = Effect.tryPromise({
      try: () =>
        transact(STORES, "readonly", (tx) =>
          Promise.all([
            request(tx.objectStore("meta").get(prefix)),
            request(tx.objectStore("rows").getAll(range)),
            request(tx.objectStore("order").getAll(range))
          ])),
      catch: failure("records.load")
    }).pipe(Effect.map(([raw, rows, ords]) => {
      base = undefined
      if (raw === undefined) return undefined
      const meta = readMeta(raw)
      // one transaction writes all three: a mismatch is damage from outside
      if (meta === undefined || rows.length !== ords.length) return { reset: "the cached records could not be read" }
      base = meta
      return { meta, rows: inOrder(rows, ords as Array<number>) }
    }))

    const write: RecordCache["write"] = (changes) =>
      Effect.tryPromise({
        try: () =>
          transact(STORES, "readwrite", async (tx) => {
            const [metas, rows, order] = STORES.map((s) => tx.objectStore(s))
            const stored = readMeta(await request(metas!.get(prefix)))
            const how = plan(stored, base, changes)
            if (how === "behind" || how === "whole") return how
            let next = 0
            if (how === "table") {
              rows!.delete(range)
              order!.delete(range)
              for (const row of changes.all!()) {
                const k = key((row as ReadonlyArray<RowId>)[0]!)
                rows!.put(row, k)
                order!.put(next++, k)
              }
            } else {
              next = stored!.next
              for (const id of changes.deletes) {
                rows!.delete(key(id))
                order!.delete(key(id))
              }
              for (const [id, row, inserted] of changes.upserts) {
                rows!.put(row, key(id))
                if (inserted) order!.put(next++, key(id))
              }
            }
            metas!.put({ ...changes.meta, next }, prefix)
            return how
          }),
        catch: failure("records.write")
      }).pipe(Effect.tap((how) => Effect.sync(() => {
        if (how === "changes" || how === "table") base = changes.meta
      })))

    const clear = Effect.tryPromise({
      try: () =>
        transact(STORES, "readwrite", async (tx) => {
          base = undefined
          tx.objectStore("meta").delete(prefix)
          tx.objectStore("rows").delete(range)
          tx.objectStore("order").delete(range)
        }),
      catch: failure("records.clear")
    })

    return { load, write, clear }
  }
}
