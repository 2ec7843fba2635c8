/**
 * Per-channel handlers and a typed principal in a real Durable Object
 * (test/server/servers-worker.js serves the KanbanBoard whose types
 * test/types/server.types.ts checks), through the plain client: each
 * channel's actions reach their own handler with the principal
 * `authorizeConnection` granted, a read-only grant refuses with the app's
 * message, and a server that declares both `handlers` and `onAction` does
 * not start. The worker is started with effect-partysync/testing's
 * `startWorker`, as an app's integration test would.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { createSyncClient, makeMemoryStore, type PlainSyncClient, SyncRefused } from "../../src/client/index.ts"
import type * as Channel from "../../src/protocol/Channel.ts"
import { type LocalWorker, startWorker, WorkerStartError } from "../../src/testing/Worker.ts"
import { cards, comments } from "../helpers/kanban.ts"
import { eventually, freshRoom } from "../helpers/protocol.ts"

let worker: LocalWorker | undefined
beforeAll(async () => {
  worker = await startWorker({ config: "test/server/wrangler.servers.toml" })
})
afterAll(async () => {
  await worker?.dispose()
})

const opened: Array<PlainSyncClient<Channel.Any>> = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()))
})

const client = <C extends Channel.Any>(channel: C, party: string, room: string, user: string | undefined) => {
  const c = createSyncClient({
    channel,
    host: worker!.host,
    protocol: "ws",
    WebSocket: globalThis.WebSocket,
    party,
    room,
    query: user === undefined ? {} : { user },
    store: makeMemoryStore()
  })
  opened.push(c as unknown as PlainSyncClient<Channel.Any>)
  return c
}

describe("a server with a handler per channel and a typed principal", () => {
  it("runs each channel's action in its own handler, with the granted principal; every client sees the rows", async () => {
    const room = freshRoom("kanban")
    const adaCards = client(cards, "kanban-board", room, "ada")
    const adaComments = client(comments, "kanban-board", room, "ada")
    const bobCards = client(cards, "kanban-board", room, "bob")
    expect(await adaCards.send({ type: "add", id: "c1", title: "write tests" })).toEqual([["c1", "write tests", "todo", "ada", null]])
    expect(await adaComments.send({ type: "add", id: "m1", card: "c1", body: "soon" })).toEqual([["m1", "c1", "soon", "ada", null]])
    expect(await bobCards.send({ type: "move", id: "c1", lane: "done" })).toEqual([["c1", "write tests", "done", "ada", null]])
    const refused = await adaComments.send({ type: "remove", id: "m1" }).catch((error: unknown) => error)
    expect(refused).toMatchObject({ _tag: "ActionRejected", message: "comments stay" })
    await eventually(() => (adaCards.getSnapshot()[0]?.[2] === "done" ? true : undefined), { what: "ada sees bob's move" })
  })

  it("a read-only grant refuses each action with the app's message, which the status shows", async () => {
    const room = freshRoom("kanban-ro")
    const viewer = client(cards, "kanban-board", room, "viewer-vic")
    const refused = await viewer.send({ type: "add", id: "c1", title: "sneaky" }).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(SyncRefused)
    expect(refused).toMatchObject({ reason: "ReadOnly", message: "viewers cannot edit this board" })
    expect(viewer.getStatus()).toMatchObject({ connection: "live", lastError: { reason: "ReadOnly", message: "viewers cannot edit this board" } })
    expect(viewer.getSnapshot()).toEqual([])
  })

  it("a connection the app does not grant is refused with its reason", async () => {
    const stranger = client(cards, "kanban-board", freshRoom("kanban-401"), undefined)
    const status = await eventually(() => (stranger.getStatus().connection === "unauthorized" ? stranger.getStatus() : undefined), {
      what: "the status unauthorized"
    })
    expect(status.lastError).toEqual({ reason: "NotAuthorized", message: "sign in first" })
  })
})

describe("a server that declares both handlers and onAction", () => {
  it("does not start: clients are told why (Unavailable), nothing runs", async () => {
    const c = client(cards, "misdeclared", freshRoom("misdeclared"), undefined)
    const status = await eventually(() => (c.getStatus().connection === "unavailable" ? c.getStatus() : undefined), {
      what: "the status unavailable"
    })
    expect(status.lastError?.reason).toBe("Unavailable")
    expect(status.lastError?.message).toContain("SyncServer Misdeclared: declare either `handlers` (one function per channel) or `onAction`, not both")
  })
})

describe("startWorker", () => {
  it("rejects with WorkerStartError, naming the config, when the worker cannot start", async () => {
    const error = await startWorker({ config: "test/server/no-such-wrangler.toml" }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WorkerStartError)
    expect((error as WorkerStartError).message).toContain("the worker of test/server/no-such-wrangler.toml did not start")
  })
})
