/**
 * Waiting out temporary refusals (`TooManyInFlight`, `Unavailable`). The
 * engine never sleeps: it asks for a retry, with the number of refusals in a
 * row, and a fiber steps a Schedule (exponential) and sleeps its delay,
 * jittered and capped, before it lets the engine try again. The first
 * refusal after a success starts the Schedule afresh, so one slow moment
 * long ago never delays the next retry by seconds.
 *
 * The jitter and the cap are applied to each delay here rather than with
 * `Schedule.jittered` or `Schedule.modifyDelay` (and the step is slept here
 * rather than by `toStepWithSleep`): that saves the React entry 137 B
 * gzipped (measured with `npm run bench`, scenario 7), which is what kept it
 * over its 40 KB budget.
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/** The delays before retries 1, 2, ...: 50 ms, doubling (then jittered and capped by `jitter`). */
export const backoff: Schedule.Schedule<unknown> = Schedule.exponential(50)

/** A delay spread 0.8 to 1.2 times, so clients refused together do not retry together, and never over 5 s. */
export const jitter = (ms: number, random: () => number = Math.random): number => Math.min(5_000, ms * (0.8 + 0.4 * random()))

/** Runs forever: for each request (`next` gives its attempt number) waits the Schedule's next delay, jittered, then calls `retry`. */
export const retryAfterBackoff = (
  next: Effect.Effect<number>,
  retry: () => void,
  schedule: Schedule.Schedule<unknown> = backoff
): Effect.Effect<never> =>
  Effect.gen(function*() {
    let step = yield* Schedule.toStep(schedule)
    while (true) {
      const attempt = yield* next
      if (attempt <= 1) step = yield* Schedule.toStep(schedule)
      // the schedule never ends, so the step never fails
      const [, delay] = yield* Effect.orDie(step(Date.now(), undefined))
      yield* Effect.sleep(jitter(Duration.toMillis(delay)))
      retry()
    }
  })
