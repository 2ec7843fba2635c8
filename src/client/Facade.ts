/**
 * `createSyncClient`: the client for code that does not use Effect (and for
 * the React hooks). It runs `make` in its own Scope; `close()` ends it.
 * Until the local cache is loaded the snapshot is empty and the status
 * `connecting`; actions sent meanwhile are held in order and handed to the
 * client as soon as it exists, before a `close()` can run, so that an action
 * passed to `send` is always recorded (and persisted for the next client).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Scope from "effect/Scope"
import type * as Channel from "../protocol/Channel.ts"
import { ActionDiscarded, type SendError } from "../protocol/Errors.ts"
import { layerIndexedDb } from "./IndexedDbStore.ts"
import * as Listeners from "./Listeners.ts"
import { makeMemoryStore } from "./MemoryStore.ts"
import { type ClientOptions, type DiscardedAction, makeCore, type OpenSocket, type Optimistic, type SyncClientCore, type SyncStatus } from "./SyncClient.ts"

/** Where the facade keeps its local cache. */
export type StoreOption =
  | KeyValueStore.KeyValueStore
  | Layer.Layer<KeyValueStore.KeyValueStore, unknown>

/** Options of `createSyncClient`: the client's, plus the store (default: IndexedDB in browsers, memory elsewhere). */
export type FacadeOptions<C extends Channel.Any> = ClientOptions<C> & { readonly store?: StoreOption | undefined }

/** A sync client with a plain (Promise and callback) API. */
export interface PlainSyncClient<C extends Channel.Any> {
  /** The live records (soft-deleted rows are never in it) with pending actions applied; the same array until something changes. */
  getSnapshot(): ReadonlyArray<Channel.RecordOf<C>>
  /** Calls `listener` (batched) after the snapshot or the status changed; returns the unsubscribe. */
  subscribe(listener: () => void): () => void
  /** The connection, pending count and ids, and last error; the same object until one of them changes. */
  getStatus(): SyncStatus
  /**
   * `subscribe` under the name `useSyncExternalStore(client.subscribeStatus, client.getStatus)` reads
   * well with: the same listeners, called after the snapshot or the status changed.
   */
  subscribeStatus(listener: () => void): () => void
  /** Queued actions the server refused while no `send` waited for them (see `SyncClientCore.getDiscarded`). */
  getDiscarded(): ReadonlyArray<DiscardedAction<Channel.ActionOf<C>>>
  /** Forgets the discarded actions once shown. */
  dismissDiscarded(): void
  /**
   * Resolves with the server's rows; rejects with a `SendError` (`ActionRejected`, `NotAuthorized`, `HandlerFailed`, ...).
   * While the status says `unauthorized` (the socket was refused, why in `lastError`), `outdated` or `unavailable`,
   * the action stays queued (and persisted) rather than failing; while it says `failed`, it fails with `SyncRefused`.
   */
  send(action: Channel.ActionOf<C>): Promise<ReadonlyArray<Channel.RecordOf<C>>>
  clearLocalData(): Promise<void>
  /** Replaces the optimistic reducer; `quiet` (from a render) rebuilds the snapshot on the next read without calling listeners. */
  setOptimistic(reducer: Optimistic<C> | undefined, quiet?: boolean): void
  /** Resolves once the local cache is loaded and the client follows the socket. */
  readonly ready: Promise<void>
  /** This instance's client id (known once ready). */
  readonly clientId: string | undefined
  close(): Promise<void>
}

const EMPTY: ReadonlyArray<never> = []
const STARTING: SyncStatus = { connection: "connecting", pending: 0, pendingIds: new Set(), lastError: null }

/** The default store: IndexedDB where it exists, else memory. */
export const defaultStore = (): Layer.Layer<KeyValueStore.KeyValueStore> =>
  typeof indexedDB !== "undefined" ? layerIndexedDb() : Layer.sync(KeyValueStore.KeyValueStore, makeMemoryStore)

const storeLayer = (store: StoreOption | undefined): Layer.Layer<KeyValueStore.KeyValueStore, unknown> =>
  store === undefined
    ? defaultStore()
    : Layer.isLayer(store)
    ? store as Layer.Layer<KeyValueStore.KeyValueStore, unknown>
    : Layer.succeed(KeyValueStore.KeyValueStore, store as KeyValueStore.KeyValueStore)

/**
 * Creates a sync client outside Effect over `options.socket`, or over a
 * socket `open` makes (see `makeCore` for how the server's refusals
 * surface). Apps use `createSyncClient` from effect-partysync/client, which
 * is this with partysocket as `open`.
 */
export const createSyncClientWith = <C extends Channel.Any>(options: FacadeOptions<C>, open?: OpenSocket): PlainSyncClient<C> => {
  const scope = Scope.makeUnsafe()
  let client: SyncClientCore<C> | undefined
  let closed = false
  let reducer = options.optimistic
  const { listeners, subscribe } = Listeners.make()
  // the core batches its notifications already: these are called at once
  const fire = () => {
    for (const l of [...listeners]) l()
  }
  const { store, ...clientOptions } = options
  // sends made before the client exists, in order; `close()` waits for them to be handed over
  const early: Array<() => void> = []
  const ready = Effect.runPromise(
    Effect.gen(function*() {
      const context = yield* Layer.buildWithScope(storeLayer(store), scope)
      const c = yield* makeCore(clientOptions as ClientOptions<C>, open).pipe(Effect.provideContext(context), Scope.provide(scope))
      c.setOptimistic(reducer)
      c.subscribe(fire)
      client = c
    })
  ).then(() => {
    for (const handOver of early.splice(0)) handOver()
    if (closed) return
    fire()
  })
  ready.catch(() => {
    for (const handOver of early.splice(0)) handOver()
  })

  // the client's `send` records the action synchronously when its Effect starts
  const run = (c: SyncClientCore<C>, action: Channel.ActionOf<C>) =>
    Effect.runPromiseExit(c.send(action)).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      const error = exit.cause.reasons.find((r) => r._tag === "Fail")
      throw error !== undefined ? error.error as SendError : new ActionDiscarded({ reason: "Closed", message: "interrupted" })
    })

  const send = (action: Channel.ActionOf<C>): Promise<ReadonlyArray<Channel.RecordOf<C>>> => {
    if (closed) return Promise.reject(new ActionDiscarded({ reason: "Closed", message: "the client is closed" }))
    if (client !== undefined) return run(client, action)
    return new Promise((resolve, reject) => {
      early.push(() => {
        if (client === undefined) reject(new ActionDiscarded({ reason: "Closed", message: "the client failed to start" }))
        else run(client, action).then(resolve, reject)
      })
    })
  }

  return {
    getSnapshot: () => (client === undefined ? EMPTY : client.getSnapshot()),
    getStatus: () => (client === undefined ? STARTING : client.getStatus()),
    getDiscarded: () => (client === undefined ? EMPTY : client.getDiscarded()),
    dismissDiscarded: () => client?.dismissDiscarded(),
    subscribe,
    subscribeStatus: subscribe,
    send,
    clearLocalData: async () => {
      await ready
      if (client !== undefined) await Effect.runPromise(client.clearLocalData)
    },
    setOptimistic: (next, quiet) => {
      reducer = next
      client?.setOptimistic(next, quiet)
    },
    ready,
    get clientId() {
      return client?.clientId
    },
    close: async () => {
      if (closed) return
      closed = true
      listeners.clear()
      await ready.catch(() => {})
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
}
