// @vitest-environment happy-dom
/**
 * The React hooks in a DOM (happy-dom) against the real worker: StrictMode
 * double mount, a socket change and unmount, with no leaked listeners and
 * one shared client per (socket, channel).
 */
import { createElement, StrictMode, useEffect } from "react"
import { describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import type { SocketLike } from "../../src/client/index.ts"
import { clientCount, configureSync, useSync, useSyncStatus } from "../../src/react/index.ts"
import { makeMemoryStore } from "../../src/client/index.ts"
import { workerUrl } from "../helpers/inject.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { createRoot } from "react-dom/client"
import { cleanupAfterEach, mount } from "./support.ts"
import { eventually, ForwardingSocket, partySocket } from "../client/support.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

/** A partysocket that counts its listeners. */
class CountingSocket extends ForwardingSocket {
  listeners = 0
  override addEventListener(type: "open" | "close" | "message" | "error", listener: (event: any) => void) {
    this.listeners++
    super.addEventListener(type, listener)
  }
  override removeEventListener(type: "open" | "close" | "message" | "error", listener: (event: any) => void) {
    this.listeners--
    super.removeEventListener(type, listener)
  }
}

const reducer = (rows: ReadonlyArray<Todo>, action: TodoAction): ReadonlyArray<Todo> =>
  action.type === "create" ? [...rows, [action.payload.id, action.payload.text, 0, 0, 0, 1, null]] : rows

let send: ((action: TodoAction) => Promise<unknown>) | undefined
const sendByRoom = new Map<unknown, (action: TodoAction) => Promise<unknown>>()
let renders = 0

function Todos({ socket }: { socket: SocketLike }) {
  renders++
  // a new reducer closure on every render must not re-create anything
  const [records, sendAction] = useSync(todos, socket, (rows, action) => reducer(rows, action))
  const status = useSyncStatus(todos, socket)
  useEffect(() => {
    send = sendAction
    sendByRoom.set((socket as CountingSocket).room, sendAction)
  }, [sendAction, socket])
  return createElement(
    "div",
    null,
    createElement("p", { id: "status" }, `${status.connection} pending=${status.pending}`),
    createElement("p", { id: "room" }, String((socket as CountingSocket).room)),
    createElement("ul", null, ...records.map((r) => createElement("li", { key: String(r[0]) }, r[1])))
  )
}

const cleanup = cleanupAfterEach()

const socketFor = (room: string) => {
  const party = partySocket(workerUrl(), room)
  cleanup.push(() => party.close())
  return new CountingSocket(party)
}


const text = (container: HTMLElement, selector: string) => container.querySelector(selector)?.textContent ?? ""

describe("React hooks", () => {
  configureSync({ store: makeMemoryStore(), releaseDelayMs: 20 })

  it("under StrictMode, one shared client serves useSync and useSyncStatus, and sendAction works", async () => {
    const socket = socketFor(freshRoom("strict"))
    const { container, root } = mount(cleanup)
    root.render(createElement(StrictMode, null, createElement(Todos, { socket })))
    await eventually(() => (text(container, "#status").startsWith("live") ? true : undefined), { what: "live" })
    expect(clientCount(socket)).toBe(1)
    // one hub on the socket: message, open and close listeners
    expect(socket.listeners).toBe(3)

    const before = renders
    await send!({ type: "create", payload: { id: "1", text: "from the hook", completed: 0, priority: 1 } })
    await eventually(() => (text(container, "ul") === "from the hook" ? true : undefined), { what: "row shown" })
    await eventually(() => (text(container, "#status") === "live pending=0" ? true : undefined))
    expect(renders - before).toBeLessThan(20)
    expect(clientCount(socket)).toBe(1)
  })

  it("a socket change moves to the new room's client and releases the old one's listeners", async () => {
    const roomA = freshRoom("a")
    const roomB = freshRoom("b")
    const a = socketFor(roomA)
    const b = socketFor(roomB)
    const { container, root } = mount(cleanup)
    root.render(createElement(StrictMode, null, createElement(Todos, { socket: a })))
    await eventually(() => (text(container, "#status").startsWith("live") ? true : undefined))
    await send!({ type: "create", payload: { id: "a", text: "in room a", completed: 0, priority: 1 } })
    await eventually(() => (text(container, "ul") === "in room a" ? true : undefined))

    root.render(createElement(StrictMode, null, createElement(Todos, { socket: b })))
    await eventually(() => (text(container, "#room") === roomB && text(container, "#status").startsWith("live") ? true : undefined))
    await eventually(() => (text(container, "ul") === "" ? true : undefined), { what: "room b's empty list" })
    await eventually(() => sendByRoom.get(roomB))
    await sendByRoom.get(roomB)!({ type: "create", payload: { id: "b", text: "in room b", completed: 0, priority: 1 } })
    await eventually(() => (text(container, "ul") === "in room b" ? true : undefined), { what: "room b only" })
    await eventually(() => (a.listeners === 0 && clientCount(a) === 0 ? true : undefined), { what: "room a released" })
    expect(clientCount(b)).toBe(1)
    expect(b.listeners).toBe(3)
  })

  it("unmount closes the client and removes every socket listener", async () => {
    const socket = socketFor(freshRoom("unmount"))
    const container = document.createElement("div")
    const root = createRoot(container)
    root.render(createElement(StrictMode, null, createElement(Todos, { socket }), createElement(Todos, { socket })))
    await eventually(() => (text(container, "#status").startsWith("live") ? true : undefined))
    expect(clientCount(socket)).toBe(1)
    root.unmount()
    await eventually(() => (socket.listeners === 0 && clientCount(socket) === 0 ? true : undefined), { what: "released" })
  })
})
