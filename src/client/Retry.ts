/**
 * Waiting out temporary refusals (`TooManyInFlight`, `Unavailable`). The
 * engine never sleeps: it asks for a retry, with the number of refusals in a
 * row, and a fiber sleeps on a Schedule (exponential with jitter, capped)
 * before it lets the engine try again. The first refusal after a success
 * starts the Schedule afresh, so one slow moment long ago never delays the
 * next retry by seconds.
 *
 * @since 0.2.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/**
 * 50 ms, doubling, each delay jittered (0.8 to 1.2 times) and never more
 * than 5 s. The jitter is applied in `modifyDelay` along with the cap:
 * `Schedule.jittered` does the same through the Random service, which costs
 * a browser bundle more than this line.
 */
export const backoff: Schedule.Schedule<unknown> = Schedule.exponential(50).pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Math.min(5_000, Duration.toMillis(duration) * (0.8 + 0.4 * Math.random()))))
)

/** Runs forever: for each request (`next` gives its attempt number) waits the Schedule's next delay, then calls `retry`. */
export const retryAfterBackoff = (
  next: Effect.Effect<number>,
  retry: () => void,
  schedule: Schedule.Schedule<unknown> = backoff
): Effect.Effect<never> =>
  Effect.gen(function*() {
    let step = yield* Schedule.toStepWithSleep(schedule)
    while (true) {
      const attempt = yield* next
      if (attempt <= 1) step = yield* Schedule.toStepWithSleep(schedule)
      // the schedule never ends, so the step never fails
      yield* Effect.orDie(step(undefined))
      retry()
    }
  })
