/**
 * A `KeyValueStore` over IndexedDB (effect 4.1 has none built in). One
 * database, one object store; every call is one IndexedDB transaction, so
 * each write is atomic on its own. It also runs the client's record cache
 * (RecordCache's layout, in the same object store) its own way: a load reads
 * the meta, the pages and the log in one transaction, and a write reads the
 * meta and makes all its changes in one, so a write is atomic as a whole.
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
import { NATIVE, recordCache } from "./RecordCache.ts"

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

  const attempt = async <A>(mode: IDBTransactionMode, f: (store: IDBObjectStore) => Promise<A>): Promise<A> => {
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
      const result = await f(tx.objectStore(storeName))
      await done
      return result
    } catch (error) {
      if (closedUnderUs(error)) await forget(d)
      throw error
    }
  }

  const run = <A>(method: string, mode: IDBTransactionMode, f: (store: IDBObjectStore) => Promise<A>, key?: string) =>
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

  const text = (s: IDBObjectStore, key: string) => request(s.get(key)).then((v) => (typeof v === "string" ? v : undefined))
  const under = (prefix: string) => IDBKeyRange.bound(prefix, prefix + "\uffff", false, false)
  const store = KeyValueStore.makeStringOnly({
    get: (key) => run("get", "readonly", (s) => text(s, key), key),
    set: (key, value) => Effect.asVoid(run("set", "readwrite", (s) => request(s.put(value, key)), key)),
    remove: (key) => Effect.asVoid(run("remove", "readwrite", (s) => request(s.delete(key)), key)),
    clear: Effect.asVoid(run("clear", "readwrite", (s) => request(s.clear()))),
    size: run("size", "readonly", (s) => request(s.count())),
    keys: Effect.map(run("keys", "readonly", (s) => request(s.getAllKeys())), (keys) => keys.map(String)),
    clearPrefix: (prefix) => Effect.asVoid(run("clearPrefix", "readwrite", (s) => request(s.delete(under(prefix)))))
  })
  const records = (prefix: string) =>
    recordCache(prefix, {
      read: (metaKey, more) =>
        run("records", "readonly", async (s) => {
          const meta = await text(s, metaKey)
          return [meta, meta === undefined ? [] : await Promise.all(more(meta).map((key) => text(s, key)))] as const
        }),
      // the steps are made before the first is taken: a write never stops halfway but by aborting
      update: (metaKey, decide) =>
        run("records", "readwrite", async (s) => {
          const [verdict, ops] = decide(await text(s, metaKey))
          for (const op of ops) {
            if (op[0] === "put") s.put(op[2], op[1])
            else if (op[0] === "delete") s.delete(op[1])
            else for (const p of op[1]) s.delete(under(p))
          }
          return verdict
        })
    })
  // not enumerable: a store wrapped by `KeyValueStore.prefix` (a copy) writes its records key by key, under its prefix
  return Object.defineProperty(store, NATIVE, { value: records })
}

/** A KeyValueStore Layer over IndexedDB. */
export const layerIndexedDb = (options: IndexedDbOptions = {}): Layer.Layer<KeyValueStore.KeyValueStore> =>
  Layer.sync(KeyValueStore.KeyValueStore, () => makeIndexedDb(options))

/** The IndexedDB store, as a value (for `createSyncClient({ store })`). */
export const IndexedDbStore = makeIndexedDb
