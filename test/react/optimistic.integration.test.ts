// @vitest-environment happy-dom
/**
 * `useSync` with an optimistic reducer that depends on a prop: while an
 * action is pending, a render with a new reducer shows the records that
 * reducer makes (the cached snapshot is rebuilt, nobody is notified during
 * the render), against the real worker.
 */
import { createElement, useEffect } from "react"
import { describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { makeMemoryStore } from "../../src/client/index.ts"
import { configureSync, useSync, useSyncStatus } from "../../src/react/index.ts"
import { workerUrl } from "../helpers/inject.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { cleanupAfterEach, mount } from "./support.ts"
import { eventually, GatedSocket, partySocket } from "../client/support.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

let send: ((action: TodoAction) => Promise<unknown>) | undefined

function Labelled({ socket, suffix }: { socket: GatedSocket; suffix: string }) {
  // the reducer closes over a prop: each render brings a different one
  const [records, sendAction] = useSync(todos, socket, (rows, action): ReadonlyArray<Todo> =>
    action.type === "create" ? [...rows, [action.payload.id, `${action.payload.text}${suffix}`, 0, 0, 0, 1, null]] : rows)
  const status = useSyncStatus(todos, socket)
  useEffect(() => {
    send = sendAction
  }, [sendAction])
  return createElement(
    "div",
    null,
    createElement("p", { id: "status" }, `${status.connection} pending=${status.pending}`),
    createElement("ul", null, ...records.map((r) => createElement("li", { key: String(r[0]) }, r[1])))
  )
}

const cleanup = cleanupAfterEach()

const text = (container: HTMLElement, selector: string) => container.querySelector(selector)?.textContent ?? ""

describe("useSync's optimistic reducer", () => {
  configureSync({ store: makeMemoryStore(), releaseDelayMs: 20 })

  it("a new reducer from a render applies to the pending actions in that render", async () => {
    const party = partySocket(workerUrl(), freshRoom("reducer"))
    cleanup.push(() => party.close())
    const socket = new GatedSocket(party)
    const { container, root } = mount(cleanup)
    root.render(createElement(Labelled, { socket, suffix: " (first)" }))
    await eventually(() => (text(container, "#status") === "live pending=0" && send !== undefined ? true : undefined), { what: "live" })

    // held back from the server: it stays pending
    socket.hold = true
    const sent = send!({ type: "create", payload: { id: "1", text: "todo", completed: 0, priority: 1 } })
    await eventually(() => (text(container, "ul") === "todo (first)" ? true : undefined), { what: "optimistic row" })

    root.render(createElement(Labelled, { socket, suffix: " (second)" }))
    await eventually(() => (text(container, "ul") === "todo (second)" ? true : undefined), { what: "the new reducer's row", timeoutMs: 2_000 })
    expect(text(container, "#status")).toBe("live pending=1")

    socket.release()
    await sent
    await eventually(() => (text(container, "ul") === "todo" && text(container, "#status") === "live pending=0" ? true : undefined), { what: "confirmed" })
  })
})
