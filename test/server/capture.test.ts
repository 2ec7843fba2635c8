/**
 * Change capture beyond actions, and tombstone GC, against the real worker:
 * rows written by an alarm or by raw SQL in a request handler reach
 * subscribers; after GC an old cursor gets a reset.
 */
import { describe, expect, it } from "vitest"
import type { Change } from "../../src/protocol/Protocol.ts"
import { protocolClients } from "../helpers/clients.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, freshRoom } from "../helpers/protocol.ts"
import { create, idsOf, remove } from "../helpers/todos.ts"

const { connect } = protocolClients()

const DAY = 24 * 60 * 60 * 1000

describe("writes outside onAction reach subscribers", () => {
  it("a row inserted with raw SQL by a request handler is sent as a Change", async () => {
    const room = freshRoom("raw")
    const c = await connect(room)
    const sync = await c.subscribe("todos", null)
    await hooks(workerUrl(), room).rawWrite("raw-1", "written by a method")
    const change = await c.next<Change>((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "raw-1"))
    expect(change.version).toBeGreaterThan(sync.version)
    expect(change.rows.find((r) => r[0] === "raw-1")![1]).toBe("written by a method")
    // a later subscriber from the old cursor gets it too
    const late = await connect(room)
    expect(idsOf((await late.subscribe("todos", sync.version)).rows)).toEqual(["raw-1"])
  })

  it("a row inserted with raw SQL by a method called over RPC that calls publishChanges is sent as a Change", async () => {
    const room = freshRoom("rpc")
    const c = await connect(room)
    const sync = await c.subscribe("todos", null)
    await hooks(workerUrl(), room).rpcRawWrite("rpc-1", "written by an RPC method")
    const change = await c.next<Change>((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "rpc-1"), {
      what: "the Change for a row written over RPC"
    })
    expect(change.version).toBeGreaterThan(sync.version)
  })

  it("a row written over RPC without publishChanges goes out with the object's next event", async () => {
    const room = freshRoom("rpc-late")
    const c = await connect(room)
    const sync = await c.subscribe("todos", null)
    await hooks(workerUrl(), room).rpcRawWrite("rpc-late", "not published by its method", false)
    // the next event (here a request to the object) publishes it
    await hooks(workerUrl(), room).rows()
    const change = await c.next<Change>((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "rpc-late"), {
      what: "the Change published by the next event"
    })
    expect(change.version).toBeGreaterThan(sync.version)
  })

  it("a row inserted by an alarm is sent as a Change", async () => {
    const room = freshRoom("alarm")
    const c = await connect(room)
    const sync = await c.subscribe("todos", null)
    await hooks(workerUrl(), room).alarmWrite("alarm-1", "written by an alarm")
    const change = await c.next<Change>((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "alarm-1"))
    expect(change.version).toBeGreaterThan(sync.version)
    expect((await hooks(workerUrl(), room).rows()).map((r) => r[0])).toEqual(["alarm-1"])
  })

  it("changes from actions and raw writes share one version sequence", async () => {
    const room = freshRoom("interleave")
    const c = await connect(room)
    await c.subscribe("todos", null)
    const h = hooks(workerUrl(), room)
    expectAck(await c.act({ clientId: "i", seq: 1, action: create("a1", "a1") }))
    await h.rawWrite("r1", "r1")
    expectAck(await c.act({ clientId: "i", seq: 2, action: create("a2", "a2") }))
    await h.rawWrite("r2", "r2")
    await c.waitFor((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "r2"))
    const versions = c.changes().map((m) => m.version)
    expect(versions).toEqual([...versions].sort((x, y) => x - y))
    expect(new Set(versions).size).toBe(versions.length)
    expect(c.changes().flatMap((m) => m.rows.map((r) => r[0]))).toEqual(["a1", "r1", "a2", "r2"])
  })
})

describe("tombstone GC", () => {
  it("after GC a reconnect from an older cursor gets a reset without the purged rows", async () => {
    const room = freshRoom("gc")
    const c = await connect(room)
    await c.subscribe("todos", null)
    expectAck(await c.act({ clientId: "g", seq: 1, action: create("stay", "stay") }))
    const created = expectAck(await c.act({ clientId: "g", seq: 2, action: create("drop", "drop") }))
    const oldCursor = created.version
    const deleted = expectAck(await c.act({ clientId: "g", seq: 3, action: remove("drop") }))

    // before GC the old cursor gets the tombstone as a delta
    const before = await connect(room)
    const delta = await before.subscribe("todos", oldCursor)
    expect(delta.reset).toBe(false)
    expect(delta.rows.map((r) => [r[0], r[6] !== null])).toEqual([["drop", true]])

    // retention is 7 days: a GC pass now notes the version; one 8 days later purges the tombstone
    // and moves the horizon to the version noted more than 7 days before it
    const now = Date.now()
    expect(await hooks(workerUrl(), room).gc(now)).toMatchObject({ purged: 0, horizon: 0 })
    const gc = await hooks(workerUrl(), room).gc(now + 8 * DAY)
    expect(gc.purged).toBe(1)
    expect(gc.horizon).toBe(deleted.version)
    expect((await hooks(workerUrl(), room).rows()).map((r) => r[0])).toEqual(["stay"])

    const after = await connect(room)
    const resync = await after.subscribe("todos", oldCursor)
    expect(resync.reset).toBe(true)
    expect(idsOf(resync.rows)).toEqual(["stay"])

    // a cursor at the horizon missed nothing and still gets a delta
    const current = await connect(room)
    const fresh = await current.subscribe("todos", deleted.version)
    expect(fresh).toMatchObject({ reset: false, rows: [], deleted: [] })
  })

  it("GC keeps tombstones younger than the retention", async () => {
    const room = freshRoom("gc-young")
    const c = await connect(room)
    await c.subscribe("todos", null)
    expectAck(await c.act({ clientId: "g", seq: 1, action: create("young", "young") }))
    const created = expectAck(await c.act({ clientId: "g", seq: 2, action: remove("young") }))
    const gc = await hooks(workerUrl(), room).gc(Date.now() + 6 * DAY)
    expect(gc.purged).toBe(0)
    const resync = await c.subscribe("todos", created.version - 1)
    expect(resync.reset).toBe(false)
    expect(idsOf(resync.rows)).toEqual(["young"])
  })

  it("a cursor newer than the server's version (another object's) gets a reset", async () => {
    const room = freshRoom("future")
    const c = await connect(room)
    const ack = expectAck(await c.act({ clientId: "f", seq: 1, action: create("only", "only") }))
    const sync = await c.subscribe("todos", ack.version + 1000)
    expect(sync.reset).toBe(true)
    expect(idsOf(sync.rows)).toEqual(["only"])
    expect(sync.version).toBe(ack.version)
  })
})
