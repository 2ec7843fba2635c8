/**
 * Authorization against the real worker, through the Todo fixture's demo
 * `?token=` rules (fixtures/todo-sync/src/server.ts): refused connections are
 * told why (a `NotAuthorized` frame, then close code 4401 or 4403: a browser
 * never sees an upgrade's status), read-only connections may subscribe but
 * not act, and a per-action rule (guests may not delete). A refused action
 * writes no row, and its refusal is final.
 */
import { request } from "node:http"
import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { hooks } from "../helpers/hooks.ts"
import { protocolClients } from "../helpers/clients.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, expectFailure, freshRoom, ProtocolClient, roomUrl, keyOf } from "../helpers/protocol.ts"
import { create, remove, update } from "../helpers/todos.ts"

const { track } = protocolClients()

const withToken = (room: string, token: string | undefined) => {
  const url = roomUrl(workerUrl(), room)
  return token === undefined ? url : `${url}?token=${encodeURIComponent(token)}`
}

const connect = async (room: string, token?: string) => {
  const client = await ProtocolClient.connect(withToken(room, token))
  track(client)
  return client
}

/** The HTTP status the worker answers a WebSocket upgrade with (101 when it accepts). */
const upgradeStatus = (url: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url.replace(/^ws/, "http"), {
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
        ...headers
      }
    })
    req.on("upgrade", (response, socket) => {
      socket.destroy()
      resolve({ status: response.statusCode ?? 0, body: "" })
    })
    req.on("response", (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }))
    })
    req.on("error", reject)
    req.setTimeout(15_000, () => req.destroy(new Error("upgrade request timed out")))
    req.end()
  })

/** A room with one todo written by a full-access client, and a check that nothing else was written. */
const seeded = async (prefix: string) => {
  const room = freshRoom(prefix)
  const owner = await connect(room)
  await owner.subscribe("todos", null)
  expectAck(await owner.act({ clientId: "owner", clientKey: keyOf("owner"), seq: 1, action: create("t1", "first") }))
  const h = hooks(workerUrl(), room)
  const before = { rows: await h.rows(), clients: await h.clients() }
  return {
    room,
    owner,
    h,
    /** No row changed; only `decided` (a client whose refusals were recorded as its outcomes) may be new in the ledger. */
    unchanged: async (decided?: string) => {
      expect(await h.rows()).toEqual(before.rows)
      expect((await h.clients()).filter((c) => c.client_id !== decided)).toEqual(before.clients)
    }
  }
}

describe("authorization on connect", () => {
  it("no token connects with full access (the app needs no token)", async () => {
    const t = await seeded("auth-none")
    const c = await connect(t.room)
    expect((await c.subscribe("todos", null)).rows.map((r) => r[0])).toEqual(["t1"])
    expectAck(await c.act({ clientId: "anon", clientKey: keyOf("anon"), seq: 1, action: create("t2", "second") }))
    expectAck(await c.act({ clientId: "anon", clientKey: keyOf("anon"), seq: 2, action: remove("t2") }))
    expect((await t.h.rows()).map((r) => [r[0], r[6] === null])).toEqual([["t1", true], ["t2", false]])
    expect(await upgradeStatus(withToken(t.room, undefined))).toMatchObject({ status: 101 })
  })

  it("an unknown token is told NotAuthorized and closed with 4401, a banned one with 4403; nothing it sends is handled", async () => {
    const t = await seeded("auth-refused")
    for (const [token, code, message] of [["bad", 4401, "unknown token"], ["banned", 4403, "this token is banned"]] as const) {
      const c = await connect(t.room, token)
      // sent before the close arrives: never handled
      c.send({ _tag: "Push", channel: "todos", clientId: "sneak", clientKey: keyOf("sneak"), actions: [{ seq: 1, action: remove("t1") }] })
      const refusal = await c.next((m) => m._tag === "Failure")
      expect(refusal).toEqual({ _tag: "Failure", requestId: null, channel: null, reason: "NotAuthorized", message })
      expect(await c.closed).toEqual({ code, reason: message })
      expect(c.messages).toHaveLength(1)
    }
    await t.unchanged()
  })

  it("a forged grant header does not bypass the connect hook", async () => {
    const t = await seeded("auth-forged")
    const forged = { "x-effect-partysync-grant": JSON.stringify({ principal: "admin", readOnly: false }) }
    const refused = new (WebSocket as unknown as new(url: string, init: { headers: Record<string, string> }) => WebSocket)(
      withToken(t.room, "bad"),
      { headers: forged }
    )
    const closed = await new Promise<number>((resolve) => refused.addEventListener("close", (event) => resolve(event.code), { once: true }))
    expect(closed).toBe(4401)
    // a read-only token with a forged full grant stays read-only
    const socket = new (WebSocket as unknown as new(url: string, init: { headers: Record<string, string> }) => WebSocket)(
      withToken(t.room, "readonly"),
      { headers: forged }
    )
    const reply = await new Promise<unknown>((resolve, reject) => {
      socket.addEventListener("error", () => reject(new Error("forged-header socket failed to open")), { once: true })
      socket.addEventListener("message", (event) => resolve(JSON.parse(String(event.data))), { once: true })
      socket.addEventListener("open", () => {
        socket.send(JSON.stringify({ _tag: "Push", channel: "todos", clientId: "forger", clientKey: keyOf("forger"), actions: [{ seq: 1, action: remove("t1") }] }))
      }, { once: true })
    })
    socket.close()
    expect(reply).toMatchObject({ _tag: "Pushed", clientId: "forger", results: [{ seq: 1, reason: "ReadOnly" }] })
    await t.unchanged("forger")
  })
})

describe("read-only connections", () => {
  it("may subscribe and receive live changes, but every action is refused with ReadOnly and writes nothing", async () => {
    const t = await seeded("auth-ro")
    const reader = await connect(t.room, "readonly")
    const sync = await reader.subscribe("todos", null)
    expect(sync.rows.map((r) => r[0])).toEqual(["t1"])

    const actions = [create("ro", "from a reader"), update("t1", { text: "changed by a reader" }), remove("t1"), { type: "nonsense" }]
    for (const [i, action] of actions.entries()) {
      const reply = expectFailure(await reader.act({ clientId: "reader", clientKey: keyOf("reader"), seq: i + 1, action }))
      expect(reply).toMatchObject({ reason: "ReadOnly", channel: "todos", next: i + 2 })
    }
    expect(reader.changes()).toEqual([])
    await t.unchanged("reader")

    // still subscribed: a writer's change reaches the reader
    const from = reader.mark()
    const ack = expectAck(await t.owner.act({ clientId: "owner", clientKey: keyOf("owner"), seq: 2, action: update("t1", { completed: 1 }) }))
    const change = await reader.next((m) => m._tag === "Change" && m.version === ack.version, { from })
    expect(change).toMatchObject({ rows: [["t1", "first", 1, expect.any(Number), expect.any(Number), 1, null]] })
  })
})

describe("authorization per action", () => {
  it("a guest may create and update but a delete is refused with NotAuthorized, writes no row, and stays refused", async () => {
    const t = await seeded("auth-guest")
    const guest = await connect(t.room, "guest")
    await guest.subscribe("todos", null)
    expectAck(await guest.act({ clientId: "guest-1", clientKey: keyOf("guest-1"), seq: 1, action: create("g1", "by a guest") }))
    expectAck(await guest.act({ clientId: "guest-1", clientKey: keyOf("guest-1"), seq: 2, action: update("t1", { completed: 1 }) }))
    const h = t.h
    const before = { rows: await h.rows(), clients: await h.clients() }

    const from = guest.mark()
    const refused = expectFailure(await guest.act({ clientId: "guest-1", clientKey: keyOf("guest-1"), seq: 3, action: remove("g1") }))
    expect(refused).toMatchObject({ reason: "NotAuthorized", channel: "todos", message: "guests may not delete todos" })
    expect(guest.messages.slice(from).filter((m) => m._tag === "Change")).toEqual([])
    expect(await h.rows()).toEqual(before.rows)

    // the refusal is final: seq 3 re-sent, even with an allowed action, gets the same answer
    const again = expectFailure(await guest.act({ clientId: "guest-1", clientKey: keyOf("guest-1"), seq: 3, action: create("g2", "still a guest") }))
    expect(again).toMatchObject({ reason: "NotAuthorized", message: "guests may not delete todos" })
    const next = expectAck(await guest.act({ clientId: "guest-1", clientKey: keyOf("guest-1"), seq: 4, action: create("g2", "still a guest") }))
    expect(next.duplicate).toBe(false)
    expect((await h.clients()).find((c) => c.client_id === "guest-1")?.seq).toBe(4)

    // the rule is per principal: a full-access connection may delete the same row
    expectAck(await t.owner.act({ clientId: "owner", clientKey: keyOf("owner"), seq: 2, action: remove("g1") }))
    expect((await h.rows()).find((r) => r[0] === "g1")?.[6]).not.toBeNull()
  })
})
