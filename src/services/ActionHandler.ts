/**
 * The application's side of dispatch: runs an action and authorizes it.
 * The server builds these from `onAction` / `authorizeAction`; tests build
 * them directly.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Channel from "../protocol/Channel.ts"
import type { NotAuthorized } from "../protocol/Errors.ts"
import { Caller } from "./Caller.ts"
import type { WireRow } from "../protocol/Protocol.ts"

/**
 * Runs a decoded action. Called inside the action's transaction, with its
 * `Caller`; returns the rows it changed, in any shape `HandlerRows` allows.
 */
export class ActionHandler extends Context.Service<ActionHandler, {
  readonly run: (channel: Channel.Any, action: unknown) => Effect.Effect<HandlerRows, unknown, Caller>
}>()("effect-partysync/ActionHandler") {
  /**
   * A handler from an `onAction`-shaped function (`SyncServer.onAction`,
   * `TestServer`'s): it runs with the services the Layer is built with
   * (SqlClient, Storage, the app's own) and the action's `Caller`.
   */
  static readonly layerFrom = <R>(
    onAction: (channel: string, action: unknown, caller: Caller["Service"]) => Effect.Effect<HandlerRows, unknown, R>
  ): Layer.Layer<ActionHandler, never, Exclude<R, Caller>> =>
    Layer.effect(
      ActionHandler,
      Effect.gen(function*() {
        const context = yield* Effect.context<Exclude<R, Caller>>()
        return ActionHandler.of({
          run: (channel, action) =>
            Effect.flatMap(Caller, (caller) => onAction(channel.name, action, caller)).pipe(
              Effect.provideContext(context)
            ) as Effect.Effect<HandlerRows, unknown, Caller>
        })
      })
    )
}

/** Decides whether a connection's principal may run an action. */
export class Authorizer extends Context.Service<Authorizer, {
  readonly authorizeAction: (
    principal: unknown,
    channel: Channel.Any,
    action: unknown
  ) => Effect.Effect<void, NotAuthorized>
}>()("effect-partysync/Authorizer") {
  /** Allows every action. */
  static readonly layerAllowAll = Layer.succeed(Authorizer, Authorizer.of({ authorizeAction: () => Effect.void }))

  /** An authorizer from an `authorizeAction`-shaped function, called by channel name. */
  static readonly layerFrom = (
    authorize: (principal: unknown, channel: string, action: unknown) => Effect.Effect<void, NotAuthorized>
  ): Layer.Layer<Authorizer> =>
    Layer.succeed(
      Authorizer,
      Authorizer.of({ authorizeAction: (principal, channel, action) => Effect.suspend(() => authorize(principal, channel.name, action)) })
    )
}

/** What a handler may return, seed style: a SQL cursor, an array of tuples or of objects, or nothing. */
export type HandlerRows =
  | ReadonlyArray<ReadonlyArray<unknown>>
  | ReadonlyArray<Record<string, unknown>>
  | { raw(): Iterable<ReadonlyArray<unknown>> }
  | void
  | undefined
  | null

/**
 * Normalises a handler's result to wire rows. Rows as objects (SqlClient
 * results, `cursor.toArray()`) are laid out in the channel's wire order by
 * column name, so a column added by a migration lands before `deleted_at`;
 * rows as arrays are taken as they are.
 */
export const toRows = (result: HandlerRows, columns: ReadonlyArray<string>): ReadonlyArray<WireRow> => {
  if (result === undefined || result === null) return []
  if (!Array.isArray(result)) {
    if (typeof (result as { raw?: unknown }).raw === "function") {
      return Array.from((result as { raw(): Iterable<ReadonlyArray<unknown>> }).raw())
    }
    return []
  }
  return (result as ReadonlyArray<unknown>).map((row) => {
    if (Array.isArray(row)) return row
    const record = row as Record<string, unknown>
    return columns.map((column) => record[column])
  })
}
