/**
 * Hibernation: wrangler's test harness evicts the Durable Object while
 * keeping its WebSockets open (`webSockets: "hibernate"`). Subscriptions
 * (kept in each socket's attachment), cursors and applied sequence numbers
 * must survive the wake-up. The harness runs its own in-memory worker.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hooks } from "../helpers/hooks.ts"
import { expectAck, freshRoom, ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { create, idsOf, update } from "../helpers/todos.ts"

type Harness = Awaited<ReturnType<typeof startHarness>>

const startHarness = async () => {
  process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false"
  process.env.WRANGLER_SEND_METRICS = "false"
  process.env.X_LOCAL_OBSERVABILITY = "false"
  const { createTestHarness } = await import("wrangler")
  const server = createTestHarness({ workers: [{ configPath: "wrangler.toml", vars: { TEST_HOOKS: "1" } }] })
  const { url } = await server.listen()
  const base = url.toString().replace(/\/$/, "")
  await (await fetch(`${base}/`)).arrayBuffer()
  return {
    url: base,
    hibernate: (room: string) => server.getWorker().evictDurableObject("ToDos", { name: room, webSockets: "hibernate" }),
    close: () => server.close()
  }
}

let harness: Harness | undefined
beforeAll(async () => {
  harness = await startHarness()
})
afterAll(async () => {
  await harness?.close()
})

describe("forced hibernation", () => {
  it("subscriptions, cursors and applied sequence numbers survive the object hibernating", async () => {
    const { url, hibernate } = harness!
    const room = freshRoom("hib")
    const watcher = await ProtocolClient.connect(roomUrl(url, room))
    const actor = await ProtocolClient.connect(roomUrl(url, room))
    await watcher.subscribe("todos", null)
    const first = expectAck(await actor.act({ clientId: "act", seq: 1, action: create("h1", "before") }))
    await watcher.next((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "h1"))
    const instanceBefore = await hooks(url, room).instance()

    await hibernate(room)

    // the object really was re-created, and the sockets stayed open
    expect(await hooks(url, room).instance()).not.toBe(instanceBefore)
    expect(watcher.closeEvent).toBeUndefined()
    expect(actor.closeEvent).toBeUndefined()

    // the watcher's subscription was restored from its socket: it still gets live changes
    const second = expectAck(await actor.act({ clientId: "act", seq: 2, action: update("h1", { text: "after" }) }))
    expect(second.version).toBeGreaterThan(first.version)
    const change = await watcher.next(
      (m) => m._tag === "Change" && m.rows.some((r) => r[0] === "h1" && r[1] === "after"),
      { what: "the watcher's Change after hibernation" }
    )
    expect(change._tag === "Change" && change.version).toBe(second.version)
    // the actor never subscribed, so it got no Change frames
    expect(actor.changes()).toEqual([])
    // the applied sequence number survived
    expect(expectAck(await actor.act({ clientId: "act", seq: 2, action: update("h1", { text: "after" }) })).duplicate).toBe(true)

    // a cursor taken before hibernation resumes with a delta
    await hibernate(room)
    const resumed = await actor.subscribe("todos", first.version)
    expect(resumed.reset).toBe(false)
    expect(idsOf(resumed.rows)).toEqual(["h1"])
    expect(resumed.version).toBe(second.version)

    // an unsubscribe before hibernation stays in force after it
    watcher.send({ _tag: "Unsubscribe", channel: "todos" })
    await eventuallyUnsubscribed(watcher)
    await hibernate(room)
    const mark = watcher.mark()
    expectAck(await actor.act({ clientId: "act", seq: 3, action: create("h2", "unseen") }))
    // the actor subscribed above (after the first hibernation), so it sees its own change
    await actor.waitFor((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "h2"), { what: "actor's own Change for h2" })
    expect(watcher.messages.slice(mark).filter((m) => m._tag === "Change")).toEqual([])
    await watcher.close()
    await actor.close()
  })

  it("a row written over RPC by the object that woke up for it reaches hibernated subscribers", async () => {
    const { url, hibernate } = harness!
    const room = freshRoom("hib-rpc")
    const watcher = await ProtocolClient.connect(roomUrl(url, room))
    const sync = await watcher.subscribe("todos", null)
    const instanceBefore = await hooks(url, room).instance()
    await hibernate(room)
    // the RPC wakes a fresh instance whose first act is the raw write
    await hooks(url, room).rpcRawWrite("woken", "written by the woken object")
    const change = await watcher.next(
      (m) => m._tag === "Change" && m.rows.some((r) => r[0] === "woken"),
      { what: "the Change for the row written after the wake-up" }
    )
    expect(change._tag === "Change" && change.version).toBeGreaterThan(sync.version)
    expect(await hooks(url, room).instance()).not.toBe(instanceBefore)
    await watcher.close()
  })
})

describe("forced hibernation with views", () => {
  const note = (id: string, text: string, hidden: 0 | 1) => ({ type: "create", payload: { id, text, private: hidden } })
  const setPrivate = (id: string, hidden: 0 | 1) => ({ type: "setPrivate", payload: { id, private: hidden } })
  const edit = (id: string, text: string) => ({ type: "edit", payload: { id, text } })

  it("a view's subscription keeps its rule through hibernation, and an access change made while asleep resyncs it", async () => {
    const { url, hibernate } = harness!
    const room = freshRoom("hib-views")
    const ann = await ProtocolClient.connect(`${roomUrl(url, room)}?user=ann`)
    const bob = await ProtocolClient.connect(`${roomUrl(url, room)}?user=bob`)
    expectAck(await ann.act({ channel: "notes", clientId: "ann", seq: 1, action: note("shared", "for all", 0) }))
    expectAck(await ann.act({ channel: "notes", clientId: "ann", seq: 2, action: note("secret", "ann only", 1) }))
    const synced = await bob.subscribe("notes", null)
    expect(idsOf(synced.rows)).toEqual(["shared"])

    await hibernate(room)
    const mark = bob.mark()
    // woken by ann's action: the subscriptions' rules are computed again from the sockets' state
    expectAck(await ann.act({ channel: "notes", clientId: "ann", seq: 3, action: edit("secret", "still ann only") }))
    expectAck(await ann.act({ channel: "notes", clientId: "ann", seq: 4, action: edit("shared", "edited for all") }))
    await bob.next((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "shared" && r[2] === "edited for all"), { from: mark, what: "the shared note's change" })
    expect(JSON.stringify(bob.messages.slice(mark))).not.toContain("still ann only")

    // shared with bob while the object sleeps, without refreshAccess: the woken object finds bob's rule changed
    await hibernate(room)
    const before = bob.mark()
    await hooks(url, room).shareNote("secret", "bob")
    await bob.next((m) => m._tag === "Resync" && m.channel === "notes", { from: before, what: "Resync after the wake" })
    bob.send({ _tag: "Subscribe", channel: "notes", since: synced.version, history: synced.history, held: ["shared"] })
    const answer = await bob.next((m) => m._tag === "Synced" && m.channel === "notes", { from: before, what: "the answer under the new rule" })
    expect(answer._tag === "Synced" && answer.reset).toBe(false)
    const rows = bob.messages.slice(before).flatMap((m) => (m._tag === "SyncRows" ? m.rows : []))
    expect(idsOf(rows)).toContain("secret")
    await ann.close()
    await bob.close()
  })
})

/** Unsubscribe has no reply: it is in force once a later frame on the same socket was answered. */
const eventuallyUnsubscribed = async (watcher: ProtocolClient) => {
  const from = watcher.mark()
  watcher.send("not json")
  await watcher.next((m) => m._tag === "Failure" && m.reason === "MalformedJson", { from })
}
