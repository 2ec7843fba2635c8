/**
 * Fair scheduling of one object's work. Each connection has a lane: its
 * frames are accepted and prepared there in arrival order (cheap: decode,
 * check, authorize), and what they ask for (deciding a push, answering a
 * Subscribe) becomes a unit of work. Units run one at a time, round-robin
 * across principals and, within a principal, across its connections, so a
 * connection that floods waits behind its own work, not ahead of everyone
 * else's. Between units the scheduler yields to the runtime, so frames that
 * arrived meanwhile are accepted before the next unit runs; an idle
 * scheduler runs a new unit at once, adding no latency.
 *
 * @since 0.2.0
 */
import type { RowId } from "../protocol/Protocol.ts"
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import type { SyncConnection } from "./Connections.ts"

/** One connection's lane. */
export interface Lane {
  readonly connection: SyncConnection
  /** The principal the lane is scheduled under. */
  readonly principal: string | null
  /** Frames are prepared one at a time, in arrival order. */
  readonly preparing: Semaphore.Semaphore
  /** Units waiting to run, in order. */
  readonly units: Array<Effect.Effect<void>>
  /** Frames accepted and not finished. */
  frames: number
  /** Actions accepted and not decided. */
  actions: number
  /** Subscribes accepted and not answered. */
  syncs: number
  /** Subscribes waiting in the lane, by subscription name: a later one merges into the waiting one. */
  readonly waiting: Map<string, { since: number | null; history: string | undefined; held: ReadonlyArray<RowId> | undefined }>
}

/** Yields to the runtime's event loop, so that frames waiting to be delivered are accepted. */
const yieldToRuntime: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const timer = setTimeout(() => resume(Effect.void), 0)
  return Effect.sync(() => clearTimeout(timer))
})

/** The lanes of one object and their scheduler. */
export const make = () => {
  const lanes = new Map<SyncConnection, Lane>()
  // principals with runnable lanes, in turn order; each with its lanes in turn order
  const order: Array<string | null> = []
  const byPrincipal = new Map<string | null, Array<Lane>>()
  let running = false

  const activate = (lane: Lane) => {
    let ring = byPrincipal.get(lane.principal)
    if (ring === undefined) {
      byPrincipal.set(lane.principal, (ring = []))
      order.push(lane.principal)
    }
    ring.push(lane)
  }

  const next = (): Effect.Effect<void> | undefined => {
    const principal = order.shift()
    if (principal === undefined) return undefined
    const ring = byPrincipal.get(principal)!
    const lane = ring.shift()!
    const unit = lane.units.shift()!
    if (lane.units.length > 0) ring.push(lane)
    if (ring.length > 0) order.push(principal)
    else byPrincipal.delete(principal)
    return unit
  }

  const drain: Effect.Effect<void> = Effect.suspend(() => {
    const unit = next()
    if (unit === undefined) {
      running = false
      return Effect.void
    }
    // a unit answers its own failures; a defect is logged here so that the turns go on
    const safe = Effect.catchCause(unit, (cause) => Effect.logError("effect-partysync: a unit of work failed", cause))
    return Effect.andThen(safe, Effect.suspend(() => (order.length > 0 ? Effect.andThen(yieldToRuntime, drain) : drain)))
  })

  return {
    /** The lane of a connection, made (not yet registered) when it has none. */
    laneOf: (connection: SyncConnection, principal: string | null): Lane =>
      lanes.get(connection) ?? {
        connection,
        principal,
        preparing: Semaphore.makeUnsafe(1),
        units: [],
        frames: 0,
        actions: 0,
        syncs: 0,
        waiting: new Map()
      },
    /** Counts a frame on its lane (registering the lane); `done` uncounts one that queued no unit. */
    begin: (lane: Lane) => {
      if (lane.frames++ === 0) lanes.set(lane.connection, lane)
    },
    done: (lane: Lane) => {
      if (--lane.frames === 0 && lanes.get(lane.connection) === lane) lanes.delete(lane.connection)
    },
    /**
     * Queues a unit on its lane, for a frame counted with `begin` (the unit
     * uncounts it when it ends); `run` then runs every queued unit, in fair turns.
     */
    enqueue: (lane: Lane, unit: Effect.Effect<void>) => {
      lane.units.push(Effect.ensuring(unit, Effect.sync(() => {
        if (--lane.frames === 0 && lanes.get(lane.connection) === lane) lanes.delete(lane.connection)
      })))
      if (lane.units.length === 1) activate(lane)
    },
    /** Runs the queued units unless the scheduler is running already (it picks up new units as it goes). */
    run: Effect.suspend(() => {
      if (running) return Effect.void
      running = true
      return drain.pipe(Effect.onInterrupt(() => Effect.sync(() => {
        running = false
      })))
    }),
    /** Lanes with frames in progress (for tests and counters). */
    size: () => lanes.size
  }
}

/** The lanes of one object. */
export type Lanes = ReturnType<typeof make>
