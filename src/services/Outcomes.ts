/**
 * The outcomes of decided actions, as the client ledger keeps them until
 * their client confirms it has settled them: in the client's row, as one
 * JSON array (`[seq, rows]` applied, `[seq, reason, message]` refused,
 * `[seq]` applied with its rows dropped). A batch writes the row once,
 * whatever the number of outcomes, so keeping them costs no row written.
 *
 * @since 0.2.0
 */
import type { ErrorReason, WireRow } from "../protocol/Protocol.ts"

/** Stored outcomes larger than this (JSON characters) keep their refusals but drop their rows. */
export const MAX_OUTCOME_CHARS = 256 * 1024

/**
 * Outcomes kept per client, the newest: a client confirms what it settled
 * with its next push, so ours holds a batch or two; one that never confirms
 * cannot make its row (read and written by every batch) grow without end.
 */
export const KEPT_PER_CLIENT = 256

/** A decided action's outcome. */
export type Outcome =
  | { readonly _tag: "Applied"; readonly seq: number; readonly rows: ReadonlyArray<WireRow> }
  | { readonly _tag: "Refused"; readonly seq: number; readonly reason: ErrorReason; readonly message: string }

type Stored = readonly [number] | readonly [number, ReadonlyArray<WireRow>] | readonly [number, string, string]

/** Reads stored outcomes (null: none), by seq. */
export const parse = (text: unknown): Map<number, Outcome> => {
  const outcomes = new Map<number, Outcome>()
  if (typeof text !== "string") return outcomes
  for (const entry of JSON.parse(text) as ReadonlyArray<Stored>) {
    const seq = entry[0]
    outcomes.set(
      seq,
      entry.length === 3
        ? { _tag: "Refused", seq, reason: entry[1] as ErrorReason, message: entry[2] }
        : { _tag: "Applied", seq, rows: entry.length === 2 ? entry[1] : [] }
    )
  }
  return outcomes
}

/** The outcomes to store, as JSON (null when none): the rows of the largest applied ones go first when over the cap. */
export const serialize = (outcomes: ReadonlyMap<number, Outcome>): string | null => {
  if (outcomes.size === 0) return null
  let entries: Array<Stored> = []
  for (const o of outcomes.values()) entries.push(o._tag === "Applied" ? [o.seq, o.rows] : [o.seq, o.reason, o.message])
  if (entries.length > KEPT_PER_CLIENT) entries = entries.sort((a, b) => a[0] - b[0]).slice(-KEPT_PER_CLIENT)
  let text = JSON.stringify(entries)
  if (text.length <= MAX_OUTCOME_CHARS) return text
  // a bulk action's rows: keep that it was applied, not what it wrote
  const sizes = entries.map((e, i) => [e.length === 2 ? JSON.stringify(e[1]).length : 0, i] as const).sort((a, b) => b[0] - a[0])
  for (const [size, i] of sizes) {
    if (size === 0 || text.length <= MAX_OUTCOME_CHARS) break
    entries[i] = [entries[i]![0]]
    text = JSON.stringify(entries)
  }
  return text
}
