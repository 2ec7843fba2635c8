/**
 * The SyncEngine alone (no socket; `wake` lets it send while fewer than two
 * actions are unanswered, as a socket's hub would): ordering rules of sync
 * answers and live changes, and the optimistic snapshot.
 */
import { describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { rowDecoder } from "../../src/client/Frames.ts"
import { SEQ_WINDOW } from "../../src/client/Outbox.ts"
import { SyncEngine } from "../../src/client/SyncEngine.ts"
import { DECIDED_WINDOW } from "../../src/services/ClientLedger.ts"
import type { ClientMessage } from "../../src/protocol/Protocol.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

const row = (id: string, text: string, deleted: number | null = null): Todo => [id, text, 0, 1, 1, 1, deleted]

const engine = (optimistic?: (rows: ReadonlyArray<Todo>, a: TodoAction) => ReadonlyArray<Todo>, budget = 2) => {
  const sent: Array<ClientMessage> = []
  const inFlight = () => e.pending.filter((p) => p.sent).length
  const e: SyncEngine<Todo, TodoAction> = new SyncEngine<Todo, TodoAction>({
    channel: "todos",
    schema: 1,
    decodeRows: rowDecoder(todos.record),
    optimistic,
    maxInFlight: 2,
    transmit: (m) => sent.push(m),
    wake: () => {
      while (inFlight() < budget && e.sendNext()) continue
    },
    backoff: () => {},
    onChange: () => {},
    onConfirmed: () => {},
    onPending: () => {}
  })
  return { e, sent }
}

const pending = (seq: number, action: TodoAction) =>
  ({ clientId: "c", clientKey: "key-key-key-key-c", firstSentAt: undefined, schema: 1, seq, requestId: `c:${seq}`, action, encoded: null, sent: false, waiter: undefined })

const change = (version: number, rows: Array<Todo>, deleted: Array<string> = []) =>
  ({ _tag: "Change", channel: "todos", version, rows, deleted }) as const

describe("SyncEngine", () => {
  it("subscribes from its cursor, buffers a sync answer until Synced, then replays what arrived meanwhile", () => {
    const { e, sent } = engine()
    e.load(5, "h1", [row("a", "cached")])
    e.opened()
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
    e.opened()
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
    e.opened()
    e.receive({ _tag: "Synced", channel: "todos", version: 1, reset: true, history: "h1" })
    e.receive(change(2, [row("a", "A"), row("b", "B")]))
    e.enqueue([pending(1, { type: "create", payload: { id: "n", text: "mine", completed: 0, priority: 1 } })])
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

  it("sends actions only once synced, as the budget allows, and the next one on each answer", () => {
    const { e, sent } = engine()
    e.opened()
    for (let seq = 1; seq <= 4; seq++) e.enqueue([pending(seq, { type: "delete", payload: { id: String(seq) } })])
    const actions = () => sent.filter((m) => m._tag === "Action").map((m) => (m as { seq: number }).seq)
    expect(actions()).toEqual([])
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    expect(actions()).toEqual([1, 2])
    e.receive({ _tag: "Failure", requestId: "c:1", channel: "todos", reason: "HandlerFailed", message: "no" })
    e.options.wake()
    expect(actions()).toEqual([1, 2, 3])
    e.closed()
    e.opened()
    // on reconnect: Subscribe first, then the unanswered ones again, in order, once synced
    expect(sent.at(-1)?._tag).toBe("Subscribe")
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: false, history: "h1" })
    expect(sent.slice(-2).map((m) => m._tag === "Action" ? m.seq : m._tag)).toEqual([2, 3])
  })

  it("never sends an action so far ahead of its client's oldest unanswered seq that the server would take that one for decided", () => {
    expect(SEQ_WINDOW).toBe(DECIDED_WINDOW)
    const { e, sent } = engine(undefined, 100)
    e.opened()
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    for (let seq = 1; seq <= 70; seq++) e.enqueue([pending(seq, { type: "delete", payload: { id: String(seq) } })])
    const actions = () => sent.filter((m) => m._tag === "Action").map((m) => (m as { seq: number }).seq)
    expect(actions().at(-1)).toBe(SEQ_WINDOW)
    e.receive({ _tag: "Ack", requestId: "c:1", version: 0, rows: [], duplicate: false })
    e.options.wake()
    expect(actions().at(-1)).toBe(SEQ_WINDOW + 1)
  })

  it("reports a row that does not decode and applies the others", () => {
    const { e } = engine()
    e.opened()
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    e.receive(change(1, [row("ok", "fine"), ["bad", 42] as unknown as Todo]))
    expect(e.snapshot().map((r) => r[0])).toEqual(["ok"])
    expect(e.status().lastError?.reason).toBe("InvalidRecord")
  })
})
