/**
 * The socket side of SyncServer, apart from the server class: partyserver
 * connections seen as the services' `SyncConnection`, the grant of
 * `authorizeConnection` carried from the upgrade request to `onConnect`, a
 * refused socket that tells the client why, and the ids of a frame answered
 * while the services are down.
 *
 * @since 0.2.0
 */
import type { Connection, WSMessage } from "partyserver"
import { NotAuthorized } from "../protocol/Errors.ts"
import { encodeServerFrame, type ErrorReason } from "../protocol/Protocol.ts"
import { idsOf } from "../services/ActionDispatch.ts"
import { type ConnectionState, initialState, type SyncConnection } from "../services/Connections.ts"

/** The header that carries the grant from `fetch` to `onConnect`; a client's own copy is dropped first. */
export const GRANT_HEADER = "x-effect-partysync-grant"

/** The grant as the header carries it. */
export const encodeGrant = (grant: { readonly principal: unknown; readonly readOnly?: boolean | string | undefined }): string =>
  JSON.stringify({ principal: grant.principal ?? null, readOnly: grant.readOnly ?? false })

/** A connection's first state, from the grant its upgrade request carried. */
export const stateOf = (header: string | null): ConnectionState => {
  const parsed = header === null ? { principal: null, readOnly: false } : (JSON.parse(header) as { principal: unknown; readOnly: boolean | string })
  return { ...initialState, principal: parsed.principal, readOnly: parsed.readOnly }
}

/** A partyserver connection as the services see it; a send on a closed socket is dropped (the client resyncs). */
export const adapt = (connection: Connection): SyncConnection => ({
  id: connection.id,
  send: (frame) => {
    try {
      connection.send(frame)
    } catch {
      // the socket closed under us; the client resyncs from its cursor
    }
  },
  get state() {
    return (connection.state as ConnectionState | null) ?? initialState
  },
  setState: (state) => {
    connection.setState(state)
  },
  close: (code, reason) => {
    try {
      connection.close(code, reason)
    } catch {
      // closed already
    }
  }
})

/** An error's message, for a reason the client sees. */
export const describeError = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") return error.message
  return String(error)
}

/** The channel and client id of a frame, if it names them (to answer it while the services are down). */
export const idsOfFrame = (message: WSMessage): { channel: string | null; clientId?: string } => {
  if (typeof message !== "string" || message.length > 1_000_000) return { channel: null }
  try {
    return idsOf(JSON.parse(message))
  } catch {
    return { channel: null }
  }
}

/**
 * Refuses a WebSocket so that the client can tell why: a browser never sees
 * the status of a refused upgrade, so the socket is accepted, told
 * `NotAuthorized` with the reason, and closed with 4401 or 4403.
 */
export const refuseSocket = (error: NotAuthorized): Response => {
  const status = error instanceof NotAuthorized ? (error.status ?? 403) : 403
  const message = error instanceof NotAuthorized ? error.message : "not authorized"
  return refuseSocketWith("NotAuthorized", message, 4000 + status)
}

/** The close code of a socket refused over a connection cap: try again later. */
export const TRY_AGAIN_LATER = 1013

/** Accepts a WebSocket only to tell it why it is refused (a `Failure` with `reason`), then closes it with `code`. */
export const refuseSocketWith = (reason: ErrorReason, message: string, code: number): Response => {
  const pair = new WebSocketPair()
  const socket = pair[1]
  socket.accept()
  socket.send(encodeServerFrame({ _tag: "Failure", requestId: null, channel: null, reason, message }))
  socket.close(code, message.slice(0, 120))
  return new Response(null, { status: 101, webSocket: pair[0] })
}
