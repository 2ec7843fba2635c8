/**
 * How the client's fibers wait for work: the engine is synchronous and
 * only says "something changed" (records, the pending queue, a retry due),
 * any number of times; a fiber per kind of work wakes once for all of them
 * and does the work with the latest state, so writes never overlap and never
 * carry stale data. A Deferred per wake-up keeps this to what browser
 * bundles already hold (a Queue or a Latch would add 0.3 to 1.5 KB gzipped).
 *
 * @since 0.2.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"

/** A wake-up call for one waiting fiber: `raise` it any number of times; `next` waits for it and resets it. */
export const signal = () => {
  let raised = Deferred.makeUnsafe<void>()
  return {
    raise: (): void => void Deferred.doneUnsafe(raised, Effect.void),
    /** Waits for a raise, then for `pause`: every raise until `pause` ends counts as that one. */
    next: (pause: Effect.Effect<void> = Effect.void) =>
      Effect.suspend(() => Deferred.await(raised)).pipe(Effect.andThen(pause), Effect.andThen(Effect.sync(() => {
        raised = Deferred.makeUnsafe<void>()
      })))
  }
}

/** A wake-up call. */
export type Signal = ReturnType<typeof signal>

/**
 * Runs `write` after each wake-up, never two at once: after `delayMs`, or
 * else once the current task is over. A raise resumes the fiber inline, so
 * without that pause the pending queue was written inside the reply's event,
 * before the action settled, and twice per action (at its send and at its
 * reply); now the reply settles first and the next send shares its write.
 */
export const writer = (dirty: Signal, write: Effect.Effect<void>, delayMs = 0): Effect.Effect<never> =>
  Effect.gen(function*() {
    while (true) {
      // the write reads the state after the pause, so the changes raised during it are in it
      yield* dirty.next(delayMs > 0 ? Effect.sleep(delayMs) : Effect.yieldNow)
      yield* write
    }
  })
