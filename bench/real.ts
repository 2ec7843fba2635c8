/**
 * The real client (src/client's `createSyncClient`) behind the BenchClient
 * shape, over a plain WebSocket it does not own, with the in-memory store.
 * The client is made inside `sync`, so a sync measurement covers the whole
 * path a fresh app takes: make the client, subscribe, decode, first
 * complete snapshot.
 */
import { PartySocket } from "partysocket"
import { createSyncClient, type PlainSyncClient } from "../src/client/index.ts"
import { todos } from "../fixtures/todo-sync/src/shared.ts"
import { type BenchClient, open, type Row, type SyncStats, clientUrl } from "./clients.ts"
import { bytesOf, now } from "./stats.ts"
import type { Side } from "./workers.ts"

type Todos = typeof todos

/** A partysocket to one of a side's rooms, closed until the caller's `reconnect()`: clients on it queue offline first. */
export const closedParty = (side: Side, room: string): PartySocket =>
  new PartySocket({
    host: new URL(side.url).host,
    protocol: "ws",
    party: side.party.replace(/^parties\//, ""),
    room,
    WebSocket: globalThis.WebSocket,
    startClosed: true
  })

/** Connects a real client's socket; the client itself starts at `sync`. */
export const connectReal = async (side: Side, room: string): Promise<BenchClient> => {
  const ws = await open(clientUrl(side, room))
  let client: PlainSyncClient<Todos> | undefined
  let counting = false
  let bytes = 0
  let frames = 0
  let largest = 0
  ws.addEventListener("message", (event: MessageEvent) => {
    if (!counting) return
    const b = bytesOf(event.data as string)
    bytes += b
    frames++
    if (b > largest) largest = b
  })
  const need = () => {
    if (client === undefined) throw new Error("bench: sync the real client before using it")
    return client
  }

  const bench: BenchClient = {
    side: side.name,
    create: (id, text) => need().send({ type: "create", payload: { id, text, completed: 0, priority: 1 } }) as Promise<ReadonlyArray<Row>>,
    update: (id, text) => need().send({ type: "update", payload: { id, text } }) as Promise<ReadonlyArray<Row>>,
    remove: (id) => need().send({ type: "delete", payload: { id } }) as Promise<ReadonlyArray<Row>>,
    sync: async (since) => {
      if (since !== null) throw new Error("bench: the real client resumes from its own store, not from a given cursor")
      counting = true
      const start = now()
      const c = createSyncClient({ channel: todos, socket: ws, maxInFlight: 32 })
      client = c
      await new Promise<void>((resolve) => {
        const check = () => {
          if (c.getStatus().connection === "live") {
            stop()
            resolve()
          }
        }
        const stop = c.subscribe(check)
        check()
      })
      const rows = c.getSnapshot().length
      const ms = now() - start
      counting = false
      c.subscribe(() => bench.onChange?.())
      return { ms, bytes, frames, largestFrame: largest, rows, version: 0 }
    },
    onChange: undefined,
    has: (id) => {
      const snapshot = need().getSnapshot()
      // new rows are usually last
      for (let i = snapshot.length - 1; i >= 0; i--) if (snapshot[i]![0] === id) return true
      return false
    },
    get size() {
      return client?.getSnapshot().length ?? 0
    },
    close: () => {
      void client?.close()
      ws.close()
    }
  }
  return bench
}

/** Sync stats type re-exported for scenario code. */
export type { SyncStats }
