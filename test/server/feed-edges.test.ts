/**
 * The change feed at its edges, in real workerd (issue 9): a user
 * transaction that rolls back never reaches a subscriber, a sender's reply is
 * never overtaken by a later change, client ids cannot be taken over,
 * Subscribe floods are bounded, a wiped object's new history resets old
 * cursors, two sockets that share partyserver's `_pk` stay two, and the
 * log's compaction keeps up with many writes to few rows.
 */
import { describe, expect, it } from "vitest"
import type { Change, Failure, Pushed, ServerMessage } from "../../src/protocol/Protocol.ts"
import { protocolClients } from "../helpers/clients.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, expectFailure, freshRoom, ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { create, idsOf, update } from "../helpers/todos.ts"

const { connect, track } = protocolClients()

/** Every version a client was shown, in arrival order (a push reply's changes come before it). */
const versionsSeen = (messages: ReadonlyArray<ServerMessage>) =>
  messages.filter((m): m is Change => m._tag === "Change").map((m) => m.version)

describe("only committed changes are published", () => {
  it("a user transaction that writes, awaits and rolls back is never sent; the next write is", async () => {
    const room = freshRoom("phantom")
    const watcher = await connect(room)
    const writer = await connect(room)
    await watcher.subscribe("todos", null)
    const h = hooks(workerUrl(), room)
    expect((await h.rolledBackWrite("phantom", "rolled back")).outcome).toContain("rolled back on purpose")
    const real = expectAck(await writer.act({ clientId: "w", seq: 1, action: create("real", "committed") }))
    const change = await watcher.next<Change>((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "real"), { what: "the real row" })
    expect(change.version).toBe(real.version)
    // nothing else ever arrived: no phantom row, and no version the log does not hold
    expect(watcher.changes().flatMap((c) => c.rows.map((r) => r[0]))).toEqual(["real"])
    expect((await h.log()).map(([version, id]) => [version, id])).toEqual([[real.version, "real"]])
    const fresh = await connect(room)
    expect(idsOf((await fresh.subscribe("todos", null)).rows)).toEqual(["real"])
  })
})

describe("the log stays about one entry per row", () => {
  it("200 updates to 10 rows, one at a time: the compactions that run after the replies keep the log near 10 entries, and a resume gets each row at its newest", async () => {
    const room = freshRoom("compact")
    const writer = await connect(room)
    let seq = 0
    for (let i = 0; i < 10; i++) expectAck(await writer.act({ clientId: "w", seq: ++seq, action: create(`r${i}`, "first") }))
    for (let i = 0; i < 200; i++) {
      expectAck(await writer.act({ clientId: "w", seq: ++seq, action: update(`r${i % 10}`, { text: `v${i}` }) }))
    }
    // the last compaction kept 10; at most an eighth of that, the slack of 4 and the entry it spares came since
    expect((await hooks(workerUrl(), room).log()).length).toBeLessThanOrEqual(10 + 1 + 4 + 1)
    // a resume from the first version gets every row once, at its newest text
    const reader = await connect(room)
    // the first answer tells the room's history, which the next resumes in
    await reader.subscribe("todos", null)
    const resumed = await (await connect(room)).subscribe("todos", 1)
    expect(resumed.reset).toBe(false)
    expect(Object.fromEntries(resumed.rows.map((r) => [r[0], r[1]]))).toEqual(
      Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`r${i}`, `v${190 + i}`]))
    )
  })
})

describe("a sender never skips a version", () => {
  it("concurrent writers with slow authorizers: every client sees versions in increasing order, its own included", async () => {
    const room = freshRoom("overtake")
    const h = hooks(workerUrl(), room)
    await h.actionSteps(2_000)
    const clients = await Promise.all([connect(room), connect(room), connect(room)])
    for (const c of clients) await c.subscribe("todos", null)
    const perClient = 15
    await Promise.all(clients.map(async (c, i) => {
      // pipelined: each client has many actions in flight while the others commit
      const replies = Array.from({ length: perClient }, (_, n) =>
        c.act({ clientId: `w${i}`, seq: n + 1, action: create(`r${i}-${n}`, `row ${i}.${n}`) }))
      for (const reply of await Promise.all(replies)) expectAck(reply)
    }))
    const total = clients.length * perClient
    for (const c of clients) {
      await c.waitFor(() => versionsSeen(c.messages).length >= total, { what: "every change" })
      const versions = versionsSeen(c.messages)
      expect(versions).toEqual([...versions].sort((a, b) => a - b))
      expect(new Set(versions).size).toBe(versions.length)
      // and each reply's version is covered by the changes that came before it
      let highest = 0
      for (const m of c.messages) {
        if (m._tag === "Change") highest = Math.max(highest, m.version)
        if (m._tag === "Pushed") expect(highest).toBeGreaterThanOrEqual(m.version)
      }
    }
    await h.actionSteps(0)
  })
})

describe("client ids belong to their key", () => {
  it("a forged claim on another client's id is refused with ClientMismatch; the owner's actions still apply", async () => {
    const room = freshRoom("forge")
    const owner = await connect(room)
    const forger = await connect(room)
    expectAck(await owner.act({ clientId: "victim", seq: 1, action: create("v1", "mine") }))
    const forged = expectFailure(await forger.act({ clientId: "victim", clientKey: "the-forger-s-own-key", seq: 2 ** 40, action: update("v1", { text: "taken" }) }))
    expect(forged.reason).toBe("ClientMismatch")
    const next = expectAck(await owner.act({ clientId: "victim", seq: 2, action: update("v1", { text: "still mine" }) }))
    expect(next.duplicate).toBe(false)
    expect((await hooks(workerUrl(), room).rows()).map((r) => r[1])).toEqual(["still mine"])
  })
})

describe("sync work per connection is bounded", () => {
  it("300 pipelined Subscribes from a read-only connection get at most two sync answers, then refusals, then the connection is closed", async () => {
    const room = freshRoom("flood")
    await hooks(workerUrl(), room).seed(0, 200)
    const reader = track(await ProtocolClient.connect(`${roomUrl(workerUrl(), room)}?token=readonly`))
    const from = reader.mark()
    for (let i = 0; i < 300; i++) reader.send({ _tag: "Subscribe", channel: "todos", since: null })
    // merged into a waiting one, answered, or refused; refusals past maxInvalidFrames close the connection
    const closed = await reader.closed
    expect(closed.code).toBe(1008)
    expect(closed.reason).toMatch(/^TooManyInvalidFrames/)
    const answers = reader.messages.slice(from)
    const synced = answers.filter((m) => m._tag === "Synced")
    expect(synced.length).toBeLessThanOrEqual(2)
    const refused = answers.filter((m): m is Failure => m._tag === "Failure")
    expect(refused.map((f) => f.reason)).toEqual([...Array.from({ length: 20 }, () => "TooManyInFlight"), "TooManyInvalidFrames"])
    const bytes = reader.frameBytes.slice(from).reduce((a, b) => a + b, 0)
    // at most two full syncs of 200 rows and short refusals, not 300 full syncs
    const oneSync = reader.frameBytes.slice(from).filter((_, i) => answers[i]!._tag === "SyncRows").reduce((a, b) => a + b, 0) / Math.max(1, synced.length)
    expect(bytes).toBeLessThan(oneSync * 2 + 300 * 300)
  })
})

describe("histories", () => {
  it("after the storage is wiped, a cursor from the old history gets a reset even when the new history has passed it", async () => {
    const room = freshRoom("wipe")
    const h = hooks(workerUrl(), room)
    const c = await connect(room)
    const first = await c.subscribe("todos", null)
    expectAck(await c.act({ clientId: "old", seq: 1, action: create("stale", "from the old history") }))
    const oldCursor = (await c.subscribe("todos", null)).version
    await h.wipe()
    const writer = await connect(room)
    for (let i = 0; i < 3; i++) expectAck(await writer.act({ clientId: "new", seq: i + 1, action: create(`n${i}`, "new history") }))
    const back = await connect(room)
    const resumed = await back.subscribe("todos", oldCursor, { history: first.history })
    expect(resumed.version).toBeGreaterThanOrEqual(oldCursor)
    expect(resumed.reset).toBe(true)
    expect(resumed.history).not.toBe(first.history)
    expect(idsOf(resumed.rows)).toEqual(["n0", "n1", "n2"])
  })
})

describe("connections are keyed by the socket, not by the id the client chose", () => {
  it("two sockets with the same _pk each get their own Change frames and replies", async () => {
    const room = freshRoom("same-pk")
    const url = `${roomUrl(workerUrl(), room)}?_pk=shared-id`
    const first = track(await ProtocolClient.connect(url))
    const second = track(await ProtocolClient.connect(url))
    await first.subscribe("todos", null)
    await second.subscribe("todos", null)
    const ack = expectAck(await first.act({ clientId: "one", seq: 1, action: create("a", "from the first socket") }))
    const seen = await second.next<Change>((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "a"), { what: "the second socket's Change" })
    expect(seen.version).toBe(ack.version)
    const reply = expectAck(await second.act({ clientId: "two", seq: 1, action: create("b", "from the second socket") }))
    await first.next<Change>((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "b"), { what: "the first socket's Change" })
    expect(first.messages.filter((m): m is Pushed => m._tag === "Pushed").map((m) => m.clientId)).not.toContain("two")
    expect(reply.rows.map((r) => r[0])).toEqual(["b"])
  })
})
