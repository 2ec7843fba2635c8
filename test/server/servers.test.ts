/**
 * Sync servers unlike the Todo fixture, in real workerd
 * (test/server/servers-worker.js):
 * - one whose services cannot start (its channel's table is missing) answers
 *   every frame with a typed `Unavailable` failure instead of silence;
 * - partysync-style handlers (a SQL cursor, a Promise, an array of objects)
 *   work, on asynchronous transactions, and a throw or a rejection after a
 *   write leaves nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectAck, ProtocolClient, roomUrl, keyOf } from "../helpers/protocol.ts"
import { type StartedWorker, startWorker } from "../helpers/worker.ts"
import { create, remove, update } from "../helpers/todos.ts"

let worker: StartedWorker | undefined
beforeAll(async () => {
  worker = await startWorker({ config: "test/server/wrangler.servers.toml", persist: false, hooks: false })
})
afterAll(async () => {
  await worker?.dispose()
})

const connect = (party: string, room: string) => ProtocolClient.connect(roomUrl(worker!.url, room, { party }))

describe("a server that cannot start", () => {
  it("answers a Subscribe and a Push with Unavailable, naming the missing table", async () => {
    const client = await connect("broken", "broken")
    try {
      client.send({ _tag: "Subscribe", channel: "todos", since: null })
      const first = await client.next((m) => m._tag === "Failure")
      expect(first).toMatchObject({ _tag: "Failure", reason: "Unavailable" })
      expect(first._tag === "Failure" && first.message).toContain("todos")
      client.send({ _tag: "Push", channel: "todos", clientId: "c", clientKey: keyOf("c"), actions: [{ seq: 1, action: remove("x") }] })
      expect(await client.next((m) => m._tag === "Failure")).toMatchObject({ reason: "Unavailable", clientId: "c" })
    } finally {
      await client.close()
    }
  })
})

describe("partysync-style handlers", () => {
  it("handlers returning a cursor, a Promise or an array of objects: the reply carries the captured rows, and they reach subscribers", async () => {
    const a = await connect("seed-style", "ported")
    const b = await connect("seed-style", "ported")
    try {
      for (const c of [a, b]) {
        c.send({ _tag: "Subscribe", channel: "todos", since: null })
        await c.next((m) => m._tag === "Synced")
      }
      const created = expectAck(await a.act({ clientId: "a", clientKey: keyOf("a"), seq: 1, action: create("t1", "hello") }))
      expect(created.rows.map((r) => r.slice(0, 3))).toEqual([["t1", "hello", 0]])
      const updated = expectAck(await a.act({ clientId: "a", clientKey: keyOf("a"), seq: 2, action: update("t1", { text: "later" }) }))
      expect(updated.rows.map((r) => r[1])).toEqual(["later"])
      const deleted = expectAck(await a.act({ clientId: "a", clientKey: keyOf("a"), seq: 3, action: remove("t1") }))
      expect(deleted.rows).toHaveLength(1)
      expect(deleted.rows[0]![5]).not.toBeNull() // schema 1 rows: deleted_at is the sixth
      // b saw all three, as captured rows
      const seen = await b.next((m) => m._tag === "Change" && m.version === deleted.version)
      expect(seen._tag === "Change" && seen.rows[0]![0]).toBe("t1")
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  it("a handler that throws after writing, or a Promise that rejects after writing, leaves nothing", async () => {
    const a = await connect("seed-style", "failing")
    try {
      a.send({ _tag: "Subscribe", channel: "todos", since: null })
      await a.next((m) => m._tag === "Synced")
      expectAck(await a.act({ clientId: "a", clientKey: keyOf("a"), seq: 1, action: create("kept", "kept") }))
      expect(await a.act({ clientId: "a", clientKey: keyOf("a"), seq: 2, action: create("gone", "throw") }))
        .toMatchObject({ _tag: "Failure", reason: "HandlerFailed", message: "the handler threw after writing" })
      expect(await a.act({ clientId: "a", clientKey: keyOf("a"), seq: 3, action: update("kept", { text: "reject" }) }))
        .toMatchObject({ _tag: "Failure", reason: "HandlerFailed", message: "the promise rejected after writing" })
      // a fresh subscriber sees only the first row, unchanged
      const fresh = await connect("seed-style", "failing")
      try {
        fresh.send({ _tag: "Subscribe", channel: "todos", since: null })
        const sync = await fresh.next((m) => m._tag === "SyncRows")
        expect(sync._tag === "SyncRows" && sync.rows.map((r) => [r[0], r[1]])).toEqual([["kept", "kept"]])
      } finally {
        await fresh.close()
      }
      // and no Change went out for the failed actions
      expect(a.messages.filter((m) => m._tag === "Change")).toHaveLength(1)
    } finally {
      await a.close()
    }
  })
})
