/**
 * What reading a client costs as changes arrive (counted, not timed): the
 * snapshot array is built at most once between changes whatever the reads,
 * and never by a status read while nothing is pending.
 */
import { afterEach, describe, expect, it, vi } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { rowDecoder } from "../../src/client/Frames.ts"
import { RecordTable } from "../../src/client/RecordTable.ts"
import { SyncEngine } from "../../src/client/SyncEngine.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

const row = (id: string, text: string): Todo => [id, text, 0, 1, 1, 1, null]

const engine = () => {
  const e: SyncEngine<Todo, TodoAction> = new SyncEngine<Todo, TodoAction>({
    channel: "todos",
    schema: 2,
    decodeRows: rowDecoder(todos.record),
    maxInFlight: 2,
    maxPushBytes: 200_000,
    clientId: "c1",
    transmit: () => {},
    wake: () => {},
    backoff: () => {},
    onChange: () => {},
    onConfirmed: () => {},
    onSettled: () => {}
  })
  e.opened()
  e.receive({ _tag: "SyncRows", channel: "todos", reset: true, rows: Array.from({ length: 1000 }, (_, i) => row(`t${i}`, `todo ${i}`)), deleted: [] })
  e.receive({ _tag: "Synced", channel: "todos", version: 1000, reset: true, history: "h1" })
  return e
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe("reading a client as changes arrive", () => {
  it("builds the snapshot array at most once between changes, and never for a status read while nothing is pending", () => {
    const e = engine()
    e.snapshot()
    const builds = vi.spyOn(RecordTable.prototype, "array")
    for (let v = 1001; v <= 1100; v++) {
      e.receive({ _tag: "Change", channel: "todos", version: v, rows: [row(`t${v % 1000}`, `edit ${v}`)], deleted: [] })
      e.status()
    }
    expect(builds).not.toHaveBeenCalled()
    const first = e.snapshot()
    expect(e.snapshot()).toBe(first)
    expect(e.status().pendingIds.size).toBe(0)
    expect(builds).toHaveBeenCalledTimes(1)
    expect(first[100]![1]).toBe("edit 1100")
  })
})
