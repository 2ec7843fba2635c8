/**
 * effect-partysync/client: keeps a channel's records in sync with a
 * SyncServer, as an Effect (`make`) or a plain object (`createSyncClient`),
 * with optimistic updates, an offline queue and a local cache.
 *
 * @since 0.1.0
 */
export { ActionDiscarded, ActionRejected, HandlerFailed, InvalidAction, NotAuthorized, type SendError, SyncRefused } from "../protocol/Errors.ts"
export { createSyncClient, make, openPartySocket } from "./Connect.ts"
export { defaultStore, type FacadeOptions, type PlainSyncClient, type StoreOption } from "./Facade.ts"
export { makeMemoryStore } from "./MemoryStore.ts"
export { IndexedDbStore, type IndexedDbOptions, layerIndexedDb, makeIndexedDb } from "./IndexedDbStore.ts"
export {
  type ClientOptions,
  type DiscardedAction,
  type OpenSocket,
  type Optimistic,
  type QueryOption,
  type QueryParams,
  type SocketLike,
  type SyncClient,
  type SyncStatus
} from "./SyncClient.ts"
export { SyncEngine } from "./SyncEngine.ts"
