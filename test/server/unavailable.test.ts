/**
 * A server whose services cannot start (its channel's table is missing)
 * answers every frame with a typed `Unavailable` failure naming the cause,
 * instead of leaving clients waiting.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { type StartedWorker, startWorker } from "../helpers/worker.ts"

let worker: StartedWorker | undefined
beforeAll(async () => {
  worker = await startWorker({ config: "test/server/wrangler.unavailable.toml", persist: false, hooks: false })
})
afterAll(async () => {
  await worker?.dispose()
})

describe("a server that cannot start", () => {
  it("answers a Subscribe and an Action with Unavailable, naming the missing table", async () => {
    const client = await ProtocolClient.connect(roomUrl(worker!.url, "broken", { party: "broken" }))
    try {
      client.send({ _tag: "Subscribe", channel: "todos", since: null })
      const first = await client.next((m) => m._tag === "Failure")
      expect(first).toMatchObject({ _tag: "Failure", reason: "Unavailable" })
      expect(first._tag === "Failure" && first.message).toContain("todos")
      client.send({ _tag: "Action", requestId: "r1", channel: "todos", clientId: "c", seq: 1, action: { type: "delete", payload: { id: "x" } } })
      const second = await client.next((m) => m._tag === "Failure")
      expect(second).toMatchObject({ _tag: "Failure", reason: "Unavailable" })
    } finally {
      await client.close()
    }
  })
})
