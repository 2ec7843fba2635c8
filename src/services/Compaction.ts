/**
 * Log compaction: entries for the same row pile up in the change log, and a
 * resume reads every one of them. Once the entries written since the last
 * compaction could have left more older ones behind than an eighth of what
 * it kept (plus 4), the log keeps only the newest published entry of each
 * row. A resume then reads at most about 1.125 entries per changed row,
 * wherever it falls in the cycle (10,000 writes to 100 rows: at most 117
 * entries, 236 rows read with each entry's row; a quarter allowed 133
 * entries and 268 rows, and measured 202 or 264 by where the cycle ended).
 * Each compaction reads the log, so writes to rows already in it read about
 * nine log rows each; a row read is billed at a thousandth of a row written.
 *
 * An entry leaves an older one of its row behind when an update or a
 * removal wrote it, or an insert of an id removed before (`ChangeLog.ts`
 * logs what wrote each entry). So an update counts one, a removal two (the
 * second for the insert that may follow it) and an insert none: a log that
 * only grows with new rows is never read for a compaction that would drop
 * nothing. Entries published without being read (their channel had no
 * subscriber) count two.
 *
 * Compaction reads the whole log, so it runs in a turn of its own after the
 * event that made it due, under the write lock: that event's reply or answer
 * goes out first (a bulk write of 100k rows answered 75 ms sooner).
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import type * as Capture from "./Capture.ts"
import * as ChangeLog from "./ChangeLog.ts"
import { storageError } from "./Errors.ts"
import * as Histories from "./Histories.ts"
import { yieldToRuntime } from "./Lanes.ts"
import type { StorageShape } from "./Storage.ts"

/** A compaction is due once what was written since may have left more than an eighth of what the last one kept, plus 4, behind. */
export const isDue = (debt: number, kept: number): boolean => debt > kept / 8 + 4

/**
 * How many older entries `versions` new log entries may have left behind, at
 * most, given what reading them found: an update one (the entry before it);
 * a removal two (the entry before it, and itself, which a later insert of
 * the same id leaves behind); an insert none (that case is the removal's);
 * an entry not read two.
 */
export const debtOf = (versions: number, entries: Capture.Entries): number => {
  const updates = entries.read - entries.inserts - entries.removals
  return 2 * Math.max(0, versions - entries.read) + updates + 2 * entries.removals
}

/** What compaction needs of the feed around it. */
export interface CompactionOptions {
  readonly storage: StorageShape
  /** Runs an effect holding the feed's write lock. */
  readonly exclusive: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** The feed's published version: only entries at or below it are compacted. */
  readonly published: () => number
  /** Where the compaction's fiber runs (the object's services). */
  readonly scope: Scope.Scope
}

/** The compaction of one object's log: counts what writes may have left behind, and compacts in a turn of its own once due. */
export const make = (options: CompactionOptions) => {
  const { storage } = options
  // entries kept by the last compaction, and the older entries written since may have left behind
  let kept = 0
  let debt = 0
  let scheduled = false
  let fiber: Fiber.Fiber<void> | undefined

  const compact = Effect.suspend(() => {
    if (!isDue(debt, kept)) return Effect.void
    return storage.transaction(Effect.try({
      try: () => {
        const published = options.published()
        storage.rawUnsafe(ChangeLog.COMPACT, published, published)
        kept = Number(storage.rawUnsafe(`SELECT count(*) FROM _psync_log`)[0]?.[0] ?? 0)
        Histories.setMeta(storage, "log_kept", kept)
        debt = 0
      },
      catch: storageError
    }))
  })

  /** After a publish: a compaction now due runs in a later turn of the event loop, under the lock. */
  const soon: Effect.Effect<void> = Effect.suspend(() => {
    if (scheduled || !isDue(debt, kept)) return Effect.void
    // one compaction waits at a time: it compacts whatever was written until it holds the lock
    scheduled = true
    return Effect.map(
      Effect.forkIn(
        yieldToRuntime.pipe(
          Effect.andThen(options.exclusive(compact)),
          Effect.catch((e) => Effect.logWarning("effect-partysync: log compaction failed", e)),
          Effect.ensuring(Effect.sync(() => {
            scheduled = false
          }))
        ),
        options.scope
      ),
      (forked) => {
        fiber = forked
      }
    )
  })

  return {
    /** Counts what a publish added to the log: `versions` entries, of which reading found `entries`. */
    wrote: (versions: number, entries: Capture.Entries): void => {
      debt += debtOf(versions, entries)
    },
    /** What install or a GC pass left in the log: the count starts again from it. */
    reset: (size: number): void => {
      kept = size
      debt = 0
    },
    soon,
    /** Waits for the compaction `soon` last scheduled, if any. */
    compacted: Effect.suspend(() => (fiber === undefined ? Effect.void : Effect.asVoid(Fiber.await(fiber))))
  }
}
