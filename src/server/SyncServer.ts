/**
 * SyncServer: a partyserver `Server` that keeps its channel tables in sync
 * with every connected client. Subclasses declare `channels`, create their
 * tables (migrations, the constructor or `onStart`) and declare either
 * `handlers` (one per channel) or `onAction`, as Effect programs or
 * seed-style (array, cursor or Promise).
 *
 * Inside, one ManagedRuntime per object runs the services wired by
 * `src/layers/SyncLayer.ts` over the object's SQLite.
 *
 * Changes are published when no transaction can be open: after each action,
 * and after each event the object handles (a request, an alarm, a WebSocket
 * message or close). While a storage transaction is open the runtime holds
 * every other event back, so an event boundary never sees uncommitted rows.
 * Timers are not held back, which is why nothing is published from a timer.
 * A method called over RPC is not an event partyserver routes through us:
 * call `publishChanges()` at its end (or write through `runEffect`), else
 * its rows go out with the next event.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import type { SqlClient } from "effect/sql"
import { type Connection, type ConnectionContext, Server, type WSMessage } from "partyserver"
import * as ServerLayer from "../layers/ServerLayer.ts"
import type * as Channel from "../protocol/Channel.ts"
import type { NotAuthorized } from "../protocol/Errors.ts"
import { encodeServerFrame } from "../protocol/Protocol.ts"
import { Authorizer } from "../services/ActionHandler.ts"
import type { CallerShape } from "../services/Caller.ts"
import * as Handlers from "../services/Handlers.ts"
import type { SyncConnection } from "../services/Connections.ts"
import { type LimitCounts, Limits } from "../services/Limits.ts"
import { type GcResult, type InstallReport, Reconciliation } from "../services/Reconciliation.ts"
import type { MigrationRecord } from "../services/Migrations.ts"
import { Storage, type StorageUsage } from "../services/Storage.ts"
import { defaultOptions, type SyncOptions } from "../services/SyncConfig.ts"
import { type ReadRule, type ReadRules, Views } from "../services/Views.ts"
import { LiveSockets } from "./LiveSockets.ts"
import { ObjectRuntime } from "./ObjectRuntime.ts"
import { adapt, encodeGrant, GRANT_HEADER, idsOfFrame, refuseSocket, stateOf } from "./Sockets.ts"

/** What `authorizeConnection` grants; `P` is the server's principal type. */
export interface Grant<P = unknown> {
  /**
   * Who is connected; handed to `authorizeAction` and to handlers as the
   * caller's principal. It must survive JSON: it travels in a header and is
   * kept in the socket's attachment.
   */
  readonly principal: P
  /**
   * A read-only connection may subscribe but not act: each action it sends
   * is refused with `SyncRefused { reason: "ReadOnly" }` (its decided outcome;
   * no handler runs). A string makes it read-only and is the refusal's
   * message, which the user sees.
   */
  readonly readOnly?: boolean | string
}

/**
 * A partyserver Server that syncs its channel tables to clients.
 * `Env` is the worker environment, `C` the union of its channels, `R` the
 * services its `layer` adds for handlers and `P` the principal
 * `authorizeConnection` grants (the `caller.principal` handlers see).
 */
export abstract class SyncServer<
  Env extends Cloudflare.Env = Cloudflare.Env,
  C extends Channel.Any = Channel.Any,
  R = never,
  P = unknown
> extends Server<Env> {
  static override options = { hibernate: true }

  /** The channels this object serves; each is backed by its table. */
  abstract readonly channels: ReadonlyArray<C>

  /** Tunables (GC retention, frame and in-flight limits, synchronous handlers). */
  readonly syncOptions: Partial<SyncOptions> = {}

  /** Services `onAction` may use besides SqlClient, Storage and Caller (declare them as the third type parameter). */
  readonly layer: Layer.Layer<R, unknown, SqlClient.SqlClient | Storage> | undefined = undefined

  /**
   * The object's table migrations, keyed `"<n>_<name>"`: run on wake, before
   * change capture, pending ones in one transaction. A failure leaves the
   * object answering `Unavailable` with the reason until a later event
   * migrates it.
   */
  readonly migrations: MigrationRecord | undefined = undefined

  /**
   * One handler per channel, each typed by its channel's action Schema:
   * `readonly handlers: Handlers<typeof cards | typeof comments, User> = { cards: (action, caller) => ..., comments: ... }`.
   * Declare this or `onAction`, not both (the server would not start).
   */
  declare readonly handlers?: Handlers.Handlers<C, P, R>

  /**
   * Read rules per channel: who may subscribe (`authorize`) and which rows
   * each subscription sees (`read`, a `Rule` of the principal and the
   * subscription's params). A channel left out is read whole by every
   * connection. Declared once, used by every path: sync answers, live
   * changes, an action's reply rows. After a principal's access changes,
   * call `refreshAccess`.
   */
  declare readonly views?: ReadRules<C, P>

  /**
   * The seed's single handler, for every channel (declare this or
   * `handlers`). Runs an action in a transaction; returns the changed rows.
   * Fail with `ActionRejected` to refuse it (the client sees your message),
   * or with anything else (or throw) when it breaks. `caller` is also in the
   * Effect's context as the `Caller` service.
   */
  onAction?(channel: C["name"], action: Channel.ActionOf<C>, caller: CallerShape<P>): Handlers.ActionResult<R>

  /**
   * Decides whether a WebSocket may connect, and as whom: fail with
   * `NotAuthorized` to refuse it (the client sees why), or grant a
   * principal, read-only or not. The default grants every connection the
   * principal null: override it when you declare `P`.
   */
  authorizeConnection(_request: Request): Effect.Effect<Grant<P>, NotAuthorized> {
    return Effect.succeed({ principal: null as P })
  }

  /** Decides whether a connection's principal may run an action; the refusal is final for that action. */
  authorizeAction(_principal: P, _channel: C["name"], _action: Channel.ActionOf<C>): Effect.Effect<void, NotAuthorized> {
    return Effect.void
  }

  /** The services, started behind the guard of every entry point. */
  readonly #services = new ObjectRuntime<R>({
    build: () => this.#build(),
    migrations: () => this.migrations,
    initialize: () => this.__unsafe_ensureInitialized(),
    sockets: () => this.getConnections(),
    started: () => this.#scheduleGc()
  })
  readonly #adapters = new WeakMap<Connection, SyncConnection>()
  /** Sockets whose frames partyserver let through in this wake (an instance lives one wake). */
  readonly #checked = new WeakSet<object>()
  /** The open connections (built once per wake, then kept up to date) and their caps. */
  readonly #sockets = new LiveSockets(() => Array.from(this.getConnections(), (c) => this.#adapt(c)), (c) => this.#services.dispatch?.closed(c))

  /** What the last start of the services did (migrations run, history) and cost (rows read and written); undefined before the first. */
  get installation(): (InstallReport & { readonly migrated: ReadonlyArray<readonly [number, string]> }) | undefined {
    return this.#services.installation
  }

  #adapt(connection: Connection): SyncConnection {
    let adapter = this.#adapters.get(connection)
    if (adapter === undefined) this.#adapters.set(connection, (adapter = adapt(connection)))
    return adapter
  }

  #build() {
    return ManagedRuntime.make(ServerLayer.make<R>({
      storage: this.ctx.storage,
      connections: () => this.#sockets.all(),
      channels: this.channels,
      options: { ...defaultOptions, ...this.syncOptions },
      app: this.layer,
      handler: Handlers.layer<R>(this.channels, {
        handlers: this.handlers as Handlers.Declared["handlers"],
        onAction: this.onAction === undefined ? undefined : this.onAction.bind(this)
      }, `SyncServer ${this.constructor.name}`),
      authorizer: Authorizer.layerFrom((principal, channel, action) =>
        this.authorizeAction(principal as P, channel as C["name"], action as Channel.ActionOf<C>)
      ),
      views: this.views === undefined ? Views.layerNone : Views.layerFrom(this.views as Readonly<Record<string, ReadRule | undefined>>)
    }))
  }

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    // The start guard: no event (a request, a message, a close, an alarm, an RPC call) reaches the object
    // before the migrations, your onStart and capture have run. A failure is kept: each entry point then
    // answers "unavailable" and tries again. The first await lets the subclass's fields be set.
    void ctx.blockConcurrencyWhile(async () => {
      await null
      await this.#services.start()
    })
  }

  async #scheduleGc() {
    const interval = this.syncOptions.gcIntervalMs ?? defaultOptions.gcIntervalMs
    if (interval <= 0) return
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + interval)
  }

  /**
   * Rows read and written by the library's statements (your `onAction`'s
   * through Storage or SqlClient included) since the services started, as
   * Cloudflare bills them; undefined before they start.
   */
  storageUsage(): StorageUsage | undefined {
    return this.#services.active?.runSync(Storage.use((s) => Effect.sync(() => s.usage())))
  }

  /** How often each limit was hit since the services started (each hit is also logged); undefined before they start. */
  limits(): LimitCounts | undefined {
    return this.#services.active?.runSync(Limits.use((l) => Effect.sync(() => l.counts())))
  }

  /** Runs an Effect with this object's services, then publishes any rows it changed. */
  async runEffect<A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | Storage | Reconciliation | R>): Promise<A> {
    await this.#services.ready()
    const runtime = this.#services.runtime!
    return runtime.runPromise(
      Effect.gen(function*() {
        const value = yield* effect
        yield* Reconciliation.use((r) => r.flush)
        return value
      })
    )
  }

  /**
   * Publishes rows committed outside `onAction`. The library calls it after
   * every request, alarm and WebSocket close; call it at the end of a method
   * reached over RPC that wrote rows, and never inside an open transaction.
   */
  publishChanges(): Promise<void> {
    return this.runEffect(Effect.void)
  }

  /**
   * Tells the server that the access of some principals changed (a
   * membership row was written, a role revoked): the read rules of their
   * connections' subscriptions are computed again, and each subscription
   * whose rows change is resynced: its client gets the rows it may now see
   * and loses those it may not, without a reset. `match` picks the
   * principals (default: every connection). Resolves with the number of
   * subscriptions resynced.
   */
  refreshAccess(match?: (principal: P) => boolean): Promise<number> {
    return this.runEffect(Reconciliation.use((r) => r.refreshAccess(match as ((principal: unknown) => boolean) | undefined)))
  }

  /** Removes tombstones and log entries older than the retention now; clients with older cursors will get a reset. */
  collectGarbage(now = Date.now()): Promise<GcResult> {
    return this.runEffect(Reconciliation.use((r) => r.gc(now)))
  }

  override async fetch(request: Request): Promise<Response> {
    // migrations and capture come before any handler of yours reads a table
    const unavailable = await this.#services.start()
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      if (unavailable !== undefined) return new Response(unavailable, { status: 503 })
      const response = await super.fetch(request)
      // onRequest may have written rows with raw SQL
      await this.publishChanges().catch((error) => console.error("effect-partysync: publishing changes failed", error))
      return response
    }
    const headers = new Headers(request.headers)
    headers.delete(GRANT_HEADER)
    const outcome = await Effect.runPromise(Effect.result(Effect.suspend(() => this.authorizeConnection(request))))
    if (outcome._tag === "Failure") return refuseSocket(outcome.failure as NotAuthorized)
    const place = this.#sockets.admit(outcome.success.principal, { ...defaultOptions, ...this.syncOptions }, (kind, principal) =>
      this.#services.runtime?.runSync(Limits.use((l) => Effect.sync(() => l.hit(kind, { principal })))))
    if (place instanceof Response) return place
    headers.set(GRANT_HEADER, encodeGrant(outcome.success))
    return super.fetch(new Request(request, { headers })).finally(place)
  }

  override onConnect(connection: Connection, ctx: ConnectionContext): void {
    const state = stateOf(ctx.request.headers.get(GRANT_HEADER))
    connection.setState(state)
    this.#sockets.opened(this.#adapt(connection), state.principal)
  }

  // frames still on their way from a connection closed for abuse are dropped before partyserver reads its attachment
  override webSocketMessage(ws: WebSocket, message: WSMessage): Promise<void> {
    const adapter = this.#adapters.get(ws as unknown as Connection)
    if (adapter !== undefined && this.#services.dispatch?.dropped(adapter) === true) return Promise.resolve()
    // partyserver deserializes the socket's whole attachment on every frame to tell its sockets from others, which
    // cost about 100 µs a frame in workerd; a socket it let through in this wake passed that check, on a server it had
    // initialized, and is its connection object already
    if (this.#checked.has(ws)) return this.onMessage(ws as unknown as Connection, message)
    return super.webSocketMessage(ws, message)
  }

  override async onMessage(connection: Connection, message: WSMessage): Promise<void> {
    this.#checked.add(connection)
    // partyserver does not await this promise: every failure is answered or logged here
    // the dispatch is set once the services started and cleared when they stop or fail to start
    let unavailable = this.#services.dispatch === undefined ? await this.#services.start() : undefined
    // a restartSync or dispose may be under way: its services are not there to dispatch to yet
    if (unavailable === undefined && this.#services.dispatch === undefined) unavailable = "the sync server is restarting"
    if (unavailable !== undefined) {
      // the services could not start (a migration failed, a table is missing): answer this frame, by its request id
      const ids = idsOfFrame(message)
      this.#adapt(connection).send(encodeServerFrame({ _tag: "Failure", requestId: null, ...ids, reason: "Unavailable", message: unavailable }))
      return
    }
    // deliver never fails (refusals are answered, the rest is logged); the frame's work is done in its turn
    const fiber = this.#services.runtime!.runFork(this.#services.dispatch!.deliver(this.#adapt(connection), message))
    if (fiber.pollUnsafe() === undefined) await new Promise<void>((resolve) => fiber.addObserver(() => resolve()))
  }

  /** partyserver's RPC entry (`getServerByName`): behind the start guard like every other. */
  override async setName(name: string, props?: Record<string, unknown>): Promise<void> {
    await super.setName(name, props)
    await this.#services.start()
  }

  // Runs the subclass's onClose once the object started, then publishes what it wrote.
  override async webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): Promise<void> {
    this.#forget(ws)
    const unavailable = await this.#services.start()
    if (unavailable !== undefined) {
      // your onClose would find the tables unmigrated: the socket is closed all the same
      console.error(`effect-partysync: onClose skipped: ${unavailable}`)
      try {
        ws.close(code === 1005 || code === 1006 || code === 1015 ? 1011 : code, reason)
      } catch {
        // closed already
      }
      return
    }
    await super.webSocketClose(ws, code, reason, wasClean)
    await this.publishChanges().catch((error) => console.error("effect-partysync: publishing changes failed", error))
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    this.#forget(ws)
    await this.#services.start()
    await super.webSocketError(ws, error)
  }

  #forget(ws: WebSocket) {
    const adapter = this.#adapters.get(ws as unknown as Connection)
    if (adapter !== undefined) this.#sockets.closed(adapter)
  }

  /**
   * Runs once the object started: the subclass's onAlarm first, then
   * publishes what it wrote and collects garbage. The GC alarm is armed again
   * even when onAlarm throws (its error is then rethrown, so the runtime
   * retries the alarm); a start that fails throws too.
   */
  override async alarm(): Promise<void> {
    const unavailable = await this.#services.start()
    if (unavailable !== undefined) throw new Error(unavailable)
    let failure: { readonly error: unknown } | undefined
    try {
      await super.alarm()
    } catch (error) {
      failure = { error }
    }
    const interval = this.syncOptions.gcIntervalMs ?? defaultOptions.gcIntervalMs
    try {
      if (interval > 0) await this.collectGarbage()
      else await this.publishChanges()
    } finally {
      if (interval > 0) await this.#scheduleGc()
    }
    if (failure !== undefined) throw failure.error
  }

  /**
   * Starts the services again from what storage holds now. Call it after
   * `ctx.storage.deleteAll()` (once your tables exist again): a new history
   * begins and every client resets.
   */
  async restartSync(): Promise<void> {
    await this.dispose()
    await this.#services.ready()
  }

  /** Closes the services (layer finalizers run). */
  async dispose(): Promise<void> {
    await this.#services.dispose()
  }
}
