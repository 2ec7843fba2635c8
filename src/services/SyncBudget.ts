/**
 * The budget for full syncs: at most `maxFullSyncsPerRoom` in progress in
 * the object and `maxFullSyncsPerConnection` on one connection. A full sync
 * past either waits its turn (it is never refused for it); waiting ones are
 * granted round-robin across principals, so a crowd of one principal's
 * sockets cannot keep another principal's sync waiting behind all of theirs.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import type { SyncConnection } from "./Connections.ts"

interface Waiter {
  readonly connection: SyncConnection
  readonly grant: () => void
  /** Granted a place (it holds one until released). */
  granted: boolean
}

/** The budget of one object. */
export const make = (limits: { readonly room: number; readonly connection: number }, watch: { readonly waiting: (delta: number) => void; readonly running: (delta: number) => void } = {
  waiting: () => {},
  running: () => {}
}) => {
  let running = 0
  const perConnection = new Map<SyncConnection, number>()
  // principals with waiting syncs, in turn order; each with its waiters in arrival order
  const order: Array<string | null> = []
  const queues = new Map<string | null, Array<Waiter>>()

  const fits = (connection: SyncConnection) =>
    running < Math.max(1, limits.room) && (perConnection.get(connection) ?? 0) < Math.max(1, limits.connection)

  const take = (connection: SyncConnection) => {
    running++
    perConnection.set(connection, (perConnection.get(connection) ?? 0) + 1)
    watch.running(1)
  }

  /** Grants waiting syncs while the budget allows: the first of the next principal whose connection has room. */
  const grantWaiting = () => {
    let tried = 0
    while (order.length > 0 && running < Math.max(1, limits.room) && tried < order.length) {
      const principal = order.shift()!
      const queue = queues.get(principal)!
      const index = queue.findIndex((w) => fits(w.connection))
      if (index < 0) {
        order.push(principal)
        tried++
        continue
      }
      tried = 0
      const [waiter] = queue.splice(index, 1)
      if (queue.length > 0) order.push(principal)
      else queues.delete(principal)
      watch.waiting(-1)
      take(waiter!.connection)
      waiter!.granted = true
      waiter!.grant()
    }
  }

  const release = (connection: SyncConnection) => {
    running--
    watch.running(-1)
    const n = (perConnection.get(connection) ?? 1) - 1
    if (n <= 0) perConnection.delete(connection)
    else perConnection.set(connection, n)
    grantWaiting()
  }

  const remove = (principal: string | null, waiter: Waiter) => {
    const queue = queues.get(principal)
    const index = queue?.indexOf(waiter) ?? -1
    if (index < 0) return
    queue!.splice(index, 1)
    watch.waiting(-1)
    if (queue!.length === 0) {
      queues.delete(principal)
      order.splice(order.indexOf(principal), 1)
    }
  }

  /** Waits for a place; `held` is set when it is granted (synchronously, so that whoever runs the waiter can give it back). */
  const place = (connection: SyncConnection, principal: string | null, queued: () => void, held: { granted: boolean }): Effect.Effect<void> =>
    Effect.callback<void>((resume) => {
      // in the queue first: a place goes to the next principal in turn, which may be this one
      const waiter: Waiter = {
        connection,
        grant: () => {
          held.granted = true
          resume(Effect.void)
        },
        granted: false
      }
      let queue = queues.get(principal)
      if (queue === undefined) {
        queues.set(principal, (queue = []))
        order.push(principal)
      }
      queue.push(waiter)
      watch.waiting(1)
      grantWaiting()
      if (!waiter.granted) queued()
      // interrupted while waiting: out of the queue (a place granted meanwhile is given back by `within`)
      return Effect.sync(() => {
        if (!waiter.granted) remove(principal, waiter)
      })
    })

  return {
    /**
     * Runs `self` with a place in the budget, waiting for one first through
     * `wait` (which may run the waiting elsewhere); `queued` is told when it
     * must wait. The place goes back however `self` ends, interrupted included.
     */
    within: <A, E, R>(
      connection: SyncConnection,
      principal: string | null,
      queued: () => void,
      self: Effect.Effect<A, E, R>,
      wait: (place: Effect.Effect<void>) => Effect.Effect<void> = (place) => place
    ): Effect.Effect<A, E, R> => {
      const held = { granted: false }
      return Effect.ensuring(
        Effect.andThen(wait(place(connection, principal, queued, held)), self),
        Effect.sync(() => {
          if (!held.granted) return
          held.granted = false
          release(connection)
        })
      )
    },
    /** Full syncs in progress and waiting (for tests and counters). */
    size: () => ({ running, waiting: [...queues.values()].reduce((n, q) => n + q.length, 0) })
  }
}

/** The full-sync budget of one object. */
export type SyncBudget = ReturnType<typeof make>
