/**
 * A connection to one IndexedDB database, shared by the calls of a store.
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
 * @since 0.3.0
 */
import * as KeyValueStore from "effect/persistence/KeyValueStore"

/** Options of the IndexedDB store. */
export interface IndexedDbOptions {
  /** Database name (default "effect-partysync"); the records go to a second one, this name + "/records". */
  readonly database?: string
  /** Object store name (default "kv"). */
  readonly store?: string
  /** The IDBFactory (default the global `indexedDB`; tests may pass a fake). */
  readonly factory?: IDBFactory
  /** How long a call waits for the database to open before it fails (default 10000 ms). */
  readonly openTimeoutMs?: number
}

/** A request's result, as a Promise. */
export const request = <A>(r: IDBRequest<A>): Promise<A> =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })

/** Runs `body` in a transaction over `stores` and resolves once the transaction committed (readwrite). */
export type Transact = <A>(stores: ReadonlyArray<string>, mode: IDBTransactionMode, body: (tx: IDBTransaction) => Promise<A>) => Promise<A>

/**
 * A connection to database `name` (version 1, the object stores `stores`),
 * opened on first use and replaced when the browser closes it.
 */
export const connection = (options: IndexedDbOptions, name: string, stores: ReadonlyArray<string>): Transact => {
  const timeoutMs = options.openTimeoutMs ?? 10_000
  let db: Promise<IDBDatabase> | undefined

  const open = (): Promise<IDBDatabase> => {
    if (db === undefined) {
      const r = (options.factory ?? globalThis.indexedDB).open(name, 1)
      r.onupgradeneeded = () => {
        for (const s of stores) if (!r.result.objectStoreNames.contains(s)) r.result.createObjectStore(s)
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

  const attempt: Transact = async (names, mode, body) => {
    const d = await open()
    try {
      const tx = d.transaction(names, mode)
      const done = mode === "readwrite"
        ? new Promise<void>((resolve, reject) => {
          tx.oncomplete = () => resolve()
          tx.onerror = tx.onabort = () => reject(tx.error)
        })
        : undefined
      // the body's own failure is the one reported; the transaction's must not go unhandled
      done?.catch(() => undefined)
      let result
      try {
        result = await body(tx)
      } catch (error) {
        // nothing the body issued before it failed may commit
        try {
          tx.abort()
        } catch {
          // already finished or aborted
        }
        throw error
      }
      await done
      return result
    } catch (error) {
      if (closedUnderUs(error)) await forget(d)
      throw error
    }
  }

  // one more try, on a new connection
  return (names, mode, body) => attempt(names, mode, body).catch((error: unknown) => (closedUnderUs(error) ? attempt(names, mode, body) : Promise.reject(error)))
}

/** A KeyValueStoreError for a failed IndexedDB call. */
export const failure = (method: string, key?: string) => (cause: unknown) =>
  new KeyValueStore.KeyValueStoreError({
    message: `IndexedDB ${method}: ${String(cause)}`,
    method,
    cause,
    ...(key === undefined ? {} : { key })
  })

