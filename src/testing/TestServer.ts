/**
 * A sync server's real dispatch path in Node, for unit tests of handlers:
 * frames go through `ActionDispatch` exactly as in a Durable Object (frame
 * and action Schemas, the authorizer, the transaction, rollback, the client
 * ledger, typed refusals), over node:sqlite and in-memory connections. Only
 * the socket and partyserver are left out.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { SqlClient } from "effect/sql"
import type * as Channel from "../protocol/Channel.ts"
import { fromFailure, type NotAuthorized, type SendError } from "../protocol/Errors.ts"
import { decodeServerMessage, encodeClientMessage, type ServerMessage, subOf, type WireRow } from "../protocol/Protocol.ts"
import { ActionDispatch } from "../services/ActionDispatch.ts"
import { type ActionHandler, Authorizer } from "../services/ActionHandler.ts"
import { initialState } from "../services/Connections.ts"
import * as Handlers from "../services/Handlers.ts"
import type { MigrationRecord } from "../services/Migrations.ts"
import { Reconciliation } from "../services/Reconciliation.ts"
import { Storage } from "../services/Storage.ts"
import type { ReadRule, ReadRules } from "../services/Views.ts"
import type { SyncOptions } from "../services/SyncConfig.ts"
import { layerTest } from "./index.ts"
import { makeMemoryConnection, type MemoryConnection } from "./MemoryConnections.ts"

/**
 * What a test server runs: the same hooks as a `SyncServer` subclass, with
 * either `handlers` (one per channel) or `onAction`.
 */
export type TestServerOptions<C extends Channel.Any, R = never, P = unknown> =
  & TestServerHooks<C, R, P>
  & (
    | {
      /** As `SyncServer.handlers`: one handler per channel (the same object can serve both). */
      readonly handlers: Handlers.Handlers<C, P, R>
      readonly onAction?: undefined
    }
    | {
      /** As `SyncServer.onAction`. */
      readonly onAction: Handlers.OnAction<C, P, R>
      readonly handlers?: undefined
    }
  )

/** The hooks of a test server other than its handlers. */
export interface TestServerHooks<C extends Channel.Any, R = never, P = unknown> {
  readonly channels: ReadonlyArray<C>
  /**
   * The principal's Schema: it types `connect`, `authorizeAction` and the
   * handlers' `caller.principal`, and `connect` checks its principal with it.
   * Without it the principal is typed by `authorizeAction`'s, or `unknown`.
   */
  readonly principal?: Schema.Schema<P> | undefined
  /** As `SyncServer.authorizeAction` (default: allow). */
  readonly authorizeAction?: ((principal: P, channel: C["name"], action: Channel.ActionOf<C>) => Effect.Effect<void, NotAuthorized>) | undefined
  /** The channels' read rules, as `SyncServer.views`. */
  readonly views?: ReadRules<C, P> | undefined
  /** Your own services for `onAction`, as `SyncServer.layer`. */
  readonly layer?: Layer.Layer<R, never, SqlClient.SqlClient | Storage> | undefined
  readonly migrations?: MigrationRecord | undefined
  /** Statements that create tables, if not done by migrations. */
  readonly setup?: ReadonlyArray<string> | undefined
  readonly syncOptions?: Partial<SyncOptions> | undefined
}

/** A connection to a test server. */
export interface TestConnection<C extends Channel.Any> {
  /** Pushes an action of `channel` the way a client does; succeeds with the rows it wrote in its channel, fails with the typed refusal. */
  readonly send: <Name extends C["name"]>(
    channel: Name,
    action: Channel.ActionOf<Extract<C, { readonly name: Name }>>
  ) => Effect.Effect<ReadonlyArray<WireRow>, SendError>
  /**
   * Subscribes from no cursor, as a client does (with the channel's params,
   * if it takes any), and succeeds with the rows of the answer: what this
   * connection may read. Fails with the typed refusal.
   */
  readonly subscribe: <Name extends C["name"]>(
    channel: Name,
    ...params: undefined extends Channel.ParamsOf<Extract<C, { readonly name: Name }>> ? [params?: Channel.ParamsOf<Extract<C, { readonly name: Name }>>]
      : [params: Channel.ParamsOf<Extract<C, { readonly name: Name }>>]
  ) => Effect.Effect<ReadonlyArray<WireRow>, SendError>
  /** Sends any frame (text, as on the wire) and returns the frames it produced. */
  readonly sendFrame: (frame: string) => Effect.Effect<ReadonlyArray<ServerMessage>>
  /** Every frame this connection was sent, decoded. */
  readonly frames: () => ReadonlyArray<ServerMessage>
  readonly clientId: string
}

/** How a test connection is granted, besides its principal (as `SyncServer`'s `Grant`). */
export interface ConnectOptions {
  /** Refuse its actions with `ReadOnly`; a string is the refusal's message. */
  readonly readOnly?: boolean | string
}

/** `connect`'s arguments: the principal may be left out when null is one. */
export type ConnectArgs<P> = null extends P ? [principal?: P, options?: ConnectOptions] : [principal: P, options?: ConnectOptions]

/** A test server. */
export interface TestServer<C extends Channel.Any, P = unknown> {
  /** Opens a connection whose principal is `principal` (what `authorizeConnection` would grant; default null). */
  readonly connect: (...args: ConnectArgs<P>) => TestConnection<C>
  /** Runs statements or reads rows in the server's database. */
  readonly storage: Effect.Effect<Storage["Service"]>
  /** As `SyncServer.refreshAccess`: computes the views of matching principals' connections again; succeeds with how many were resynced. */
  readonly refreshAccess: (match?: (principal: P) => boolean) => Effect.Effect<number>
}

const decode = (frames: ReadonlyArray<string>): Array<ServerMessage> =>
  frames.flatMap((frame): Array<ServerMessage> => {
    const exit = decodeServerMessage(frame)
    if (Exit.isFailure(exit)) throw new Error(`effect-partysync/testing: a frame does not decode: ${frame.slice(0, 200)}`)
    return exit.value._tag === "Pushed" ? [...(exit.value.changes ?? []), exit.value] : [exit.value]
  })

/**
 * Starts a test server for the length of the Scope. Fails with
 * `ServerDefinitionError` when `handlers` does not match `channels` (or
 * neither or both of `handlers` and `onAction` are given).
 */
export const make = <C extends Channel.Any, R = never, P = unknown>(
  options: TestServerOptions<C, R, P>
): Effect.Effect<TestServer<C, P>, Handlers.ServerDefinitionError, Scope.Scope> =>
  Effect.gen(function*() {
    const connections: Array<MemoryConnection> = []
    // checked here, so that a bad declaration fails as itself rather than inside the services' build
    const declared = Handlers.resolve(options.channels, options as Handlers.Declared, "TestServer")
    if (declared instanceof Handlers.ServerDefinitionError) return yield* declared
    const handler = Handlers.layer<R>(options.channels, options as Handlers.Declared, "TestServer").pipe(
      Layer.orDie,
      Layer.provide(options.layer ?? (Layer.empty as unknown as Layer.Layer<R, never, SqlClient.SqlClient | Storage>))
    )
    const authorize = options.authorizeAction
    const authorizer = authorize === undefined
      ? Authorizer.layerAllowAll
      : Authorizer.layerFrom((principal, channel, action) => authorize(principal as P, channel as C["name"], action as Channel.ActionOf<C>))
    const context = yield* Layer.build(layerTest({
      channels: options.channels,
      handler: handler as Layer.Layer<ActionHandler, never, SqlClient.SqlClient | Storage>,
      authorizer,
      setup: options.setup,
      migrations: options.migrations,
      connections,
      options: options.syncOptions,
      views: options.views as Readonly<Record<string, ReadRule | undefined>> | undefined
    }))
    const dispatch = Context.get(context, ActionDispatch)
    let opened = 0
    const check = options.principal === undefined ? undefined : Schema.decodeUnknownExit(Schema.toType(options.principal))
    const connect = (principal: unknown = null, connectOptions: ConnectOptions = {}): TestConnection<C> => {
      const checked = check?.(principal)
      if (checked !== undefined && Exit.isFailure(checked)) {
        throw new TypeError(`effect-partysync/testing: connect's principal does not match the principal Schema: ${Cause.pretty(checked.cause)}`)
      }
      const id = `test-${++opened}`
      const connection = makeMemoryConnection(id, { ...initialState, principal, readOnly: connectOptions.readOnly ?? false })
      connections.push(connection)
      const clientId = `${id}-client`
      const clientKey = `${clientId}-key-0123456789`
      let seq = 0
      const sendFrame = (frame: string) =>
        Effect.suspend(() => {
          const before = connection.sent.length
          return Effect.map(dispatch.receive(connection, frame), () => decode(connection.sent.slice(before)))
        })
      const send = (channel: C["name"], action: Channel.ActionOf<C>): Effect.Effect<ReadonlyArray<WireRow>, SendError> =>
        Effect.suspend(() => {
          const at = ++seq
          const frame = encodeClientMessage({ _tag: "Push", channel, clientId, clientKey, actions: [{ seq: at, action }], confirmed: at - 1 })
          return Effect.flatMap(sendFrame(frame), (frames) => {
            for (const m of frames) {
              if (m._tag === "Failure" && m.clientId === clientId) return Effect.fail(fromFailure(m))
              if (m._tag !== "Pushed" || m.clientId !== clientId) continue
              const result = m.results.find((r) => r.seq === at)
              if (result === undefined) continue
              if ("reason" in result) return Effect.fail(fromFailure(result))
              const chunks = frames.flatMap((f) => f._tag === "ResultRows" && f.clientId === clientId && f.seq === at ? f.rows : [])
              return Effect.succeed([...chunks, ...result.rows])
            }
            return Effect.die(new Error(`effect-partysync/testing: no reply to action ${at} of ${clientId}`))
          })
        })
      const subscribe = (channel: C["name"], params?: unknown): Effect.Effect<ReadonlyArray<WireRow>, SendError> =>
        Effect.suspend(() => {
          const declared = options.channels.find((c) => c.name === channel)
          const encoded = declared?.params === undefined || params === undefined ? params : Schema.encodeUnknownSync(declared.params)(params)
          const sub = subOf(channel, encoded)
          const frame = encodeClientMessage({ _tag: "Subscribe", channel, since: null, ...(encoded === undefined ? {} : { sub, params: encoded }) })
          return Effect.flatMap(sendFrame(frame), (frames) => {
            const mine = frames.filter((m) => "channel" in m && m.channel === channel && ((m as { sub?: string }).sub ?? channel) === sub)
            const failure = mine.find((m) => m._tag === "Failure")
            if (failure !== undefined && failure._tag === "Failure") return Effect.fail(fromFailure(failure))
            return Effect.succeed(mine.flatMap((m) => (m._tag === "SyncRows" ? m.rows : [])))
          })
        })
      return { send, subscribe: subscribe as TestConnection<C>["subscribe"], sendFrame, frames: () => decode(connection.sent), clientId }
    }
    const reconciliation = Context.get(context, Reconciliation)
    return {
      connect: connect as TestServer<C, P>["connect"],
      storage: Effect.succeed(Context.get(context, Storage)),
      refreshAccess: (match) => reconciliation.refreshAccess(match as ((principal: unknown) => boolean) | undefined)
    }
  })
