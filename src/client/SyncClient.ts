/**
 * `makeWith`: a sync client for one channel over a socket, as an Effect. It
 * loads the local cache (so the cached snapshot is out before the network
 * answers), adopts pending queues left by closed clients, then follows the
 * socket: Subscribe from the cursor on every (re)connect, pending actions
 * pushed in batches once synced, frames fed to the SyncEngine, state
 * persisted (records debounced; a queued action's record written at once,
 * removed once settled), temporary refusals retried on a backoff Schedule.
 * Closing the scope detaches from the socket, flushes the cache, tells the
 * server what was settled and releases the pending queue for the next client.
 *
 * `makeCore` is the same client without its Streams: the facade and the
 * React hooks use it, so browser bundles leave Stream out.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Channel from "../protocol/Channel.ts"
import { DEFAULT_MAX_INBOUND_FRAME_BYTES, hashOf, subOf } from "../protocol/Protocol.ts"
import { ActionDiscarded, fromFailure, InvalidAction, type SendError } from "../protocol/Errors.ts"
import * as CachedRecords from "./CachedRecords.ts"
import type { ClientOptions, Optimistic } from "./ClientOptions.ts"
import { encodeFrame, rowDecoder } from "./Frames.ts"
import * as Listeners from "./Listeners.ts"
import * as LocalCache from "./LocalCache.ts"
import * as PendingStore from "./PendingStore.ts"
import { signal, writer } from "./Signal.ts"
import { retryAfterBackoff } from "./Retry.ts"
import type { PendingAction } from "./Outbox.ts"
import { type DiscardedAction, SyncEngine, type SyncStatus } from "./SyncEngine.ts"
import { attach, DEFAULT_MAX_IN_FLIGHT, type Link, locationOf, OPEN, type SocketLike } from "./Transport.ts"

export type { ClientOptions, Connection, Optimistic, QueryOption, QueryParams } from "./ClientOptions.ts"
export type { DiscardedAction, SyncStatus } from "./SyncEngine.ts"
export type { SocketLike } from "./Transport.ts"

/** What an action adds to a push besides its encoding: `{"seq":…,"action":…,"schema":…}`. */
const PUSH_ENTRY_BYTES = 48

/** A sync client without its Streams (what the facade and the React hooks use). */
export interface SyncClientCore<C extends Channel.Any> {
  /** Queues an action; succeeds with the server's rows, fails when refused or invalid. */
  readonly send: (action: Channel.ActionOf<C>) => Effect.Effect<ReadonlyArray<Channel.RecordOf<C>>, SendError>
  /** Forgets the cached records, cursor and pending actions, then syncs from scratch. */
  readonly clearLocalData: Effect.Effect<void>
  /** The current snapshot, synchronously. */
  readonly getSnapshot: () => ReadonlyArray<Channel.RecordOf<C>>
  /** The current status, synchronously. */
  readonly getStatus: () => SyncStatus
  /**
   * Queued actions the server refused while no `send` waited for them (queued
   * by an earlier page or another tab, e.g. one that no upgrade step brings to
   * this version): show them, then `dismissDiscarded`. The same array until it changes.
   */
  readonly getDiscarded: () => ReadonlyArray<DiscardedAction<Channel.ActionOf<C>>>
  /** Forgets the discarded actions. */
  readonly dismissDiscarded: () => void
  /** Calls `listener` (batched per microtask) after records or status change; returns the unsubscribe. */
  readonly subscribe: (listener: () => void) => () => void
  /**
   * Replaces the optimistic reducer. `quiet` (from a render): the next read rebuilds the
   * snapshot with it, and listeners are not called.
   */
  readonly setOptimistic: (reducer: Optimistic<C> | undefined, quiet?: boolean) => void
  /** This instance's client id. */
  readonly clientId: string
}

/** A sync client (Effect API). */
export interface SyncClient<C extends Channel.Any> extends SyncClientCore<C> {
  /** The current snapshot first, then every change (latest wins for slow consumers). */
  readonly records: Stream.Stream<ReadonlyArray<Channel.RecordOf<C>>>
  /** The current status first, then every change. */
  readonly status: Stream.Stream<SyncStatus>
  /** The discarded actions first, then every change. */
  readonly discarded: Stream.Stream<ReadonlyArray<DiscardedAction<Channel.ActionOf<C>>>>
}

/** Opens a socket from `host`/`party`/`room` options; `Connect.ts` supplies the partysocket one. */
export type OpenSocket = (
  options: Pick<ClientOptions<Channel.Any>, "host" | "party" | "room" | "query" | "WebSocket" | "protocol">
) => Effect.Effect<SocketLike, never, Scope.Scope>

const noOpener: OpenSocket = () =>
  Effect.die(new TypeError("effect-partysync: pass `socket` (or use `make` from effect-partysync/client with `host` and `room`)"))

/**
 * Makes a sync client without Streams; it lives as long as the Scope.
 *
 * How refusals surface: a temporary one (`TooManyInFlight`, `Unavailable`)
 * is retried on a backoff and shows in the status (`unavailable` when the
 * server cannot serve the channel); a refused socket (401, 403) shows as
 * `unauthorized`, with the server's reason in `lastError`, and sends stay
 * queued, as they do while `outdated` (reload the app); a refused channel
 * (`failed`) fails pending and new sends with `SyncRefused`. A send never
 * waits without the status saying why.
 */
export const makeCore = <C extends Channel.Any>(
  options: ClientOptions<C>,
  open: OpenSocket = noOpener
): Effect.Effect<SyncClientCore<C> & { readonly listeners: Set<() => void> }, never, Scope.Scope | KeyValueStore.KeyValueStore> =>
  Effect.gen(function*() {
    type R = Channel.RecordOf<C>
    type A = Channel.ActionOf<C>
    const kv = yield* KeyValueStore.KeyValueStore
    const scope = yield* Effect.scope
    const socket: SocketLike = options.socket ?? (yield* open(options))
    const channel = options.channel
    const params = Channel.encodeParams(channel, options.params)
    const sub = subOf(channel.name, params)
    // a fixed id is per subscription: one id on two channels of a room would be one client with two keys
    const clientId = options.clientId === undefined
      ? crypto.randomUUID()
      : `${options.clientId}@${sub === channel.name ? sub : `${channel.name}#${hashOf(sub)}`}`
    if (clientId.length < 1 || clientId.length > 128) throw new TypeError("effect-partysync: clientId needs 1 to 100 characters")
    const leaseMs = options.leaseMs ?? 10_000
    // room for the push's envelope and each action's own keys
    const maxPushBytes = (options.maxFrameBytes ?? DEFAULT_MAX_INBOUND_FRAME_BYTES) - 1_024
    const cache = LocalCache.make(kv, LocalCache.namespace(locationOf(socket), sub, options.userId))
    const encodeAction = Schema.encodeUnknownExit(channel.action)
    // a record whose encoded form is itself (plain columns) is stored as is, and loaded as it was read once checked
    const plain = Schema.toEncoded(channel.record).ast === channel.record.ast
    const encodeRow = Schema.encodeUnknownExit(channel.record)
    const decodeRow = Schema.decodeUnknownExit(channel.record)
    const encodeRecord = plain
      ? (row: R): unknown => row
      : (row: R): unknown => {
        const exit = encodeRow(row)
        if (Exit.isFailure(exit)) throw new Error(PendingStore.messageOf(exit.cause))
        return exit.value
      }
    const decodeRows = rowDecoder(channel.record as Schema.Codec<R, ReadonlyArray<unknown>>)
    const notifier = Listeners.make()
    const isOpen = () => socket.readyState === OPEN
    let closed = false

    // the writers and the retry fiber wait on these; the engine opens them
    const recordsDirty = signal()
    const pendingDirty = signal()
    const retryDue = signal()
    let attempt = 0
    let link: Link | undefined

    const engine: SyncEngine<R, A> = new SyncEngine<R, A>({
      channel: channel.name,
      sub,
      params,
      schema: channel.version,
      decodeRows,
      optimistic: options.optimistic,
      idsOf: options.pendingIdsOf,
      maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      maxPushBytes,
      clientId,
      transmit: (message) => link?.send(message),
      wake: () => link?.pump(),
      backoff: (n) => {
        attempt = n
        retryDue.raise()
      },
      onChange: notifier.notify,
      onConfirmed: recordsDirty.raise,
      onSettled: (entry) => {
        pendingStore.remove(entry)
        pendingDirty.raise()
      }
    })
    const pendingStore = PendingStore.make<A>({
      kv,
      prefix: cache.prefix,
      engine,
      clientId,
      fixedId: options.clientId !== undefined,
      leaseMs,
      decodeAction: Schema.decodeUnknownExit(channel.action) as (u: unknown) => Exit.Exit<A, unknown>,
      channel
    })
    // the confirmed records: what changed since the last write, in the store's record layout
    const records = CachedRecords.make<R>({
      kv,
      prefix: cache.prefix,
      engine,
      schema: channel.version,
      encode: encodeRecord,
      decodeRows,
      check: plain ? (row) => Exit.isSuccess(decodeRow(row)) : undefined,
      failed: pendingStore.failed,
      keepViews: options.userId !== undefined
    })
    const writeRecords = records.write

    // ------------------------------------------------------------ start
    // true: an older cache was migrated, and the table goes to the new layout at once
    if (yield* records.load) recordsDirty.raise()
    yield* pendingStore.adopt(true)

    link = attach(socket, engine)
    if (isOpen()) engine.opened()
    const nextAttempt = Effect.andThen(retryDue.next, Effect.sync(() => attempt))
    yield* Effect.forkIn(retryAfterBackoff(nextAttempt, () => engine.retry()), scope)
    const recordsWriter = yield* Effect.forkIn(writer(recordsDirty, writeRecords, options.persistDelayMs ?? 500), scope)
    const pendingWriter = yield* Effect.forkIn(writer(pendingDirty, pendingStore.write), scope)
    // heartbeat keeps our queue from being adopted while we run; the scan adopts queues of clients that died; what
    // was settled while no push went out is confirmed to the server
    yield* Effect.forkIn(
      Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(Math.max(50, Math.floor(leaseMs / 3)))
          yield* pendingStore.heartbeat
          yield* pendingStore.adopt(false)
          engine.confirmIdle(pendingStore.keyOf)
        }
      }),
      scope
    )

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        const last = link!.detach()
        if (last && isOpen()) socket.send(encodeFrame(sub === channel.name ? { _tag: "Unsubscribe", channel: channel.name } : { _tag: "Unsubscribe", channel: channel.name, sub }))
        yield* Fiber.interrupt(recordsWriter)
        yield* Fiber.interrupt(pendingWriter)
        yield* writeRecords
        yield* pendingStore.write
        // the server may forget what we settled (sent before we detach, on a socket others keep open)
        if (isOpen()) engine.confirmIdle(pendingStore.keyOf)
        // released (heartbeat 0): the next client for this room adopts the queue at once
        yield* pendingStore.release
        for (const p of engine.pending) {
          p.waiter?.reject(new ActionDiscarded({ reason: "Closed", message: "closed first: it stays queued for the room's next client" }))
          p.waiter = undefined
        }
        notifier.listeners.clear()
      })
    )

    const send = (action: A): Effect.Effect<ReadonlyArray<R>, SendError> =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<R>, SendError> => {
        const encoded = encodeAction(action)
        if (Exit.isFailure(encoded)) return Effect.fail(new InvalidAction({ message: PendingStore.messageOf(encoded.cause) }))
        const bytes = (JSON.stringify(encoded.value)?.length ?? 4) + PUSH_ENTRY_BYTES
        // a push must fit in one frame the server accepts (counted at up to 3 bytes per character, as UTF-8 may take)
        if (bytes * 3 > maxPushBytes && new TextEncoder().encode(JSON.stringify(encoded.value) ?? "").length + PUSH_ENTRY_BYTES > maxPushBytes) {
          return Effect.fail(new InvalidAction({ message: `the action takes more than the ${maxPushBytes} bytes a push may carry` }))
        }
        // recorded synchronously when the Effect starts: nothing can close the client in between
        return Effect.callback<ReadonlyArray<R>, SendError>((resume) => {
          if (closed) return resume(Effect.fail(new ActionDiscarded({ reason: "Closed", message: "the client is closed" })))
          const refusal = engine.refusal()
          if (refusal !== undefined) return resume(Effect.fail(fromFailure(refusal)))
          const { seq, clientKey } = pendingStore.take()
          const entry: PendingAction<A> = {
            clientId,
            clientKey,
            seq,
            action,
            encoded: encoded.value,
            schema: channel.version,
            bytes,
            sent: false,
            waiter: {
              resolve: (rows) => resume(Effect.succeed(rows)),
              reject: (error) => resume(Effect.fail(error))
            }
          }
          pendingStore.put(entry)
          engine.enqueue([entry])
          pendingDirty.raise()
        })
      })

    const clearLocalData = Effect.gen(function*() {
      engine.clear((p) => new ActionDiscarded({ reason: "Cleared", message: `action ${p.seq}: clearLocalData` }))
      yield* cache.clear.pipe(Effect.catchCause(pendingStore.failed))
      yield* records.clear
      // the clear may have raced a write: persist the fresh state again
      yield* pendingStore.write
    })

    return {
      send,
      clearLocalData,
      getSnapshot: () => engine.snapshot(),
      getStatus: () => engine.status(),
      getDiscarded: () => engine.discarded(),
      dismissDiscarded: () => engine.dismissDiscarded(),
      subscribe: notifier.subscribe,
      setOptimistic: (reducer, quiet) => engine.setOptimistic(reducer, quiet),
      clientId,
      listeners: notifier.listeners
    }
  })

/**
 * Makes a sync client over `options.socket`, or over a socket `open` makes;
 * it lives as long as the Scope. See `makeCore` for how refusals surface.
 * Apps use `make` from effect-partysync/client, which is this with
 * partysocket as `open`.
 */
export const makeWith = <C extends Channel.Any>(
  options: ClientOptions<C>,
  open: OpenSocket = noOpener
): Effect.Effect<SyncClient<C>, never, Scope.Scope | KeyValueStore.KeyValueStore> =>
  Effect.map(makeCore(options, open), ({ listeners, ...core }) => {
    const changes = <X>(read: () => X): Stream.Stream<X> =>
      Stream.callback<void>((queue) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const listener = () => Queue.offerUnsafe(queue, undefined)
            listeners.add(listener)
            Queue.offerUnsafe(queue, undefined)
            return listener
          }),
          (listener) => Effect.sync(() => listeners.delete(listener))
        ), { bufferSize: 1, strategy: "sliding" }).pipe(
          Stream.map(read),
          Stream.changesWith((a, b) => a === b)
        )
    return { ...core, records: changes(core.getSnapshot), status: changes(core.getStatus), discarded: changes(core.getDiscarded) }
  })
