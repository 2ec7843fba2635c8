/**
 * In-memory connections for unit tests: each records the frames it was
 * sent, and `layerMemoryConnections` hands a list of them to the services.
 *
 * @since 0.2.0
 */
import * as Layer from "effect/Layer"
import { type ConnectionState, Connections, initialState, type SyncConnection } from "../services/Connections.ts"

/** An in-memory connection that records what it was sent. */
export interface MemoryConnection {
  readonly id: string
  /** Every frame sent to it, in order. */
  readonly sent: Array<string>
  state: ConnectionState
  send(frame: string): void
  setState(next: ConnectionState): void
  /** Set once the server closed it. */
  closed: { readonly code: number; readonly reason: string } | undefined
  close(code: number, reason: string): void
}

/** Makes an in-memory connection. */
export const makeMemoryConnection = (id: string, state: ConnectionState = initialState): MemoryConnection => {
  const sent: Array<string> = []
  const connection: MemoryConnection = {
    id,
    sent,
    state,
    send: (frame) => {
      sent.push(frame)
    },
    setState(next) {
      connection.state = next
    },
    closed: undefined,
    close(code, reason) {
      connection.closed ??= { code, reason }
    }
  }
  return connection
}

/** The services see exactly these connections (the array may change between calls). */
export const layerMemoryConnections = (connections: ReadonlyArray<SyncConnection>) =>
  Layer.succeed(Connections, Connections.of({ all: () => connections }))
