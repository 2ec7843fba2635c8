/**
 * A `KeyValueStore` over IndexedDB (effect 4.1 has none built in). One
 * database, one object store; every call is one IndexedDB transaction, so
 * each write is atomic on its own.
 *
 * The connection is opened on first use and kept, but never trusted
 * forever: the browser may close it (site data cleared, storage pressure),
 * another tab may ask for it (a version change or a deletion), and an open
 * may wait behind another tab that holds the database. A closed connection
 * is dropped and the next call opens a new one (a call whose transaction the
 * closing aborted is tried once more on it); a call waits for an open at
 * most `openTimeoutMs` and then fails with a KeyValueStoreError that says
 * so, rather than hanging (the open goes on, and later calls use it). The
 * request's own `blocked` event is no help here: only an open that upgrades
 * a database other tabs hold fires it, and ours (version 1) never does; it
 * waits, silently, behind another tab's blocked upgrade or deletion.
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
  /** How long a call waits for the database to open before it fails (default 10000 ms). */
  readonly openTimeoutMs?: number
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
  const timeoutMs = options.openTimeoutMs ?? 10_000
  let db: Promise<IDBDatabase> | undefined

  const open = (): Promise<IDBDatabase> => {
    if (db === undefined) {
      const r = (options.factory ?? globalThis.indexedDB).open(name, 1)
      r.onupgradeneeded = () => {
        if (!r.result.objectStoreNames.contains(storeName)) r.result.createObjectStore(storeName)
      }
      const forget = () => {
        if (db === opening) db = undefined
      }
      const opening: Promise<IDBDatabase> = request(r).then((d) => {
        // another tab upgrading or deleting the database must not be blocked by us
        d.onversionchange = () => {
          d.close()
          forget()
        }
        // closed by the browser: the next call opens a new connection
        d.onclose = forget
        return d
      })
      opening.catch(forget)
      db = opening
    }
    const opening = db
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `blocked by another tab for ${timeoutMs} ms`
      )), timeoutMs)
      opening.then(resolve, reject).finally(() => clearTimeout(timer))
    })
  }

  /** Drops connection `d` if it is still the one calls use: the next call opens a new one. */
  const forget = async (d: IDBDatabase) => {
    if (db !== undefined && (await db.catch(() => undefined)) === d) db = undefined
  }

  // the connection was closed under us (its close event not seen yet): the transaction could not begin
  // (InvalidStateError) or was aborted (AbortError); it wrote nothing, and the connection is of no further use
  const closedUnderUs = (error: unknown) =>
    error instanceof DOMException && (error.name === "AbortError" || error.name === "InvalidStateError")

  const attempt = async <A>(mode: IDBTransactionMode, f: (store: IDBObjectStore) => IDBRequest<A>): Promise<A> => {
    const d = await open()
    try {
      const tx = d.transaction(storeName, mode)
      const done = mode === "readwrite"
        ? new Promise<void>((resolve, reject) => {
          tx.oncomplete = () => resolve()
          tx.onerror = tx.onabort = () => reject(tx.error)
        })
        : undefined
      // the request's own failure is the one reported; the transaction's must not go unhandled
      done?.catch(() => undefined)
      const result = await request(f(tx.objectStore(storeName)))
      await done
      return result
    } catch (error) {
      if (closedUnderUs(error)) await forget(d)
      throw error
    }
  }

  const run = <A>(method: string, mode: IDBTransactionMode, f: (store: IDBObjectStore) => IDBRequest<A>, key?: string) =>
    Effect.tryPromise({
      // one more try, on a new connection
      try: () => attempt(mode, f).catch((error: unknown) => (closedUnderUs(error) ? attempt(mode, f) : Promise.reject(error))),
      catch: (cause) =>
        new KeyValueStore.KeyValueStoreError({
          message: `IndexedDB ${method}: ${String(cause)}`,
          method,
          cause,
          ...(key === undefined ? {} : { key })
        })
    })

  return KeyValueStore.makeStringOnly({
    get: (key) => Effect.map(run("get", "readonly", (s) => s.get(key), key), (v) => (typeof v === "string" ? v : undefined)),
    set: (key, value) => Effect.asVoid(run("set", "readwrite", (s) => s.put(value, key), key)),
    remove: (key) => Effect.asVoid(run("remove", "readwrite", (s) => s.delete(key), key)),
    clear: Effect.asVoid(run("clear", "readwrite", (s) => s.clear())),
    size: run("size", "readonly", (s) => s.count()),
    keys: Effect.map(run("keys", "readonly", (s) => s.getAllKeys()), (keys) => keys.map(String)),
    clearPrefix: (prefix) =>
      Effect.asVoid(run("clearPrefix", "readwrite", (s) => s.delete(IDBKeyRange.bound(prefix, prefix + "\uffff", false, false))))
  })
}

/** A KeyValueStore Layer over IndexedDB. */
export const layerIndexedDb = (options: IndexedDbOptions = {}): Layer.Layer<KeyValueStore.KeyValueStore> =>
  Layer.sync(KeyValueStore.KeyValueStore, () => makeIndexedDb(options))

/** The IndexedDB store, as a value (for `createSyncClient({ store })`). */
export const IndexedDbStore = makeIndexedDb
