/**
 * The live connections of one Durable Object, as the services see them. The
 * server adapts partyserver's connections to this; unit tests use the
 * in-memory ones of `effect-partysync/testing`. Connection state lives in the socket's attachment, so it
 * survives hibernation.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"

/** What the library remembers about a connection. */
export interface ConnectionState {
  /** Channels the connection receives live changes for. */
  readonly channels: ReadonlyArray<string>
  /** Set by the connect hook: who is connected. */
  readonly principal: unknown
  /** A read-only connection may subscribe but not act; a string is the message its actions are refused with. */
  readonly readOnly: boolean | string
}

/** A connection. */
export interface SyncConnection {
  readonly id: string
  /** Sends a text frame; a closed socket is ignored. */
  send(frame: string): void
  readonly state: ConnectionState
  setState(state: ConnectionState): void
  /** Closes the socket with a code and a reason (a connection that broke a limit). */
  close?(code: number, reason: string): void
}

/** The initial state of a connection. */
export const initialState: ConnectionState = { channels: [], principal: null, readOnly: false }

/** Where the services find the connections. */
export class Connections extends Context.Service<Connections, {
  readonly all: () => Iterable<SyncConnection>
}>()("effect-partysync/Connections") {}
