/**
 * `make`: a sync client for one channel over a socket, as an Effect. It
 * loads the local cache (so the cached snapshot is out before the network
 * answers), adopts pending queues left by closed clients, then follows the
 * socket: Subscribe from the cursor on every (re)connect, pending actions
 * re-sent after it, frames fed to the SyncEngine, state persisted (records
 * debounced, pending at once). Closing the scope detaches from the socket,
 * flushes the cache and releases the pending queue for the next client.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Channel from "../protocol/Channel.ts"
import type { RowId } from "../protocol/Protocol.ts"
import { ActionDiscarded, InvalidAction, type SendError } from "../protocol/Errors.ts"
import { encodeFrame, rowDecoder } from "./Frames.ts"
import * as LocalCache from "./LocalCache.ts"
import { type PendingAction, SyncEngine, type SyncStatus } from "./SyncEngine.ts"
import { attach, locationOf, OPEN, type SocketLike } from "./Transport.ts"

export type { SyncStatus } from "./SyncEngine.ts"
export type { SocketLike } from "./Transport.ts"

/** The optimistic reducer: the seed's `(records, action) => records`. */
export type Optimistic<C extends Channel.Any> = (
  records: ReadonlyArray<Channel.RecordOf<C>>,
  action: Channel.ActionOf<C>
) => ReadonlyArray<Channel.RecordOf<C>>

/** How to reach the server when no socket is given. */
export interface Connection {
  readonly host: string
  readonly party: string
  readonly room: string
  /** A WebSocket constructor where there is no global one. */
  readonly WebSocket?: unknown
  readonly protocol?: "ws" | "wss"
}

/** Options of a sync client. */
export interface ClientOptions<C extends Channel.Any> {
  readonly channel: C
  /** A shared socket (partysocket or WebSocket-like); the client never closes it. */
  readonly socket?: SocketLike | undefined
  /** Without `socket`: where to connect (the client owns and closes that partysocket). */
  readonly host?: string | undefined
  readonly party?: string | undefined
  readonly room?: string | undefined
  readonly WebSocket?: unknown
  readonly protocol?: "ws" | "wss" | undefined
  /** Applied over the confirmed records for every pending action. */
  readonly optimistic?: Optimistic<C> | undefined
  /** Ids a pending action touches (default: `action.payload.id` or `action.id`). */
  readonly pendingIdsOf?: ((action: Channel.ActionOf<C>) => Iterable<RowId>) | undefined
  /** This instance's client id (default: a fresh random UUID; must be unique per running instance). */
  readonly clientId?: string | undefined
  /** Most actions in flight at once (default 16; keep it below the server's `maxInFlightPerConnection`). */
  readonly maxInFlight?: number | undefined
  /** Records and cursor are written at most this often, in ms (default 500). */
  readonly persistDelayMs?: number | undefined
  /** A pending queue whose heartbeat is older than this (ms) is adopted (default 10000). */
  readonly leaseMs?: number | undefined
}

/** A sync client (Effect API). */
export interface SyncClient<C extends Channel.Any> {
  /** The current snapshot first, then every change (latest wins for slow consumers). */
  readonly records: Stream.Stream<ReadonlyArray<Channel.RecordOf<C>>>
  /** The current status first, then every change. */
  readonly status: Stream.Stream<SyncStatus>
  /** Queues an action; succeeds with the server's rows, fails when refused or invalid. */
  readonly send: (action: Channel.ActionOf<C>) => Effect.Effect<ReadonlyArray<Channel.RecordOf<C>>, SendError>
  /** Forgets the cached records, cursor and pending actions, then syncs from scratch. */
  readonly clearLocalData: Effect.Effect<void>
  /** The current snapshot, synchronously. */
  readonly getSnapshot: () => ReadonlyArray<Channel.RecordOf<C>>
  /** The current status, synchronously. */
  readonly getStatus: () => SyncStatus
  /** Calls `listener` (batched per microtask) after records or status change; returns the unsubscribe. */
  readonly subscribe: (listener: () => void) => () => void
  /** Replaces the optimistic reducer. */
  readonly setOptimistic: (reducer: Optimistic<C> | undefined) => void
  /** This instance's client id. */
  readonly clientId: string
}

const messageOf = (cause: Cause.Cause<unknown>) => {
  const e = Cause.findErrorOption(cause)
  return e._tag === "Some" && e.value instanceof Error ? e.value.message : Cause.pretty(cause)
}

/** Seqs a client with a fixed id reserves in storage ahead of the ones it sends. */
const SEQ_RESERVE = 32

/** A fresh client key: 128 random bits as hex. */
const randomKey = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("")

/** A timer sleep: `Effect.sleep` would bring Duration's parser (5 KB) into browser bundles for two constants. */
const sleepMs = (ms: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

/** Opens a socket from `host`/`party`/`room` options; `Connect.ts` supplies the partysocket one. */
export type OpenSocket = (
  options: Pick<ClientOptions<Channel.Any>, "host" | "party" | "room" | "WebSocket" | "protocol">
) => Effect.Effect<SocketLike, never, Scope.Scope>

const noOpener: OpenSocket = () =>
  Effect.die(new TypeError("effect-partysync: pass `socket` (or use `make` from effect-partysync/client with `host` and `room`)"))

/** Makes a sync client; it lives as long as the Scope. */
export const make = <C extends Channel.Any>(
  options: ClientOptions<C>,
  open: OpenSocket = noOpener
): Effect.Effect<SyncClient<C>, never, Scope.Scope | KeyValueStore.KeyValueStore> =>
  Effect.gen(function*() {
    type R = Channel.RecordOf<C>
    type A = Channel.ActionOf<C>
    const kv = yield* KeyValueStore.KeyValueStore
    const scope = yield* Effect.scope
    const socket: SocketLike = options.socket ?? (yield* open(options))
    const channel = options.channel
    const clientId = options.clientId ?? crypto.randomUUID()
    if (clientId.length < 1 || clientId.length > 100) throw new TypeError("effect-partysync: clientId must be 1 to 100 characters")
    const leaseMs = options.leaseMs ?? 10_000
    const cache = LocalCache.make(kv, LocalCache.namespace(locationOf(socket), channel.name))
    const encodeAction = Schema.encodeUnknownExit(channel.action)
    const decodeAction = Schema.decodeUnknownExit(channel.action)
    const encodeRecords = Schema.encodeUnknownExit(Schema.Array(channel.record))
    const decodeRows = rowDecoder(channel.record as Schema.Codec<R, ReadonlyArray<unknown>>)
    let nextSeq = 1
    // A fixed client id outlives this instance: the stored queue reserves seqs ahead (see `queueOf`).
    const fixedId = options.clientId !== undefined
    // binds our client id on the server; an explicit id keeps its key in the stored queue
    let clientKey = randomKey()
    let closed = false

    const listeners = new Set<() => void>()
    let scheduled = false
    let quietUntil = 0
    const run = () => {
      scheduled = false
      const start = performance.now()
      for (const l of [...listeners]) l()
      const cost = performance.now() - start
      // Listeners that rebuild a large snapshot (0.7 ms for 100k rows) get at most a
      // quarter of the time, so a burst of frames coalesces into few rebuilds; cheap
      // listeners are always called at once.
      quietUntil = cost > 0.25 ? start + cost * 4 : 0
    }
    const notify = () => {
      if (scheduled) return
      scheduled = true
      const wait = quietUntil - performance.now()
      if (wait > 0) setTimeout(run, wait)
      else queueMicrotask(run)
    }
    const isOpen = () => socket.readyState === OPEN

    // Writers: a sliding queue of one signal, drained by one fiber each, so
    // writes never overlap and always carry the latest state.
    const recordsSignal = yield* Queue.sliding<void>(1)
    const pendingSignal = yield* Queue.sliding<void>(1)

    const engine: SyncEngine<R, A> = new SyncEngine<R, A>({
      channel: channel.name,
      schema: channel.version,
      decodeRows,
      optimistic: options.optimistic,
      idsOf: options.pendingIdsOf,
      maxInFlight: options.maxInFlight ?? 16,
      transmit: (message) => {
        // never hand a closed partysocket a frame: it would queue it ahead of our Subscribe
        if (isOpen()) socket.send(encodeFrame(message))
      },
      onChange: notify,
      onConfirmed: () => Queue.offerUnsafe(recordsSignal, undefined),
      onPending: () => Queue.offerUnsafe(pendingSignal, undefined)
    })
    if (fixedId) engine.allowSeqs(clientId, 1, false)

    const persistFailed = (cause: Cause.Cause<unknown>) =>
      Effect.sync(() => engine.report("PersistenceFailed", messageOf(cause)))

    // With a fixed id, the stored `nextSeq` is a reservation SEQ_RESERVE past ours: a reloaded
    // instance starts there, and we send a seq only once a reservation covering it is stored, so
    // a crash between sending and saving never makes the next instance reuse a seq (the server
    // would take the new action for a duplicate). Gaps between seqs are fine on the server.
    const queueOf = (heartbeat: number | undefined): LocalCache.StoredQueue => ({
      owner: clientId,
      key: clientKey,
      heartbeat: heartbeat ?? Date.now(),
      nextSeq: fixedId ? nextSeq + SEQ_RESERVE : nextSeq,
      entries: engine.pending.map((p) => ({
        clientId: p.clientId,
        clientKey: p.clientKey,
        seq: p.seq,
        action: p.encoded,
        ...(p.firstSentAt === undefined ? {} : { firstSentAt: p.firstSentAt })
      }))
    })
    const writeQueue = (heartbeat?: number) =>
      Effect.suspend(() =>
        // an empty queue of a generated id has nothing for anyone; a given id keeps its key for `nextSeq`
        engine.pending.length === 0 && !fixedId
          ? cache.removeQueue(clientId)
          : Effect.suspend(() => {
            const queue = queueOf(heartbeat)
            return Effect.andThen(cache.saveQueue(queue), Effect.sync(() => {
              if (fixedId) engine.allowSeqs(clientId, queue.nextSeq, isOpen())
            }))
          })
      ).pipe(Effect.catchCause(persistFailed))
    const writeRecords = Effect.suspend(() => {
      const rows = encodeRecords(engine.table.array())
      if (Exit.isFailure(rows)) return Effect.sync(() => engine.report("PersistenceFailed", messageOf(rows.cause)))
      return cache.saveRecords({ cursor: engine.cursor, history: engine.history, rows: rows.value })
    }).pipe(Effect.catchCause(persistFailed))

    const toPending = (stored: LocalCache.StoredAction): PendingAction<A> | undefined => {
      const decoded = decodeAction(stored.action)
      if (Exit.isFailure(decoded)) {
        engine.report("InvalidAction", `dropped a queued action that no longer decodes: ${messageOf(decoded.cause)}`)
        return undefined
      }
      return {
        clientId: stored.clientId,
        clientKey: stored.clientKey,
        seq: stored.seq,
        requestId: `${stored.clientId}:${stored.seq}`,
        action: decoded.value as A,
        encoded: stored.action,
        firstSentAt: stored.firstSentAt,
        sent: false,
        waiter: undefined
      }
    }

    /** Takes over the queues of clients that are gone (heartbeat older than the lease). */
    const adopt = (atFront: boolean) =>
      Effect.gen(function*() {
        const now = Date.now()
        const queues = yield* cache.queues
        const taken: Array<PendingAction<A>> = []
        const owners: Array<string> = []
        for (const q of queues) {
          const mine = q.owner === clientId
          // our own queue is ours to load once, at start; later it is only what we wrote
          if (mine ? !atFront : q.heartbeat > now - leaseMs) continue
          if (mine) {
            nextSeq = Math.max(nextSeq, q.nextSeq)
            clientKey = q.key
          }
          owners.push(q.owner)
          for (const e of q.entries) {
            if (e.clientId === clientId) nextSeq = Math.max(nextSeq, e.seq + 1)
            if (engine.owns(`${e.clientId}:${e.seq}`)) continue
            const p = toPending(e)
            if (p !== undefined) taken.push(p)
          }
        }
        if (owners.length === 0) return
        engine.adopt(taken, atFront, isOpen())
        // save ours (now holding them) before removing theirs, so a crash in between loses nothing
        yield* writeQueue()
        for (const owner of owners) if (owner !== clientId) yield* cache.removeQueue(owner)
      }).pipe(Effect.catchCause(persistFailed))

    // ------------------------------------------------------------ start
    const stored = yield* cache.loadRecords.pipe(
      Effect.catchCause((cause) => Effect.as(persistFailed(cause), undefined))
    )
    if (stored !== undefined) {
      const { rows, error } = decodeRows(stored.rows)
      if (error !== null) engine.report("InvalidRecord", `cache: ${error}`)
      engine.load(stored.cursor, stored.history, rows)
    }
    yield* adopt(true)
    // seqs below the stored reservation were reserved by the instance that stored it
    if (fixedId) engine.allowSeqs(clientId, nextSeq, false)

    const route = {
      channel: channel.name,
      owns: (requestId: string) => engine.owns(requestId),
      receive: (frame: Parameters<typeof engine.receive>[0]) => engine.receive(frame),
      opened: () => engine.connected(),
      closed: () => engine.disconnected(),
      garbage: (message: string) => engine.report("UnknownMessage", message)
    }
    const detach = attach(socket, route)
    if (isOpen()) engine.connected()

    const recordsWriter = yield* Effect.forkIn(
      Effect.forever(
        Effect.andThen(Queue.take(recordsSignal), Effect.andThen(sleepMs(options.persistDelayMs ?? 500), writeRecords))
      ),
      scope
    )
    const pendingWriter = yield* Effect.forkIn(
      Effect.forever(Effect.andThen(Queue.take(pendingSignal), writeQueue())),
      scope
    )
    // heartbeat keeps our queue from being adopted while we run; the scan adopts queues of clients that died
    yield* Effect.forkIn(
      Effect.forever(
        sleepMs(Math.max(50, Math.floor(leaseMs / 3))).pipe(
          Effect.andThen(Effect.suspend(() => (engine.pending.length > 0 ? writeQueue() : Effect.void))),
          Effect.andThen(adopt(false))
        )
      ),
      scope
    )

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closed = true
        const last = detach()
        if (last && isOpen()) socket.send(encodeFrame({ _tag: "Unsubscribe", channel: channel.name }))
        yield* Fiber.interrupt(recordsWriter)
        yield* Fiber.interrupt(pendingWriter)
        yield* writeRecords
        // released (heartbeat 0): the next client for this room adopts the queue at once
        yield* writeQueue(0)
        for (const p of engine.pending) {
          p.waiter?.reject(new ActionDiscarded({ reason: "Closed", message: "the client closed before the server confirmed the action; it stays queued for the next client of this room" }))
          p.waiter = undefined
        }
        listeners.clear()
      })
    )

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

    const send = (action: A): Effect.Effect<ReadonlyArray<R>, SendError> =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<R>, SendError> => {
        const encoded = encodeAction(action)
        if (Exit.isFailure(encoded)) return Effect.fail(new InvalidAction({ message: messageOf(encoded.cause) }))
        return Effect.callback<ReadonlyArray<R>, SendError>((resume) => {
          if (closed) {
            resume(Effect.fail(new ActionDiscarded({ reason: "Closed", message: "the client is closed" })))
            return
          }
          const seq = nextSeq++
          engine.enqueue({
            clientId,
            clientKey,
            seq,
            firstSentAt: undefined,
            requestId: `${clientId}:${seq}`,
            action,
            encoded: encoded.value,
            sent: false,
            waiter: {
              resolve: (rows) => resume(Effect.succeed(rows)),
              reject: (error) => resume(Effect.fail(error))
            }
          }, isOpen())
        })
      })

    const clearLocalData = Effect.gen(function*() {
      engine.clear((p) => new ActionDiscarded({ reason: "Cleared", message: `action ${p.seq} was discarded by clearLocalData` }), isOpen())
      yield* cache.clear.pipe(Effect.catchCause(persistFailed))
      // the clear may have raced a write: persist the fresh state again
      yield* writeQueue()
    })

    return {
      records: changes(() => engine.snapshot()),
      status: changes(() => engine.status()),
      send,
      clearLocalData,
      getSnapshot: () => engine.snapshot(),
      getStatus: () => engine.status(),
      subscribe: (listener) => {
        listeners.add(listener)
        return () => {
          listeners.delete(listener)
        }
      },
      setOptimistic: (reducer) => engine.setOptimistic(reducer),
      clientId
    } satisfies SyncClient<C>
  })
