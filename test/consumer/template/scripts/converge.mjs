/**
 * Starts the chat worker in local workerd (effect-partysync/testing's
 * startWorker, over the app's wrangler), connects two users' clients
 * (createSyncClient from effect-partysync/client, Node's WebSocket), has each
 * write, and prints both snapshots once they agree as one JSON line. Exits
 * non-zero on failure or after 60 s.
 */
import { createSyncClient, makeMemoryStore } from "effect-partysync/client"
import { startWorker } from "effect-partysync/testing"
import { members, messages } from "../src/shared.ts"

let waitingFor = "the worker"
const deadline = setTimeout(() => {
  console.error(`converge: timed out waiting for ${waitingFor}`)
  process.exit(1)
}, 60_000)

const until = async (condition, what) => {
  waitingFor = what
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20))
}

const worker = await startWorker({ config: "wrangler.toml" })
try {
  const connection = { host: worker.host, party: "chat-room", room: "converge", protocol: "ws", WebSocket: globalThis.WebSocket }
  const open = (channel, name) => createSyncClient({ channel, ...connection, query: { name }, store: makeMemoryStore() })
  const a = { messages: open(messages, "ada"), members: open(members, "ada") }
  const b = { messages: open(messages, "bob"), members: open(members, "bob") }
  const all = [a.messages, a.members, b.messages, b.members]
  await Promise.all(all.map((c) => c.ready))
  await until(() => all.every((c) => c.getStatus().connection === "live"), "every client to be live")

  await a.members.send({ type: "join", payload: { id: "ada" } })
  await b.members.send({ type: "join", payload: { id: "bob" } })
  await a.messages.send({ type: "post", payload: { id: "m1", author: "ada", text: "hello" } })
  await b.messages.send({ type: "post", payload: { id: "m2", author: "bob", text: "hi ada" } })
  await b.messages.send({ type: "retract", payload: { id: "m1" } })
  const refused = await a.messages.send({ type: "post", payload: { id: "m3", author: "eve", text: "?" } }).then(
    () => null,
    (error) => `${error._tag}: ${error.message}`
  )

  const snapshot = (client) => JSON.stringify(client.getSnapshot().map((row) => row.slice(0, 3)))
  await until(
    () => snapshot(a.messages) === snapshot(b.messages) && snapshot(a.members) === snapshot(b.members) && a.messages.getSnapshot().length === 1,
    "both clients to show the same rows"
  )
  const result = {
    a: { messages: JSON.parse(snapshot(a.messages)), members: a.members.getSnapshot().map((r) => r[0]) },
    b: { messages: JSON.parse(snapshot(b.messages)), members: b.members.getSnapshot().map((r) => r[0]) },
    refused
  }
  await Promise.all(all.map((c) => c.close()))
  console.log(JSON.stringify(result))
} finally {
  clearTimeout(deadline)
  await worker.dispose()
}
