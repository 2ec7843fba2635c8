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

describe("the optimistic view as actions queue", () => {
  const create = (id: string): TodoAction => ({ type: "create", payload: { id, text: `new ${id}`, completed: 0, priority: 1 } })
  const entry = (seq: number, action: TodoAction, clientId = "c1") => ({
    clientId,
    clientKey: "k".repeat(32),
    seq,
    action,
    encoded: action,
    schema: 2,
    bytes: 100,
    sent: false,
    waiter: undefined
  })
  const reducing = () => {
    const calls = { n: 0 }
    const reducer = (records: ReadonlyArray<Todo>, action: TodoAction): ReadonlyArray<Todo> => {
      calls.n++
      return action.type === "create" ? [...records, [action.payload.id, action.payload.text, 0, 2, 2, 1, null]] : records
    }
    return { calls, reducer }
  }

  it("applies the reducer only to the actions queued since the last read: a long offline session never replays its queue", () => {
    const e = engine()
    const { calls, reducer } = reducing()
    e.setOptimistic(reducer)
    for (let seq = 1; seq <= 200; seq++) {
      e.enqueue([entry(seq, create(`n${seq}`))])
      e.snapshot()
      e.status()
    }
    expect(calls.n).toBe(200)
    const rows = e.snapshot()
    expect(rows).toHaveLength(1200)
    expect(rows[1000]![0]).toBe("n1")
    expect(rows[1199]![0]).toBe("n200")
    expect(e.status().pendingIds.size).toBe(200)
    expect(e.status().pendingIds.has("n200")).toBe(true)
  })

  it("replays the whole queue over the confirmed records once anything but an append changed", () => {
    const e = engine()
    const { calls, reducer } = reducing()
    e.setOptimistic(reducer)
    e.enqueue([entry(2, create("a")), entry(3, create("b"))])
    expect(e.snapshot().slice(1000).map((r) => r[0])).toEqual(["a", "b"])
    // an adopted action that predates the queue goes in front
    e.enqueue([entry(1, create("first"), "old")], true)
    expect(e.snapshot().slice(1000).map((r) => r[0])).toEqual(["first", "a", "b"])
    expect(calls.n).toBe(2 + 3)
    // a confirmed change under the queue
    e.receive({ _tag: "Change", channel: "todos", version: 1001, rows: [row("t5", "edited")], deleted: [] })
    const rows = e.snapshot()
    expect(rows[5]![1]).toBe("edited")
    expect(rows.slice(1000).map((r) => r[0])).toEqual(["first", "a", "b"])
    expect(calls.n).toBe(2 + 3 + 3)
    // a new reducer
    const other = reducing()
    e.setOptimistic(other.reducer)
    e.enqueue([entry(4, create("c"))])
    expect(e.snapshot().slice(1000).map((r) => r[0])).toEqual(["first", "a", "b", "c"])
    expect(other.calls.n).toBe(4)
  })

  it("replays the rest of the queue once an action settled, or one went in front", () => {
    const e = engine()
    const { calls, reducer } = reducing()
    e.setOptimistic(reducer)
    e.enqueue([entry(1, create("a")), entry(2, create("b"))])
    expect(e.snapshot().slice(1000).map((r) => r[0])).toEqual(["a", "b"])
    expect(e.pushNext(10)).toBe(2)
    e.receive({ _tag: "Pushed", channel: "todos", clientId: "c1", version: 1001, next: 2, results: [{ seq: 1, rows: [["a", "new a", 0, 2, 2, 1, null]] }] })
    // as many actions as before, the last one the same: an adopted one took the settled one's place in front
    e.enqueue([entry(1, create("x"), "old")], true)
    expect(e.snapshot().slice(1000).map((r) => r[0])).toEqual(["x", "b"])
    e.enqueue([entry(3, create("c"))])
    const rows = e.snapshot()
    expect(rows.slice(1000).map((r) => r[0])).toEqual(["x", "b", "c"])
    expect(calls.n).toBe(2 + 2 + 1)
    expect([...e.status().pendingIds].sort()).toEqual(["b", "c", "x"])
  })
})

describe("the table's snapshot, shared with its readers", () => {
  const ids = (rows: ReadonlyArray<Todo>) => rows.map((r) => `${r[0]}:${r[1]}`)

  it("never changes once read: updates, new rows, removals and closing the holes all go to a copy", () => {
    const t = new RecordTable<Todo>()
    t.replace([row("a", "1"), row("b", "1"), row("c", "1"), row("d", "1")])
    const first = t.array()
    expect(t.array()).toBe(first)
    t.apply(row("b", "2"))
    t.apply(row("e", "1"))
    const second = t.array()
    expect(ids(first)).toEqual(["a:1", "b:1", "c:1", "d:1"])
    expect(ids(second)).toEqual(["a:1", "b:2", "c:1", "d:1", "e:1"])
    t.remove("a")
    // a tombstone removes its row
    t.apply(["c", "x", 0, 1, 1, 1, 7])
    t.apply(row("b", "3"))
    const third = t.array()
    expect(ids(third)).toEqual(["b:3", "d:1", "e:1"])
    // a third of the rows are holes; one more removal makes them half, and they are closed
    t.remove("d")
    t.apply(row("a", "back"))
    const fourth = t.array()
    expect(ids(fourth)).toEqual(["b:3", "e:1", "a:back"])
    expect(t.size).toBe(3)
    expect(t.get("a")?.[1]).toBe("back")
    expect(t.get("d")).toBeUndefined()
    expect(ids(first)).toEqual(["a:1", "b:1", "c:1", "d:1"])
    expect(ids(second)).toEqual(["a:1", "b:2", "c:1", "d:1", "e:1"])
    expect(ids(third)).toEqual(["b:3", "d:1", "e:1"])
    t.apply(row("e", "2"))
    expect(ids(t.array())).toEqual(["b:3", "e:2", "a:back"])
    expect(ids(fourth)).toEqual(["b:3", "e:1", "a:back"])
  })
})
