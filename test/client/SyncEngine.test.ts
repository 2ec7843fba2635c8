/**
 * The SyncEngine alone (no socket; `wake` lets it push while the budget has
 * room, as a socket's hub would): ordering rules of sync answers, live
 * changes and pushes, and the optimistic snapshot.
 */
import { describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { rowDecoder } from "../../src/client/Frames.ts"
import type { PendingAction } from "../../src/client/Outbox.ts"
import { SyncEngine } from "../../src/client/SyncEngine.ts"
import type { ClientMessage, Push } from "../../src/protocol/Protocol.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

const row = (id: string, text: string, deleted: number | null = null): Todo => [id, text, 0, 1, 1, 1, deleted]

const engine = (optimistic?: (rows: ReadonlyArray<Todo>, a: TodoAction) => ReadonlyArray<Todo>, budget = 2, maxPushBytes = 10_000) => {
  const sent: Array<ClientMessage> = []
  const settled: Array<number> = []
  const e: SyncEngine<Todo, TodoAction> = new SyncEngine<Todo, TodoAction>({
    channel: "todos",
    schema: 1,
    decodeRows: rowDecoder(todos.record),
    optimistic,
    maxInFlight: budget,
    maxPushBytes,
    clientId: "c",
    transmit: (m) => sent.push(m),
    wake: () => {
      e.pushNext(budget - e.inFlight)
    },
    backoff: () => {},
    onChange: () => {},
    onConfirmed: () => {},
    onSettled: (p) => settled.push(p.seq)
  })
  return { e, sent, settled }
}

const pending = (seq: number, action: TodoAction, clientId = "c"): PendingAction<TodoAction> =>
  ({ clientId, clientKey: `key-key-key-key-${clientId}`, schema: 1, seq, action, encoded: action, bytes: 40, sent: false, waiter: undefined })

/** The seqs of each push sent so far. */
const pushes = (sent: ReadonlyArray<ClientMessage>) => sent.filter((m): m is Push => m._tag === "Push").map((m) => m.actions.map((a) => a.seq))

const pushed = (next: number, results: Array<{ seq: number; rows?: Array<Todo>; reason?: "HandlerFailed"; message?: string }>, clientId = "c") =>
  ({ _tag: "Pushed", channel: "todos", clientId, version: 0, next, results: results.map((r) => (r.reason === undefined ? { seq: r.seq, rows: r.rows ?? [] } : { seq: r.seq, reason: r.reason, message: r.message ?? "" })) }) as const

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
    expect(pushes(sent)).toEqual([[1]])
    expect([...e.status().pendingIds]).toEqual(["n"])
    // its Change arrives before its reply: no duplicate, no flicker
    e.receive(change(3, [row("n", "mine, confirmed"), row("a", "A2")]))
    expect(e.snapshot().map((r) => [r[0], r[1]])).toEqual([["a", "A2"], ["b", "B"], ["n", "mine"]])
    e.receive(pushed(2, [{ seq: 1 }]))
    expect(e.snapshot().map((r) => [r[0], r[1]])).toEqual([["a", "A2"], ["b", "B"], ["n", "mine, confirmed"]])
    expect(e.status()).toMatchObject({ pending: 0 })
    expect(e.status().pendingIds.size).toBe(0)
  })

  it("pushes only once synced, one push in flight, as many queued actions as the budget allows; what was not decided goes again", () => {
    const { e, sent, settled } = engine(undefined, 3)
    e.opened()
    for (let seq = 1; seq <= 5; seq++) e.enqueue([pending(seq, { type: "delete", payload: { id: String(seq) } })])
    expect(pushes(sent)).toEqual([])
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    expect(pushes(sent)).toEqual([[1, 2, 3]])
    // the server decided 1 (refused) and 2, and expects 3 next: 3 goes again, with 4 and 5
    e.receive(pushed(3, [{ seq: 1, reason: "HandlerFailed" }, { seq: 2 }]))
    expect(settled).toEqual([1, 2])
    expect(pushes(sent)).toEqual([[1, 2, 3], [3, 4, 5]])
    e.closed()
    e.opened()
    // on reconnect: Subscribe first, then the unanswered ones again, in order, once synced
    expect(sent.at(-1)?._tag).toBe("Subscribe")
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: false, history: "h1" })
    expect(pushes(sent).at(-1)).toEqual([3, 4, 5])
  })

  it("a push carries one client id's actions in seq order: adopted queues go first, each in a push of its own", () => {
    const { e, sent } = engine(undefined, 10)
    e.opened()
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    e.enqueue([pending(1, { type: "delete", payload: { id: "m" } })])
    e.enqueue([pending(7, { type: "delete", payload: { id: "o7" } }, "old"), pending(8, { type: "delete", payload: { id: "o8" } }, "old")], true)
    expect(sent.filter((m): m is Push => m._tag === "Push").map((m) => [m.clientId, m.actions.map((a) => a.seq)])).toEqual([["c", [1]]])
    e.receive(pushed(2, [{ seq: 1 }]))
    e.receive(pushed(9, [{ seq: 7 }, { seq: 8 }], "old"))
    expect(sent.filter((m): m is Push => m._tag === "Push").map((m) => [m.clientId, m.actions.map((a) => a.seq)])).toEqual([["c", [1]], ["old", [7, 8]]])
  })

  it("a push stays under the frame budget: queued actions beyond it wait for the next push", () => {
    const { e, sent } = engine(undefined, 100, 100)
    e.enqueue([1, 2, 3, 4, 5].map((seq) => pending(seq, { type: "delete", payload: { id: String(seq) } })))
    e.opened()
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    // 40 bytes each: two fit in 100, the first one always goes
    expect(pushes(sent)).toEqual([[1, 2]])
  })

  it("when the server expects a seq this client no longer holds, the next push says to skip it", () => {
    const { e, sent } = engine(undefined, 10)
    e.opened()
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    e.enqueue([pending(5, { type: "delete", payload: { id: "5" } }), pending(6, { type: "delete", payload: { id: "6" } })])
    e.receive(pushed(3, []))
    const last = sent.filter((m): m is Push => m._tag === "Push").at(-1)!
    expect([last.skip, last.actions.map((a) => a.seq)]).toEqual([3, [5, 6]])
  })

  it("a push tells the server what was settled for good; an idle client sends that alone", () => {
    const { e, sent } = engine(undefined, 10)
    e.opened()
    e.receive({ _tag: "Synced", channel: "todos", version: 0, reset: true, history: "h1" })
    e.enqueue([pending(1, { type: "delete", payload: { id: "1" } })])
    e.receive(pushed(2, [{ seq: 1 }]))
    e.confirm("c", 1)
    e.enqueue([pending(2, { type: "delete", payload: { id: "2" } })])
    expect(sent.filter((m): m is Push => m._tag === "Push").at(-1)).toMatchObject({ actions: [{ seq: 2 }], confirmed: 1 })
    e.receive(pushed(3, [{ seq: 2 }]))
    e.confirm("c", 2)
    e.confirmIdle(() => "key-key-key-key-c")
    expect(sent.filter((m): m is Push => m._tag === "Push").at(-1)).toMatchObject({ actions: [], confirmed: 2 })
    const count = sent.length
    e.confirmIdle(() => "key-key-key-key-c")
    expect(sent.length).toBe(count)
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
