/**
 * A `KeyValueStore` over IndexedDB (effect 4.1 has none built in). One
 * database, one object store; every call is one IndexedDB transaction, so
 * each write is atomic on its own. The store also carries a record cache of
 * its own (IndexedDbRecordCache), in a second database, that the client uses
 * for its confirmed records instead of keys in this one.
 *
 * How the connection is kept: IndexedDbConnection.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import { connection, failure, type IndexedDbOptions, request } from "./IndexedDbConnection.ts"
import * as IndexedDbRecordCache from "./IndexedDbRecordCache.ts"
import { NATIVE } from "./RecordCache.ts"

export type { IndexedDbOptions } from "./IndexedDbConnection.ts"

/** Makes a KeyValueStore over IndexedDB; the database opens on first use. */
export const makeIndexedDb = (options: IndexedDbOptions = {}): KeyValueStore.KeyValueStore => {
  const name = options.database ?? "effect-partysync"
  const storeName = options.store ?? "kv"
  const transact = connection(options, name, [storeName])

  const run = <A>(method: string, mode: IDBTransactionMode, f: (store: IDBObjectStore) => IDBRequest<A>, key?: string) =>
    Effect.tryPromise({
      try: () => transact([storeName], mode, (tx) => request(f(tx.objectStore(storeName)))),
      catch: failure(method, key)
    })

  const store = KeyValueStore.makeStringOnly({
    get: (key) => Effect.map(run("get", "readonly", (s) => s.get(key), key), (v) => (typeof v === "string" ? v : undefined)),
    set: (key, value) => Effect.asVoid(run("set", "readwrite", (s) => s.put(value, key), key)),
    remove: (key) => Effect.asVoid(run("remove", "readwrite", (s) => s.delete(key), key)),
    clear: Effect.asVoid(run("clear", "readwrite", (s) => s.clear())),
    size: run("size", "readonly", (s) => s.count()),
    keys: Effect.map(run("keys", "readonly", (s) => s.getAllKeys()), (keys) => keys.map(String)),
    clearPrefix: (prefix) =>
      Effect.asVoid(run("clearPrefix", "readwrite", (s) => s.delete(IDBKeyRange.bound(prefix, prefix + "\uffff", false, false))))
  })
  // not enumerable: a store wrapped by `KeyValueStore.prefix` (a copy) keeps its records as keys, under its prefix
  const records = IndexedDbRecordCache.database({ ...options, database: `${name}/records` })
  return Object.defineProperty(store, NATIVE, { value: records })
}

/** A KeyValueStore Layer over IndexedDB. */
export const layerIndexedDb = (options: IndexedDbOptions = {}): Layer.Layer<KeyValueStore.KeyValueStore> =>
  Layer.sync(KeyValueStore.KeyValueStore, () => makeIndexedDb(options))

/** The IndexedDB store, as a value (for `createSyncClient({ store })`). */
export const IndexedDbStore = makeIndexedDb
