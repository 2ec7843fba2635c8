/**
 * The live connections of one Durable Object, as the services see them. The
 * server adapts partyserver's connections to this; unit tests use an
 * in-memory list. Connection state lives in the socket's attachment, so it
 * survives hibernation.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"

/** What the library remembers about a connection. */
export interface ConnectionState {
  /** Channels the connection receives live changes for. */
  readonly channels: ReadonlyArray<string>
  /** Set by the connect hook: who is connected. */
  readonly principal: unknown
  /** A read-only connection may subscribe but not act. */
  readonly readOnly: boolean
}

/** A connection. */
export interface SyncConnection {
  readonly id: string
  /** Sends a text frame; a closed socket is ignored. */
  send(frame: string): void
  readonly state: ConnectionState
  setState(state: ConnectionState): void
}

/** The initial state of a connection. */
export const initialState: ConnectionState = { channels: [], principal: null, readOnly: false }

/** Where the services find the connections. */
export class Connections extends Context.Service<Connections, {
  readonly all: () => Iterable<SyncConnection>
}>()("effect-partysync/Connections") {
  /** Connections kept in a plain array, for unit tests. */
  static readonly layerMemory = (connections: Array<SyncConnection>) =>
    Layer.succeed(Connections, Connections.of({ all: () => connections }))
}

/** An in-memory connection that records what it was sent, for unit tests. */
export const makeMemoryConnection = (id: string, state: ConnectionState = initialState) => {
  const sent: Array<string> = []
  const connection: { id: string; sent: Array<string>; state: ConnectionState; send(frame: string): void; setState(next: ConnectionState): void } = {
    id,
    sent,
    state,
    send: (frame) => {
      sent.push(frame)
    },
    setState(next) {
      connection.state = next
    }
  }
  return connection
}
