/**
 * Many writers and a large room against the real worker: concurrent actions
 * reach every subscriber once and in version order, and a sync answer larger
 * than one frame arrives in several `SyncRows` frames below the limit.
 */
import { describe, expect, it } from "vitest"
import { MAX_OUTBOUND_FRAME_BYTES, type Change, type SyncRows } from "../../src/protocol/Protocol.ts"
import { protocolClients } from "../helpers/clients.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, freshRoom, type Reply } from "../helpers/protocol.ts"
import { create, update } from "../helpers/todos.ts"

const { connect } = protocolClients()

/** Applies Change frames to a map the way a client would. */
const apply = (changes: ReadonlyArray<Change>) => {
  const state = new Map<unknown, ReadonlyArray<unknown>>()
  for (const change of changes) {
    for (const row of change.rows) state.set(row[0], row)
    for (const id of change.deleted) state.delete(id)
  }
  return state
}

describe("under load", () => {
  it("concurrent actions from several clients reach every subscriber once, in version order", async () => {
    const room = freshRoom("concurrent")
    const clients = await Promise.all([0, 1, 2, 3].map(() => connect(room)))
    await Promise.all(clients.map((c) => c.subscribe("todos", null)))
    const perClient = 25
    // every client fires its actions without waiting, then collects the replies
    const acks = await Promise.all(clients.map(async (c, i) => {
      const replies: Array<Promise<Extract<Reply, { _tag: "Ack" }>>> = []
      for (let n = 1; n <= perClient; n++) {
        const id = `c${i}-${n}`
        replies.push(c.act({ clientId: `client-${i}`, seq: n * 2 - 1, action: create(id, `todo ${id}`) }).then(expectAck))
        replies.push(c.act({ clientId: `client-${i}`, seq: n * 2, action: update(id, { completed: 1 }) }).then(expectAck))
      }
      return Promise.all(replies)
    }))
    const maxVersion = Math.max(...acks.flat().map((a) => a.version))
    expect(acks.flat().every((a) => !a.duplicate)).toBe(true)
    const serverRows = await hooks(workerUrl(), room).rows()
    expect(serverRows.length).toBe(4 * perClient)
    for (const c of clients) {
      await c.waitFor((m) => m._tag === "Change" && m.version === maxVersion, { what: `Change @${maxVersion}` })
      const versions = c.changes().map((m) => m.version)
      expect(versions).toEqual([...versions].sort((a, b) => a - b))
      expect(new Set(versions).size).toBe(versions.length)
      const state = apply(c.changes())
      expect([...state.values()].map((r) => JSON.stringify(r)).sort()).toEqual(serverRows.map((r) => JSON.stringify(r)).sort())
      expect(c.invalid).toEqual([])
    }
    // each reply came after the Change that carries its version, on the same socket
    for (const [i, c] of clients.entries()) {
      for (const ack of acks[i]!) {
        const ackAt = c.messages.findIndex((m) => m._tag === "Pushed" && m.clientId === `client-${i}` && m.results.some((r) => r.seq === ack.seq))
        const changeAt = c.messages.findIndex((m) => m._tag === "Change" && m.version >= ack.version)
        expect(changeAt).toBeGreaterThanOrEqual(0)
        expect(changeAt).toBeLessThan(ackAt)
      }
    }
  })

  it("a sync answer larger than one frame arrives in several SyncRows frames below the limit", async () => {
    const room = freshRoom("big")
    const writer = await connect(room)
    const text = "x".repeat(200)
    const total = 4_500 // ~1.2 MB of rows
    let seq = 0
    for (let batch = 0; batch < total / 50; batch++) {
      const replies: Array<Promise<unknown>> = []
      for (let i = 0; i < 50; i++) {
        seq++
        replies.push(writer.act({ clientId: "bulk", seq, action: create(`row-${seq}`, text) }).then(expectAck))
      }
      await Promise.all(replies)
    }
    const reader = await connect(room)
    const sync = await reader.subscribe("todos", null, { timeoutMs: 60_000 })
    expect(sync.rows.length).toBe(total)
    expect(new Set(sync.rows.map((r) => r[0])).size).toBe(total)
    expect(sync.chunks.length).toBeGreaterThan(1)
    const sizes = reader.messages.flatMap((m, i) => (m._tag === "SyncRows" ? [reader.frameBytes[i]!] : []))
    expect(sizes.length).toBe(sync.chunks.length)
    for (const size of sizes) expect(size).toBeLessThanOrEqual(MAX_OUTBOUND_FRAME_BYTES)
    expect(sync.chunks.every((c: SyncRows) => c.reset)).toBe(true)
  })
})
