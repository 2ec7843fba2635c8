/**
 * Our own client never trips the server's abuse limits, even draining a
 * long offline queue: two clients share one socket (so their pushes do
 * overlap on the connection), each with 1,500 actions queued while the
 * socket was closed, against the real worker's default limits. Every action
 * is applied, the socket is never closed for abuse, and the server counted
 * no limit hit.
 */
import { describe, expect, it } from "vitest"
import { MAX_TEXT, todos } from "../../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore } from "../../src/client/index.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { create } from "../helpers/todos.ts"
import { eventually, partySocket } from "./support.ts"

const QUEUED = 1_500

describe("draining a long offline queue", () => {
  it(`two clients on one socket drain ${QUEUED} queued actions each without tripping a limit`, async () => {
    const room = freshRoom("drain")
    const socket = partySocket(workerUrl(), room, { startClosed: true })
    const closes: Array<number> = []
    socket.addEventListener("close", (event: { code: number }) => closes.push(event.code))
    const clients = [0, 1].map(() => createSyncClient({ channel: todos, socket, store: makeMemoryStore() }))
    try {
      await Promise.all(clients.map((c) => c.ready))
      // the largest text the app allows: frames as large as this app's get
      const text = "q".repeat(MAX_TEXT - 10)
      const sends = clients.flatMap((client, c) =>
        Array.from({ length: QUEUED }, (_, i) => client.send(create(`c${c}-${i}`, text) as Parameters<typeof client.send>[0]))
      )
      expect(clients.map((c) => c.getStatus().pending)).toEqual([QUEUED, QUEUED])
      socket.reconnect()
      await Promise.all(sends)
      await eventually(() => (clients.every((c) => c.getStatus().pending === 0) ? true : undefined), { what: "every action settled" })
      expect(closes.filter((code) => code === 1008)).toEqual([])
      const limits = await hooks(workerUrl(), room).limits()
      expect(limits).toMatchObject({ refused: { inFlight: 0, syncRate: 0 }, closed: { invalidFrames: 0, byteRate: 0 } })
      expect((await hooks(workerUrl(), room).rows()).length).toBe(2 * QUEUED)
    } finally {
      await Promise.all(clients.map((c) => c.close()))
      socket.close()
    }
  })
})
