/**
 * A `KeyValueStore` over IndexedDB (effect 4.1 has none built in), written
 * on `KeyValueStore.makeStringOnly`. One database, one object store; every
 * call is one IndexedDB transaction, so each write is atomic on its own.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as KeyValueStore from "effect/persistence/KeyValueStore"

/** Options of the IndexedDB store. */
export interface IndexedDbOptions {
  /** Database name (default "effect-partysync"). */
  readonly database?: string
  /** Object store name (default "kv"). */
  readonly store?: string
  /** The IDBFactory (default the global `indexedDB`; tests may pass a fake). */
  readonly factory?: IDBFactory
}

const request = <A>(r: IDBRequest<A>): Promise<A> =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })

/** Makes a KeyValueStore over IndexedDB; the database opens on first use. */
export const makeIndexedDb = (options: IndexedDbOptions = {}): KeyValueStore.KeyValueStore => {
  const name = options.database ?? "effect-partysync"
  const storeName = options.store ?? "kv"
  let db: Promise<IDBDatabase> | undefined
  const open = () => {
    if (db === undefined) {
      const factory = options.factory ?? globalThis.indexedDB
      const r = factory.open(name, 1)
      r.onupgradeneeded = () => {
        if (!r.result.objectStoreNames.contains(storeName)) r.result.createObjectStore(storeName)
      }
      db = request(r).then((d) => {
        // another tab upgrading the database must not be blocked by us
        d.onversionchange = () => {
          d.close()
          db = undefined
        }
        return d
      })
      db.catch(() => {
        db = undefined
      })
    }
    return db
  }
  const run = <A>(
    method: string,
    mode: IDBTransactionMode,
    f: (store: IDBObjectStore) => IDBRequest<A>,
    key?: string
  ) =>
    Effect.tryPromise({
      try: async () => {
        const d = await open()
        const tx = d.transaction(storeName, mode)
        const result = await request(f(tx.objectStore(storeName)))
        if (mode === "readwrite") {
          await new Promise<void>((resolve, reject) => {
            tx.oncomplete = () => resolve()
            tx.onerror = () => reject(tx.error)
            tx.onabort = () => reject(tx.error)
          })
        }
        return result
      },
      catch: (cause) =>
        new KeyValueStore.KeyValueStoreError({
          message: `IndexedDB ${method} failed: ${String(cause)}`,
          method,
          cause,
          ...(key === undefined ? {} : { key })
        })
    })
  return KeyValueStore.makeStringOnly({
    get: (key) =>
      Effect.map(run("get", "readonly", (s) => s.get(key), key), (v) => (typeof v === "string" ? v : undefined)),
    set: (key, value) => Effect.asVoid(run("set", "readwrite", (s) => s.put(value, key), key)),
    remove: (key) => Effect.asVoid(run("remove", "readwrite", (s) => s.delete(key), key)),
    clear: Effect.asVoid(run("clear", "readwrite", (s) => s.clear())),
    size: run("size", "readonly", (s) => s.count()),
    keys: Effect.map(run("keys", "readonly", (s) => s.getAllKeys()), (keys) => keys.map(String)),
    clearPrefix: (prefix) =>
      Effect.asVoid(
        run("clearPrefix", "readwrite", (s) => s.delete(IDBKeyRange.bound(prefix, prefix + "\uffff", false, false)))
      )
  })
}

/** A KeyValueStore Layer over IndexedDB. */
export const layerIndexedDb = (options: IndexedDbOptions = {}): Layer.Layer<KeyValueStore.KeyValueStore> =>
  Layer.sync(KeyValueStore.KeyValueStore, () => makeIndexedDb(options))

/** The IndexedDB store, as a value (for `createSyncClient({ store })`). */
export const IndexedDbStore = makeIndexedDb
