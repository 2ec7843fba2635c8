/**
 * The backoff for temporary refusals: its delays grow, stay jittered within
 * bounds and are capped, and the retry fiber starts the Schedule afresh at
 * the first refusal after a success (on the TestClock: no real waiting).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import { TestClock } from "effect/testing"
import { backoff, retryAfterBackoff } from "../../src/client/Retry.ts"

describe("backoff", () => {
  it.effect("starts near 50 ms, doubles, stays within 0.8 to 1.2 times, and never exceeds 5 s", () =>
    Effect.gen(function*() {
      const step = yield* Schedule.toStep(backoff)
      const delays: Array<number> = []
      for (let i = 0; i < 12; i++) delays.push(Duration.toMillis((yield* step(0, undefined))[1]))
      for (let i = 0; i < delays.length; i++) {
        const nominal = Math.min(5_000, 50 * 2 ** i)
        assert.isAtLeast(delays[i]!, Math.min(5_000, nominal * 0.8))
        assert.isAtMost(delays[i]!, Math.min(5_000, nominal * 1.2))
      }
      assert.strictEqual(delays.at(-1), 5_000)
    }))

  it.effect("the retry fiber sleeps on the schedule and starts it afresh at attempt 1", () =>
    Effect.gen(function*() {
      const requests = yield* Queue.unbounded<number>()
      let retried = 0
      const fiber = yield* Effect.forkChild(
        retryAfterBackoff(Queue.take(requests), () => retried++, Schedule.exponential(100)),
        { startImmediately: true }
      )
      // attempt -> the delay before its retry: 100, 200, 400, then 100 again after a success
      for (const [attempt, delay] of [[1, 100], [2, 200], [3, 400], [1, 100]] as const) {
        const before = retried
        yield* Queue.offer(requests, attempt)
        yield* TestClock.adjust(delay - 1)
        assert.strictEqual(retried, before, `attempt ${attempt} retried too early`)
        yield* TestClock.adjust(1)
        assert.strictEqual(retried, before + 1, `attempt ${attempt} not retried after ${delay} ms`)
      }
      yield* Fiber.interrupt(fiber)
    }))
})
