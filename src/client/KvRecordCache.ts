/**
 * The record cache over any `KeyValueStore` (Node, localStorage, a wrapped
 * store), under a prefix of the client's namespace: `meta`, the pages
 * `p/<epoch>/<n>` and the log entries `l/<n>` (see RecordCache).
 *
 * A KeyValueStore writes one key at a time, so every write puts what it adds
 * first and the meta that counts it last: a log entry, then the meta; a new
 * table's pages, under a new epoch, then the meta that points at them (the
 * old pages and the log go after). A crash at any point leaves a meta that
 * counts only what is complete. Two writers at once (two processes on one
 * store) can spoil each other's entries or pages, never the agreement of rows
 * and cursor: a load replays only the entries that follow on from the pages,
 * and resets the cache (saying why) when a page is gone.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import type * as KeyValueStore from "effect/persistence/KeyValueStore"
import { type RecordCache, recordCache } from "./RecordCache.ts"

/** The record cache of namespace `prefix` in a KeyValueStore. */
export const make = (kv: KeyValueStore.KeyValueStore, prefix: string): RecordCache =>
  recordCache(prefix, {
    read: (metaKey, more) =>
      Effect.gen(function*() {
        const meta = yield* kv.get(metaKey)
        const values: Array<string | undefined> = []
        if (meta !== undefined) for (const key of more(meta)) values.push(yield* kv.get(key))
        return [meta, values] as const
      }),
    update: (metaKey, decide) =>
      Effect.gen(function*() {
        const [verdict, ops] = decide(yield* kv.get(metaKey))
        // one key at a time, in order: a crash leaves a meta that counts only what is complete
        for (const op of ops) {
          if (op[0] === "put") yield* kv.set(op[1], op[2])
          else if (op[0] === "delete") yield* kv.remove(op[1])
          else for (const p of op[1]) yield* kv.clearPrefix(p)
        }
        return verdict
      })
  })
