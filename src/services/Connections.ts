/**
 * The live connections of one Durable Object, as the services see them. The
 * server adapts partyserver's connections to this; unit tests use the
 * in-memory ones of `effect-partysync/testing`. Connection state lives in the socket's attachment, so it
 * survives hibernation.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"

/**
 * A subscription with params or a read rule: its name on the socket
 * (`subOf`, which holds its channel and its encoded params) and the hash of
 * the rule the client's rows were sent under ("" without a rule).
 */
export type Subscription = readonly [sub: string, hash: string]

/** What the library remembers about a connection (in its socket's attachment, which holds 2 KB at most). */
export interface ConnectionState {
  /** Channels the connection receives whole (no params, no read rule). */
  readonly channels: ReadonlyArray<string>
  /** Subscriptions with params or a read rule. */
  readonly subs?: ReadonlyArray<Subscription> | undefined
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

/**
 * True when no other connection is open in the object: nobody's frames wait
 * for the turns this connection's work would give away.
 */
export const isAlone = (connections: Connections["Service"], connection: SyncConnection): boolean => {
  for (const other of connections.all()) if (other !== connection) return false
  return true
}

/** Where the services find the connections. */
export class Connections extends Context.Service<Connections, {
  readonly all: () => Iterable<SyncConnection>
}>()("effect-partysync/Connections") {}
