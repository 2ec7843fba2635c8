/**
 * Multi-tab: sync clients sharing one persisted cache (one KeyValueStore
 * instance, as tabs of a browser share IndexedDB) against the real worker.
 * Each keeps its own pending queue in the shared store; both go offline,
 * both queue actions, come back, and every action is applied exactly once.
 * A closed tab's queue adopted by two tabs at once is still applied once.
 */
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it } from "vitest"
import type { TodoAction } from "../../fixtures/todo-sync/src/shared.ts"
import { makeMemoryStore } from "../../src/client/index.ts"
import { workerUrl } from "../helpers/inject.ts"
import { hooks } from "../helpers/hooks.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { eventually, liveRowsJson, snapshotJson, type TodoClient, todoClient } from "./support.ts"

const open: Array<TodoClient> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
})

const tab = (room: string, store: ReturnType<typeof makeMemoryStore>, options: { startClosed?: boolean } = {}) => {
  const t = todoClient(workerUrl(), room, { store, ...options })
  open.push(t)
  return t
}

const status = (t: TodoClient) => t.client.getStatus()
const create = (id: string, text: string): TodoAction => ({ type: "create", payload: { id, text, completed: 0, priority: 1 } })

/** The pending queues in a shared store, by client id: the `clientId:seq` of each stored action, in seq order. */
const queues = async (store: ReturnType<typeof makeMemoryStore>) => {
  const keys = await Effect.runPromise(store.keys)
  const out: Record<string, Array<string>> = {}
  for (const key of keys) {
    const at = key.indexOf("/q/")
    if (at < 0) continue
    const [id, seq] = key.slice(at + 3).split("/")
    const clientId = decodeURIComponent(id!)
    ;(out[clientId] ??= []).push(`${clientId}:${seq}`)
  }
  for (const list of Object.values(out)) list.sort((x, y) => Number(x.split(":").pop()) - Number(y.split(":").pop()))
  return out
}

describe("tabs sharing one persisted cache", () => {
  it("two tabs offline at once queue separately and, back online, every action applies exactly once", async () => {
    const room = freshRoom("tabs")
    const store = makeMemoryStore()
    const a = tab(room, store)
    const b = tab(room, store)
    await eventually(() => (status(a).connection === "live" && status(b).connection === "live" ? true : undefined), { what: "both live" })
    await a.client.send(create("base", "shared row"))
    await eventually(() => (b.client.getSnapshot().length === 1 ? true : undefined), { what: "b sees the base row" })

    a.party.close()
    b.party.close()
    await eventually(() => (status(a).connection === "offline" && status(b).connection === "offline" ? true : undefined), { what: "both offline" })
    const sends = [
      a.client.send(create("a1", "from a")),
      b.client.send(create("b1", "from b")),
      a.client.send({ type: "update", payload: { id: "base", text: "edited by a" } }),
      b.client.send({ type: "update", payload: { id: "base", completed: 1 } }),
      a.client.send(create("a2", "from a again")),
      b.client.send({ type: "delete", payload: { id: "a1" } }),
      b.client.send(create("b2", "from b again"))
    ]
    await eventually(() => (status(a).pending === 3 && status(b).pending === 4 ? true : undefined), { what: "both queues filled" })
    // each tab's queue is its own in the shared store: one record per action, under its own client id and sequence numbers
    const stored = await eventually(async () => {
      const q = await queues(store)
      return q[a.client.clientId!]?.length === 3 && q[b.client.clientId!]?.length === 4 ? q : undefined
    }, { what: "both queues persisted" })
    expect(stored[a.client.clientId!]).toEqual([1, 2, 3].map((s) => `${a.client.clientId}:${s + 1}`))
    expect(stored[b.client.clientId!]).toEqual([1, 2, 3, 4].map((s) => `${b.client.clientId}:${s}`))

    a.party.reconnect()
    b.party.reconnect()
    await Promise.all(sends)

    const h = hooks(workerUrl(), room)
    const rows = await h.rows()
    expect(rows).toHaveLength(5)
    expect(Object.fromEntries(rows.map((r) => [r[0], [r[1], r[2], r[6] === null]]))).toEqual({
      base: ["edited by a", 1, true],
      // b's delete may reach the server before a's create (then it is a no-op) or after it
      a1: ["from a", 0, expect.any(Boolean)],
      b1: ["from b", 0, true],
      a2: ["from a again", 0, true],
      b2: ["from b again", 0, true]
    })
    expect((await h.clients()).map((c) => [c.client_id, c.seq]).sort()).toEqual(
      [[a.client.clientId, 4], [b.client.clientId, 4]].sort()
    )
    const expected = liveRowsJson(rows)
    for (const t of [a, b]) {
      await eventually(() => (status(t).pending === 0 && snapshotJson(t.client.getSnapshot()) === expected ? true : undefined), { what: "converged" })
    }
    expect(await queues(store)).toEqual({})
  })

  it("a closed tab's queue adopted by two tabs at once is applied once, under the closed tab's client id", async () => {
    const room = freshRoom("tabs-adopt")
    const store = makeMemoryStore()
    const gone = tab(room, store, { startClosed: true })
    await gone.client.ready
    const lost = [create("x1", "queued by a closed tab"), create("x2", "also queued"), { type: "update", payload: { id: "x1", completed: 1 } } as TodoAction]
      .map((action) => gone.client.send(action).then(() => "acked", (e: unknown) => (e as { reason?: string }).reason))
    await eventually(() => (status(gone).pending === 3 ? true : undefined), { what: "queued" })
    const goneId = gone.client.clientId!
    await gone.close()
    // the closing tab's sends end with Closed: the queue stays for the next tab
    expect(await Promise.all(lost)).toEqual(["Closed", "Closed", "Closed"])
    expect((await queues(store))[goneId]).toHaveLength(3)

    // two tabs start at once on the same store and both may adopt the released queue
    const b = tab(room, store)
    const c = tab(room, store)
    await Promise.all([b.client.ready, c.client.ready])
    await eventually(() => (status(b).connection === "live" && status(c).connection === "live" && status(b).pending === 0 && status(c).pending === 0 ? true : undefined), {
      what: "both live with nothing pending"
    })
    const h = hooks(workerUrl(), room)
    const rows = await h.rows()
    expect(rows.map((r) => [r[0], r[1], r[2]])).toEqual([["x1", "queued by a closed tab", 1], ["x2", "also queued", 0]])
    expect(await h.clients()).toEqual([{ client_id: goneId, seq: 3 }])
    const expected = liveRowsJson(rows)
    for (const t of [b, c]) {
      await eventually(() => (snapshotJson(t.client.getSnapshot()) === expected ? true : undefined), { what: "converged" })
      expect(status(t).lastError).toBeNull()
    }
  })
})
