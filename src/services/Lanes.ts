/**
 * Fair scheduling of one object's work. Each connection has a lane: its
 * frames are accepted and prepared there in arrival order (cheap: decode,
 * check, authorize), and what they ask for (deciding a push, answering a
 * Subscribe) becomes a unit of work. Units run one at a time, round-robin
 * across principals and, within a principal, across its connections, so a
 * connection that floods waits behind its own work, not ahead of everyone
 * else's.
 *
 * Each frame, once accepted (or refused), runs the next unit in turn,
 * whichever lane it is on, in its own event; without frames arriving, the
 * work left goes on in a fiber of its own that yields to the event loop
 * before each unit, so that frames which arrived meanwhile are accepted
 * first and take part in the next turn. While a flood keeps frames coming,
 * work goes on at their pace and in fair turns, never waiting for the event
 * loop to empty.
 *
 * A long unit gives its turn away between steps (`turn`): it goes to the
 * back of the round, ahead of its own lane's later units, and resumes when
 * its lane comes up again. A unit that must wait for something outside the
 * scheduler (`away`) releases it meanwhile; its lane runs nothing else
 * until it is back. The work of a connection that is gone (closed, or muted
 * for abuse) stops at its next turn, and what it had queued never starts.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import type { RowId } from "../protocol/Protocol.ts"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { SyncConnection } from "./Connections.ts"

/** What a running unit may do with its turn. */
export interface Turns {
  /** Lets every other lane with work run once, then resumes. */
  readonly turn: Effect.Effect<void>
  /** Releases the scheduler while `wait` runs; resumes in the lane's next turn after it. */
  readonly away: <A, E, R>(wait: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** One connection's lane. */
export interface Lane {
  readonly connection: SyncConnection
  /** The principal the lane is scheduled under. */
  readonly principal: string | null
  /** Frames are prepared one at a time, in arrival order. */
  readonly preparing: Semaphore.Semaphore
  /** Units (and resumptions of a unit that gave its turn away) waiting to run, in order. */
  readonly entries: Array<Entry>
  /** In its principal's ring. */
  active: boolean
  /** A unit of this lane waits outside the scheduler: nothing else of the lane runs. */
  away: boolean
  /** Frames accepted and not finished. */
  frames: number
  /** Actions accepted and not decided. */
  actions: number
  /** Subscribes accepted and not answered. */
  syncs: number
  /** Subscribes waiting in the lane, by subscription name: a later one merges into the waiting one. */
  readonly waiting: Map<string, { since: number | null; history: string | undefined; held: ReadonlyArray<RowId> | undefined }>
}

/** The scheduler's slot: released once, by the unit holding it (when it ends or gives its turn away). */
interface Slot {
  readonly release: () => void
  readonly wait: Effect.Effect<void>
}

const makeSlot = (): Slot => {
  let released = false
  let waiters: Array<() => void> = []
  return {
    release: () => {
      if (released) return
      released = true
      const woken = waiters
      waiters = []
      for (const wake of woken) wake()
    },
    wait: Effect.callback<void>((resume) => {
      if (released) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      waiters.push(wake)
      return Effect.sync(() => {
        waiters = waiters.filter((w) => w !== wake)
      })
    })
  }
}

/** A running unit's hold on the scheduler. */
interface Holder {
  slot: Slot
}

type Entry =
  | { readonly _tag: "Start"; readonly holder: Holder; readonly unit: Effect.Effect<void> }
  | { readonly _tag: "Resume"; readonly holder: Holder; readonly resume: () => void }

/** Yields to the runtime's event loop, so that frames waiting to be delivered are accepted (and replies sent go out). */
export const yieldToRuntime: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const timer = setTimeout(() => resume(Effect.void), 0)
  return Effect.sync(() => clearTimeout(timer))
})

/** The lanes of one object and their scheduler; units run in fibers of `scope`. */
export const make = (scope: Scope.Scope) => {
  const lanes = new Map<SyncConnection, Lane>()
  // principals with runnable lanes, in turn order; each with its lanes in turn order
  const order: Array<string | null> = []
  const byPrincipal = new Map<string | null, Array<Lane>>()

  const activate = (lane: Lane) => {
    if (lane.active || lane.away || lane.entries.length === 0) return
    lane.active = true
    let ring = byPrincipal.get(lane.principal)
    if (ring === undefined) {
      byPrincipal.set(lane.principal, (ring = []))
      order.push(lane.principal)
    }
    ring.push(lane)
  }

  const next = (): Entry | undefined => {
    for (;;) {
      const principal = order.shift()
      if (principal === undefined) return undefined
      const ring = byPrincipal.get(principal)!
      const lane = ring.shift()!
      lane.active = false
      const entry = lane.away ? undefined : lane.entries.shift()
      if (entry !== undefined && lane.entries.length > 0) {
        lane.active = true
        ring.push(lane)
      }
      if (ring.length > 0) order.push(principal)
      else byPrincipal.delete(principal)
      if (entry !== undefined) return entry
    }
  }

  /** The slot of the entry running now, if any: one at a time. */
  let current: Slot | undefined
  let draining = false

  /** Runs the next entry in turn until it ends or gives its turn away; false when none could run. */
  const step: Effect.Effect<boolean> = Effect.suspend(() => {
    if (current !== undefined) return Effect.succeed(false)
    const entry = next()
    if (entry === undefined) return Effect.succeed(false)
    const slot = makeSlot()
    current = slot
    entry.holder.slot = slot
    const started = entry._tag === "Resume"
      ? Effect.sync(entry.resume)
      // a unit answers its own failures; a defect is logged here so that the turns go on
      : Effect.forkIn(
        Effect.ensuring(
          Effect.catchCause(entry.unit, (cause) =>
            Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError("effect-partysync: a unit of work failed", cause)),
          Effect.sync(() => entry.holder.slot.release())
        ),
        scope,
        // in this event, now: a synchronous unit is done before the step returns
        { startImmediately: true }
      )
    return Effect.andThen(started, slot.wait).pipe(
      Effect.ensuring(Effect.sync(() => {
        if (current === slot) current = undefined
      })),
      Effect.as(true)
    )
  })

  // Without frames arriving, the work left goes on in a fiber of its own, one entry per turn of the event loop.
  const drain: Effect.Effect<void> = Effect.gen(function*() {
    for (;;) {
      yield* yieldToRuntime
      if (current !== undefined) yield* current.wait
      else if (!(yield* step) && order.length === 0) return
    }
  }).pipe(Effect.ensuring(Effect.sync(() => {
    draining = false
  })))

  /**
   * Runs one entry in turn here, in the event of the frame that called it,
   * then leaves the rest to the drain. Every frame that arrives runs one:
   * while frames keep coming (a flood), work goes on at their pace and in
   * fair turns, rather than waiting for the event loop to empty.
   */
  const done = (lane: Lane) => {
    if (--lane.frames === 0 && lanes.get(lane.connection) === lane) lanes.delete(lane.connection)
  }

  const kick: Effect.Effect<void> = Effect.suspend(() => {
    if (draining || order.length === 0) return Effect.void
    draining = true
    return Effect.asVoid(Effect.forkIn(drain, scope))
  })
  const run: Effect.Effect<void> = Effect.andThen(step, kick)

  /** Queues `holder`'s resumption at the front of its lane (its lane's later units stay behind it). */
  const requeue = (lane: Lane, holder: Holder, resume: () => void) => {
    lane.entries.unshift({ _tag: "Resume", holder, resume })
    activate(lane)
  }

  const goneConnections = new WeakSet<SyncConnection>()
  /** Ends a unit whose connection went away while it waited for its turn. */
  const stillThere = (lane: Lane): Effect.Effect<void> => Effect.suspend(() => (goneConnections.has(lane.connection) ? Effect.interrupt : Effect.void))

  const turnsOf = (lane: Lane, holder: Holder): Turns => ({
    turn: Effect.suspend(() => {
      const back = makeSlot()
      requeue(lane, holder, back.release)
      holder.slot.release()
      return Effect.andThen(back.wait, stillThere(lane))
    }),
    away: (wait) =>
      Effect.gen(function*() {
        lane.away = true
        holder.slot.release()
        const result = yield* Effect.exit(wait)
        lane.away = false
        const back = makeSlot()
        requeue(lane, holder, back.release)
        // never `run` here: a step in this fiber could pick this very unit and wait for itself
        yield* kick
        yield* back.wait
        yield* stillThere(lane)
        return yield* result
      })
  })

  return {
    /** The lane of a connection, made (not yet registered) when it has none. */
    laneOf: (connection: SyncConnection, principal: string | null): Lane =>
      lanes.get(connection) ?? {
        connection,
        principal,
        preparing: Semaphore.makeUnsafe(1),
        entries: [],
        active: false,
        away: false,
        frames: 0,
        actions: 0,
        syncs: 0,
        waiting: new Map()
      },
    /** The lane of a connection with frames in progress, if any. */
    peek: (connection: SyncConnection): Lane | undefined => lanes.get(connection),
    /**
     * Counts a frame on its lane (registering the lane): a lane lives as long
     * as it has frames in progress. `done` uncounts a frame that queued no
     * unit; a unit uncounts its frame when it ends.
     */
    begin: (lane: Lane) => {
      if (lane.frames++ === 0) lanes.set(lane.connection, lane)
    },
    done,
    /**
     * Queues a unit on its lane (run the scheduler with `run` after); the
     * returned Effect waits until the unit has ended.
     */
    enqueue: (lane: Lane, unit: (turns: Turns) => Effect.Effect<void>): Effect.Effect<void> => {
      let ended: (() => void) | undefined
      let finished = false
      const holder: Holder = { slot: makeSlot() }
      const body = Effect.ensuring(
        Effect.andThen(stillThere(lane), Effect.suspend(() => unit(turnsOf(lane, holder)))),
        Effect.sync(() => {
          finished = true
          done(lane)
          ended?.()
        })
      )
      lane.entries.push({ _tag: "Start", holder, unit: body })
      activate(lane)
      return Effect.callback<void>((resume) => {
        if (finished) resume(Effect.void)
        else ended = () => resume(Effect.void)
      })
    },
    /** Starts the scheduler in its own fiber unless it is running (it picks up new units as it goes). */
    run,
    /** The connection is gone: its queued units never start, its running one stops at its next turn. */
    gone: (connection: SyncConnection) => {
      goneConnections.add(connection)
    },
    /** Lanes with frames in progress (for tests and counters). */
    size: () => lanes.size
  }
}

/** The lanes of one object. */
export type Lanes = ReturnType<typeof make>
