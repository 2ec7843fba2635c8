/**
 * The backoff for temporary refusals: its delays grow from 50 ms, each is
 * jittered within bounds and capped, and the retry fiber starts the Schedule
 * afresh at the first refusal after a success (on the TestClock: no real
 * waiting).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import { TestClock } from "effect/testing"
import { backoff, jitter, retryAfterBackoff } from "../../src/client/Retry.ts"

describe("backoff", () => {
  it.effect("starts at 50 ms and doubles", () =>
    Effect.gen(function*() {
      const step = yield* Schedule.toStep(backoff)
      const delays: Array<number> = []
      for (let i = 0; i < 8; i++) delays.push(Duration.toMillis((yield* step(0, undefined))[1]))
      assert.deepStrictEqual(delays, [50, 100, 200, 400, 800, 1_600, 3_200, 6_400])
    }))

  it("jitter keeps a delay within 0.8 to 1.2 times, spreads clients out, and never exceeds 5 s", () => {
    for (const random of [() => 0, () => 0.5, () => 0.999999, Math.random]) {
      for (const ms of [50, 400, 3_200]) {
        assert.isAtLeast(jitter(ms, random), ms * 0.8)
        assert.isAtMost(jitter(ms, random), ms * 1.2)
      }
      assert.strictEqual(jitter(6_400, random), 5_000)
    }
    assert.notStrictEqual(jitter(400, () => 0), jitter(400, () => 0.9))
  })

  it.effect("the retry fiber sleeps each step's jittered delay and starts the schedule afresh at attempt 1", () =>
    Effect.gen(function*() {
      const requests = yield* Queue.unbounded<number>()
      let retried = 0
      const fiber = yield* Effect.forkChild(
        retryAfterBackoff(Queue.take(requests), () => retried++, Schedule.exponential(100)),
        { startImmediately: true }
      )
      // attempt -> the schedule's delay before its retry: 100, 200, 400, then 100 again after a success
      for (const [attempt, delay] of [[1, 100], [2, 200], [3, 400], [1, 100]] as const) {
        const before = retried
        yield* Queue.offer(requests, attempt)
        yield* TestClock.adjust(delay * 0.8 - 1)
        assert.strictEqual(retried, before, `attempt ${attempt} retried too early`)
        yield* TestClock.adjust(delay * 0.4 + 1)
        assert.strictEqual(retried, before + 1, `attempt ${attempt} not retried by 1.2 x ${delay} ms`)
      }
      yield* Fiber.interrupt(fiber)
    }))
})
