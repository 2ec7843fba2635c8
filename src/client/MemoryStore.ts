/**
 * An in-memory `KeyValueStore` as a value (effect ships `layerMemory`, a
 * Layer): handy when several clients must share one store, as tabs share
 * IndexedDB, or when a test pre-populates the cache.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"

/** Makes an in-memory KeyValueStore, empty or over `map` (which the caller may read and copy). */
export const makeMemoryStore = (map: Map<string, string> = new Map()): KeyValueStore.KeyValueStore =>
  KeyValueStore.makeStringOnly({
    get: (key) => Effect.sync(() => map.get(key)),
    set: (key, value) => Effect.sync(() => void map.set(key, value)),
    remove: (key) => Effect.sync(() => void map.delete(key)),
    clear: Effect.sync(() => map.clear()),
    size: Effect.sync(() => map.size),
    keys: Effect.sync(() => Array.from(map.keys()))
  })
