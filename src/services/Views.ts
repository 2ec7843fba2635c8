/**
 * Views: each connection sees only the rows it may read. Per channel, the
 * app declares once who may subscribe (`authorize`) and which rows a
 * subscription sees (`read`: a `Rule` of the principal and the
 * subscription's params, possibly read from the app's own tables). The rule
 * compiles to SQL for sync answers and to a test for live changes
 * (`Rule.ts`); subscriptions whose rules compile to the same key share that
 * work.
 *
 * A view's cursor names its rule: its history is the feed's, a dot, and a
 * hash of the rule. A cursor taken under another rule (the principal's
 * access changed, or the app's rule did) is answered with the difference
 * from the ids the client holds, or a reset.
 *
 * @since 0.3.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { SqlClient } from "effect/sql"
import type * as Channel from "../protocol/Channel.ts"
import { hashOf } from "../protocol/Protocol.ts"
import type { NotAuthorized } from "../protocol/Errors.ts"
import type { SyncConnection } from "./Connections.ts"
import * as Rule from "./Rule.ts"
import type { Storage } from "./Storage.ts"

/** A channel's read rule, as an app declares it (`P` the principal, `Params` the channel's params). */
export interface ReadRule<P = any, Params = any> {
  /** Whether the principal may subscribe with these params; fail with `NotAuthorized` to refuse (that channel only). */
  readonly authorize?: ((principal: P, params: Params) => Effect.Effect<void, NotAuthorized, SqlClient.SqlClient | Storage>) | undefined
  /** The rows a subscription sees: a `Rule` of the principal and the params, or an Effect of one (it may read tables). */
  readonly read: (principal: P, params: Params) => Rule.Rule | Effect.Effect<Rule.Rule, unknown, SqlClient.SqlClient | Storage>
}

/**
 * The read rules of a server's channels, keyed by channel name; a channel
 * left out is read whole by every connection.
 */
export type ReadRules<C extends Channel.Any, P = unknown> = {
  readonly [Name in C["name"]]?: ReadRule<P, Channel.ParamsOf<Extract<C, { readonly name: Name }>>>
}

/** A subscription's compiled rule, and the hash its cursors carry. */
export interface View {
  readonly rule: Rule.Compiled
  readonly hash: string
}

/** A view's history: the feed's, and its rule's hash. */
export const historyOf = (feed: string, view: View): string => `${feed}.${view.hash}`

/** A read rule that could not be computed or compiled. */
export class ViewFailed extends Schema.TaggedError<ViewFailed>()("ViewFailed", {
  channel: Schema.String,
  message: Schema.String
}) {}

const paramDecoders = new WeakMap<Channel.Any, (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>>()

/**
 * A subscription's params, decoded with its channel's params Schema; a
 * channel without one takes none. The failure says why they do not match.
 */
export const decodeParams = (channel: Channel.Any, raw: unknown): Result.Result<unknown, string> => {
  const schema = channel.params
  if (schema === undefined) return raw === undefined ? Result.succeed(undefined) : Result.fail(`channel ${channel.name} takes no params`)
  let decode = paramDecoders.get(channel)
  if (decode === undefined) paramDecoders.set(channel, (decode = Schema.decodeUnknownExit(schema)))
  const exit = decode(raw)
  if (Exit.isSuccess(exit)) return Result.succeed(exit.value)
  const error = Cause.findErrorOption(exit.cause)
  return Result.fail(`the params of channel ${channel.name} do not match its params Schema: ${error._tag === "Some" ? error.value.message : "invalid"}`)
}

/** The Views interface. */
export interface ViewsShape {
  /** Whether a channel has a read rule (its subscriptions are views). */
  readonly has: (channel: string) => boolean
  /** Whether any channel has one. */
  readonly any: boolean
  /** Refuses a subscription its channel's `authorize` does not allow. */
  readonly authorize: (principal: unknown, channel: string, params: unknown) => Effect.Effect<void, NotAuthorized>
  /** The subscription's view (undefined: the channel has no rule), compiled for a table's wire columns. */
  readonly compute: (principal: unknown, channel: string, params: unknown, columns: ReadonlyArray<string>) => Effect.Effect<View | undefined, ViewFailed>
  /** The views of a connection's subscriptions, by subscription name, as last computed (gone when the object sleeps). */
  readonly of: (connection: SyncConnection) => Map<string, View>
  /** The subscriptions of a connection told to `Resync`: their next Subscribe is the server's request, not the client's. */
  readonly resyncs: (connection: SyncConnection) => Set<string>
}

const make = (rules: Readonly<Record<string, ReadRule | undefined>>, context: Context.Context<never>): ViewsShape => {
  const cache = new WeakMap<SyncConnection, Map<string, View>>()
  const asked = new WeakMap<SyncConnection, Set<string>>()
  const names = new Set(Object.keys(rules).filter((name) => rules[name] !== undefined))
  const run = <A, E>(self: Effect.Effect<A, E, any>) => Effect.provideContext(self as Effect.Effect<A, E, never>, context)
  return {
    has: (channel) => names.has(channel),
    any: names.size > 0,
    authorize: (principal, channel, params) => {
      const authorize = rules[channel]?.authorize
      return authorize === undefined ? Effect.void : run(Effect.suspend(() => authorize(principal, params)))
    },
    compute: (principal, channel, params, columns) => {
      const rule = rules[channel]
      if (rule === undefined) return Effect.succeed(undefined)
      return Effect.suspend(() => {
        const made = rule.read(principal, params)
        return Effect.isEffect(made) ? run(made) : Effect.succeed(made)
      }).pipe(
        Effect.flatMap((made) => Effect.try(() => Rule.compile(made, columns))),
        Effect.map((compiled): View => ({ rule: compiled, hash: hashOf(compiled.key) })),
        Effect.mapError((cause) =>
          new ViewFailed({ channel, message: `the read rule of channel ${channel} failed: ${cause instanceof Error ? cause.message : String(cause)}` })
        )
      )
    },
    of: (connection) => {
      let map = cache.get(connection)
      if (map === undefined) cache.set(connection, (map = new Map()))
      return map
    },
    resyncs: (connection) => {
      let set = asked.get(connection)
      if (set === undefined) asked.set(connection, (set = new Set()))
      return set
    }
  }
}

/** The Views service. */
export class Views extends Context.Service<Views, ViewsShape>()("effect-partysync/Views") {
  /** No channel has a read rule: every subscription sees its whole channel. */
  static readonly layerNone = Layer.succeed(Views, Views.of(make({}, Context.empty())))

  /** Views from an app's rules, run with the services in context (SqlClient, Storage, the app's own). */
  static readonly layerFrom = (rules: Readonly<Record<string, ReadRule | undefined>>): Layer.Layer<Views, never, SqlClient.SqlClient | Storage> =>
    Layer.effect(Views, Effect.map(Effect.context<SqlClient.SqlClient | Storage>(), (context) => Views.of(make(rules, context as Context.Context<never>))))
}
