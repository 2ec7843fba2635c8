/**
 * effect-partysync/react: `useSync(channel, socket, optimisticReducer?)`
 * returns `[records, sendAction]` as in partysync; `useSyncStatus` and
 * `useSyncClient` expose the rest. Clients are shared per (socket, channel).
 *
 * @since 0.1.0
 */
export { type SyncHookOptions, useDiscarded, useSync, useSyncClient, useSyncStatus } from "./hooks.ts"
export { clientCount, configureSync, type HookOptions } from "./registry.ts"
export { IndexedDbStore, layerIndexedDb, makeIndexedDb } from "../client/IndexedDbStore.ts"
export { ActionDiscarded, ActionRejected, HandlerFailed, InvalidAction, NotAuthorized, type SendError, SyncRefused } from "../protocol/Errors.ts"
export type { DiscardedAction, SyncStatus } from "../client/SyncEngine.ts"
