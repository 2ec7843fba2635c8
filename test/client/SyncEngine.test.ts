/**
 * The SyncEngine alone (no socket): ordering rules of sync answers and live
 * changes, and the optimistic snapshot.
 */
import { describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { rowDecoder } from "../../src/client/Frames.ts"
import { SyncEngine } from "../../src/client/SyncEngine.ts"
import type { ClientMessage } from "../../src/protocol/Protocol.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

const row = (id: string, text: string, deleted: number | null = null): Todo => [id, text, 0, 1, 1, deleted]

const engine = (optimistic?: (rows: ReadonlyArray<Todo>, a: TodoAction) => ReadonlyArray<Todo>) => {
  const sent: Array<ClientMessage> = []
  const e = new SyncEngine<Todo, TodoAction>({
    channel: "todos",
    schema: 1,
    decodeRows: rowDecoder(todos.record),
    optimistic,
    maxInFlight: 2,
    transmit: (m) => sent.push(m),
    onChange: () => {},
    onConfirmed: () => {},
    onPending: () => {}
  })
  return { e, sent }
}

const change = (version: number, rows: Array<Todo>, deleted: Array<string> = []) =>
  ({ _tag: "Change", channel: "todos", version, rows, deleted }) as const

describe("SyncEngine", () => {
  it("subscribes from its cursor, buffers a sync answer until Synced, then replays what arrived meanwhile", () => {
    const { e, sent } = engine()
    e.load(5, "h1", [row("a", "cached")])
    e.connected()
    expect(sent[0]).toEqual({ _tag: "Subscribe", channel: "todos", since: 5, history: "h1", schema: 1 })
    e.receive({ _tag: "SyncRows", channel: "todos", reset: false, rows: [row("b", "new")], deleted: ["a"] })
    e.receive(change(9, [row("c", "live")]))
    expect(e.snapshot().map((r) => r[0])).toEqual(["a"])
    e.receive({ _tag: "Synced", channel: "todos", version: 8, reset: false, history: "h1" })
    expect(e.snapshot().map((r) => r[0])).toEqual(["b", "c"])
    expect(e.cursor).toBe(9)
    expect(e.status().connection).toBe("live")
  })

  it("a reset replaces the state; changes at or below the cursor are skipped", () => {
    const { e } = engine()
    e.load(3, "h1", [row("old", "gone after reset")])
    e.connected()
    e.receive({ _tag: "SyncRows", channel: "todos", reset: true, rows: [row("x", "one")], deleted: [] })
    e.receive({ _tag: "Synced", channel: "todos", version: 10, reset: true, history: "h1" })
    e.receive(change(10, [row("x", "stale")]))
    e.receive(change(11, [], ["x"]))
    e.receive(change(12, [row("y", "two"), row("z", "tomb", 5)]))
    expect(e.snapshot().map((r) => [r[0], r[1]])).toEqual([["y", "two"]])
    expect(e.cursor).toBe(12)
  })

  it("keeps creation order when a row is updated, and one row per id when a reducer re-adds a confirmed row", () => {
    const { e, sent } = engine((rows, a) => a.type === "create" ? [...rows, row(a.payload.id, a.payload.text)] : rows)
    e.connected()
    e.receive({ _tag: "Synced", channel: "todos", version: 1, reset: true, history: "h1" })
    e.receive(change(2, [row("a", "A"), row("b", "B")]))
    e.enqueue({ clientId: "c", clientKey: "key-key-key-key-c", firstSentAt: undefined, seq: 1, requestId: "c:1", action: { type: "create", payload: { id: "n", text: "mine", completed: 0 } }, encoded: null, sent: false, waiter: undefined }, true)
    expect(sent.at(-1)).toMatchObject({ _tag: "Action", seq: 1 })
    expect([...e.status().pendingIds]).toEqual(["n"])
    // its Change arrives before its Ack: no duplicate, no flicker
    e.receive(change(3, [row("n", "mine, confirmed"), row("a", "A2")]))
    expect(e.snapshot().map((r) => [r[0], r[1]])).toEqual([["a", "A2"], ["b", "B"], ["n", "mine"]])
    e.receive({ _tag: "Ack", requestId: "c:1", version: 3, rows: [], duplicate: false })
    expect(e.snapshot().map((r) => [r[0], r[1]])).toEqual([["a", "A2"], ["b", "B"], ["n", "mine, confirmed"]])
    expect(e.status()).toMatchObject({ pending: 0 })
    expect(e.status().pendingIds.size).toBe(0)
  })

  it("keeps at most maxInFlight actions unanswered, and sends the next one on each answer", () => {
    const { e, sent } = engine()
    e.connected()
    for (let seq = 1; seq <= 4; seq++) {
      e.enqueue({ clientId: "c", clientKey: "key-key-key-key-c", firstSentAt: undefined, seq, requestId: `c:${seq}`, action: { type: "delete", payload: { id: String(seq) } }, encoded: null, sent: false, waiter: undefined }, true)
    }
    const actions = () => sent.filter((m) => m._tag === "Action").map((m) => (m as { seq: number }).seq)
    expect(actions()).toEqual([1, 2])
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    e.receive({ _tag: "Failure", requestId: "c:1", channel: "todos", reason: "HandlerFailed", message: "no" })
    expect(actions()).toEqual([1, 2, 3])
    e.disconnected()
    e.connected()
    // on reconnect: Subscribe first, then the unanswered ones again, in order
    expect(sent.slice(-3).map((m) => m._tag === "Action" ? m.seq : m._tag)).toEqual(["Subscribe", 2, 3])
  })

  it("reports a row that does not decode and applies the others", () => {
    const { e } = engine()
    e.connected()
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    e.receive(change(1, [row("ok", "fine"), ["bad", 42] as unknown as Todo]))
    expect(e.snapshot().map((r) => r[0])).toEqual(["ok"])
    expect(e.status().lastError?.reason).toBe("InvalidRecord")
  })
})
