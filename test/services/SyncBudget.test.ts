/**
 * The full-sync budget (src/services/SyncBudget.ts): past the room's or the
 * connection's budget a sync waits (never refused), places are granted
 * round-robin across principals, and an interrupted waiter leaves the queue.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SyncBudget from "../../src/services/SyncBudget.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"

describe("SyncBudget", () => {
  it.effect("past the room's budget syncs wait, and places go round principals rather than in arrival order", () =>
    Effect.gen(function*() {
      const budget = SyncBudget.make({ room: 1, connection: 1 })
      let queued = 0
      const granted: Array<string> = []
      const take = (name: string, principal: string) =>
        Effect.forkChild(
          Effect.tap(budget.acquire(makeMemoryConnection(name), principal, () => queued++), () => Effect.sync(() => granted.push(name))),
          { startImmediately: true }
        )
      const first = yield* take("p1", "p")
      const waiting = [yield* take("p2", "p"), yield* take("p3", "p"), yield* take("q1", "q")]
      assert.deepStrictEqual(granted, ["p1"])
      assert.strictEqual(queued, 3)
      assert.deepStrictEqual(budget.size(), { running: 1, waiting: 3 })
      const byName = new Map([["p2", waiting[0]!], ["p3", waiting[1]!], ["q1", waiting[2]!]])
      let release = yield* Fiber.join(first)
      for (let i = 1; i <= 3; i++) {
        yield* release
        yield* Effect.yieldNow
        release = yield* Fiber.join(byName.get(granted[i]!)!)
      }
      yield* release
      assert.deepStrictEqual(granted, ["p1", "p2", "q1", "p3"])
      assert.deepStrictEqual(budget.size(), { running: 0, waiting: 0 })
    }))

  it.effect("one connection's second sync waits for its first even when the room has places", () =>
    Effect.gen(function*() {
      const budget = SyncBudget.make({ room: 5, connection: 1 })
      const mine = makeMemoryConnection("mine")
      const release = yield* budget.acquire(mine, null, () => {})
      const second = yield* Effect.forkChild(budget.acquire(mine, null, () => {}), { startImmediately: true })
      const other = yield* budget.acquire(makeMemoryConnection("other"), null, () => {})
      assert.deepStrictEqual(budget.size(), { running: 2, waiting: 1 })
      yield* release
      yield* Effect.flatten(Fiber.join(second))
      yield* other
      assert.deepStrictEqual(budget.size(), { running: 0, waiting: 0 })
    }))

  it.effect("an interrupted waiter leaves the queue", () =>
    Effect.gen(function*() {
      const budget = SyncBudget.make({ room: 1, connection: 1 })
      const release = yield* budget.acquire(makeMemoryConnection("a"), null, () => {})
      const waiter = yield* Effect.forkChild(budget.acquire(makeMemoryConnection("b"), null, () => {}), { startImmediately: true })
      assert.deepStrictEqual(budget.size(), { running: 1, waiting: 1 })
      yield* Fiber.interrupt(waiter)
      assert.deepStrictEqual(budget.size(), { running: 1, waiting: 0 })
      yield* release
      assert.deepStrictEqual(budget.size(), { running: 0, waiting: 0 })
    }))
})
