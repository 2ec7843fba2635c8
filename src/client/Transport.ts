/**
 * The socket side of a client. Any WebSocket-like object works (a
 * partysocket, which reconnects by itself, or a plain WebSocket). Several
 * clients (channels) may share one socket: a hub per socket decodes each
 * frame once and routes it by channel, or by request id for replies.
 *
 * @since 0.1.0
 */
import type { RowId } from "../protocol/Protocol.ts"
import { decodeFrame, type ServerFrame } from "./Frames.ts"

/** The part of a WebSocket (or partysocket) the client uses. */
export interface SocketLike {
  readonly readyState: number
  readonly url?: string | undefined
  send(data: string): void
  addEventListener(type: "open" | "close" | "message" | "error", listener: (event: any) => void): void
  removeEventListener(type: "open" | "close" | "message" | "error", listener: (event: any) => void): void
}

/** WebSocket.OPEN */
export const OPEN = 1

/** One client's view of a shared socket. */
export interface Route {
  readonly channel: string
  owns(requestId: string): boolean
  receive(frame: ServerFrame): void
  opened(): void
  closed(): void
  /** A frame that could not be decoded. */
  garbage(message: string): void
}

class Hub {
  readonly #byChannel = new Map<string, Set<Route>>()
  readonly #routes = new Set<Route>()

  readonly socket: SocketLike
  readonly release: () => void

  constructor(socket: SocketLike, release: () => void) {
    this.socket = socket
    this.release = release
  }

  readonly #onMessage = (event: { data: unknown }) => {
    if (typeof event.data !== "string") return
    const frame = decodeFrame(event.data)
    if (typeof frame === "string") {
      for (const r of [...this.#routes]) r.garbage(frame)
      return
    }
    if (frame._tag === "Ack" || (frame._tag === "Failure" && frame.requestId !== null)) {
      // an Ack carries the action's changes for its sender: they apply before the action settles
      if (frame._tag === "Ack" && frame.changes !== undefined) for (const change of frame.changes) this.#toChannel(change)
      const requestId = frame.requestId!
      for (const r of this.#routes) {
        if (r.owns(requestId)) {
          r.receive(frame)
          return
        }
      }
      return
    }
    this.#toChannel(frame)
  }

  #toChannel(frame: Exclude<ServerFrame, { readonly _tag: "Ack" }>) {
    const channel = frame.channel
    const targets = channel === null ? this.#routes : this.#byChannel.get(channel)
    if (targets !== undefined) for (const r of [...targets]) r.receive(frame)
  }
  readonly #onOpen = () => {
    for (const r of [...this.#routes]) r.opened()
  }
  readonly #onClose = () => {
    for (const r of [...this.#routes]) r.closed()
  }

  add(route: Route): void {
    if (this.#routes.size === 0) {
      this.socket.addEventListener("message", this.#onMessage)
      this.socket.addEventListener("open", this.#onOpen)
      this.socket.addEventListener("close", this.#onClose)
    }
    this.#routes.add(route)
    let set = this.#byChannel.get(route.channel)
    if (set === undefined) this.#byChannel.set(route.channel, (set = new Set()))
    set.add(route)
  }

  /** Removes a route; true when no other route on this socket listens to its channel. */
  remove(route: Route): boolean {
    if (!this.#routes.delete(route)) return false
    const set = this.#byChannel.get(route.channel)
    set?.delete(route)
    const last = set === undefined || set.size === 0
    if (last) this.#byChannel.delete(route.channel)
    if (this.#routes.size === 0) {
      this.socket.removeEventListener("message", this.#onMessage)
      this.socket.removeEventListener("open", this.#onOpen)
      this.socket.removeEventListener("close", this.#onClose)
      this.release()
    }
    return last
  }
}

const hubs = new WeakMap<SocketLike, Hub>()

/**
 * Attaches a route to a socket. Returns the detach function, which answers
 * whether the route was the channel's last one on this socket (so that the
 * caller may unsubscribe on the server).
 */
export const attach = (socket: SocketLike, route: Route): () => boolean => {
  let hub = hubs.get(socket)
  if (hub === undefined) {
    hub = new Hub(socket, () => hubs.delete(socket))
    hubs.set(socket, hub)
  }
  const h = hub
  h.add(route)
  return () => h.remove(route)
}

/** Where a socket points: host, party and room, for the cache key. */
export const locationOf = (socket: SocketLike): string => {
  const party = socket as unknown as { host?: unknown; name?: unknown; room?: unknown }
  if (typeof party.host === "string" && typeof party.room === "string" && typeof party.name === "string") {
    return `${party.host}/${party.name}/${party.room}`
  }
  if (typeof socket.url === "string" && socket.url !== "") {
    try {
      const url = new URL(socket.url)
      const path = url.pathname.replace(/^\/parties\//, "").replace(/\/$/, "")
      return `${url.host}/${path}`
    } catch {
      return socket.url
    }
  }
  return "unknown"
}

/** Row ids of a frame's `deleted` list. */
export type { RowId }
