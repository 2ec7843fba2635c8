/**
 * Schema evolution across deploys, in real workerd, at the protocol level:
 * one object's persisted state restarted as v1, then v2 (a column added, an
 * action field renamed), then v3, and once as a deploy whose migration
 * fails. Rows are migrated, old actions are upgraded and applied once,
 * clients built for an older version are told they are outdated, and a
 * failed migration leaves nothing half-done and the object answering
 * `Unavailable` until a good deploy. (test/client/evolution.integration.test.ts
 * runs the same deploys with real clients, caches and offline queues.)
 */
import { afterAll, describe, expect, it } from "vitest"
import type { Failure } from "../../src/protocol/Protocol.ts"
import { expectAck, expectFailure, freshRoom, ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { removeDir, type StartedWorker, startWorker, tempPersistDir } from "../helpers/worker.ts"

const CONFIG = "test/server/evolution/wrangler.toml"
let worker: StartedWorker | undefined
const dirs: Array<string> = []

const deploy = async (version: string, persist: string) => {
  await worker?.dispose()
  worker = await startWorker({ config: CONFIG, persist, hooks: false, vars: { DEPLOY: version } })
  return worker
}

const hook = async <A>(room: string, name: string): Promise<A> => {
  const response = await fetch(`${roomUrl(worker!.url, room, { party: "notes", ws: false })}/${name}`)
  return (await response.json()) as A
}

const connect = (room: string) => ProtocolClient.connect(roomUrl(worker!.url, room, { party: "notes" }))

afterAll(async () => {
  await worker?.dispose()
  for (const dir of dirs) removeDir(dir)
})

describe("deploys in a row on one object's state", () => {
  it("v1 -> v2 -> v3: rows migrated, v1 actions upgraded and applied once, older clients told they are outdated", async () => {
    const persist = tempPersistDir("psync-evolution-")
    dirs.push(persist)
    const room = freshRoom("evo")

    await deploy("v1", persist)
    const v1 = await connect(room)
    const first = await v1.subscribe("notes", null)
    expect(first.reset).toBe(true)
    expectAck(await v1.act({ channel: "notes", clientId: "a", seq: 1, action: { type: "add", id: "n1", text: "written under v1" } }))
    await v1.close()

    await deploy("v2", persist)
    expect(await hook<Array<[number, string]>>(room, "migrations")).toEqual([[1, "create_notes"], [2, "add_priority"]])
    expect(await hook<Array<string>>(room, "columns")).toEqual(["id", "text", "deleted_at", "priority"])
    // a client still built for v1 is told to reload, and nothing it asks for is synced
    const old = await connect(room)
    old.send({ _tag: "Subscribe", channel: "notes", since: null, schema: 1 })
    const outdated = await old.next<Failure>((m) => m._tag === "Failure")
    expect(outdated).toMatchObject({ reason: "Outdated", channel: "notes" })
    expect(old.messages.some((m) => m._tag === "SyncRows")).toBe(false)
    await old.close()

    const v2 = await connect(room)
    v2.send({ _tag: "Subscribe", channel: "notes", since: null, schema: 2 })
    await v2.next((m) => m._tag === "Synced")
    const rows = v2.messages.flatMap((m) => (m._tag === "SyncRows" ? m.rows : []))
    // the added column travels before deleted_at
    expect(rows).toEqual([["n1", "written under v1", 0, null]])
    // an action queued under v1 (field `text`) is upgraded to v2 (field `body`) and applied
    const upgraded = expectAck(await v2.act({ channel: "notes", clientId: "a", seq: 2, action: { type: "add", id: "n2", text: "queued under v1" }, schema: 1 }))
    expect(upgraded.rows).toEqual([["n2", "queued under v1", 0, null]])
    // a v1 action re-sent after the deploy is still a duplicate: exactly once across deploys
    const again = expectAck(await v2.act({ channel: "notes", clientId: "a", seq: 1, action: { type: "add", id: "n1", text: "written under v1" }, schema: 1 }))
    expect(again.duplicate).toBe(true)
    const current = expectAck(await v2.act({ channel: "notes", clientId: "b", seq: 1, action: { type: "add", id: "n3", body: "a v2 action", priority: 2 }, schema: 2 }))
    expect(current.rows).toEqual([["n3", "a v2 action", 2, null]])
    await v2.close()

    await deploy("v3", persist)
    expect((await hook<Array<[number, string]>>(room, "migrations")).map(([id]) => id)).toEqual([1, 2, 3])
    const v3 = await connect(room)
    // still queued under v1, two deploys later: upgraded twice
    const twice = expectAck(await v3.act({ channel: "notes", clientId: "a", seq: 3, action: { type: "add", id: "n4", text: "queued under v1, sent under v3" }, schema: 1 }))
    expect(twice.rows).toEqual([["n4", "queued under v1, sent under v3", 0, 0, null]])
    v3.send({ _tag: "Subscribe", channel: "notes", since: null, schema: 3 })
    await v3.next((m) => m._tag === "Synced")
    const ids = v3.messages.flatMap((m) => (m._tag === "SyncRows" ? m.rows.map((r) => r[0]) : []))
    expect(ids).toEqual(["n1", "n2", "n3", "n4"])
    await v3.close()
  })

  it("a migration that fails leaves nothing half-migrated and the object Unavailable with the reason; the next good deploy migrates it", async () => {
    const persist = tempPersistDir("psync-evolution-broken-")
    dirs.push(persist)
    const room = freshRoom("evo-broken")

    await deploy("v1", persist)
    const v1 = await connect(room)
    expectAck(await v1.act({ channel: "notes", clientId: "a", seq: 1, action: { type: "add", id: "n1", text: "kept" } }))
    await v1.close()

    await deploy("broken", persist)
    const c = await connect(room)
    c.send({ _tag: "Subscribe", channel: "notes", since: null, schema: 1 })
    const refused = await c.next<Failure>((m) => m._tag === "Failure")
    expect(refused.reason).toBe("Unavailable")
    expect(refused.message).toContain("add_priority")
    expect(refused.message).toContain("no such table")
    // it keeps answering so, and nothing of migration 2 stayed (its first statement was rolled back)
    const action = await c.act({ channel: "notes", clientId: "a", seq: 2, action: { type: "add", id: "n2", text: "refused" } })
    expect(expectFailure(action)).toMatchObject({ reason: "Unavailable", channel: "notes" })
    // requests to the object are refused too, with the reason, before any handler reads a table
    const http = await fetch(`${roomUrl(worker!.url, room, { party: "notes", ws: false })}/columns`)
    expect(http.status).toBe(503)
    expect(await http.text()).toContain("add_priority")
    await c.close()

    // the previous deploy again: nothing of migration 2 stayed (its first statement was rolled back)
    await deploy("v1", persist)
    expect(await hook<Array<string>>(room, "columns")).toEqual(["id", "text", "deleted_at"])
    expect(await hook<Array<[number, string]>>(room, "migrations")).toEqual([[1, "create_notes"]])

    await deploy("v2", persist)
    const v2 = await connect(room)
    v2.send({ _tag: "Subscribe", channel: "notes", since: null, schema: 2 })
    await v2.next((m) => m._tag === "Synced")
    expect(v2.messages.flatMap((m) => (m._tag === "SyncRows" ? m.rows : []))).toEqual([["n1", "kept", 0, null]])
    await v2.close()
  })
})
