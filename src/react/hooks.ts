/**
 * The React hooks, built on `useSyncExternalStore` over a shared client:
 * `useSync` gives `[records, sendAction]` as in partysync, `useSyncStatus`
 * the connection state, pending count and last error, `useSyncClient` the
 * client itself (for `clearLocalData`).
 *
 * @since 0.1.0
 */
import { useCallback, useEffect, useState, useSyncExternalStore } from "react"
import type { PlainSyncClient } from "../client/Facade.ts"
import type { DiscardedAction, Optimistic, SocketLike, SyncStatus } from "../client/SyncClient.ts"
import type * as Channel from "../protocol/Channel.ts"
import { type Entry, keyOf, lookup, release, retain } from "./registry.ts"

/** Which part of a channel a hook reads: `params` for a channel declared with them (one client per params value). */
export interface SyncHookOptions<C extends Channel.Any> {
  readonly params?: Channel.ParamsOf<C> | undefined
}

const useEntry = <C extends Channel.Any>(channel: C, socket: SocketLike, options?: SyncHookOptions<C>): Entry<C> => {
  const [, rerender] = useState(0)
  const params = options?.params
  const entry = lookup(channel, socket, params)
  // params are compared by value: a new object with the same params keeps the client
  const key = keyOf(channel, params)
  useEffect(() => {
    const held = retain(channel, socket, params)
    // the client rendered with was closed before this effect ran: render with the live one
    if (held !== entry) rerender((n) => n + 1)
    return () => release(socket, held, key)
  }, [entry, channel, socket, key])
  return entry
}

/** The shared client of a channel (and its params) on a socket. */
export function useSyncClient<C extends Channel.Any>(channel: C, socket: SocketLike, options?: SyncHookOptions<C>): PlainSyncClient<C> {
  return useEntry(channel, socket, options).client
}

/**
 * A channel's records and a function to send actions. The optimistic
 * reducer may be a new closure on every render; while actions are pending, a
 * render with a new one shows what it makes of them. `options.params` picks
 * the part of a channel declared with params (`{ params: { board: "b1" } }`).
 */
export function useSync<C extends Channel.Any>(
  channel: C,
  socket: SocketLike,
  optimisticReducer?: Optimistic<C>,
  options?: SyncHookOptions<C>
): readonly [
  ReadonlyArray<Channel.RecordOf<C>>,
  (action: Channel.ActionOf<C>) => Promise<ReadonlyArray<Channel.RecordOf<C>>>
] {
  const client = useEntry(channel, socket, options).client
  // quiet: the snapshot read just below is rebuilt with this reducer; no listener runs inside a render
  if (optimisticReducer !== undefined) client.setOptimistic(optimisticReducer, true)
  const records = useSyncExternalStore(client.subscribe, client.getSnapshot, client.getSnapshot)
  const sendAction = useCallback((action: Channel.ActionOf<C>) => client.send(action), [client])
  return [records, sendAction] as const
}

/**
 * The sync status of a channel on a socket: connection, pending count and ids, last error. Besides
 * `connecting`/`syncing`/`live`/`offline`, `connection` says why the server is not serving the channel:
 * `unavailable` (retrying), `unauthorized` (actions stay queued), `outdated` (prompt a reload), `failed`.
 */
export function useSyncStatus<C extends Channel.Any>(channel: C, socket: SocketLike, options?: SyncHookOptions<C>): SyncStatus {
  const client = useEntry(channel, socket, options).client
  return useSyncExternalStore(client.subscribeStatus, client.getStatus, client.getStatus)
}

/**
 * Queued actions of a channel that the server refused while no `sendAction`
 * waited for them (queued before a reload, or by another tab), and a function
 * that dismisses them once shown.
 */
export function useDiscarded<C extends Channel.Any>(
  channel: C,
  socket: SocketLike,
  options?: SyncHookOptions<C>
): readonly [ReadonlyArray<DiscardedAction<Channel.ActionOf<C>>>, () => void] {
  const client = useEntry(channel, socket, options).client
  const discarded = useSyncExternalStore(client.subscribe, client.getDiscarded, client.getDiscarded)
  return [discarded, client.dismissDiscarded] as const
}
