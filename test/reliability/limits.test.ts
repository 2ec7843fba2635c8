/**
 * Limits against the real worker: inbound frames over the size limit and
 * actions beyond the in-flight limit of one connection get typed Failures,
 * not a crash; refused actions write nothing, accepted ones are applied
 * exactly once. A frame too large leaves the connection working; a client
 * that keeps pipelining past the in-flight budget is closed (1008).
 */
import { describe, expect, it } from "vitest"
import { DEFAULT_MAX_INBOUND_FRAME_BYTES, type Failure, type Pushed } from "../../src/protocol/Protocol.ts"
import { hooks } from "../helpers/hooks.ts"
import { protocolClients } from "../helpers/clients.ts"
import { workerUrl } from "../helpers/inject.ts"
import { eventually, expectAck, freshRoom, keyOf, ProtocolClient, roomUrl, toReply } from "../helpers/protocol.ts"
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
  it("pipelined pushes of one client, up to the in-flight budget, are all applied exactly once, in order", async () => {
    const room = freshRoom("limit-serial")
    const c = await connect(room)
    await c.subscribe("todos", null)
    const N = 64
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

  it("200 pipelined pushes: up to the budget is accepted, the rest refused TooManyInFlight until the connection is closed for ignoring it; what was decided is applied once, refused ones write nothing", async () => {
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
    const closed = await c.closed
    expect(closed.code).toBe(1008)
    expect(closed.reason).toMatch(/^TooManyInvalidFrames/)
    const frames = c.messages.slice(from)
    const refused = frames.filter((m): m is Failure => m._tag === "Failure" && m.clientId !== undefined)
    const acked = frames.filter((m): m is Pushed => m._tag === "Pushed").map((m) => `p${m.clientId.slice("pipe-".length)}`)
    // the default maxInvalidFrames refusals, then the closing one
    expect(refused).toHaveLength(20)
    for (const r of refused) expect(r).toMatchObject({ reason: "TooManyInFlight", channel: "todos" })
    expect(frames.filter((m) => m._tag === "Failure" && m.clientId === undefined)).toMatchObject([{ reason: "TooManyInvalidFrames" }])
    console.log(`[limits] ${N} pipelined actions: ${acked.length} acknowledged before the close, ${refused.length} TooManyInFlight`)

    // pushes before the close that were not refused were accepted; those decided before it are applied once, and the
    // rest was dropped with the connection (a client resends what it has no answer for); the refused ones left no trace
    const index = (m: Failure | Pushed) => Number(m.clientId!.slice("pipe-".length))
    const refusedIds = refused.map((r) => `p${index(r)}`)
    expect(Math.min(...refused.map(index))).toBeGreaterThanOrEqual(64)
    const accepted = Array.from({ length: Math.max(...refused.map(index)) + 1 }, (_, i) => `p${i}`).filter((id) => !refusedIds.includes(id))
    expect(accepted.length).toBeGreaterThanOrEqual(64)
    for (const id of acked) expect(accepted).toContain(id)
    const rows = (await h.rows()).map((r) => String(r[0]))
    expect(new Set(rows).size).toBe(rows.length)
    for (const id of acked) expect(rows).toContain(id)
    for (const id of rows) expect(accepted).toContain(id)
    expect((await h.clients()).map((x) => `p${x.client_id.slice("pipe-".length)}`).sort()).toEqual([...rows].sort())
    await setActionDelay(room, 0)
    // a refused action re-sent on a new connection goes through
    const again = await connect(room)
    const retry = refusedIds[0]!
    const ack = expectAck(await again.act({ clientId: `pipe-${retry.slice(1)}`, seq: 1, action: create(retry, "retried") }))
    expect(ack.duplicate).toBe(false)
  })
})
