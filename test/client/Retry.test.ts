/**
 * The backoff for temporary refusals: its delays grow, stay jittered within
 * bounds and are capped, and the retry fiber waits the delay of each
 * request's attempt, so attempt 1 after a success starts short again (on the
 * TestClock: no real waiting).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import { TestClock } from "effect/testing"
import { backoff, retryAfterBackoff } from "../../src/client/Retry.ts"

describe("backoff", () => {
  it("starts near 50 ms, doubles, stays within 0.8 to 1.2 times, and never exceeds 5 s", () => {
    for (const random of [() => 0, () => 0.5, () => 0.999999, Math.random]) {
      for (let attempt = 1; attempt <= 12; attempt++) {
        const nominal = 50 * 2 ** (attempt - 1)
        const delay = backoff(attempt, random)
        assert.isAtLeast(delay, Math.min(5_000, nominal * 0.8), `attempt ${attempt}`)
        assert.isAtMost(delay, Math.min(5_000, nominal * 1.2), `attempt ${attempt}`)
      }
      assert.strictEqual(backoff(12, random), 5_000)
    }
    // the jitter spreads clients out: not every client retries at the same instant
    assert.notStrictEqual(backoff(3, () => 0), backoff(3, () => 0.9))
  })

  it.effect("the retry fiber waits the delay of each request's attempt, so a success starts it afresh", () =>
    Effect.gen(function*() {
      const requests = yield* Queue.unbounded<number>()
      let retried = 0
      const fiber = yield* Effect.forkChild(
        retryAfterBackoff(Queue.take(requests), () => retried++, (attempt) => 100 * 2 ** (attempt - 1)),
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
