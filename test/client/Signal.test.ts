/**
 * The client's writers: a burst of wake-ups makes one write, after the
 * delay (with none, once the burst has run), with the latest state, and no
 * second one for the same state; a slow write (a big table) holds the next
 * one back 20 times as long as it took (that hold-back at most 30 s, a
 * longer delay of its own kept), and a quick one brings the delay back (on
 * the TestClock: no real waiting).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { signal, writer } from "../../src/client/Signal.ts"

/**
 * A writer forked over a fresh signal, whose write records when it started and
 * what state it saw, and takes `cost()` ms of the clock.
 */
const started = (delayMs: number | undefined, cost: () => number, state: () => number = () => 0) =>
  Effect.gen(function*() {
    const dirty = signal()
    const writes: Array<{ readonly at: number; readonly saw: number }> = []
    const write = Effect.gen(function*() {
      writes.push({ at: yield* Clock.currentTimeMillis, saw: state() })
      yield* Effect.sleep(cost())
    })
    const fiber = yield* Effect.forkChild(writer(dirty, write, delayMs), { startImmediately: true })
    return { dirty, writes, fiber }
  })

describe("writer", () => {
  it.effect("a burst of wake-ups during the delay makes one write, with the latest state, and no second one", () =>
    Effect.gen(function*() {
      let value = 0
      const { dirty, writes, fiber } = yield* started(500, () => 0, () => value)
      for (let i = 0; i < 5; i++) {
        value = i
        dirty.raise()
        yield* TestClock.adjust(50)
      }
      assert.strictEqual(writes.length, 0, "written before the delay ran out")
      yield* TestClock.adjust(300)
      assert.deepStrictEqual(writes, [{ at: 500, saw: 4 }])
      yield* TestClock.adjust(5_000)
      assert.strictEqual(writes.length, 1, "the state the write read was written again")
      // a wake-up after the write is written, once
      value = 5
      dirty.raise()
      yield* TestClock.adjust(5_000)
      assert.deepStrictEqual(writes, [{ at: 500, saw: 4 }, { at: 6_050, saw: 5 }])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a write that took long holds the next one back 20 times as long; a quick one brings the delay back", () =>
    Effect.gen(function*() {
      let cost = 100
      const { dirty, writes, fiber } = yield* started(500, () => cost)
      dirty.raise()
      yield* TestClock.adjust(600) // written at 500, for 100 ms
      cost = 0
      dirty.raise()
      yield* TestClock.adjust(1_999)
      assert.strictEqual(writes.length, 1, "the write after a 100 ms one came before 2 s")
      yield* TestClock.adjust(1)
      dirty.raise()
      yield* TestClock.adjust(499)
      assert.strictEqual(writes.length, 2, "the write after a quick one waited less than the delay")
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(writes.map((w) => w.at), [500, 2_600, 3_100])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("however long the last write took (a clock jump while asleep), the next waits at most 30 s", () =>
    Effect.gen(function*() {
      let cost = 3_600_000
      const { dirty, writes, fiber } = yield* started(500, () => cost)
      dirty.raise()
      yield* TestClock.adjust(500 + 3_600_000)
      cost = 0
      dirty.raise()
      yield* TestClock.adjust(29_999)
      assert.strictEqual(writes.length, 1, "written before 30 s")
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(writes.map((w) => w.at), [500, 3_630_500])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a delay longer than the 30 s hold-back is kept", () =>
    Effect.gen(function*() {
      const { dirty, writes, fiber } = yield* started(60_000, () => 0)
      dirty.raise()
      yield* TestClock.adjust(59_999)
      assert.strictEqual(writes.length, 0, "written before its own delay ran out")
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(writes.map((w) => w.at), [60_000])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("without a delay, a burst of wake-ups in one run of code makes one write, once the burst has run", () =>
    Effect.gen(function*() {
      let value = 0
      const { dirty, writes, fiber } = yield* started(undefined, () => 0, () => value)
      // as a push's reply settles its actions: one raise each, synchronously
      for (let i = 1; i <= 5; i++) {
        value = i
        dirty.raise()
      }
      assert.strictEqual(writes.length, 0, "written in the middle of the burst")
      yield* Effect.yieldNow
      assert.deepStrictEqual(writes, [{ at: 0, saw: 5 }])
      yield* Effect.yieldNow
      assert.strictEqual(writes.length, 1, "a raise of the burst was written again")
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("without a delay, each wake-up is written at once, however long the last write took", () =>
    Effect.gen(function*() {
      const { dirty, writes, fiber } = yield* started(undefined, () => 100)
      dirty.raise()
      yield* Effect.yieldNow
      yield* TestClock.adjust(100)
      dirty.raise()
      yield* Effect.yieldNow
      assert.deepStrictEqual(writes.map((w) => w.at), [0, 100])
      yield* Fiber.interrupt(fiber)
    }))
})
