/**
 * The full-sync budget (src/services/SyncBudget.ts): past the room's or the
 * connection's budget a sync waits (never refused), places are granted
 * round-robin across principals, and a place always goes back: when the
 * sync ends, fails or is interrupted, waiting or running.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SyncBudget from "../../src/services/SyncBudget.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"

/** A sync that records when it got its place and holds it until `finish` is called. */
const syncs = (budget: SyncBudget.SyncBudget) => {
  const granted: Array<string> = []
  let queued = 0
  const gates = new Map<string, Deferred.Deferred<void>>()
  const start = (name: string, principal: string | null, connection = makeMemoryConnection(name)) =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      gates.set(name, gate)
      return yield* Effect.forkChild(
        budget.within(connection, principal, () => queued++, Effect.andThen(Effect.sync(() => granted.push(name)), Deferred.await(gate))),
        { startImmediately: true }
      )
    })
  const finish = (name: string) => Effect.andThen(Deferred.succeed(gates.get(name)!, undefined), Effect.yieldNow)
  return { granted, queued: () => queued, start, finish }
}

describe("SyncBudget", () => {
  it.effect("past the room's budget syncs wait, and places go round principals rather than in arrival order", () =>
    Effect.gen(function*() {
      const budget = SyncBudget.make({ room: 1, connection: 1 })
      const s = syncs(budget)
      const fibers = [yield* s.start("p1", "p"), yield* s.start("p2", "p"), yield* s.start("p3", "p"), yield* s.start("q1", "q")]
      assert.deepStrictEqual(s.granted, ["p1"])
      assert.strictEqual(s.queued(), 3)
      assert.deepStrictEqual(budget.size(), { running: 1, waiting: 3 })
      for (const name of ["p1", "p2", "q1", "p3"]) {
        assert.strictEqual(s.granted[s.granted.length - 1], name)
        yield* s.finish(name)
      }
      for (const fiber of fibers) yield* Fiber.join(fiber)
      assert.deepStrictEqual(s.granted, ["p1", "p2", "q1", "p3"])
      assert.deepStrictEqual(budget.size(), { running: 0, waiting: 0 })
    }))

  it.effect("one connection's second sync waits for its first even when the room has places", () =>
    Effect.gen(function*() {
      const budget = SyncBudget.make({ room: 5, connection: 1 })
      const s = syncs(budget)
      const mine = makeMemoryConnection("mine")
      yield* s.start("first", null, mine)
      yield* s.start("second", null, mine)
      yield* s.start("other", null)
      assert.deepStrictEqual(s.granted, ["first", "other"])
      assert.deepStrictEqual(budget.size(), { running: 2, waiting: 1 })
      yield* s.finish("first")
      assert.deepStrictEqual(s.granted, ["first", "other", "second"])
    }))

  it.effect("a place goes back when the sync is interrupted, waiting or running", () =>
    Effect.gen(function*() {
      const budget = SyncBudget.make({ room: 1, connection: 1 })
      const s = syncs(budget)
      const running = yield* s.start("running", null)
      const waiting = yield* s.start("waiting", null)
      assert.deepStrictEqual(budget.size(), { running: 1, waiting: 1 })
      yield* Fiber.interrupt(waiting)
      assert.deepStrictEqual(budget.size(), { running: 1, waiting: 0 })
      yield* Fiber.interrupt(running)
      assert.deepStrictEqual(budget.size(), { running: 0, waiting: 0 })
      // granted while waiting elsewhere (as a unit away from the scheduler), then interrupted before it ran
      const holder = yield* s.start("holder", null)
      const gate = yield* Deferred.make<void>()
      const late = yield* Effect.forkChild(
        budget.within(makeMemoryConnection("late"), null, () => {}, Effect.void, (place) => Effect.andThen(place, Deferred.await(gate))),
        { startImmediately: true }
      )
      yield* s.finish("holder")
      yield* Fiber.join(holder)
      assert.deepStrictEqual(budget.size(), { running: 1, waiting: 0 })
      yield* Fiber.interrupt(late)
      assert.deepStrictEqual(budget.size(), { running: 0, waiting: 0 })
    }))
})
