/**
 * Sync against the real worker: clients see each other's actions, a client
 * that was away gets exactly what it missed, and re-sent actions apply once.
 */
import { describe, expect, it } from "vitest"
import { protocolClients } from "../helpers/clients.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, freshRoom } from "../helpers/protocol.ts"
import { create, idsOf, remove, update } from "../helpers/todos.ts"

const { connect } = protocolClients()

describe("sync between clients", () => {
  it("two clients subscribe, act, and each sees the other's changes", async () => {
    const room = freshRoom("two")
    const a = await connect(room)
    const b = await connect(room)
    const syncA = await a.subscribe("todos", null)
    const syncB = await b.subscribe("todos", null)
    expect(syncA.rows).toEqual([])
    expect(syncB.reset).toBe(true)

    const ackA = expectAck(await a.act({ clientId: "ca", seq: 1, action: create("t1", "from a") }))
    expect(ackA.rows.map((r) => r[0])).toEqual(["t1"])
    const seenByB = await b.next((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "t1"))
    expect(seenByB._tag === "Change" && seenByB.version).toBe(ackA.version)

    const ackB = expectAck(await b.act({ clientId: "cb", seq: 1, action: update("t1", { completed: 1 }) }))
    const seenByA = await a.next((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "t1" && r[2] === 1))
    expect(seenByA._tag === "Change" && seenByA.version).toBe(ackB.version)
    expect(ackB.version).toBeGreaterThan(ackA.version)

    // the acting client also receives its own change, before its push's reply
    const ownChange = a.messages.findIndex((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "t1"))
    const ownAck = a.messages.findIndex((m) => m._tag === "Pushed" && m.clientId === "ca")
    expect(ownChange).toBeGreaterThanOrEqual(0)
    expect(ownChange).toBeLessThan(ownAck)
    expect(a.invalid).toEqual([])
    expect(b.invalid).toEqual([])
  })

  it("a reconnecting client gets exactly the update and delete it missed", async () => {
    const room = freshRoom("missed")
    const writer = await connect(room)
    await writer.subscribe("todos", null)
    for (const [i, id] of ["keep", "edit", "gone"].entries()) {
      expectAck(await writer.act({ clientId: "w", seq: i + 1, action: create(id, `text ${id}`) }))
    }
    const away = await connect(room)
    const first = await away.subscribe("todos", null)
    expect(idsOf(first.rows)).toEqual(["edit", "gone", "keep"])
    const cursor = first.version
    await away.close()

    expectAck(await writer.act({ clientId: "w", seq: 4, action: update("edit", { text: "edited" }) }))
    const del = expectAck(await writer.act({ clientId: "w", seq: 5, action: remove("gone") }))

    const back = await connect(room)
    const resumed = await back.subscribe("todos", cursor)
    expect(resumed.reset).toBe(false)
    expect(resumed.version).toBe(del.version)
    expect(idsOf(resumed.rows)).toEqual(["edit", "gone"])
    const edited = resumed.rows.find((r) => r[0] === "edit")!
    expect(edited[1]).toBe("edited")
    const tombstone = resumed.rows.find((r) => r[0] === "gone")!
    expect(tombstone[6]).not.toBeNull()

    // and then live changes keep flowing on the resumed connection
    expectAck(await writer.act({ clientId: "w", seq: 6, action: create("later", "later") }))
    await back.next((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "later"))
  })

  it("a client subscribed at the latest version gets an empty delta", async () => {
    const room = freshRoom("uptodate")
    const c = await connect(room)
    await c.act({ clientId: "x", seq: 1, action: create("a", "a") })
    const first = await c.subscribe("todos", null)
    const again = await c.subscribe("todos", first.version)
    expect(again).toMatchObject({ reset: false, rows: [], deleted: [], version: first.version })
  })

  it("a re-sent action is applied once and its reply carries the first outcome's rows", async () => {
    const room = freshRoom("dup")
    const c = await connect(room)
    await c.subscribe("todos", null)
    const first = expectAck(await c.act({ clientId: "dup", seq: 1, action: create("once", "once") }))
    expect(first.rows.map((r) => r[0])).toEqual(["once"])
    const again = expectAck(await c.act({ clientId: "dup", seq: 1, action: create("once", "once") }))
    expect(again.rows).toEqual(first.rows)
    expect(again.version).toBe(first.version)
    expect((await hooks(workerUrl(), room).rows()).map((r) => r[0])).toEqual(["once"])
    expect(await hooks(workerUrl(), room).clients()).toEqual([{ client_id: "dup", seq: 1 }])
  })

  it("an action re-sent on a new connection after a reconnect is applied once", async () => {
    const room = freshRoom("dup-reconnect")
    const first = await connect(room)
    // an update is not idempotent: applying it twice would bump updated_at and the version again
    expectAck(await first.act({ clientId: "mobile", seq: 1, action: create("n", "n") }))
    const applied = expectAck(await first.act({ clientId: "mobile", seq: 2, action: update("n", { text: "v2" }) }))
    const rowsBefore = await hooks(workerUrl(), room).rows()
    await first.close()

    const second = await connect(room)
    const sync = await second.subscribe("todos", null)
    const retried = expectAck(await second.act({ clientId: "mobile", seq: 2, action: update("n", { text: "v2" }) }))
    expect(retried.rows).toEqual(applied.rows)
    expect(retried.version).toBe(applied.version)
    expect(sync.version).toBe(applied.version)
    expect(await hooks(workerUrl(), room).rows()).toEqual(rowsBefore)
    // the next sequence number is applied normally
    const next = expectAck(await second.act({ clientId: "mobile", seq: 3, action: update("n", { text: "v3" }) }))
    expect(next.rows.map((r) => r[1])).toEqual(["v3"])
    expect(next.version).toBeGreaterThan(applied.version)
  })
})
