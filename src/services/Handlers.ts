/**
 * Handlers: how an app's code runs the actions of its channels, typed per
 * channel. A server (a `SyncServer` subclass or a `TestServer`) declares
 * either `handlers`, one function per channel that gets that channel's
 * action type, or the seed's single `onAction(channel, action)`; this module
 * checks which one it got and turns it into the `ActionHandler` service.
 *
 * Exactly one of the two: with both, one would silently never run, so the
 * server refuses to start (`ServerDefinitionError`), as it does with neither,
 * with a `handlers` that misses a declared channel or names one that is not.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { SqlClient } from "effect/sql"
import type * as Channel from "../protocol/Channel.ts"
import { ActionHandler, type HandlerRows } from "./ActionHandler.ts"
import type { Caller, CallerShape } from "./Caller.ts"
import type { Storage } from "./Storage.ts"

/**
 * The rows a handler returns: tuples, objects (by column name), a SQL
 * cursor, or nothing. An array may mix tuples and objects: a `sql` statement
 * returned where these rows are expected is typed with the union of both.
 */
export type ActionRows = HandlerRows | ReadonlyArray<ReadonlyArray<unknown> | Record<string, unknown>>

/**
 * What a handler returns: an Effect (with `SqlClient`, `Storage`, `Caller`
 * and the app's own services `R` in context), or partysync-style the rows
 * themselves, a SQL cursor or a Promise of them.
 */
export type ActionResult<R = never> =
  | Effect.Effect<ActionRows, unknown, SqlClient.SqlClient | Storage | Caller | R>
  | Promise<ActionRows>
  | ActionRows

/** Runs one decoded action of channel `Ch`, sent by a connection whose principal is a `P`. */
export type Handler<Ch extends Channel.Any, P = unknown, R = never> = (
  action: Channel.ActionOf<Ch>,
  caller: CallerShape<P>
) => ActionResult<R>

/**
 * One handler per channel of `C` (a union of channels), keyed by channel
 * name: `{ cards: (action, caller) => ..., comments: ... }`. Each gets its
 * own channel's action type; a missing or unknown channel does not compile.
 */
export type Handlers<C extends Channel.Any, P = unknown, R = never> = {
  readonly [Name in C["name"]]: Handler<Extract<C, { readonly name: Name }>, P, R>
}

/** The seed's single handler: the channel's name, the action (any channel's) and who sent it. */
export type OnAction<C extends Channel.Any, P = unknown, R = never> = (
  channel: C["name"],
  action: Channel.ActionOf<C>,
  caller: CallerShape<P>
) => ActionResult<R>

/** A server's declaration does not say how to run its actions; the message says what to change. */
export class ServerDefinitionError extends Schema.TaggedError<ServerDefinitionError>()("ServerDefinitionError", {
  message: Schema.String
}) {}

/** A handler's result as an Effect: a Promise is awaited (a rejection is its failure), rows are taken as they are. */
export const toEffect = <R>(result: ActionResult<R>): Effect.Effect<HandlerRows, unknown, SqlClient.SqlClient | Storage | Caller | R> => {
  // toRows lays out each row by its own shape, so a mixed array is as good as HandlerRows
  if (Effect.isEffect(result)) return result as Effect.Effect<HandlerRows, unknown, SqlClient.SqlClient | Storage | Caller | R>
  if (result instanceof Promise) return Effect.tryPromise({ try: () => result as Promise<HandlerRows>, catch: (e) => e })
  return Effect.succeed(result as HandlerRows)
}

type Untyped = (...args: ReadonlyArray<never>) => unknown
type AnyHandler = (action: unknown, caller: CallerShape) => ActionResult<unknown>
type AnyOnAction = (channel: string, action: unknown, caller: CallerShape) => ActionResult<unknown>

/** Which of the two a server declared; both fields are whatever the declaration holds, checked by `layer`. */
export interface Declared {
  readonly handlers?: Readonly<Record<string, Untyped>> | undefined
  readonly onAction?: Untyped | undefined
}

/** The onAction-shaped function of a declaration, or why it has none. */
export const resolve = (
  channels: ReadonlyArray<Channel.Any>,
  declared: Declared,
  owner: string
): AnyOnAction | ServerDefinitionError => {
  const { handlers, onAction } = declared
  const refuse = (why: string) => new ServerDefinitionError({ message: `${owner}: ${why}` })
  if (handlers !== undefined && onAction !== undefined) {
    return refuse("declare either `handlers` (one function per channel) or `onAction`, not both")
  }
  if (onAction !== undefined) return onAction as unknown as AnyOnAction
  if (handlers === undefined || handlers === null || typeof handlers !== "object") {
    return refuse("declare `handlers` (one function per channel) or `onAction`")
  }
  const names = new Set(channels.map((c) => c.name))
  for (const name of names) {
    if (typeof handlers[name] !== "function") return refuse(`\`handlers\` has no function for channel ${JSON.stringify(name)}`)
  }
  for (const key of Object.keys(handlers)) {
    if (!names.has(key)) return refuse(`\`handlers.${key}\` is not a declared channel (channels: ${[...names].join(", ")})`)
  }
  const byName = handlers as Readonly<Record<string, AnyHandler>>
  // called on the object, so a handler written as a method keeps its `this`
  return (channel, action, caller) => byName[channel]!(action, caller)
}

/**
 * The ActionHandler of a declaration (`handlers` or `onAction`); building it
 * fails with `ServerDefinitionError` when the declaration has neither, both,
 * or a `handlers` that does not match `channels`. It runs with the services
 * the Layer is built with (SqlClient, Storage, the app's own).
 */
export const layer = <R>(
  channels: ReadonlyArray<Channel.Any>,
  declared: Declared,
  owner: string
): Layer.Layer<ActionHandler, ServerDefinitionError, Exclude<R, Caller> | SqlClient.SqlClient | Storage> =>
  Layer.unwrap(Effect.suspend(() => {
    const onAction = resolve(channels, declared, owner)
    if (onAction instanceof ServerDefinitionError) return Effect.fail(onAction)
    return Effect.succeed(
      ActionHandler.layerFrom((channel, action, caller) =>
        toEffect(onAction(channel, action, caller) as ActionResult<R>)
      )
    )
  }))
