/**
 * The client's lifecycle against the real Todo worker: an action handed to
 * `send` is recorded before anything can close the client (it survives a
 * `close()` in the same synchronous run).
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
const create = (id: string, text: string): TodoAction => ({ type: "create", payload: { id, text, completed: 0 } })

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
