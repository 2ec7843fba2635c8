/**
 * Views with the real client against the real worker: the Todo fixture's
 * `notes` channel, whose read rule admits shared notes, one's own, and the
 * private ones shared with one (the `note_shares` table the rule reads).
 * Clients of two principals (`?user=`) converge to different rows; a client
 * that reconnects after losing access to a row has it removed, and never
 * receives what the row became; after an access change, `refreshAccess`
 * brings a newly readable row into an open client, and takes it away again,
 * without a reset. Every frame each client received is kept, to check what
 * never reached it.
 */
import { afterEach, describe, expect, it } from "vitest"
import { type Note, type NoteAction, notes } from "../../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore, type PlainSyncClient } from "../../src/client/index.ts"
import type { ServerMessage } from "../../src/protocol/Protocol.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { eventually, ForwardingSocket, ids, partySocket } from "./support.ts"

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** Forwards to a partysocket and keeps every frame received, as text. */
class RecordingSocket extends ForwardingSocket {
  readonly received: Array<string> = []
  constructor(room: string, user: string) {
    super(partySocket(workerUrl(), room, { query: { user } }))
    this.inner.addEventListener("message", (event: { data: unknown }) => this.received.push(String(event.data)))
  }
  /** The frames received from index `from` on, decoded as JSON. */
  framesFrom(from: number): Array<ServerMessage> {
    return this.received.slice(from).map((text) => JSON.parse(text) as ServerMessage)
  }
  /** Whether any frame received carried `text`. */
  carried(text: string): boolean {
    return this.received.some((frame) => frame.includes(text))
  }
}

interface UserClient {
  readonly socket: RecordingSocket
  readonly client: PlainSyncClient<typeof notes>
}

/** A notes client of `user` in `room`, on its own socket and store. */
const connect = (room: string, user: string): UserClient => {
  const socket = new RecordingSocket(room, user)
  const client = createSyncClient({ channel: notes, socket, store: makeMemoryStore() })
  cleanup.push(() => socket.inner.close())
  cleanup.push(() => client.close())
  return { socket, client }
}

const live = (u: UserClient) => eventually(() => (u.client.getStatus().connection === "live" ? true : undefined), { what: "live" })

/** Waits until the client holds exactly these note ids. */
const holds = (u: UserClient, expected: ReadonlyArray<string>) =>
  eventually(() => (JSON.stringify(ids(u.client.getSnapshot())) === JSON.stringify([...expected].sort()) ? true : undefined), {
    what: `notes ${JSON.stringify(expected)} (held: ${JSON.stringify(ids(u.client.getSnapshot()))})`
  })

const note = (u: UserClient, id: string): Note | undefined => u.client.getSnapshot().find((row) => row[0] === id)

const create = (id: string, text: string, hidden: 0 | 1): NoteAction => ({ type: "create", payload: { id, text, private: hidden } })
const setPrivate = (id: string, hidden: 0 | 1): NoteAction => ({ type: "setPrivate", payload: { id, private: hidden } })

/** The sync answers (chunks) of the notes subscription among `frames`. */
const syncAnswers = (frames: ReadonlyArray<ServerMessage>) =>
  frames.filter((m): m is Extract<ServerMessage, { _tag: "SyncRows" }> => m._tag === "SyncRows" && m.channel === "notes")

describe("the notes view, with real clients", () => {
  it("two users' clients converge to different rows: the shared notes and each one's own", async () => {
    const room = freshRoom("views-two")
    const ann = connect(room, "ann")
    const bob = connect(room, "bob")
    await Promise.all([live(ann), live(bob)])

    await ann.client.send(create("s1", "shared by ann", 0))
    await ann.client.send(create("a1", "ann's secret", 1))
    await bob.client.send(create("b1", "bob's secret", 1))
    await bob.client.send(create("s2", "shared by bob", 0))

    await holds(ann, ["s1", "a1", "s2"])
    await holds(bob, ["s1", "b1", "s2"])
    // the owner is the connection's principal, not something the client said
    expect(note(bob, "s1")?.[1]).toBe("ann")
    expect(note(ann, "s2")?.[1]).toBe("bob")
    // a client that joins later gets its own view from its first sync
    const late = connect(room, "cyd")
    await live(late)
    await holds(late, ["s1", "s2"])
    expect((await hooks(workerUrl(), room).noteRows()).length).toBe(4)
    expect(bob.socket.carried("ann's secret")).toBe(false)
    expect(late.socket.carried("ann's secret") || late.socket.carried("bob's secret")).toBe(false)
    expect(ann.socket.carried("bob's secret")).toBe(false)
  })

  it("a client that reconnects after losing access to a row has it removed, and never receives its new contents", async () => {
    const room = freshRoom("views-reconnect")
    const ann = connect(room, "ann")
    const bob = connect(room, "bob")
    await Promise.all([live(ann), live(bob)])
    await ann.client.send(create("n1", "meet at noon", 0))
    await ann.client.send(create("n2", "bins on tuesday", 0))
    await holds(bob, ["n1", "n2"])

    bob.socket.inner.close()
    await eventually(() => (bob.client.getStatus().connection === "offline" ? true : undefined), { what: "bob offline" })
    await ann.client.send(setPrivate("n1", 1))
    await ann.client.send({ type: "edit", payload: { id: "n1", text: "surprise party for bob at noon" } })
    expect(note(bob, "n1")?.[2]).toBe("meet at noon")

    const from = bob.socket.received.length
    bob.socket.inner.reconnect()
    await live(bob)
    await holds(bob, ["n2"])
    // resumed from bob's cursor: the server named the row to drop, it did not send everything again
    const answers = syncAnswers(bob.socket.framesFrom(from))
    expect(answers.length).toBeGreaterThan(0)
    expect(answers.every((m) => !m.reset)).toBe(true)
    expect(answers.flatMap((m) => m.deleted)).toContain("n1")
    expect(bob.socket.carried("surprise party")).toBe(false)
    expect(note(ann, "n1")?.[2]).toBe("surprise party for bob at noon")
  })

  it("refreshAccess after a share brings the private row into the open client, and after the unshare takes it away, without a reset", async () => {
    const room = freshRoom("views-refresh")
    const h = hooks(workerUrl(), room)
    const ann = connect(room, "ann")
    const bob = connect(room, "bob")
    await Promise.all([live(ann), live(bob)])
    await ann.client.send(create("p1", "the plan for bob's eyes", 1))
    await ann.client.send(create("s1", "for everyone", 0))
    await holds(bob, ["s1"])
    // nobody's access changed: nothing to resync
    expect(await h.refreshAccess()).toBe(0)

    await h.shareNote("p1", "bob")
    const from = bob.socket.received.length
    expect(await h.refreshAccess("bob")).toBe(1)
    await holds(bob, ["s1", "p1"])
    await live(bob)
    const shared = bob.socket.framesFrom(from)
    expect(shared.some((m) => m._tag === "Resync" && m.channel === "notes")).toBe(true)
    expect(syncAnswers(shared).every((m) => !m.reset)).toBe(true)
    expect(note(bob, "p1")?.[2]).toBe("the plan for bob's eyes")
    // still private, and still ann's: bob may read it, not change it
    await expect(bob.client.send(setPrivate("p1", 0))).rejects.toMatchObject({ _tag: "ActionRejected", message: "only ann may change this note" })
    // ann's own view did not change
    await holds(ann, ["p1", "s1"])

    // her edits reach him while it is shared with him
    await ann.client.send({ type: "edit", payload: { id: "p1", text: "the plan, version two" } })
    await eventually(() => (note(bob, "p1")?.[2] === "the plan, version two" ? true : undefined), { what: "bob sees the edit" })

    await h.shareNote("p1", "bob", false)
    const again = bob.socket.received.length
    expect(await h.refreshAccess("bob")).toBe(1)
    await holds(bob, ["s1"])
    await live(bob)
    const unshared = syncAnswers(bob.socket.framesFrom(again))
    expect(unshared.every((m) => !m.reset)).toBe(true)
    expect(unshared.flatMap((m) => m.deleted)).toContain("p1")
    await ann.client.send({ type: "edit", payload: { id: "p1", text: "the plan, version three" } })
    await ann.client.send({ type: "edit", payload: { id: "s1", text: "for everyone, edited" } })
    await eventually(() => (note(bob, "s1")?.[2] === "for everyone, edited" ? true : undefined), { what: "bob sees the shared edit" })
    expect(bob.socket.carried("version three")).toBe(false)
  })
  it("two users of one browser never see each other's view rows from the local cache", async () => {
    const room = freshRoom("views-browser")
    // one store, as one browser's IndexedDB; an offline client reads only what the store holds
    const offline = (store: ReturnType<typeof makeMemoryStore>, user: string, userId?: string) => {
      const socket = partySocket(workerUrl(), room, { startClosed: true, query: { user } })
      const client = createSyncClient({ channel: notes, socket, store, ...(userId === undefined ? {} : { userId }) })
      cleanup.push(() => client.close())
      return client
    }
    const online = async (store: ReturnType<typeof makeMemoryStore>, user: string, userId?: string) => {
      const socket = partySocket(workerUrl(), room, { query: { user } })
      const client = createSyncClient({ channel: notes, socket, store, ...(userId === undefined ? {} : { userId }) })
      cleanup.push(() => socket.close())
      await eventually(() => (client.getStatus().connection === "live" ? true : undefined), { what: "live" })
      return client
    }

    // without userId a view's rows are never stored: the next user of the browser finds nothing
    const shared = makeMemoryStore()
    const ann = await online(shared, "ann")
    await ann.send(create("diary", "ann's diary", 1))
    await ann.close()
    const loaded = (client: PlainSyncClient<typeof notes>) =>
      eventually(() => (client.getStatus().connection === "offline" || client.getStatus().connection === "connecting" ? client.getSnapshot() : undefined))
    expect(ids(await loaded(offline(shared, "bob")))).toEqual([])

    // with userId each user's cache is their own: ann finds her note offline, bob does not
    const keyed = makeMemoryStore()
    const annKeyed = await online(keyed, "ann", "ann")
    await eventually(() => (note({ client: annKeyed } as UserClient, "diary") !== undefined ? true : undefined), { what: "ann's note" })
    await annKeyed.close()
    const annAgain = offline(keyed, "ann", "ann")
    await eventually(() => (note({ client: annAgain } as UserClient, "diary") !== undefined ? true : undefined), { what: "ann's cached note" })
    expect(ids(await loaded(offline(keyed, "bob", "bob")))).toEqual([])
  })
})
