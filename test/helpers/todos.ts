/** Todo fixture actions as plain objects, for protocol-level tests. */
import type { Push } from "../../src/protocol/Protocol.ts"
import { keyOf } from "./protocol.ts"

/** A `create` action (schema 2: with a priority, normal unless given). */
export const create = (id: string, text: string, completed: 0 | 1 = 0, priority: 0 | 1 | 2 = 1) => ({ type: "create", payload: { id, text, completed, priority } })
/** An `update` action. */
export const update = (id: string, patch: { text?: string; completed?: 0 | 1; priority?: 0 | 1 | 2 }) => ({ type: "update", payload: { id, ...patch } })
/** A `remove` (soft delete) action. */
export const remove = (id: string) => ({ type: "delete", payload: { id } })

/** One push of `count` creates of `text` by `clientId`, seqs 1 to `count`, ids `${prefix}${i}`. */
export const pushOfCreates = (clientId: string, count: number, text: string, prefix = `${clientId}-`): Push => ({
  _tag: "Push",
  channel: "todos",
  clientId,
  clientKey: keyOf(clientId),
  actions: Array.from({ length: count }, (_, i) => ({ seq: i + 1, action: create(`${prefix}${i}`, text) }))
})

/** The id of a wire row. */
export const idOf = (row: ReadonlyArray<unknown>): unknown => row[0]
/** The ids of some wire rows, sorted. */
export const idsOf = (rows: ReadonlyArray<ReadonlyArray<unknown>>): Array<string> => rows.map((r) => String(r[0])).sort()
