/**
 * Test support for client tests: partysockets to the shared worker (Node's
 * WebSocket), a socket wrapper that can hold back Action frames (to keep an
 * action in flight while other clients write), and a condition waiter.
 */
import { PartySocket } from "partysocket"
import type { SocketLike } from "../../src/client/index.ts"
import { eventually } from "../helpers/protocol.ts"

export { eventually }

/** A reconnecting partysocket to a room of the Todo fixture (Node's WebSocket, short reconnection delays). */
export const partySocket = (
  workerUrl: string,
  room: string,
  options: { startClosed?: boolean; maxReconnectionDelay?: number; connectionTimeout?: number; party?: string; query?: Record<string, string> } = {}
) =>
  new PartySocket({
    host: new URL(workerUrl).host,
    party: options.party ?? "to-dos",
    room,
    protocol: "ws",
    WebSocket: globalThis.WebSocket,
    minReconnectionDelay: 10,
    maxReconnectionDelay: options.maxReconnectionDelay ?? 200,
    ...(options.connectionTimeout === undefined ? {} : { connectionTimeout: options.connectionTimeout }),
    ...(options.query === undefined ? {} : { query: options.query }),
    ...(options.startClosed === true ? { startClosed: true } : {})
  })

/** A socket that forwards everything to a partysocket; subclasses intercept what they test. */
export class ForwardingSocket implements SocketLike {
  readonly inner: PartySocket
  constructor(inner: PartySocket) {
    this.inner = inner
  }
  get readyState() {
    return this.inner.readyState
  }
  get url() {
    return this.inner.url
  }
  // the cache key follows the partysocket's location
  get host() {
    return this.inner.host
  }
  get name() {
    return this.inner.name
  }
  get room() {
    return this.inner.room
  }
  send(data: string) {
    this.inner.send(data)
  }
  addEventListener(type: "open" | "close" | "message" | "error", listener: (event: any) => void) {
    this.inner.addEventListener(type, listener)
  }
  removeEventListener(type: "open" | "close" | "message" | "error", listener: (event: any) => void) {
    this.inner.removeEventListener(type, listener)
  }
}

/** Forwards to a partysocket, except that while `hold` is set, Action frames are kept back until `release()`. */
export class GatedSocket extends ForwardingSocket {
  hold = false
  readonly held: Array<string> = []
  override send(data: string) {
    if (this.hold && data.includes(`"_tag":"Push"`)) this.held.push(data)
    else this.inner.send(data)
  }
  release() {
    this.hold = false
    for (const frame of this.held.splice(0)) this.inner.send(frame)
  }
}

/** Waits until a partysocket is open. */
export const opened = (socket: PartySocket) =>
  eventually(() => (socket.readyState === 1 ? true : undefined), { what: "socket open" })

/** The texts of records, in snapshot order. */
export const texts = (rows: ReadonlyArray<ReadonlyArray<unknown>>) => rows.map((r) => r[1])
/** The ids of records, sorted. */
export const ids = (rows: ReadonlyArray<ReadonlyArray<unknown>>) => rows.map((r) => String(r[0])).sort()
