/**
 * One connection cannot stall a room (issue 20), against the real worker in
 * local workerd with low limits (test/server/limits-worker.js): each
 * mechanism, and that it is counted in `limits()`.
 * - socket caps: past the principal's and the room's cap a socket is told
 *   `TooManyConnections` and closed (1013); the client shows `unavailable`;
 * - junk ends the connection (1008, `TooManyInvalidFrames`), and so do
 *   bytes pipelined ahead of the server past the rate (`ByteRateExceeded`),
 *   while the same bytes sent one answer at a time never are;
 * - a push is decided in turns: another connection's action is answered
 *   before a long push that was sent first;
 * - a full sync is sent in chunks with other connections' actions decided
 *   between them, and it ends consistent (the catch-up); full syncs over
 *   the room's budget wait and are all answered.
 */
import { PartySocket } from "partysocket"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore } from "../../src/client/index.ts"
import type { Failure, Pushed } from "../../src/protocol/Protocol.ts"
import { hooks } from "../helpers/hooks.ts"
import { eventually, expectAck, freshRoom, keyOf, ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { create, pushOfCreates } from "../helpers/todos.ts"
import { type StartedWorker, startWorker } from "../helpers/worker.ts"
import { LIMITS } from "./limits.ts"

let worker: StartedWorker | undefined
beforeAll(async () => {
  worker = await startWorker({ config: "test/server/wrangler.limits.toml", persist: false, hooks: true })
})
afterAll(async () => {
  await worker?.dispose()
})

const open: Array<{ close(): unknown }> = []
const connect = async (room: string, token?: string) => {
  const client = await ProtocolClient.connect(`${roomUrl(worker!.url, room)}${token === undefined ? "" : `?token=${token}`}`)
  open.push(client)
  return client
}
const closeAll = () => Promise.all(open.splice(0).map((c) => c.close()))
const limitsOf = (room: string) => hooks(worker!.url, room).limits().then((l) => l!)

/** Waits until a socket is refused (told TooManyConnections, closed 1013) or let in (still open after its Subscribe is answered). */
const admitted = async (room: string, token?: string): Promise<boolean> => {
  const c = await connect(room, token)
  c.send({ _tag: "Subscribe", channel: "todos", since: null })
  const first = await c.next((m) => m._tag === "Synced" || (m._tag === "Failure" && m.channel === null))
  if (first._tag === "Synced") return true
  expect(first).toMatchObject({ reason: "TooManyConnections" })
  expect((await c.closed).code).toBe(1013)
  return false
}

describe("connection caps", () => {
  it("a socket past its principal's cap or the room's is refused with TooManyConnections, counted, and a freed place is taken again", async () => {
    const room = freshRoom("caps")
    try {
      for (let i = 0; i < LIMITS.maxConnectionsPerPrincipal; i++) expect(await admitted(room, "guest")).toBe(true)
      expect(await admitted(room, "guest")).toBe(false)
      // another principal still gets in, up to the room's cap
      for (let i = LIMITS.maxConnectionsPerPrincipal; i < LIMITS.maxConnectionsPerRoom; i++) expect(await admitted(room)).toBe(true)
      expect(await admitted(room, "readonly")).toBe(false)
      expect((await limitsOf(room)).refused).toMatchObject({ socketsPerPrincipal: 1, socketsPerRoom: 1 })
      // a guest leaves: its place is free again
      const guest = open.find((c) => c instanceof ProtocolClient && c.url.endsWith("token=guest") && c.closeEvent === undefined) as ProtocolClient
      await guest.close()
      await eventually(async () => ((await admitted(room, "guest")) ? true : undefined), { what: "a guest let in again" })
    } finally {
      await closeAll()
    }
  })

  it("a client whose socket is refused shows unavailable with the reason, and goes live once a place is free", async () => {
    const room = freshRoom("caps-client")
    const guests = []
    for (let i = 0; i < LIMITS.maxConnectionsPerPrincipal; i++) {
      guests.push(await connect(room, "guest"))
      await guests[i]!.subscribe("todos", null)
    }
    const socket = new PartySocket({
      host: new URL(worker!.url).host,
      party: "to-dos",
      room,
      protocol: "ws",
      WebSocket: globalThis.WebSocket,
      query: { token: "guest" },
      minReconnectionDelay: 10,
      maxReconnectionDelay: 100
    })
    const client = createSyncClient({ channel: todos, socket, store: makeMemoryStore() })
    try {
      await eventually(() => (client.getStatus().connection === "unavailable" && client.getStatus().lastError?.reason === "TooManyConnections" ? true : undefined), {
        what: `the status unavailable: ${JSON.stringify(client.getStatus())}`
      })
      await guests[0]!.close()
      await eventually(() => (client.getStatus().connection === "live" ? true : undefined), { what: "the client live" })
      expect(client.getStatus().lastError).toBeNull()
    } finally {
      await client.close()
      socket.close()
      await closeAll()
    }
  })
})

describe("protocol abuse ends the connection", () => {
  it(`junk: ${LIMITS.maxInvalidFrames} invalid frames are answered, the next mutes the connection and closes it with 1008; others are unaffected`, async () => {
    const room = freshRoom("junk")
    try {
      const junk = await connect(room)
      const other = await connect(room)
      await other.subscribe("todos", null)
      const kinds = ["{not json", JSON.stringify({ _tag: "Nonsense" }), JSON.stringify({ _tag: "Push", channel: "todos", clientId: 7 }), "x".repeat(300 * 1024)]
      for (let i = 0; i <= LIMITS.maxInvalidFrames; i++) junk.send(kinds[i % kinds.length]!)
      // told why at once, and muted: what it sends after that gets no answer, until it is closed
      await junk.next((m) => m._tag === "Failure" && m.reason === "TooManyInvalidFrames")
      junk.send("{still junk")
      const closed = await junk.closed
      expect(closed.code).toBe(1008)
      expect(closed.reason).toMatch(/^TooManyInvalidFrames/)
      const failures = junk.messages.filter((m): m is Failure => m._tag === "Failure")
      expect(failures.map((f) => f.reason)).toEqual(["MalformedJson", "UnknownMessage", "UnknownMessage", "FrameTooLarge", "MalformedJson", "TooManyInvalidFrames"])
      expectAck(await other.act({ clientId: "other", seq: 1, action: create("fine", "still served") }))
      expect((await limitsOf(room)).closed).toMatchObject({ invalidFrames: 1, byteRate: 0 })
    } finally {
      await closeAll()
    }
  })

  it("bytes pipelined ahead of the server past the rate close the connection; the same pushes sent one answer at a time never do", async () => {
    const room = freshRoom("bytes")
    // ~4.3 KB a frame (a key the Schema drops pads it): 64 of them are four times the burst
    const pad = "p".repeat(4_000)
    // every action waits 20 ms to be authorized: a sender that does not wait gets ahead of the server
    await hooks(worker!.url, room).actionDelay(20)
    const push = (clientId: string, seq: number) =>
      JSON.stringify({ _tag: "Push", channel: "todos", clientId, clientKey: keyOf(clientId), actions: [{ seq, action: create(`${clientId}-${seq}`, "padded") }], pad })
    try {
      const patient = await connect(room)
      for (let n = 1; n <= 64; n++) {
        const from = patient.mark()
        patient.send(push("patient", n))
        await patient.next((m) => m._tag === "Pushed" || m._tag === "Failure", { from })
      }
      expect(patient.messages.filter((m) => m._tag === "Pushed")).toHaveLength(64)
      expect(patient.closeEvent).toBeUndefined()
      const flood = await connect(room)
      // one client id per push: none waits for another's seqs, and together they stay within the in-flight budget
      for (let n = 0; n < 64; n++) flood.send(push(`flood-${n}`, 1))
      const closed = await flood.closed
      expect(closed.code).toBe(1008)
      expect(closed.reason).toMatch(/^ByteRateExceeded/)
      expect((await limitsOf(room)).closed).toMatchObject({ byteRate: 1, invalidFrames: 0 })
      expect(patient.closeEvent).toBeUndefined()
    } finally {
      await closeAll()
    }
  })
})

describe("work is decided in turns", () => {
  it("another connection's action is answered before a long push that was sent first", async () => {
    const room = freshRoom("turns")
    try {
      const long = await connect(room)
      const short = await connect(room)
      await long.subscribe("todos", null)
      const from = long.mark()
      long.send(pushOfCreates("long", 64, "part of a long push"))
      // the first slice is decided (its change reaches its sender before the turn passes); then the other connection acts
      await long.next((m) => m._tag === "Change", { from })
      expectAck(await short.act({ clientId: "short", seq: 1, action: create("short", "one action") }))
      expect(long.messages.slice(from).some((m) => m._tag === "Pushed"), "the long push was still being decided").toBe(false)
      const reply = await long.next<Pushed>((m) => m._tag === "Pushed", { from })
      expect(reply.results).toHaveLength(64)
      expect(reply.next).toBe(65)
    } finally {
      await closeAll()
    }
  })

  it("a push from the only socket of its room is decided in one turn, and in turns of actionsPerTurn once another socket is open", async () => {
    /** The Change frames the sender got for a push of 10 creates before its reply: one per turn. */
    const turnsOfPush = async (room: string, clientId: string) => {
      const sender = await connect(room)
      await sender.subscribe("todos", null)
      const from = sender.mark()
      sender.send(pushOfCreates(clientId, 10, "one of ten"))
      const reply = await sender.next<Pushed>((m) => m._tag === "Pushed", { from })
      expect(reply.results.filter((r) => "rows" in r)).toHaveLength(10)
      return sender.messages.slice(from).filter((m) => m._tag === "Change").length
    }
    try {
      expect(await turnsOfPush(freshRoom("alone"), "alone")).toBe(1)
      const shared = freshRoom("shared")
      await connect(shared)
      expect(await turnsOfPush(shared, "shared")).toBe(Math.ceil(10 / LIMITS.actionsPerTurn))
    } finally {
      await closeAll()
    }
  })

  it("a full sync is sent in chunks with other connections' actions between them, and it ends consistent", async () => {
    const room = freshRoom("chunks")
    const h = hooks(worker!.url, room)
    await h.seed(0, 3_000)
    try {
      const reader = await connect(room)
      const writer = await connect(room)
      await writer.subscribe("todos", null)
      const from = reader.mark()
      const answer = reader.subscribe("todos", null)
      await reader.next((m) => m._tag === "SyncRows", { from })
      // while the answer is on its way: a create, and an update and a delete of rows the reader may have been sent already
      expectAck(await writer.act({ clientId: "w", seq: 1, action: create("during", "written during the sync") }))
      expectAck(await writer.act({ clientId: "w", seq: 2, action: { type: "update", payload: { id: "seed-0.0", text: "changed during the sync" } } }))
      expectAck(await writer.act({ clientId: "w", seq: 3, action: { type: "delete", payload: { id: "seed-1.0" } } }))
      expect(reader.messages.slice(from).some((m) => m._tag === "Synced"), "the answer was still being sent").toBe(false)
      const result = await answer
      expect(result.reset).toBe(true)
      expect(result.chunks.length).toBeGreaterThan(3_000 / LIMITS.syncRowsPerTurn / 2)
      // applied as a client does: rows in order (a tombstone removes its id), then the deletes
      const table = new Map<unknown, ReadonlyArray<unknown>>()
      for (const row of result.rows) {
        if (row[row.length - 1] === null) table.set(row[0], row)
        else table.delete(row[0])
      }
      for (const id of result.deleted) table.delete(id)
      const live = (await h.rows()).filter((r) => r[r.length - 1] === null)
      expect(new Map(live.map((r) => [r[0], r]))).toEqual(table)
      expect(table.get("seed-0.0")?.[1]).toBe("changed during the sync")
      expect(table.has("seed-1.0")).toBe(false)
      expect(table.has("during")).toBe(true)
    } finally {
      await closeAll()
    }
  })

  it(`full syncs past the room's budget (${LIMITS.maxFullSyncsPerRoom}) wait their turn and are all answered`, async () => {
    const room = freshRoom("budget")
    await hooks(worker!.url, room).seed(0, 1_000)
    try {
      const readers = await Promise.all([0, 1, 2].map(() => connect(room)))
      const answers = await Promise.all(readers.map((r) => r.subscribe("todos", null)))
      for (const a of answers) expect(a.rows).toHaveLength(1_000)
      const limits = await limitsOf(room)
      expect(limits.fullSyncs.queued).toBeGreaterThanOrEqual(1)
      expect(limits.fullSyncs).toMatchObject({ waiting: 0, running: 0 })
    } finally {
      await closeAll()
    }
  })
})
