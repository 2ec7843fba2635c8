/**
 * Limits against the real worker: inbound frames over the size limit and
 * actions beyond the in-flight limit of one connection get typed Failures,
 * not a crash; refused actions write nothing, accepted ones are applied
 * exactly once, and the connection keeps working.
 */
import { describe, expect, it } from "vitest"
import { DEFAULT_MAX_INBOUND_FRAME_BYTES, type Failure, type Pushed } from "../../src/protocol/Protocol.ts"
import { hooks } from "../helpers/hooks.ts"
import { protocolClients } from "../helpers/clients.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, freshRoom, keyOf, ProtocolClient, roomUrl, toReply } from "../helpers/protocol.ts"
import { create } from "../helpers/todos.ts"

const { track } = protocolClients()

/** Test hook: every action of the room's object waits `ms` before writing. */
const setActionDelay = async (room: string, ms: number) => {
  const response = await fetch(`${roomUrl(workerUrl(), room, { ws: false })}/hooks/action-delay`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ms })
  })
  expect(response.status).toBe(200)
}

const connect = async (room: string) => {
  const client = await ProtocolClient.connect(roomUrl(workerUrl(), room))
  track(client)
  return client
}

/** An Action frame padded (in its requestId-free `action`) to exactly `bytes` UTF-8 bytes. */
const frameOfSize = (bytes: number, id: string) => {
  const shell = (pad: string) =>
    JSON.stringify({ _tag: "Push", channel: "todos", clientId: id, clientKey: keyOf(id), actions: [{ seq: 1, action: { type: "create", payload: { id, text: pad, completed: 0 } } }] })
  const overhead = Buffer.byteLength(shell(""), "utf8")
  const frame = shell("x".repeat(bytes - overhead))
  expect(Buffer.byteLength(frame, "utf8")).toBe(bytes)
  return frame
}

describe("inbound frame size limit", () => {
  it("a frame of exactly the limit is read; one byte more is FrameTooLarge; neither writes", async () => {
    const room = freshRoom("limit-size")
    const c = await connect(room)
    await c.subscribe("todos", null)
    const h = hooks(workerUrl(), room)
    const limit = DEFAULT_MAX_INBOUND_FRAME_BYTES

    const at = c.mark()
    c.send(frameOfSize(limit, "at-limit"))
    // read and decoded: its text is over the action Schema's 10 000 characters, so the action is refused
    const atLimit = await c.next<Pushed>((m) => m._tag === "Pushed", { from: at })
    expect(atLimit).toMatchObject({ clientId: "at-limit", results: [{ seq: 1, reason: "InvalidAction" }] })

    const over = c.mark()
    c.send(frameOfSize(limit + 1, "over-limit"))
    const overLimit = await c.next<Failure>((m) => m._tag === "Failure", { from: over })
    expect(overLimit.reason).toBe("FrameTooLarge")
    expect(overLimit.message).toContain(String(limit))
    expect(await h.rows()).toEqual([])
    // the refusal is the action's recorded outcome; the frame over the limit left no trace
    expect((await h.clients()).map((x) => x.client_id)).toEqual(["at-limit"])
  })

  it("frames of 1, 8 and 24 MB are refused with FrameTooLarge and the connection keeps working", async () => {
    const room = freshRoom("limit-huge")
    const c = await connect(room)
    await c.subscribe("todos", null)
    for (const mb of [1, 8, 24]) {
      const from = c.mark()
      c.send(frameOfSize(mb * 1024 * 1024, `huge-${mb}`))
      const failure = await c.next<Failure>((m) => m._tag === "Failure", { from, what: `FrameTooLarge for ${mb} MB` })
      expect(failure.reason).toBe("FrameTooLarge")
      expect(c.closeEvent).toBeUndefined()
    }
    expectAck(await c.act({ clientId: "size", clientKey: keyOf("size"), seq: 1, action: create("small", "fits") }))
    expect((await hooks(workerUrl(), room).rows()).map((r) => r[0])).toEqual(["small"])
  })
})

describe("actions in flight per connection", () => {
  it("200 pipelined pushes of one client are all applied exactly once, in order", async () => {
    const room = freshRoom("limit-serial")
    const c = await connect(room)
    await c.subscribe("todos", null)
    const N = 200
    const from = c.mark()
    for (let i = 1; i <= N; i++) {
      c.send({ _tag: "Push", channel: "todos", clientId: "serial", clientKey: keyOf("serial"), actions: [{ seq: i, action: create(`s${i}`, `serial ${i}`) }] })
    }
    const versions: Array<number> = []
    for (let i = 1; i <= N; i++) {
      const reply = await c.next<Pushed | Failure>((m) => (m._tag === "Pushed" && m.clientId === "serial" && m.results.some((r) => r.seq === i)) || m._tag === "Failure", { from })
      versions.push(expectAck(toReply(reply, i)).version)
    }
    expect(versions).toEqual([...versions].sort((a, b) => a - b))
    expect(new Set(versions).size).toBe(N)
    const rows = await hooks(workerUrl(), room).rows()
    expect(rows.map((r) => r[0])).toEqual(Array.from({ length: N }, (_, i) => `s${i + 1}`))
    expect(await hooks(workerUrl(), room).clients()).toEqual([{ client_id: "serial", seq: N }])
  })

  it("200 pipelined pushes: each is applied or refused TooManyInFlight, refused ones write nothing, accepted ones apply once", async () => {
    const room = freshRoom("limit-inflight")
    const c = await connect(room)
    await c.subscribe("todos", null)
    const h = hooks(workerUrl(), room)
    // actions are handled one at a time while they write; a slow authorization (as if asking an auth service) lets them pile up
    await setActionDelay(room, 5)
    const N = 200
    const from = c.mark()
    // each action under its own client id, so a refusal leaves no gap in anyone's sequence
    for (let i = 0; i < N; i++) {
      c.send({ _tag: "Push", channel: "todos", clientId: `pipe-${i}`, clientKey: keyOf(`pipe-${i}`), actions: [{ seq: 1, action: create(`p${i}`, `pipelined ${i}`) }] })
    }
    const replies = new Map<string, Pushed | Failure>()
    for (let i = 0; i < N; i++) {
      const reply = await c.next<Pushed | Failure>((m) => (m._tag === "Pushed" || m._tag === "Failure") && m.clientId === `pipe-${i}`, { from })
      replies.set(`p${i}`, reply)
    }
    const acked = [...replies].filter(([, r]) => r._tag === "Pushed").map(([id]) => id)
    const refused = [...replies].filter(([, r]) => r._tag === "Failure")
    for (const [, r] of refused) expect(r).toMatchObject({ reason: "TooManyInFlight", channel: "todos" })
    console.log(`[limits] ${N} pipelined actions: ${acked.length} acknowledged, ${refused.length} TooManyInFlight`)
    // accepted pushes count until they are decided: at least the default 64 are accepted
    expect(refused.length).toBeGreaterThan(0)
    expect(acked.length).toBeGreaterThanOrEqual(64)

    const rows = await h.rows()
    expect(rows.map((r) => String(r[0])).sort()).toEqual(acked.sort())
    expect((await h.clients()).map((x) => x.client_id).sort()).toEqual(acked.map((id) => `pipe-${id.slice(1)}`).sort())
    // the connection is fine: a refused action can be re-sent and goes through
    await setActionDelay(room, 0)
    const [retry] = refused[0]!
    const ack = expectAck(await c.act({ clientId: `pipe-${retry.slice(1)}`, seq: 1, action: create(retry, "retried") }))
    expect(ack.duplicate).toBe(false)
  })
})
