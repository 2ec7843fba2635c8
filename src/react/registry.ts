/**
 * One sync client per (socket, subscription: a channel and its params),
 * shared by every hook that
 * asks for it and reference counted: the hooks on one channel and socket see
 * one state, other channels and rooms get their own. A client nobody holds
 * is closed shortly after the last release (the delay lets StrictMode's
 * unmount/remount and same-commit moves keep it).
 *
 * @since 0.1.0
 */
import { createSyncClientWith, type PlainSyncClient, type StoreOption } from "../client/Facade.ts"
import type { ClientOptions, SocketLike } from "../client/SyncClient.ts"
import * as Channel from "../protocol/Channel.ts"
import { subOf } from "../protocol/Protocol.ts"

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

/** The registry's key of a channel's subscription with these params. */
export const keyOf = <C extends Channel.Any>(channel: C, params: Channel.ParamsOf<C> | undefined): string =>
  subOf(channel.name, Channel.encodeParams(channel, params))

/** The live entry for (socket, subscription), created when missing. Holds no reference. */
export const lookup = <C extends Channel.Any>(channel: C, socket: SocketLike, params?: Channel.ParamsOf<C>): Entry<C> => {
  let map = bySocket.get(socket)
  if (map === undefined) bySocket.set(socket, (map = new Map()))
  const key = keyOf(channel, params)
  const existing = map.get(key) as Entry<C> | undefined
  if (existing !== undefined && !existing.closed) return existing
  const { releaseDelayMs: _, ...options } = defaults
  const entry: Entry<C> = {
    client: createSyncClientWith<C>({ ...(options as Omit<ClientOptions<C>, "channel">), channel, socket, params }),
    refs: 0,
    closed: false,
    timer: undefined
  }
  map.set(key, entry)
  // created during a render that may never commit: close it unless a hook takes it
  schedule(socket, key, entry)
  return entry
}

/** Takes a reference; returns the live entry (a new one if the rendered one was closed meanwhile). */
export const retain = <C extends Channel.Any>(channel: C, socket: SocketLike, params?: Channel.ParamsOf<C>): Entry<C> => {
  const entry = lookup(channel, socket, params)
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
