/**
 * Exactly-once replies: an action re-sent under its original (clientId, seq)
 * after a reconnect gets the answer it would have got the first time. Found
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

  // The server keeps a window of which seqs below the highest were applied, so one it never saw (refused as
  // TooManyInFlight, say) is applied when it arrives, and only a real re-send is a duplicate.
  it("a seq below the last applied one that the server never saw is applied, once", async () => {
    const room = freshRoom("dedupe-unseen")
    const c = await connect(room)
    expectAck(await c.act({ clientId: "u", seq: 5, action: create("five", "five") }))
    const reply = expectAck(await c.act({ clientId: "u", seq: 3, action: create("three", "three") }))
    // seq 3 was never applied: confirming it as a duplicate would tell the client a row exists that does not
    expect(reply.duplicate).toBe(false)
    const again = expectAck(await c.act({ clientId: "u", seq: 3, action: create("three", "three") }))
    expect(again.duplicate).toBe(true)
    expect((await hooks(workerUrl(), room).rows()).map((r) => r[0]).sort()).toEqual(["five", "three"])
  })
})
