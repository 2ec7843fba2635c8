/**
 * Waiting out temporary refusals (`TooManyInFlight`, `Unavailable`). The
 * engine never sleeps: it asks for a retry, with the number of refusals in a
 * row, and a fiber sleeps the backoff for that attempt before it lets the
 * engine try again. The first refusal after a success is attempt 1 again, so
 * one slow moment long ago never delays the next retry by seconds.
 *
 * The delay is a function of the attempt rather than a `Schedule`: the
 * Schedule module costs the React entry about 420 B gzipped (measured with
 * `npm run bench`, scenario 7), which is what kept it over its 40 KB budget,
 * and a backoff that depends on nothing but the attempt needs none of its
 * state.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"

/** The delay before retry `attempt` (1, 2, ...): 50 ms doubling, jittered 0.8 to 1.2 times, never over 5 s. */
export const backoff = (attempt: number, random: () => number = Math.random): number =>
  Math.min(5_000, 50 * 2 ** (attempt - 1) * (0.8 + 0.4 * random()))

/** Runs forever: for each request (`next` gives its attempt number) waits `delay(attempt)` ms, then calls `retry`. */
export const retryAfterBackoff = (
  next: Effect.Effect<number>,
  retry: () => void,
  delay: (attempt: number) => number = backoff
): Effect.Effect<never> =>
  Effect.gen(function*() {
    while (true) {
      const attempt = yield* next
      yield* Effect.sleep(delay(attempt))
      retry()
    }
  })
