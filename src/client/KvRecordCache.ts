/**
 * The record cache over any `KeyValueStore` (Node, memory, localStorage, a
 * wrapped store): in the client's namespace, `meta` holds the position and
 * `r/<s|n><id>` one record each, as JSON `[place, row]`.
 *
 * A KeyValueStore writes one key at a time, so a write marks the meta first
 * (`writing`), then writes the rows, then stores the new meta unmarked. A
 * crash in between leaves the mark, and a load that finds it drops the rows
 * (they may be ahead of or behind the stored cursor) and says why: the
 * client syncs again from scratch, its queue untouched. Clients in one
 * process that share a store take turns per namespace, so their writes never
 * interleave.
 *
 * @since 0.3.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as KeyValueStore from "effect/persistence/KeyValueStore"
import type { RowId } from "../protocol/Protocol.ts"
import { type CacheMeta, inOrder, plan, type RecordCache, readMeta } from "./RecordCache.ts"

const parse = (text: string | undefined): unknown => {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

// The writer that last took each (store, namespace): the next one waits for it.
const turns = new WeakMap<KeyValueStore.KeyValueStore, Map<string, Deferred.Deferred<void>>>()

/** Runs `effect` after every earlier one of the same (store, namespace) has ended. */
const inTurn = <A, E>(kv: KeyValueStore.KeyValueStore, prefix: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    let byPrefix = turns.get(kv)
    if (byPrefix === undefined) turns.set(kv, (byPrefix = new Map()))
    const before = byPrefix.get(prefix)
    const mine = Deferred.makeUnsafe<void>()
    byPrefix.set(prefix, mine)
    const waited = before === undefined ? Effect.void : Deferred.await(before)
    // the turn passes on only once the one before ended too: an interrupted waiter never lets the next overtake
    const pass = Effect.andThen(waited, Effect.sync(() => {
      Deferred.doneUnsafe(mine, Effect.void)
      if (byPrefix.get(prefix) === mine) byPrefix.delete(prefix)
    }))
    return Effect.ensuring(Effect.andThen(waited, effect), pass)
  })

/** The record cache of namespace `prefix` in a KeyValueStore. */
export const make = (kv: KeyValueStore.KeyValueStore, prefix: string): RecordCache => {
  const metaKey = `${prefix}meta`
  const rowPrefix = `${prefix}r/`
  const rowKey = (id: RowId) => `${rowPrefix}${typeof id === "number" ? "n" : "s"}${id}`
  let base: CacheMeta | undefined

  const load = Effect.gen(function*() {
    base = undefined
    const raw = parse(yield* kv.get(metaKey)) as { readonly writing?: unknown } | undefined
    if (raw === undefined) return undefined
    const meta = readMeta(raw)
    if (meta === undefined) return { reset: "the cached records' meta could not be read" }
    if (raw.writing === true) return { reset: "a write of the cached records was cut short (the app closed or crashed during it)" }
    const rows: Array<unknown> = []
    const ords: Array<number> = []
    for (const key of yield* kv.keys) {
      if (!key.startsWith(rowPrefix)) continue
      const entry = parse(yield* kv.get(key))
      if (!Array.isArray(entry) || !Number.isInteger(entry[0])) return { reset: `the cached record ${key.slice(rowPrefix.length)} could not be read` }
      ords.push(entry[0])
      rows.push(entry[1])
    }
    base = meta
    return { meta, rows: inOrder(rows, ords) }
  })

  const write: RecordCache["write"] = (changes) =>
    inTurn(
      kv,
      prefix,
      Effect.gen(function*() {
        const raw = parse(yield* kv.get(metaKey)) as { readonly writing?: unknown } | undefined
        // a marked meta is a torn write: nothing stored can be built on
        const stored = raw?.writing === true ? undefined : readMeta(raw)
        const how = plan(stored, base, changes)
        if (how === "behind" || how === "whole") return how
        // from here until the last set, a crash leaves the mark for the next load to find
        yield* kv.set(metaKey, JSON.stringify({ ...(stored ?? { ...changes.meta, next: 0 }), writing: true }))
        let next = 0
        if (how === "table") {
          yield* kv.clearPrefix(rowPrefix)
          for (const row of changes.all!()) yield* kv.set(rowKey((row as ReadonlyArray<RowId>)[0]!), JSON.stringify([next++, row]))
        } else {
          next = stored!.next
          for (const id of changes.deletes) yield* kv.remove(rowKey(id))
          for (const [id, row, inserted] of changes.upserts) {
            const key = rowKey(id)
            let ord = inserted ? undefined : (parse(yield* kv.get(key)) as Array<unknown> | undefined)?.[0]
            // an updated row keeps its place
            if (!Number.isInteger(ord)) ord = next++
            yield* kv.set(key, JSON.stringify([ord, row]))
          }
        }
        yield* kv.set(metaKey, JSON.stringify({ ...changes.meta, next }))
        base = changes.meta
        return how
      })
    )

  const clear = inTurn(kv, prefix, Effect.gen(function*() {
    base = undefined
    // the meta first: rows without one are never read, and the next write replaces them
    yield* kv.remove(metaKey)
    yield* kv.clearPrefix(rowPrefix)
  }))

  return { load, write, clear }
}
