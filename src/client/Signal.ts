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
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"

/**
 * A wake-up call for one waiting fiber: `raise` it any number of times; `next`
 * waits for it and resets it; `reset` forgets raises made before it. `soon` is
 * for work that can wait: it raises on a timer, unless a `raise` has woken the
 * fiber before then.
 */
export const signal = () => {
  let raised = Deferred.makeUnsafe<void>()
  const done = (d: Deferred.Deferred<void>) => void Deferred.doneUnsafe(d, Effect.void)
  const reset = () => {
    raised = Deferred.makeUnsafe<void>()
  }
  return {
    reset,
    raise: (): void => done(raised),
    soon: (): void => {
      // the Deferred of the moment: once the fiber has woken and reset, the timer's call is a no-op
      const current = raised
      setTimeout(() => done(current))
    },
    next: Effect.suspend(() => Deferred.await(raised)).pipe(Effect.andThen(Effect.sync(reset)))
  }
}

/** A wake-up call. */
export type Signal = ReturnType<typeof signal>

/**
 * Resumes once the code running now and the microtasks queued before this
 * one have run: a raise wakes its fiber synchronously, in the middle of the
 * burst that raised it.
 */
const afterBurst: Effect.Effect<void> = Effect.callback<void>((resume) => {
  queueMicrotask(() => resume(Effect.void))
})

/**
 * Runs `write` after each wake-up (after `delayMs`, to gather a burst; with
 * none, once the burst that woke it has run: a push's reply settling 64
 * actions, or a loop of sends, makes one write, not 64), never two at once.
 * A delayed write waits the longer of `delayMs` and 20 times the last
 * write's duration, so that a slow one (a big table) keeps to a small share
 * of the time. The hold-back stops at 30 s: a write is timed by the wall
 * clock, which may step, or run on while the host sleeps.
 */
export const writer = (dirty: Signal, write: Effect.Effect<void>, delayMs = 0): Effect.Effect<never> =>
  Effect.gen(function*() {
    let took = 0
    while (true) {
      yield* dirty.next
      yield* delayMs > 0 ? Effect.sleep(Math.max(delayMs, Math.min(30_000, 20 * took))) : afterBurst
      // the write reads the latest state: raises meanwhile are in it and need no write of their own
      dirty.reset()
      const start = yield* Clock.currentTimeMillis
      yield* write
      took = (yield* Clock.currentTimeMillis) - start
    }
  })
