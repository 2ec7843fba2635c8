/**
 * Refusals the client must survive or show, against real workers:
 * - the server's in-flight limit: clients sharing a socket share one budget,
 *   and actions refused as `TooManyInFlight` are retried, not dropped;
 * - refused sockets (401, 403): the status says unauthorized and why, and
 *   sends stay queued;
 * - refused Subscribes: a server that cannot start (`Unavailable`) is
 *   retried, an unknown channel fails pending and new sends, a client built
 *   for an older channel version is told it is outdated and sends nothing.
 */
import * as Effect from "effect/Effect"
import { PartySocket } from "partysocket"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { todos, todosV1 } from "../../fixtures/todo-sync/src/shared.ts"
import { createSyncClient, makeMemoryStore, type PlainSyncClient, type SocketLike, SyncRefused } from "../../src/client/index.ts"
import * as Channel from "../../src/protocol/Channel.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { freshRoom, roomUrl } from "../helpers/protocol.ts"
import { type StartedWorker, startWorker } from "../helpers/worker.ts"
import { eventually, ForwardingSocket, partySocket } from "./support.ts"

type TodoAction = typeof todos.action.Type
const create = (id: string, text: string): TodoAction => ({ type: "create", payload: { id, text, completed: 0, priority: 1 } })

const cleanup: Array<() => unknown> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

/** Counts the frames the socket sends, and the refused actions, by kind. */
class CountingSocket extends ForwardingSocket {
  readonly sent = new Map<string, number>()
  readonly refusals = new Map<string, number>()
  constructor(inner: PartySocket) {
    super(inner)
    inner.addEventListener("message", (event: { data: unknown }) => {
      const frame = JSON.parse(String(event.data)) as { _tag: string; reason?: string; clientId?: string }
      if (frame._tag === "Failure" && frame.clientId !== undefined) this.refusals.set(frame.reason!, (this.refusals.get(frame.reason!) ?? 0) + 1)
    })
  }
  override send(data: string) {
    const tag = (JSON.parse(data) as { _tag: string })._tag
    this.sent.set(tag, (this.sent.get(tag) ?? 0) + 1)
    super.send(data)
  }
}

const track = <C extends Channel.Any>(client: PlainSyncClient<C>, party: PartySocket) => {
  cleanup.push(() => party.close())
  cleanup.push(() => client.close())
  return client
}

const clientOn = <C extends Channel.Any>(channel: C, socket: SocketLike, party: PartySocket, options: { maxInFlight?: number } = {}) =>
  track(createSyncClient({ channel, socket, store: makeMemoryStore(), ...options }), party)

const statusIs = (client: PlainSyncClient<any>, connection: string) =>
  eventually(() => (client.getStatus().connection === connection ? true : undefined), { what: `status ${connection}` })

/** The outcome of a send, or "pending" if it has not settled when checked. */
const outcome = (p: Promise<unknown>) => {
  let result: unknown = "pending"
  p.then(() => (result = "applied"), (e: unknown) => (result = e))
  return () => result
}

describe("the server's in-flight limit", () => {
  it("five clients on one socket, 16 actions each sent at once: the socket's budget keeps them under the server's limit and all 80 apply", async () => {
    const room = freshRoom("budget")
    await fetch(`${roomUrl(workerUrl(), room, { ws: false })}/hooks/action-delay`, { method: "POST", body: JSON.stringify({ ms: 5 }) })
    const party = partySocket(workerUrl(), room)
    const socket = new CountingSocket(party)
    const clients = Array.from({ length: 5 }, () => clientOn(todos, socket, party))
    for (const c of clients) await statusIs(c, "live")
    const sends = clients.flatMap((c, i) => Array.from({ length: 16 }, (_, j) => c.send(create(`${i}-${j}`, `client ${i} action ${j}`))))
    const results = await Promise.allSettled(sends)
    expect(results.filter((r) => r.status === "rejected")).toEqual([])
    expect((await hooks(workerUrl(), room).rows()).length).toBe(80)
    expect(socket.refusals.get("TooManyInFlight") ?? 0).toBe(0)
  })

  it("a budget above the server's: pushes are decided as far as the server's room allows, the rest sent again, none lost", async () => {
    const room = freshRoom("transient")
    await fetch(`${roomUrl(workerUrl(), room, { ws: false })}/hooks/action-delay`, { method: "POST", body: JSON.stringify({ ms: 5 }) })
    const party = partySocket(workerUrl(), room)
    const socket = new CountingSocket(party)
    const clients = [0, 1].map(() => clientOn(todos, socket, party, { maxInFlight: 100 }))
    for (const c of clients) await statusIs(c, "live")
    const sends = clients.flatMap((c, i) => Array.from({ length: 40 }, (_, j) => c.send(create(`${i}-${j}`, `client ${i} action ${j}`))))
    const results = await Promise.allSettled(sends)
    expect(results.filter((r) => r.status === "rejected")).toEqual([])
    // two pushes of 39 actions at once are over the server's 64: one was decided in part and its rest pushed again
    expect(socket.sent.get("Push") ?? 0).toBeGreaterThan(4)
    // each applied once (an action sent before a refusal came back may have gone ahead of the refused one)
    const rows = await hooks(workerUrl(), room).rows()
    expect(rows.map((r) => r[0]).sort()).toEqual(clients.flatMap((_, i) => Array.from({ length: 40 }, (_, j) => `${i}-${j}`)).sort())
    expect((await hooks(workerUrl(), room).clients()).map((c) => c.seq)).toEqual([40, 40])
  })
})

describe("a refused socket", () => {
  for (const [token, message] of [["nope", "unknown token"], ["banned", "this token is banned"]] as const) {
    it(`?token=${token}: the status says unauthorized and why, and a send stays queued`, async () => {
      const room = freshRoom(`auth-${token}`)
      const party = new PartySocket({
        host: new URL(workerUrl()).host,
        party: "to-dos",
        room,
        protocol: "ws",
        query: { token },
        WebSocket: globalThis.WebSocket,
        minReconnectionDelay: 50,
        maxReconnectionDelay: 200
      })
      const client = clientOn(todos, party, party)
      await statusIs(client, "unauthorized")
      expect(client.getStatus().lastError).toEqual({ reason: "NotAuthorized", message })
      const sent = outcome(client.send(create("1", "not allowed")))
      // through several refused reconnects: still unauthorized, still queued
      await eventually(() => (client.getStatus().pending === 1 ? true : undefined))
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(client.getStatus()).toMatchObject({ connection: "unauthorized", pending: 1 })
      expect(sent()).toBe("pending")
      expect(await hooks(workerUrl(), room).rows()).toEqual([])
    })
  }
})

describe("a refused Subscribe", () => {
  it("an unknown channel: the status says failed, a pending send and every new one fail with SyncRefused", async () => {
    const room = freshRoom("unknown")
    const nothere = Channel.make("nothere", { record: todos.record, action: todos.action })
    const party = partySocket(workerUrl(), room, { startClosed: true })
    const client = clientOn(nothere, party, party)
    await client.ready
    const first = client.send(create("1", "queued before the answer")).then(() => undefined, (e: unknown) => e)
    party.reconnect()
    await statusIs(client, "failed")
    expect(await first).toBeInstanceOf(SyncRefused)
    expect(await first).toMatchObject({ reason: "UnknownChannel" })
    const later = await client.send(create("2", "after")).then(() => undefined, (e: unknown) => e)
    expect(later).toMatchObject({ _tag: "SyncRefused", reason: "UnknownChannel" })
    expect(client.getStatus()).toMatchObject({ pending: 0, lastError: { reason: "UnknownChannel" } })
  })

  describe("test-only servers", () => {
    let worker: StartedWorker | undefined
    beforeAll(async () => {
      worker = await startWorker({ config: "test/server/wrangler.servers.toml", persist: false, hooks: false })
    })
    afterAll(async () => {
      await worker?.dispose()
    })
    const socketTo = (party: string) => {
      const inner = new PartySocket({
        host: new URL(worker!.url).host,
        party,
        room: freshRoom(party),
        protocol: "ws",
        WebSocket: globalThis.WebSocket,
        minReconnectionDelay: 10,
        maxReconnectionDelay: 200
      })
      return new CountingSocket(inner)
    }

    it("a server that cannot start: the status says unavailable, the Subscribe is retried, a send stays queued", async () => {
      const socket = socketTo("broken")
      const client = clientOn(todos, socket, socket.inner)
      await statusIs(client, "unavailable")
      expect(client.getStatus().lastError).toMatchObject({ reason: "Unavailable" })
      const sent = outcome(client.send(create("1", "waits")))
      // retried on a schedule, on the same connection
      await eventually(() => ((socket.sent.get("Subscribe") ?? 0) >= 3 ? true : undefined), { what: "Subscribe retried" })
      expect(client.getStatus()).toMatchObject({ connection: "unavailable", pending: 1 })
      expect(sent()).toBe("pending")
    })

    it("a client built for an older channel version: the status says outdated, the action stays queued and is never sent", async () => {
      const socket = socketTo("versioned")
      const store = makeMemoryStore()
      // the fixture's channel as first shipped, against a server of the current version
      const client = track(createSyncClient({ channel: todosV1, socket, store }), socket.inner)
      await statusIs(client, "outdated")
      expect(client.getStatus().lastError).toMatchObject({ reason: "Outdated" })
      const queued = { type: "create", payload: { id: "1", text: "for a newer build", completed: 0 } } as const
      const sent = outcome(client.send(queued))
      await eventually(() => (client.getStatus().pending === 1 ? true : undefined))
      // a reconnect asks again and is told again
      socket.inner.reconnect()
      await eventually(() => ((socket.sent.get("Subscribe") ?? 0) >= 2 ? true : undefined))
      await statusIs(client, "outdated")
      expect(socket.sent.get("Push") ?? 0).toBe(0)
      expect(sent()).toBe("pending")
      await client.close()
      // the queue is kept for a newer build: its record, and a released lease another tab may take
      const keys = await Effect.runPromise(store.keys)
      const records = keys.filter((k) => k.includes("/q/"))
      expect(records).toHaveLength(1)
      const record = JSON.parse((await Effect.runPromise(store.get(records[0]!)))!) as { a: unknown }
      expect(record.a).toEqual(queued)
      const lease = JSON.parse((await Effect.runPromise(store.get(keys.find((k) => k.includes("/lease/"))!)))!) as { heartbeat: number }
      expect(lease.heartbeat).toBe(0)
    })
  })
})
