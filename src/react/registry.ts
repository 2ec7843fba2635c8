/**
 * One sync client per (socket, channel name), shared by every hook that
 * asks for it and reference counted: the hooks on one channel and socket see
 * one state, other channels and rooms get their own. A client nobody holds
 * is closed shortly after the last release (the delay lets StrictMode's
 * unmount/remount and same-commit moves keep it).
 *
 * @since 0.1.0
 */
import { createSyncClientWith, type PlainSyncClient, type StoreOption } from "../client/Facade.ts"
import type { ClientOptions, SocketLike } from "../client/SyncClient.ts"
import type * as Channel from "../protocol/Channel.ts"

/** Options applied to every client the hooks create. */
export type HookOptions =
  & Omit<ClientOptions<Channel.Any>, "channel" | "socket" | "host" | "party" | "room" | "WebSocket" | "protocol" | "optimistic">
  & { readonly store?: StoreOption | undefined; readonly releaseDelayMs?: number | undefined }

let defaults: HookOptions = {}

/** Sets the options (store, limits) of clients created by the hooks from now on. */
export const configureSync = (options: HookOptions): void => {
  defaults = options
}

/** A shared client and its holders (the hooks set its optimistic reducer as they render). */
export interface Entry<C extends Channel.Any> {
  readonly client: PlainSyncClient<C>
  refs: number
  closed: boolean
  timer: ReturnType<typeof setTimeout> | undefined
}

const bySocket = new WeakMap<SocketLike, Map<string, Entry<any>>>()

const schedule = (socket: SocketLike, name: string, entry: Entry<any>) => {
  if (entry.timer !== undefined) clearTimeout(entry.timer)
  entry.timer = setTimeout(() => {
    entry.timer = undefined
    if (entry.refs > 0 || entry.closed) return
    entry.closed = true
    const map = bySocket.get(socket)
    if (map?.get(name) === entry) map.delete(name)
    void entry.client.close()
  }, defaults.releaseDelayMs ?? 50)
}

/** The live entry for (socket, channel), created when missing. Holds no reference. */
export const lookup = <C extends Channel.Any>(channel: C, socket: SocketLike): Entry<C> => {
  let map = bySocket.get(socket)
  if (map === undefined) bySocket.set(socket, (map = new Map()))
  const existing = map.get(channel.name) as Entry<C> | undefined
  if (existing !== undefined && !existing.closed) return existing
  const { releaseDelayMs: _, ...options } = defaults
  const entry: Entry<C> = {
    client: createSyncClientWith<C>({ ...(options as Omit<ClientOptions<C>, "channel">), channel, socket }),
    refs: 0,
    closed: false,
    timer: undefined
  }
  map.set(channel.name, entry)
  // created during a render that may never commit: close it unless a hook takes it
  schedule(socket, channel.name, entry)
  return entry
}

/** Takes a reference; returns the live entry (a new one if the rendered one was closed meanwhile). */
export const retain = <C extends Channel.Any>(channel: C, socket: SocketLike): Entry<C> => {
  const entry = lookup(channel, socket)
  entry.refs++
  if (entry.timer !== undefined) {
    clearTimeout(entry.timer)
    entry.timer = undefined
  }
  return entry
}

/** Drops a reference; the client closes after the release delay if nobody took it again. */
export const release = (socket: SocketLike, entry: Entry<any>, name: string): void => {
  entry.refs = Math.max(0, entry.refs - 1)
  if (entry.refs === 0) schedule(socket, name, entry)
}

/** How many live clients the hooks hold for a socket (for tests and debugging). */
export const clientCount = (socket: SocketLike): number => bySocket.get(socket)?.size ?? 0
