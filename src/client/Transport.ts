/**
 * The socket side of a client. Any WebSocket-like object works (a
 * partysocket, which reconnects by itself, or a plain WebSocket). Several
 * clients (channels) may share one socket: a hub per socket decodes each
 * frame once and routes it by channel, or by request id for replies.
 *
 * The server limits actions in flight per connection, not per client, so the
 * hub holds the socket's budget: every client on the socket sends its next
 * action only when the hub lets it, in turn, while fewer than the budget are
 * unanswered.
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

/** One client's view of a shared socket. */
export interface Route {
  readonly channel: string
  /** The most actions this client allows unanswered on the socket; the smallest among a socket's clients applies. */
  readonly maxInFlight: number
  owns(requestId: string): boolean
  receive(frame: ServerFrame): void
  opened(): void
  closed(): void
  /** A frame that could not be decoded. */
  garbage(message: string): void
  /** Sends this client's next action if one may go now (through `Link.send`); false when none may. */
  sendNext(): boolean
}

/** A route's handle on its socket. */
export interface Link {
  /** Detaches the route; true when it was the last one on its channel (so the caller may unsubscribe). */
  readonly detach: () => boolean
  /** Writes a frame if the socket is open (an Action counts against the budget until answered). */
  readonly send: (message: ClientMessage) => void
  /** Lets the socket's routes send actions while the budget allows. */
  readonly pump: () => void
}

class Hub {
  /** Rows of replies too large for one frame, by request id, until their Ack. */
  readonly #ackRows: Record<string, Array<unknown>> = {}
  readonly #byChannel = new Map<string, Set<Route>>()
  readonly #routes = new Set<Route>()
  /** Request ids sent on this connection and not yet answered. */
  readonly #inFlight = new Set<string>()
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
    if (message._tag === "Action") this.#inFlight.add(message.requestId)
  }

  // One action per route per turn, so that a long queue never starves a short one.
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
        while (idle < routes.length && this.#inFlight.size < this.#limit) {
          if (routes[this.#turn++ % routes.length]!.sendNext()) idle = 0
          else idle++
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
    // the rows of a reply too large for one frame come first; its Ack gets them back
    if (frame._tag === "AckRows") return void (this.#ackRows[frame.requestId] ??= []).push(...frame.rows)
    const held = frame._tag === "Ack" ? this.#ackRows[frame.requestId] : undefined
    if (held !== undefined && frame._tag === "Ack") {
      delete this.#ackRows[frame.requestId]
      frame = { ...frame, rows: [...held, ...frame.rows] }
    }
    if (frame._tag === "Ack" || (frame._tag === "Failure" && frame.requestId !== null)) {
      // an Ack carries the action's changes for its sender: they apply before the action settles
      if (frame._tag === "Ack" && frame.changes !== undefined) for (const change of frame.changes) this.#toChannel(change)
      const requestId = frame.requestId!
      this.#inFlight.delete(requestId)
      for (const r of this.#routes) {
        if (r.owns(requestId)) {
          r.receive(frame)
          break
        }
      }
      this.pump()
      return
    }
    // a server that cannot start answers every frame this way: none of our actions was run
    if (frame._tag === "Failure" && frame.channel === null && frame.reason === "Unavailable") this.#inFlight.clear()
    this.#toChannel(frame)
  }

  #toChannel(frame: Exclude<ServerFrame, { readonly _tag: "Ack" | "AckRows" }>) {
    const channel = frame.channel
    const targets = channel === null ? this.#routes : this.#byChannel.get(channel)
    if (targets !== undefined) for (const r of [...targets]) r.receive(frame)
  }
  readonly #onOpen = () => {
    for (const r of [...this.#routes]) r.opened()
  }
  readonly #onClose = () => {
    this.#inFlight.clear()
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
    let set = this.#byChannel.get(route.channel)
    if (set === undefined) this.#byChannel.set(route.channel, (set = new Set()))
    set.add(route)
    this.#budget()
  }

  /** Removes a route; true when no other route on this socket listens to its channel. */
  remove(route: Route): boolean {
    if (!this.#routes.delete(route)) return false
    const set = this.#byChannel.get(route.channel)
    set?.delete(route)
    const last = set === undefined || set.size === 0
    if (last) this.#byChannel.delete(route.channel)
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
