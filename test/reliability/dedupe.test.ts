/**
 * Exactly-once replies: an action re-sent under its original (clientId, seq)
 * after a reconnect gets the answer it got the first time, and actions are
 * decided in seq order. Found
 * by the convergence property (a refused create, its Failure lost in a
 * restart, was later confirmed as a "duplicate" because a later seq of the
 * same client had been applied).
 */
import { describe, expect, it } from "vitest"
import { hooks } from "../helpers/hooks.ts"
import { protocolClients } from "../helpers/clients.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, expectFailure, freshRoom } from "../helpers/protocol.ts"
import { create } from "../helpers/todos.ts"

const { connect } = protocolClients()

describe("re-sent actions get their first answer", () => {
  it("a refused action re-sent after a later seq was applied is refused again, not confirmed as a duplicate", async () => {
    const room = freshRoom("dedupe-refused")
    const first = await connect(room)
    const refused = expectFailure(await first.act({ clientId: "c", seq: 1, action: create("bad", " ") }))
    expect(refused.reason).toBe("ActionRejected")
    expectAck(await first.act({ clientId: "c", seq: 2, action: create("good", "good") }))
    await first.close()

    // the client never saw the Failure (the socket dropped): it re-sends seq 1 on a new connection
    const again = await connect(room)
    const reply = await again.act({ clientId: "c", seq: 1, action: create("bad", " ") })
    expect(reply).toMatchObject({ _tag: "Failure", reason: "ActionRejected", message: refused.message })
    // an applied action re-sent is still a duplicate
    expect(expectAck(await again.act({ clientId: "c", seq: 2, action: create("good", "good") })).duplicate).toBe(true)
    const h = hooks(workerUrl(), room)
    expect((await h.rows()).map((r) => r[0])).toEqual(["good"])
    expect(await h.clients()).toEqual([{ client_id: "c", seq: 2 }])
  })

  // Actions are decided strictly in order: one past the seq the server expects is not decided (a hole would make a
  // later re-send ambiguous); the reply says which seq to send, and sent in order every one applies once.
  it("an action past the next seq is left undecided, the reply says where to resume, and in order each applies once", async () => {
    const room = freshRoom("dedupe-order")
    const c = await connect(room)
    expectAck(await c.act({ clientId: "u", seq: 1, action: create("one", "one") }))
    const early = await c.act({ clientId: "u", seq: 3, action: create("three", "three") })
    expect(early).toEqual({ _tag: "Pending", next: 2 })
    expectAck(await c.act({ clientId: "u", seq: 2, action: create("two", "two") }))
    expectAck(await c.act({ clientId: "u", seq: 3, action: create("three", "three") }))
    expect(expectAck(await c.act({ clientId: "u", seq: 3, action: create("three", "three") })).duplicate).toBe(true)
    expect((await hooks(workerUrl(), room).rows()).map((r) => r[0])).toEqual(["one", "two", "three"])
    expect(await hooks(workerUrl(), room).clients()).toEqual([{ client_id: "u", seq: 3 }])
  })
})
