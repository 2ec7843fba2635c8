/**
 * The socket side of a client. Any WebSocket-like object works (a
 * partysocket, which reconnects by itself, or a plain WebSocket). Several
 * clients (channels, or subscriptions of a channel with different params)
 * may share one socket: a hub per socket decodes each frame once and routes
 * it by subscription (`sub`, else its channel), or by client id for replies.
 *
 * The server limits actions in flight per connection, not per client, so the
 * hub holds the socket's budget: every client on the socket sends its next
 * push only when the hub lets it, in turn, with no more actions than the
 * budget has room for. It holds a byte budget the same way: the server
 * charges the bytes that arrive while a connection's earlier frames are
 * still being worked on (`maxInboundBurstBytes`), so pushes unanswered on a
 * socket stay within `MAX_BYTES_IN_FLIGHT`, beyond the first. Replies to a
 * push are routed by its client id.
 *
 * @since 0.1.0
 */
import type { ClientMessage, RowId } from "../protocol/Protocol.ts"
import { decodeFrame, encodeFrame, type ServerFrame } from "./Frames.ts"

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

/**
 * Actions in flight per socket unless a client asks for fewer: the server's
 * default `maxInFlightPerConnection`. Never set it above the server's limit.
 */
export const DEFAULT_MAX_IN_FLIGHT = 64

/**
 * The bytes of actions pushed and unanswered on one socket, beyond the first
 * push (which always goes): well inside the server's default
 * `maxInboundBurstBytes` (4 MiB), whatever the number of clients on the
 * socket. Never set the server's burst below this plus `maxFrameBytes`.
 */
export const MAX_BYTES_IN_FLIGHT = 1024 * 1024

/** One client's view of a shared socket. */
export interface Route {
  readonly channel: string
  /** The subscription's name (`subOf`): the channel's own name when it has no params. */
  readonly sub: string
  /** The most actions this client allows unanswered on the socket; the smallest among a socket's clients applies. */
  readonly maxInFlight: number
  /** True when replies to this client id belong to this route. */
  owns(clientId: string): boolean
  /** Actions this route has pushed and not had answered. */
  readonly inFlight: number
  /** The encoded bytes of this route's push in flight. */
  readonly inFlightBytes: number
  receive(frame: ServerFrame): void
  opened(): void
  closed(): void
  /** A frame that could not be decoded. */
  garbage(message: string): void
  /** Sends this client's next push if one may go now (through `Link.send`), at most `room` actions and about `roomBytes`; returns how many. */
  pushNext(room: number, roomBytes: number): number
}

/** A route's handle on its socket. */
export interface Link {
  /** Detaches the route; true when it was the last one on its subscription (so the caller may unsubscribe). */
  readonly detach: () => boolean
  /** Writes a frame if the socket is open. */
  readonly send: (message: ClientMessage) => void
  /** Lets the socket's routes send actions while the budget allows. */
  readonly pump: () => void
}

class Hub {
  /** Rows of results too large for one frame, by client id and seq, until their reply. */
  readonly #resultRows = new Map<string, Array<unknown>>()
  readonly #bySub = new Map<string, Set<Route>>()
  readonly #routes = new Set<Route>()
  #limit = DEFAULT_MAX_IN_FLIGHT
  #turn = 0
  #pumping = false
  #again = false

  readonly socket: SocketLike
  readonly release: () => void

  constructor(socket: SocketLike, release: () => void) {
    this.socket = socket
    this.release = release
  }

  send(message: ClientMessage): void {
    // never hand a closed partysocket a frame: it would queue it ahead of our Subscribe
    if (this.socket.readyState !== OPEN) return
    this.socket.send(encodeFrame(message))
  }

  // One push per route per turn, so that a long queue never starves a short one.
  pump(): void {
    if (this.#pumping) {
      this.#again = true
      return
    }
    this.#pumping = true
    try {
      do {
        this.#again = false
        const routes = [...this.#routes]
        let idle = 0
        let room = this.#limit
        let bytes = 0
        for (const r of routes) {
          room -= r.inFlight
          bytes += r.inFlightBytes
        }
        while (idle < routes.length && room > 0 && bytes < MAX_BYTES_IN_FLIGHT) {
          const route = routes[this.#turn++ % routes.length]!
          const before = route.inFlightBytes
          // nothing unanswered: a push of any size may go, as it is not sent ahead of another
          const sent = route.pushNext(room, bytes === 0 ? Infinity : MAX_BYTES_IN_FLIGHT - bytes)
          if (sent > 0) {
            idle = 0
            room -= sent
            bytes += route.inFlightBytes - before
          } else idle++
        }
      } while (this.#again)
    } finally {
      this.#pumping = false
    }
  }

  readonly #onMessage = (event: { data: unknown }) => {
    if (typeof event.data !== "string") return
    let frame = decodeFrame(event.data)
    if (typeof frame === "string") {
      for (const r of [...this.#routes]) r.garbage(frame)
      return
    }
    // the rows of a result too large for one frame come first; its reply gets them back
    if (frame._tag === "ResultRows") {
      const key = `${frame.seq}:${frame.clientId}`
      const held = this.#resultRows.get(key)
      if (held === undefined) this.#resultRows.set(key, [...frame.rows])
      else held.push(...frame.rows)
      return
    }
    if (frame._tag === "Pushed" && this.#resultRows.size > 0) {
      const clientId = frame.clientId
      frame = {
        ...frame,
        results: frame.results.map((r) => {
          const key = `${r.seq}:${clientId}`
          const held = this.#resultRows.get(key)
          if (held === undefined || !("rows" in r)) return r
          this.#resultRows.delete(key)
          return { ...r, rows: [...held, ...r.rows] }
        })
      }
    }
    if (frame._tag === "Pushed" || (frame._tag === "Failure" && frame.clientId !== undefined)) {
      // a reply carries the push's changes for its sender: they apply before the actions settle
      if (frame._tag === "Pushed" && frame.changes !== undefined) for (const change of frame.changes) this.#toChannel(change)
      const clientId = frame.clientId!
      for (const r of this.#routes) {
        if (r.owns(clientId)) {
          r.receive(frame)
          break
        }
      }
      this.pump()
      return
    }
    this.#toChannel(frame)
  }

  #toChannel(frame: Exclude<ServerFrame, { readonly _tag: "Pushed" | "ResultRows" }>) {
    const channel = frame.channel
    const targets = channel === null ? this.#routes : this.#bySub.get(frame.sub ?? channel)
    if (targets !== undefined) for (const r of [...targets]) r.receive(frame)
  }
  readonly #onOpen = () => {
    for (const r of [...this.#routes]) r.opened()
  }
  readonly #onClose = () => {
    this.#resultRows.clear()
    for (const r of [...this.#routes]) r.closed()
  }

  #budget() {
    this.#limit = Infinity
    for (const r of this.#routes) this.#limit = Math.min(this.#limit, Math.max(1, r.maxInFlight))
  }

  add(route: Route): void {
    if (this.#routes.size === 0) {
      this.socket.addEventListener("message", this.#onMessage)
      this.socket.addEventListener("open", this.#onOpen)
      this.socket.addEventListener("close", this.#onClose)
    }
    this.#routes.add(route)
    let set = this.#bySub.get(route.sub)
    if (set === undefined) this.#bySub.set(route.sub, (set = new Set()))
    set.add(route)
    this.#budget()
  }

  /** Removes a route; true when no other route on this socket listens to its channel. */
  remove(route: Route): boolean {
    if (!this.#routes.delete(route)) return false
    const set = this.#bySub.get(route.sub)
    set?.delete(route)
    const last = set === undefined || set.size === 0
    if (last) this.#bySub.delete(route.sub)
    this.#budget()
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

/** Attaches a route to a socket's hub (made on first use). */
export const attach = (socket: SocketLike, route: Route): Link => {
  let hub = hubs.get(socket)
  if (hub === undefined) {
    hub = new Hub(socket, () => hubs.delete(socket))
    hubs.set(socket, hub)
  }
  const h = hub
  h.add(route)
  return { detach: () => h.remove(route), send: (message) => h.send(message), pump: () => h.pump() }
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
