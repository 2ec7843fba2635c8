/**
 * The client's lifecycle against the real Todo worker: an action handed to
 * `send` is recorded before anything can close the client (it survives a
 * `close()` in the same synchronous run), and a client with an explicit
 * `clientId` never reuses a sequence number after a crash, because it
 * reserves seqs in storage before it transmits them; a client connected
 * while the object's storage is wiped moves to the new history.
 */
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import { afterEach, describe, expect, it } from "vitest"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore, type PlainSyncClient } from "../../src/client/index.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { eventually, ForwardingSocket, partySocket, texts } from "./support.ts"

type TodoAction = typeof todos.action.Type
const create = (id: string, text: string): TodoAction => ({ type: "create", payload: { id, text, completed: 0, priority: 1 } })

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const open = (room: string, store: KeyValueStore.KeyValueStore, options: { clientId?: string; socket?: ForwardingSocket } = {}) => {
  const party = options.socket?.inner ?? partySocket(workerUrl(), room)
  const client = createSyncClient({ channel: todos, socket: options.socket ?? party, store, ...(options.clientId === undefined ? {} : { clientId: options.clientId }) })
  cleanup.push(() => party.close())
  cleanup.push(() => client.close())
  return client
}

const live = (client: PlainSyncClient<typeof todos>) =>
  eventually(() => (client.getStatus().connection === "live" ? true : undefined), { what: "live" })

const settled = (p: Promise<unknown>) => p.then(() => "applied", (e: unknown) => e)

describe("send and close", () => {
  for (const when of ["before the cache is loaded", "once the client is ready"] as const) {
    it(`an action sent ${when} and closed in the same synchronous run is queued for the next client, which applies it once`, async () => {
      const room = freshRoom("send-close")
      const store = makeMemoryStore()
      const first = open(room, store)
      if (when === "once the client is ready") await live(first)
      const outcome = settled(first.send(create("1", "sent just before close")))
      void first.close()
      expect(await outcome).toMatchObject({ _tag: "ActionDiscarded", reason: "Closed" })

      const second = open(room, store)
      await live(second)
      await eventually(() => (second.getStatus().pending === 0 && second.getSnapshot().length === 1 ? true : undefined), { what: "adopted and applied" })
      expect(texts(second.getSnapshot())).toEqual(["sent just before close"])
      const rows = await hooks(workerUrl(), room).rows()
      expect(rows.map((r) => r[1])).toEqual(["sent just before close"])
    })
  }
})

/** A store whose contents can be copied synchronously: the copy is what a crash at that instant would leave. */
const snapshotStore = () => {
  const map = new Map<string, string>()
  return { store: makeMemoryStore(map), copy: () => makeMemoryStore(new Map(map)) }
}

/** Calls `onAction` with each Action frame's seq just before it goes out. */
class WatchingSocket extends ForwardingSocket {
  onAction: (seq: number) => void = () => {}
  override send(data: string) {
    const frame = JSON.parse(data) as { _tag: string; actions?: Array<{ seq: number }> }
    if (frame._tag === "Push") for (const a of frame.actions ?? []) this.onAction(a.seq)
    super.send(data)
  }
}

describe("explicit client id", () => {
  it("a crash right after an action is transmitted never makes the reloaded client reuse its seq", async () => {
    const room = freshRoom("reserve")
    const { store, copy } = snapshotStore()
    const socket = new WatchingSocket(partySocket(workerUrl(), room))
    const first = open(room, store, { clientId: "device-1", socket })
    await live(first)
    await first.send(create("1", "first"))
    // let every write of the first action land, so that only the second one is in flight at the crash
    await new Promise((resolve) => setTimeout(resolve, 50))
    let crashed: KeyValueStore.KeyValueStore | undefined
    socket.onAction = (seq) => {
      if (seq > 1 && crashed === undefined) crashed = copy()
    }
    await first.send(create("2", "second"))
    expect(crashed).toBeDefined()

    // the reloaded page starts from what storage held at the crash
    const reloaded = open(room, crashed!, { clientId: "device-1" })
    await live(reloaded)
    await eventually(() => (reloaded.getStatus().pending === 0 ? true : undefined), { what: "queue flushed" })
    await reloaded.send(create("3", "after the reload"))
    const rows = await hooks(workerUrl(), room).rows()
    expect(rows.map((r) => r[1])).toEqual(["first", "second", "after the reload"])
  })
})

describe("a wiped object", () => {
  it("a client connected through the wipe drops the old rows and shows only the new history's", async () => {
    const room = freshRoom("wipe-live")
    const client = open(room, makeMemoryStore())
    await live(client)
    await client.send(create("old-1", "before the wipe"))
    await client.send(create("old-2", "also before"))
    await hooks(workerUrl(), room).wipe()
    // the new history's first versions are below the client's cursor: it must not take them for ones it has seen
    await hooks(workerUrl(), room).rawWrite("new-1", "after the wipe")
    await eventually(() => (texts(client.getSnapshot()).join() === "after the wipe" ? true : undefined), {
      what: `only the new history's row (snapshot: ${JSON.stringify(texts(client.getSnapshot()))})`
    })
    await live(client)
  })
})
