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
import { type Entry, lookup, release, retain } from "./registry.ts"

const useEntry = <C extends Channel.Any>(channel: C, socket: SocketLike): Entry<C> => {
  const [, rerender] = useState(0)
  const entry = lookup(channel, socket)
  useEffect(() => {
    const held = retain(channel, socket)
    // the client rendered with was closed before this effect ran: render with the live one
    if (held !== entry) rerender((n) => n + 1)
    return () => release(socket, held, channel.name)
  }, [entry, channel, socket])
  return entry
}

/** The shared client of a channel on a socket. */
export function useSyncClient<C extends Channel.Any>(channel: C, socket: SocketLike): PlainSyncClient<C> {
  return useEntry(channel, socket).client
}

/**
 * A channel's records and a function to send actions. The optimistic
 * reducer may be a new closure on every render; while actions are pending, a
 * render with a new one shows what it makes of them.
 */
export function useSync<C extends Channel.Any>(
  channel: C,
  socket: SocketLike,
  optimisticReducer?: Optimistic<C>
): readonly [
  ReadonlyArray<Channel.RecordOf<C>>,
  (action: Channel.ActionOf<C>) => Promise<ReadonlyArray<Channel.RecordOf<C>>>
] {
  const client = useEntry(channel, socket).client
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
export function useSyncStatus<C extends Channel.Any>(channel: C, socket: SocketLike): SyncStatus {
  const client = useEntry(channel, socket).client
  return useSyncExternalStore(client.subscribeStatus, client.getStatus, client.getStatus)
}

/**
 * Queued actions of a channel that the server refused while no `sendAction`
 * waited for them (queued before a reload, or by another tab), and a function
 * that dismisses them once shown.
 */
export function useDiscarded<C extends Channel.Any>(
  channel: C,
  socket: SocketLike
): readonly [ReadonlyArray<DiscardedAction<Channel.ActionOf<C>>>, () => void] {
  const client = useEntry(channel, socket).client
  const discarded = useSyncExternalStore(client.subscribe, client.getDiscarded, client.getDiscarded)
  return [discarded, client.dismissDiscarded] as const
}
