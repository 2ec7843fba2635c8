/**
 * Caller: who sent the action being handled. `onAction` (and any service it
 * uses) reads it from its context, so an author or an owner never has to
 * travel in the action's payload, where a client could forge it.
 *
 * The service's principal is `unknown`: a context holds one Caller whatever
 * the server's principal type. Handlers get it typed as their `caller`
 * argument; an Effect deeper down reads it typed with
 * `Caller.principal(schema)`, which checks it against the app's Schema.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"

/** Who sent the action being handled; `P` is what `authorizeConnection` grants. */
export interface CallerShape<P = unknown> {
  /** What `authorizeConnection` granted for the connection (null without authorization). */
  readonly principal: P
  /** partyserver's id of the connection (chosen by the client: not an identity). */
  readonly connectionId: string
  /** The client instance that queued the action (bound to its client key). */
  readonly clientId: string
  /** The action's sequence number for that client. */
  readonly seq: number
  readonly requestId: string
}

/** Who sent the action being handled; provided to `onAction` and to every handler. */
export class Caller extends Context.Service<Caller, CallerShape>()("effect-partysync/Caller") {
  /**
   * The caller's principal, checked against `schema` (its type side: the
   * principal is the value `authorizeConnection` granted, not an encoding of
   * it). A principal that does not match is a bug of the app's
   * (`authorizeConnection` granted something else): the handler dies, which
   * the client sees as `HandlerFailed` and the server logs.
   */
  static readonly principal = <S extends Schema.Top>(schema: S): Effect.Effect<S["Type"], never, Caller> => {
    const check = Schema.decodeUnknownExit(Schema.toType(schema))
    return Effect.flatMap(Caller, (caller) => {
      const exit = check(caller.principal)
      if (Exit.isSuccess(exit)) return Effect.succeed(exit.value)
      const issue = Cause.findErrorOption(exit.cause)
      return Effect.die(
        new TypeError(
          `effect-partysync: the caller's principal does not match the Schema given to Caller.principal: ${
            issue._tag === "Some" ? issue.value.message : "no match"
          }`
        )
      )
    })
  }
}
