/**
 * Bad input against the real worker: every kind gets its typed `Failure`,
 * writes nothing (rows and recorded sequence numbers are unchanged), and the
 * connection keeps working afterwards.
 */
import { describe, expect, it } from "vitest"
import type { ErrorReason, Failure } from "../../src/protocol/Protocol.ts"
import { hooks } from "../helpers/hooks.ts"
import { protocolClients } from "../helpers/clients.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, expectFailure, freshRoom, ProtocolClient, roomUrl, keyOf } from "../helpers/protocol.ts"
import { create } from "../helpers/todos.ts"

const { track } = protocolClients()

/** A room with one row and one recorded client, a subscribed connection, and a way to check nothing changed. */
const setup = async (prefix: string) => {
  const room = freshRoom(prefix)
  const client = await ProtocolClient.connect(roomUrl(workerUrl(), room))
  track(client)
  const h = hooks(workerUrl(), room)
  const sync0 = await client.subscribe("todos", null)
  expect(sync0.reset).toBe(true)
  const seed = expectAck(await client.act({ clientId: "seed", clientKey: keyOf("seed"), seq: 1, action: create("seed", "seed") }))
  const before = { rows: await h.rows(), clients: await h.clients() }
  let seq = 1
  return {
    room,
    client,
    version: seed.version,
    /**
     * Asserts nothing was written (a refused action's client may have its refusal recorded in the ledger: that is
     * its decided outcome), then proves the connection still works with a valid action.
     */
    unchangedAndUsable: async (options: { readonly decided?: string } = {}) => {
      expect(await h.rows()).toEqual(before.rows)
      expect((await h.clients()).filter((c) => c.client_id !== options.decided)).toEqual(before.clients)
      const ok = expectAck(await client.act({ clientId: "seed", clientKey: keyOf("seed"), seq: ++seq, action: create(`ok-${seq}`, "still works") }))
      expect(ok.duplicate).toBe(false)
      await client.waitFor((m) => m._tag === "Change" && m.rows.some((r) => r[0] === `ok-${seq}`))
      expect(client.invalid).toEqual([])
    }
  }
}

const failureAfter = (client: ProtocolClient, from: number, what: string) =>
  client.next<Failure>((m) => m._tag === "Failure", { from, what })

const expectReason = (failure: { readonly _tag: string; readonly reason: ErrorReason; readonly message: string }, reason: ErrorReason) => {
  expect(failure._tag).toBe("Failure")
  expect(failure.reason, JSON.stringify(failure)).toBe(reason)
  expect(failure.message.length).toBeGreaterThan(0)
}

describe("bad input gets a typed Failure, writes nothing, and the connection stays usable", () => {
  it("malformed JSON -> MalformedJson", async () => {
    const t = await setup("bad-json")
    const from = t.client.mark()
    t.client.send(`{"_tag":"Push","clientId":"c","channel":"todos",`)
    const failure = await failureAfter(t.client, from, "MalformedJson")
    expectReason(failure, "MalformedJson")
    expect(failure.requestId).toBeNull()
    await t.unchangedAndUsable()
  })

  it("a JSON value that is no message -> UnknownMessage, naming the client id when it has one", async () => {
    const t = await setup("bad-msg")
    for (const frame of [`42`, `null`, `{"_tag":"Hello"}`, `{"_tag":"Subscribe","channel":"todos","since":-1}`]) {
      const from = t.client.mark()
      t.client.send(frame)
      expectReason(await failureAfter(t.client, from, `UnknownMessage for ${frame}`), "UnknownMessage")
    }
    const from = t.client.mark()
    t.client.send(JSON.stringify({ _tag: "Push", channel: "todos", clientId: "c", clientKey: keyOf("c"), actions: [{ action: create("x", "x") }] }))
    const failure = await failureAfter(t.client, from, "UnknownMessage for an action without seq")
    expectReason(failure, "UnknownMessage")
    expect(failure.clientId).toBe("c")
    await t.unchangedAndUsable()
  })

  it.each([
    "nope",
    "todos; DROP TABLE todos",
    "sqlite_master",
    "_psync_clients",
    "todos\" --",
    "TODOS"
  ])("unknown channel %j -> UnknownChannel for actions and subscriptions", async (channel) => {
    const t = await setup("bad-channel")
    const reply = expectFailure(await t.client.act({ channel, clientId: "evil", clientKey: keyOf("evil"), seq: 1, action: create("evil", "evil") }))
    expectReason(reply, "UnknownChannel")
    expect(reply.channel).toBe(channel)
    const from = t.client.mark()
    t.client.send({ _tag: "Subscribe", channel, since: null })
    const sub = await failureAfter(t.client, from, "UnknownChannel on Subscribe")
    expectReason(sub, "UnknownChannel")
    expect(sub.clientId).toBeUndefined()
    expect(sub.channel).toBe(channel)
    const from2 = t.client.mark()
    t.client.send({ _tag: "Unsubscribe", channel })
    expectReason(await failureAfter(t.client, from2, "UnknownChannel on Unsubscribe"), "UnknownChannel")
    await t.unchangedAndUsable()
  })

  it.each([
    ["a missing field", { type: "create", payload: { id: "x", completed: 0 } }],
    ["an unknown action type", { type: "truncate", payload: {} }],
    ["a wrong field type", { type: "create", payload: { id: "x", text: "x", completed: 2 } }],
    ["not an object", "create x"]
  ])("a schema-invalid action (%s) -> refused InvalidAction, decided once", async (_, action) => {
    const t = await setup("bad-action")
    const reply = expectFailure(await t.client.act({ clientId: "inv", clientKey: keyOf("inv"), seq: 1, action }))
    expectReason(reply, "InvalidAction")
    expect(reply.channel).toBe("todos")
    expect(reply.next).toBe(2)
    await t.unchangedAndUsable({ decided: "inv" })
  })

  it("a frame over 256 KiB -> FrameTooLarge", async () => {
    const t = await setup("bad-size")
    const from = t.client.mark()
    t.client.send({ _tag: "Push", channel: "todos", clientId: "big", clientKey: keyOf("big"), actions: [{ seq: 1, action: create("big", "x".repeat(300 * 1024)) }] })
    expectReason(await failureAfter(t.client, from, "FrameTooLarge"), "FrameTooLarge")
    // multi-byte text counts in bytes, not characters
    const from2 = t.client.mark()
    t.client.send({ _tag: "Push", channel: "todos", clientId: "big", clientKey: keyOf("big"), actions: [{ seq: 1, action: create("big2", "é".repeat(140 * 1024)) }] })
    expectReason(await failureAfter(t.client, from2, "FrameTooLarge (UTF-8)"), "FrameTooLarge")
    // astral characters are 2 UTF-16 units but 4 bytes: 160 Ki units, 320 KiB
    const from3 = t.client.mark()
    t.client.send({ _tag: "Push", channel: "todos", clientId: "big", clientKey: keyOf("big"), actions: [{ seq: 1, action: create("big3", "😀".repeat(80 * 1024)) }] })
    expectReason(await failureAfter(t.client, from3, "FrameTooLarge (emoji)"), "FrameTooLarge")
    await t.unchangedAndUsable()
  })

  it("a binary frame -> UnknownMessage", async () => {
    const t = await setup("bad-binary")
    const from = t.client.mark()
    t.client.send(new TextEncoder().encode(JSON.stringify({ _tag: "Subscribe", channel: "todos", since: null })))
    expectReason(await failureAfter(t.client, from, "UnknownMessage for binary"), "UnknownMessage")
    await t.unchangedAndUsable()
  })

  it("a handler that refuses the action -> ActionRejected with its message; every re-send of that seq gets the same answer", async () => {
    const t = await setup("bad-handler")
    const h = hooks(workerUrl(), t.room)
    const reply = expectFailure(await t.client.act({ clientId: "h", seq: 1, action: create("blank", "   ") }))
    expectReason(reply, "ActionRejected")
    expect(reply.message).toBe("text must be 1 to 200 characters")
    expect(reply.channel).toBe("todos")
    // decided once: the same seq with an action that would pass gets the same refusal, twice
    for (let i = 0; i < 2; i++) {
      const again = expectFailure(await t.client.act({ clientId: "h", seq: 1, action: create("fine", "fine") }))
      expect([again.reason, again.message]).toEqual(["ActionRejected", "text must be 1 to 200 characters"])
    }
    expect((await h.rows()).map((r) => r[0])).toEqual(["seed"])
    // the next seq is the client's to use
    expectAck(await t.client.act({ clientId: "h", seq: 2, action: create("fine", "fine") }))
  })

  it("a handler whose SQL fails (duplicate id) -> HandlerFailed, no change is published, and a re-send is refused the same way", async () => {
    const t = await setup("bad-sql")
    const h = hooks(workerUrl(), t.room)
    const from = t.client.mark()
    const reply = expectFailure(await t.client.act({ clientId: "other", seq: 1, action: create("seed", "again") }))
    expectReason(reply, "HandlerFailed")
    expect(reply.message).toContain("UNIQUE constraint failed")
    expect(t.client.messages.slice(from).filter((m) => m._tag === "Change")).toEqual([])
    const again = expectFailure(await t.client.act({ clientId: "other", seq: 1, action: create("unique", "would pass now") }))
    expect([again.reason, again.message]).toEqual([reply.reason, reply.message])
    expect((await h.rows()).map((r) => r[0])).toEqual(["seed"])
  })
})
