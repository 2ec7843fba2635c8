/**
 * What `status.lastError` means (src/client/Status.ts): the last error since
 * the last successful sync began. The SyncEngine alone, fed the frames a
 * server would send: a refusal from before a successful sync is gone once
 * the status is live; an error of the sync's own answer, or one while live,
 * stays until the next successful sync.
 */
import { describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { rowDecoder } from "../../src/client/Frames.ts"
import { SyncEngine } from "../../src/client/SyncEngine.ts"
import type { ClientMessage } from "../../src/protocol/Protocol.ts"

type Todo = typeof todos.record.Type
type TodoAction = typeof todos.action.Type

const engine = () => {
  const sent: Array<ClientMessage> = []
  const e: SyncEngine<Todo, TodoAction> = new SyncEngine<Todo, TodoAction>({
    channel: "todos",
    schema: 1,
    decodeRows: rowDecoder(todos.record),
    maxInFlight: 2,
    maxPushBytes: 10_000,
    clientId: "c",
    transmit: (m) => sent.push(m),
    wake: () => {
      e.pushNext(2 - e.inFlight)
    },
    backoff: () => {},
    onChange: () => {},
    onConfirmed: () => {},
    onSettled: () => {}
  })
  return { e, sent }
}

const synced = (version: number) => ({ _tag: "Synced", channel: "todos", version, reset: version === 0, history: "h1" }) as const
const row = (id: string): Todo => [id, id, 0, 1, 1, 1, null]

describe("status.lastError", () => {
  it("the refusal of a socket shows while unauthorized and is gone once a sync succeeds", () => {
    const { e } = engine()
    e.opened()
    e.receive({ _tag: "Failure", requestId: null, channel: null, reason: "NotAuthorized", message: "token expired" })
    e.closed()
    expect(e.status()).toMatchObject({ connection: "unauthorized", lastError: { reason: "NotAuthorized", message: "token expired" } })
    // a fresh token: the next connection syncs
    e.opened()
    expect(e.status().lastError).not.toBeNull()
    e.receive(synced(0))
    expect(e.status()).toMatchObject({ connection: "live", lastError: null })
  })

  it("a server that could not start: its Unavailable is gone once the retried Subscribe is answered", () => {
    const { e, sent } = engine()
    e.opened()
    e.receive({ _tag: "Failure", requestId: null, channel: "todos", reason: "Unavailable", message: "migrating" })
    expect(e.status()).toMatchObject({ connection: "unavailable", lastError: { reason: "Unavailable" } })
    e.retry()
    expect(sent.filter((m) => m._tag === "Subscribe")).toHaveLength(2)
    e.receive(synced(0))
    expect(e.status()).toMatchObject({ connection: "live", lastError: null })
  })

  it("a row of the sync answer that does not decode stays reported once live", () => {
    const { e } = engine()
    e.opened()
    e.receive({ _tag: "SyncRows", channel: "todos", reset: true, rows: [row("ok"), ["bad", 42] as unknown as Todo], deleted: [] })
    e.receive(synced(3))
    expect(e.status()).toMatchObject({ connection: "live", lastError: { reason: "InvalidRecord" } })
  })

  it("an action refused while live stays until the next successful sync", () => {
    const { e } = engine()
    e.opened()
    e.receive(synced(0))
    e.enqueue([{ clientId: "c", clientKey: "key-key-key-key-c", schema: 1, seq: 1, action: { type: "delete", payload: { id: "x" } }, encoded: null, bytes: 40, sent: false, waiter: undefined }])
    e.receive({ _tag: "Pushed", channel: "todos", clientId: "c", version: 0, next: 2, results: [{ seq: 1, reason: "ReadOnly", message: "viewers cannot edit" }] })
    expect(e.status()).toMatchObject({ connection: "live", lastError: { reason: "ReadOnly", message: "viewers cannot edit" } })
    e.closed()
    e.opened()
    expect(e.status().lastError).toMatchObject({ reason: "ReadOnly" })
    e.receive(synced(0))
    expect(e.status()).toMatchObject({ connection: "live", lastError: null })
  })
})
