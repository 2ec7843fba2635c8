/**
 * Change notifications of one client, batched per microtask: a burst of
 * frames notifies once. Listeners that are slow (they rebuild a large
 * snapshot: 0.7 ms for 100k rows) get at most a quarter of the time, so a
 * burst coalesces into few rebuilds; cheap listeners are always called at
 * once.
 *
 * @since 0.2.0
 */

/** A set of listeners and the batched `notify` that calls them. */
export const make = () => {
  const listeners = new Set<() => void>()
  let scheduled = false
  let quietUntil = 0
  const run = () => {
    scheduled = false
    const start = performance.now()
    for (const l of [...listeners]) l()
    const cost = performance.now() - start
    quietUntil = cost > 0.25 ? start + cost * 4 : 0
  }
  return {
    listeners,
    /** Calls every listener soon (once for any number of calls before then). */
    notify: () => {
      if (scheduled) return
      scheduled = true
      const wait = quietUntil - performance.now()
      if (wait > 0) setTimeout(run, wait)
      else queueMicrotask(run)
    },
    /** Adds a listener; returns the unsubscribe. */
    subscribe: (listener: () => void) => {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    }
  }
}
