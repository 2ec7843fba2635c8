/**
 * The chat worker in local workerd, started by effect-partysync/testing's
 * `startWorker` (the app's own wrangler, typed without casts), with a plain
 * client over Node's WebSocket.
 */
import { createSyncClient, makeMemoryStore } from "effect-partysync/client"
import { type LocalWorker, startWorker } from "effect-partysync/testing"
import { afterAll, beforeAll, expect, it } from "vitest"
import { members } from "../src/shared"

let worker: LocalWorker
beforeAll(async () => {
  worker = await startWorker({ config: "wrangler.toml" })
}, 60_000)
afterAll(() => worker?.dispose())

it("a guest's connection is read-only, with the room's message", async () => {
  const guest = createSyncClient({
    channel: members,
    host: worker.host,
    protocol: "ws",
    party: "chat-room",
    room: "worker-test",
    query: { name: "guest" },
    WebSocket: globalThis.WebSocket,
    store: makeMemoryStore()
  })
  try {
    const refused = await guest.send({ type: "join", payload: { id: "guest" } }).catch((error: unknown) => error)
    expect(refused).toMatchObject({ _tag: "SyncRefused", reason: "ReadOnly", message: "guests can only read" })
  } finally {
    await guest.close()
  }
})
