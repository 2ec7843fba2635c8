/**
 * ActionDispatch: one inbound frame, start to finish. It decodes the frame
 * with the Protocol Schema, looks the channel up among the declared ones,
 * and accepts it on its connection's lane (`Lanes.ts`): accepting is cheap
 * (parse, check, queue). A push is then decided in its fair turns,
 * `actionsPerTurn` actions at a time: each slice prepared in order (every
 * action decoded with its channel's Schema, upgraded from an older version,
 * authorized and bound to the handler) and decided in one transaction
 * (`Batch.ts`); one `Pushed` reply answers it. Subscribes are answered on the lane too (`Subscriptions.ts`). Bad
 * input never reaches SQL and writes nothing; a connection that keeps
 * sending it, or sends too much, is closed (`Abuse.ts`).
 *
 * `receive` ends when the frame's work has; `deliver`, which the server
 * uses, as soon as the frame is accepted: an event kept open holds up the
 * runtime's other events, and the work is done in its turn anyway.
 *
 * An action refused before it runs (not authorized, invalid, outdated, on a
 * read-only connection) is decided all the same: its refusal is its final
 * outcome, so the client's later actions are not held up behind it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Channel from "../protocol/Channel.ts"
import { ClientMessage, encodeServerFrame, type ErrorReason, type Push, type Pushed } from "../protocol/Protocol.ts"
import * as Abuse from "./Abuse.ts"
import { ActionHandler, Authorizer } from "./ActionHandler.ts"
import * as Batch from "./Batch.ts"
import { Broadcast } from "./Broadcast.ts"
import { Caller } from "./Caller.ts"
import { principalKey } from "./ClientLedger.ts"
import { Connections, isAlone, type SyncConnection } from "./Connections.ts"
import { SyncFailure } from "./Errors.ts"
import { fitsIn } from "./Frames.ts"
import * as Lanes from "./Lanes.ts"
import { Limits } from "./Limits.ts"
import { Reconciliation } from "./Reconciliation.ts"
import { fail, newerThanServer, tell as refused } from "./Refusals.ts"
import * as Subscriptions from "./Subscriptions.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"
import * as Views from "./Views.ts"

/** Best effort: the channel and client id of a frame that failed to decode, so the error can name them. */
export const idsOf = (value: unknown): { channel: string | null; clientId?: string } => {
  if (typeof value !== "object" || value === null) return { channel: null }
  const { channel, clientId } = value as Record<string, unknown>
  const named = typeof channel === "string" && channel.length <= 128 ? channel : null
  return typeof clientId === "string" && clientId.length >= 1 && clientId.length <= 128 ? { channel: named, clientId } : { channel: named }
}

/** How our encoder starts a push, and its channel and client id right after (see `overBudget`). */
const PUSH_PREFIX = `{"_tag":"Push","channel":"`
const PUSH_IDS = /^\{"_tag":"Push","channel":"([^"\\]{1,128})","clientId":"([^"\\]{1,128})","/

/** The ActionDispatch service. */
export class ActionDispatch extends Context.Service<ActionDispatch, {
  /** Handles one inbound frame. Never fails: every refusal becomes a `Failure` frame or a refused outcome. */
  readonly receive: (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView) => Effect.Effect<void>
  /**
   * The same, ending once the frame is accepted (and has run the next unit
   * in turn) rather than when its own work is done: the socket's event ends
   * early, and its answer is sent when its turn comes.
   */
  readonly deliver: (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView) => Effect.Effect<void>
  /** True once a connection was closed for abuse: its frames still on their way may be dropped without `receive`. */
  readonly dropped: (connection: SyncConnection) => boolean
  /** The socket closed: the work it queued is dropped (a client resends what was not decided). */
  readonly closed: (connection: SyncConnection) => void
}>()("effect-partysync/ActionDispatch") {
  /** ActionDispatch over Reconciliation, Broadcast and the application's handler. */
  static readonly layer = Layer.effect(ActionDispatch, Effect.suspend(() => make))
}

const make = Effect.gen(function*() {
  const channels = yield* Channels
  const config = yield* SyncConfig
  const reconciliation = yield* Reconciliation
  const broadcast = yield* Broadcast
  const handler = yield* ActionHandler
  const authorizer = yield* Authorizer
  const limits = yield* Limits
  const connections = yield* Connections
  const lanes = Lanes.make(yield* Effect.scope)
  const abuse = Abuse.make(config)
  const subscriptions = Subscriptions.make({
    channels,
    config,
    reconciliation,
    broadcast,
    limits,
    lanes,
    views: yield* Views.Views,
    alone: (connection) => isAlone(connections, connection)
  })
  // each frame decoded by its own tag's Schema: a union would try the members in turn
  const decoders = new Map<unknown, (u: unknown) => Exit.Exit<ClientMessage, Schema.SchemaError>>(
    ClientMessage.members.map((member) => [member.fields._tag.schema.literal, Schema.decodeUnknownExit(member)] as const)
  )
  const actionDecoders = new Map<string, (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>>()
  for (const channel of channels.values()) actionDecoders.set(channel.name, Schema.decodeUnknownExit(channel.action))

  const decodeFrame = (frame: string | ArrayBuffer | ArrayBufferView): ClientMessage | SyncFailure => {
    if (typeof frame !== "string") return fail("UnknownMessage", "binary frames are not part of the protocol")
    // more UTF-16 units than the limit has bytes is too large without counting
    if (frame.length > config.maxInboundFrameBytes || !fitsIn(frame, config.maxInboundFrameBytes)) return fail("FrameTooLarge", `frame exceeds ${config.maxInboundFrameBytes} bytes`)
    // parsed here rather than through a JSON-string Schema: one parse serves both the decode and the ids a
    // refusal names, without the Schema's per-call wrapper
    let json: unknown
    try {
      json = JSON.parse(frame)
    } catch {
      return fail("MalformedJson", "frame is not valid JSON")
    }
    const decode = decoders.get((json as { _tag?: unknown } | null)?._tag)
    const exit = decode === undefined ? undefined : decode(json)
    if (exit !== undefined && Exit.isSuccess(exit)) return exit.value
    const ids = idsOf(json)
    if ((json as { _tag?: unknown })?._tag === "Action") {
      // a tab of the previous release: it keeps a temporary refusal's action queued, and the reloaded app sends it
      const requestId = (json as { requestId?: unknown }).requestId
      return new SyncFailure({
        reason: "Unavailable",
        message: "this server speaks a newer protocol: reload the app (queued actions are kept)",
        requestId: typeof requestId === "string" && requestId.length <= 128 ? requestId : null,
        channel: ids.channel
      })
    }
    const error = exit === undefined ? undefined : Cause.findErrorOption(exit.cause)
    return fail("UnknownMessage", `not a valid message: ${error?._tag === "Some" ? error.value.message : "unknown shape"}`, ids.channel, ids.clientId)
  }

  // ---------------------------------------------------------------- pushes

  /** An action's refusal before it runs, or its handler bound to its Caller. */
  const prepareAction = (
    connection: SyncConnection,
    channel: Channel.Any,
    clientId: string,
    entry: Push["actions"][number]
  ): Effect.Effect<Batch.PreparedAction<never>> => {
    const { seq } = entry
    const refuse = (reason: ErrorReason, message: string) => Effect.succeed({ seq, refused: { reason, message } })
    const readOnly = connection.state.readOnly
    if (readOnly === true || typeof readOnly === "string") return refuse("ReadOnly", typeof readOnly === "string" ? readOnly : "this connection is read-only")
    let encoded = entry.action
    if (entry.schema !== undefined && entry.schema < channel.version) {
      try {
        encoded = Channel.upgradeAction(channel, entry.schema, entry.action)
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error)
        return refuse("Outdated", `this action was encoded for version ${entry.schema} of channel ${channel.name} and cannot be upgraded to ${channel.version}: ${why}`)
      }
    }
    const decoded = actionDecoders.get(channel.name)!(encoded)
    if (Exit.isFailure(decoded)) {
      const error = Cause.findErrorOption(decoded.cause)
      const why = error._tag === "Some" ? error.value.message : "invalid action"
      // an older version's action that no declared step brings to this Schema
      return entry.schema !== undefined && entry.schema < channel.version
        ? refuse("Outdated", `this action was encoded for version ${entry.schema} of channel ${channel.name} and does not decode under version ${channel.version} (declare an upgrade step): ${why}`)
        : refuse("InvalidAction", why)
    }
    const action = decoded.value
    const principal = connection.state.principal
    const caller = Caller.of({ principal, connectionId: connection.id, clientId, seq, requestId: `${clientId}:${seq}` })
    const run = Effect.provideService(handler.run(channel, action), Caller, caller)
    return Effect.map(
      Effect.exit(authorizer.authorizeAction(principal, channel, action)),
      (authorized): Batch.PreparedAction<never> =>
        Exit.isSuccess(authorized) ? { seq, run } : { seq, refused: { reason: "NotAuthorized", message: Batch.classify(authorized.cause).message } }
    )
  }

  /**
   * Runs a step of a unit: at once when it is synchronous; when it suspends
   * (an authorizer that awaits a service), away from the scheduler, so that
   * other connections' work goes on meanwhile.
   */
  const inTurn = <A>(self: Effect.Effect<A>, turns: Lanes.Turns): Effect.Effect<A> =>
    Effect.flatMap(Effect.forkChild(self, { startImmediately: true }), (fiber) => {
      const done = fiber.pollUnsafe()
      return done !== undefined ? done : turns.away(Fiber.join(fiber))
    })

  /**
   * How many of a push's remaining actions its next slice decides. A turn
   * exists so that other connections' frames get in, and it costs the
   * slice's commit (see the README's drain): a connection alone on its
   * object has nobody to give turns to, so it decides up to
   * `actionsPerTurnAlone` per slice. Asked again before every slice, so a
   * connection that opens meanwhile gets its turns from the next one.
   */
  const sliceFor = (connection: SyncConnection, remaining: number): number => {
    const per = Math.max(1, config.actionsPerTurn)
    if (remaining <= per || !isAlone(connections, connection)) return per
    return Math.max(per, config.actionsPerTurnAlone)
  }

  /**
   * Decides a push, `actionsPerTurn` actions per turn: each slice prepared
   * (decoded, upgraded, authorized) in the connection's own turn and decided
   * in a transaction of its own, the sender's changes of a slice sent before
   * the turn passes (a later change must never reach it first), and one
   * reply after the last slice.
   */
  const decidePush = (connection: SyncConnection, lane: Lanes.Lane, channel: Channel.Any, push: Push, turns: Lanes.Turns) => {
    let undecided = push.actions.length
    return Effect.gen(function*() {
      const results: Array<Pushed["results"][number]> = []
      let decided: Extract<Batch.Decided, { _tag: "Decided" }> | undefined
      for (let from = 0, size = 0; from === 0 || from < push.actions.length; from += size) {
        if (decided !== undefined) {
          for (const frame of decided.withheld) connection.send(frame)
          yield* turns.turn
        }
        size = sliceFor(connection, push.actions.length - from)
        const entries = push.actions.slice(from, from + size)
        const actions = yield* inTurn(Effect.forEach(entries, (entry) => prepareAction(connection, channel, push.clientId, entry)), turns)
        const slice: Batch.PreparedPush<never> = {
          channel,
          clientId: push.clientId,
          clientKey: push.clientKey,
          principal: connection.state.principal,
          // a confirm and a skip belong to the first slice
          confirmed: from === 0 ? push.confirmed : undefined,
          skip: from === 0 ? push.skip : undefined,
          actions
        }
        const outcome = yield* reconciliation.exclusive(reconciliation.decide(slice, connection)).pipe(
          Effect.ensuring(Effect.sync(() => {
            lane.actions -= entries.length
            undecided -= entries.length
          }))
        )
        if (outcome._tag === "Refused") return yield* refused(connection, outcome.failure)
        results.push(...outcome.results)
        decided = outcome
      }
      yield* broadcast.pushed(connection, {
        _tag: "Pushed",
        channel: channel.name,
        clientId: push.clientId,
        version: decided!.version,
        next: decided!.next,
        results
      }, decided!.withheld)
    }).pipe(
      // the ledger itself failed: nothing more was decided, so the client may push again
      Effect.catchTag("StorageError", (e) => refused(connection, fail("Unavailable", Batch.messageOf(e), channel.name, push.clientId))),
      Effect.ensuring(Effect.sync(() => {
        lane.actions -= undecided
      }))
    )
  }

  /** A push: checked and queued (its actions are prepared in its turns), or refused. */
  const acceptPush = (connection: SyncConnection, lane: Lanes.Lane, pushed: Push): Effect.Effect<Subscriptions.Accepted, SyncFailure> =>
    Effect.suspend(() => {
      const channel = channels.get(pushed.channel)
      if (channel === undefined) return Effect.fail(fail("UnknownChannel", `unknown channel ${JSON.stringify(pushed.channel)}`, pushed.channel, pushed.clientId))
      // as many actions as the connection's budget has room for: the rest stay undecided, and the reply's `next`
      // says to send them again (a push larger than the server's limit would otherwise never get through)
      const room = config.maxInFlightPerConnection - lane.actions
      if (room <= 0 && pushed.actions.length > 0) {
        limits.hit("inFlight", { connection, id: connection.id, principal: lane.principal })
        return Effect.fail(fail("TooManyInFlight", `more than ${config.maxInFlightPerConnection} actions in flight`, channel.name, pushed.clientId))
      }
      const message = pushed.actions.length > room ? { ...pushed, actions: pushed.actions.slice(0, room) } : pushed
      const count = message.actions.length
      let newest: number | undefined
      for (const a of message.actions) if (a.schema !== undefined && (newest === undefined || a.schema > newest)) newest = a.schema
      const newer = newerThanServer(newest, channel, message.clientId)
      if (newer !== undefined) return Effect.fail(newer)
      for (let i = 1; i < count; i++) {
        if (message.actions[i]!.seq !== message.actions[i - 1]!.seq + 1) {
          return Effect.fail(fail("UnknownMessage", "a push's actions must have consecutive seqs", channel.name, message.clientId))
        }
      }
      lane.actions += count
      return Effect.succeed(lanes.enqueue(lane, (turns) => decidePush(connection, lane, channel, message, turns)))
    })

  // ---------------------------------------------------------------- frames

  /**
   * Each connection's frames are accepted one after another, in arrival
   * order: an authorizer that awaits must not let a later push overtake an
   * earlier one, and a Subscribe sent on reconnect is answered before the
   * pushes sent after it. Lanes are keyed by the connection itself: ids are
   * the client's choice. The frame is done when its unit is.
   */
  const accept = (connection: SyncConnection, message: ClientMessage, wait: boolean): Effect.Effect<void, SyncFailure> => {
    const lane = lanes.laneOf(connection, principalKey(connection.state.principal))
    lanes.begin(lane)
    const accepted: Effect.Effect<Subscriptions.Accepted, SyncFailure> = message._tag === "Push"
      ? acceptPush(connection, lane, message)
      : message._tag === "Subscribe"
      ? subscriptions.subscribe(connection, lane, message)
      : subscriptions.unsubscribe(connection, lane, message)
    return lane.preparing.withPermits(1)(accepted).pipe(
      // a frame that queued a unit is done when the unit is
      Effect.onExit((exit) => (Exit.isSuccess(exit) && exit.value !== undefined ? Effect.void : Effect.sync(() => lanes.done(lane)))),
      Effect.flatMap((ended) => Effect.andThen(lanes.run, wait && ended !== undefined ? ended : Effect.void))
    )
  }

  /**
   * Ends a connection that broke a limit of `Abuse.ts`: told why, muted at
   * once (its frames are dropped unread and get no answer, so a client that
   * waits for answers before sending more stops), and closed with 1008 after
   * `abuseCloseDelayMs` (a client that reconnects when closed comes back no
   * sooner than that).
   */
  const close = (connection: SyncConnection, verdict: Abuse.Verdict) =>
    Effect.sync(() => {
      abuse.close(connection)
      lanes.gone(connection)
      limits.hit(verdict.kind, { connection, id: connection.id, principal: principalKey(connection.state.principal) })
      connection.send(encodeServerFrame({ _tag: "Failure", requestId: null, channel: null, reason: verdict.reason, message: verdict.message }))
      const shut = () => connection.close?.(Abuse.POLICY_VIOLATION, `${verdict.reason}: ${verdict.message}`.slice(0, 120))
      if (config.abuseCloseDelayMs > 0) setTimeout(shut, config.abuseCloseDelayMs)
      else shut()
    })

  /**
   * A push on a connection whose in-flight budget is used up is refused
   * before it is parsed: a pipelined flood costs a pattern match per frame.
   * Only our encoder's key order is recognised (the tag, the channel, the
   * client id first); anything else is parsed as usual.
   */
  const overBudget = (connection: SyncConnection, frame: string): SyncFailure | undefined => {
    const lane = lanes.peek(connection)
    if (lane === undefined || lane.actions < config.maxInFlightPerConnection || !frame.startsWith(PUSH_PREFIX)) return undefined
    const ids = PUSH_IDS.exec(frame.slice(0, 400))
    if (ids === null || !channels.has(ids[1]!)) return undefined
    limits.hit("inFlight", { connection, id: connection.id, principal: lane.principal })
    return fail("TooManyInFlight", `more than ${config.maxInFlightPerConnection} actions in flight`, ids[1]!, ids[2]!)
  }

  const handle = (connection: SyncConnection, frame: string | ArrayBuffer | ArrayBufferView, wait: boolean) =>
    // suspended: a throw while decoding or checking becomes a logged defect, not a rejected onMessage
    Effect.suspend(() => {
      // a connection closed for abuse may still have frames on their way: they are dropped unread
      if (abuse.isClosed(connection)) return Effect.void
      const pipelined = (lanes.peek(connection)?.frames ?? 0) > 0
      const tooMuch = abuse.frame(connection, typeof frame === "string" ? frame.length : frame.byteLength, pipelined)
      if (tooMuch !== undefined) return close(connection, tooMuch)
      const early = typeof frame === "string" ? overBudget(connection, frame) : undefined
      if (early !== undefined) return Effect.fail(early)
      const message = decodeFrame(frame)
      return message instanceof SyncFailure ? Effect.fail(message) : accept(connection, message, wait)
    }).pipe(
      Effect.catchCause((cause) => {
        const failure = Cause.findErrorOption(cause)
        if (failure._tag === "Some" && failure.value instanceof SyncFailure) {
          const e = failure.value
          const verdict = Abuse.INVALID_REASONS.has(e.reason) ? abuse.invalid(connection) : undefined
          if (verdict !== undefined) return close(connection, verdict)
          // a tab of the previous release reads this refusal by its request id; either way, the frame runs a unit
          return Effect.andThen(
            e.requestId !== null
              ? broadcast.send(connection, { _tag: "Failure", requestId: e.requestId, channel: e.channel, reason: e.reason, message: e.message })
              : refused(connection, e),
            lanes.run
          )
        }
        // no span here: this runs per frame, and the span and its stack trace cost more than a small action
        return Effect.logError("effect-partysync: frame handling failed", cause)
      })
    )

  return ActionDispatch.of({
    receive: (connection, frame) => handle(connection, frame, true),
    deliver: (connection, frame) => handle(connection, frame, false),
    dropped: abuse.isClosed,
    closed: lanes.gone
  })
})
