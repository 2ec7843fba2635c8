/**
 * Caller: who sent the action being handled. `onAction` (and any service it
 * uses) reads it from its context, so an author or an owner never has to
 * travel in the action's payload, where a client could forge it.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"

/** Who sent the action being handled. */
export interface CallerShape {
  /** What `authorizeConnection` granted for the connection (null without authorization). */
  readonly principal: unknown
  /** partyserver's id of the connection (chosen by the client: not an identity). */
  readonly connectionId: string
  /** The client instance that queued the action (bound to its client key). */
  readonly clientId: string
  /** The action's sequence number for that client. */
  readonly seq: number
  readonly requestId: string
}

/** Who sent the action being handled; provided to `onAction`. */
export class Caller extends Context.Service<Caller, CallerShape>()("effect-partysync/Caller") {}
