/**
 * The ordered core with real clients against a real worker (two channels,
 * `todos` and `notes`, and a client retention under a day): a new client's
 * first action re-sent after its push was lost is applied; one fixed client
 * id serves every channel; a tab that cannot send never pins another tab's
 * queue. Each of these failed before actions were decided in order.
 *
 * The tests intercept frames by kind, not by shape, so the same scenarios
 * ran against the previous protocol to show them failing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { todos, todosV1 } from "../../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore, type PlainSyncClient } from "../../src/client/index.ts"
import type * as Channel from "../../src/protocol/Channel.ts"
import { notes } from "../reliability/convergence/notes.ts"
import { freshRoom, roomUrl } from "../helpers/protocol.ts"
import { type StartedWorker, startWorker } from "../helpers/worker.ts"
import { eventually, ForwardingSocket, partySocket } from "./support.ts"

let worker: StartedWorker | undefined
beforeAll(async () => {
  worker = await startWorker({ config: "test/reliability/convergence/wrangler.toml", vars: { CLIENT_RETENTION_MS: String(60 * 60 * 1000) } })
}, 120_000)
afterAll(async () => {
  await worker?.dispose()
})

const rows = async (room: string, hook = "rows") =>
  (await (await fetch(`${roomUrl(worker!.url, room, { ws: false })}/hooks/${hook}`)).json()) as Array<Array<unknown>>

/** Forwards to a partysocket, except that while `drop` is set, frames carrying actions are lost on the way. */
class DroppingSocket extends ForwardingSocket {
  drop = false
  dropped = 0
  override send(data: string) {
    const frame = JSON.parse(data) as { _tag: string; actions?: ReadonlyArray<unknown> }
    if (this.drop && (frame._tag === "Action" || (frame._tag === "Push" && (frame.actions?.length ?? 0) > 0))) {
      this.dropped++
      return
    }
    super.send(data)
  }
}

const live = (client: PlainSyncClient<Channel.Any>) =>
  eventually(() => (client.getStatus().connection === "live" ? true : undefined), { what: "live" })

const create = (id: string, text: string) => ({ type: "create", payload: { id, text, completed: 0, priority: 1 } }) as const

describe("actions decided in order", () => {
  it("a new client's first action, lost on the way and re-sent after a reconnect, is applied (retention under a day)", async () => {
    const room = freshRoom("first-resent")
    const socket = new DroppingSocket(partySocket(worker!.url, room))
    const client = createSyncClient({ channel: todos, socket, store: makeMemoryStore() })
    await live(client)
    socket.drop = true
    const sent = client.send(create("1", "first, lost once")).then(() => "applied", (e: { _tag: string; reason?: string }) => `${e._tag} ${e.reason ?? ""}`)
    await eventually(() => (socket.dropped > 0 ? true : undefined), { what: "the first push lost" })
    socket.drop = false
    socket.inner.reconnect()
    expect(await sent).toBe("applied")
    expect((await rows(room)).map((r) => r[0])).toEqual(["1"])
    await client.close()
    socket.inner.close()
  })

  it("one fixed client id serves every channel of a room: each channel's actions apply", async () => {
    const room = freshRoom("fixed-id")
    const socket = partySocket(worker!.url, room)
    const store = makeMemoryStore()
    const a = createSyncClient({ channel: todos, socket, store, clientId: "device-7" })
    const b = createSyncClient({ channel: notes, socket, store, clientId: "device-7" })
    await Promise.all([live(a), live(b)])
    const outcome = (p: Promise<unknown>) => p.then(() => "applied", (e: { _tag: string; reason?: string }) => `${e._tag} ${e.reason ?? ""}`)
    expect(await outcome(a.send(create("t1", "a todo")))).toBe("applied")
    expect(await outcome(b.send({ type: "set", id: "n1", body: "a note" }))).toBe("applied")
    expect(await outcome(b.send({ type: "set", id: "n2", body: "another note" }))).toBe("applied")
    expect((await rows(room, "notes-rows")).map((r) => r[0])).toEqual(["n1", "n2"])
    await a.close()
    await b.close()
    socket.close()
  })

  it("an outdated tab never takes a closed tab's queue: the next tab of the current build sends it", async () => {
    const room = freshRoom("outdated-tab")
    const store = makeMemoryStore()
    const leaseMs = 300
    // a tab of an older build, open the whole time: outdated, it can send nothing
    const oldSocket = partySocket(worker!.url, room)
    const old = createSyncClient({ channel: todosV1, socket: oldSocket, store, leaseMs })
    await eventually(() => (old.getStatus().connection === "outdated" ? true : undefined), { what: "outdated" })
    // a tab of the current build queues an action, then closes before it went out
    const closingSocket = new DroppingSocket(partySocket(worker!.url, room))
    closingSocket.drop = true
    const closing = createSyncClient({ channel: todos, socket: closingSocket, store, leaseMs })
    await live(closing)
    void closing.send(create("queued", "queued by a tab that closed")).catch(() => {})
    await eventually(() => (closingSocket.dropped > 0 ? true : undefined), { what: "sent, lost" })
    await closing.close()
    closingSocket.inner.close()
    // the outdated tab's adoption scan runs several times meanwhile
    await new Promise((resolve) => setTimeout(resolve, leaseMs * 3))
    const next = createSyncClient({ channel: todos, socket: partySocket(worker!.url, room), store, leaseMs })
    await eventually(async () => ((await rows(room)).some((r) => r[0] === "queued") ? true : undefined), {
      what: "the queued action applied by the next tab",
      timeoutMs: 10_000
    })
    expect(old.getStatus().connection).toBe("outdated")
    await Promise.all([old.close(), next.close()])
    oldSocket.close()
  })
})
