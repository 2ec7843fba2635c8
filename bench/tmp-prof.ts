/**
 * Where the server's time per action goes, in Node: the real ActionDispatch,
 * Reconciliation and Broadcast over node:sqlite with in-memory connections,
 * against the raw baseline's work (JSON.parse, INSERT ... RETURNING,
 * JSON.stringify) on the same engine. Not part of `npm run bench`; run it
 * with `node --cpu-prof bench/profile-server.ts` to see the hot functions.
 * node:sqlite is not Durable Object SQL, so only the split matters here.
 * Each push carries one action and confirms the one before, as our client's
 * do one at a time (unconfirmed outcomes would pile up to 256 and be read
 * and written by every push).
 */
import { DatabaseSync } from "node:sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { SqlClient } from "effect/sql"
// the Todo channel as first shipped (schema 1): its RETURNING * rows are its wire rows
import { todosV1 as todos } from "../fixtures/todo-sync/src/shared.ts"
import * as SyncLayer from "../src/layers/SyncLayer.ts"
import { ActionDispatch } from "../src/services/ActionDispatch.ts"
import { ActionHandler, Authorizer } from "../src/services/ActionHandler.ts"
import { initialState, type SyncConnection } from "../src/services/Connections.ts"
import { layerMemoryConnections } from "../src/testing/MemoryConnections.ts"
import { Reconciliation } from "../src/services/Reconciliation.ts"
import { Storage } from "../src/services/Storage.ts"
import * as StorageSqlClient from "../src/services/StorageSqlClient.ts"
import { layerNodeSqlite } from "../src/testing/StorageSqlite.ts"
import { Channels, SyncConfig, defaultOptions } from "../src/services/SyncConfig.ts"
import { now, round } from "./stats.ts"
import { TODO_TABLE_V1 as TODO_TABLE } from "../fixtures/todo-sync/src/table.ts"
import { Views } from "../src/services/Views.ts"

/** The client key of a benchmark client id (the server binds an id to its key). */
const keyOf = (clientId: string) => `bench-key-${clientId}`.padEnd(16, "-")

const N = Number(process.env.N ?? 5000)

const connection = (id: string): SyncConnection & { frames: number; last: string } => {
  let state = { ...initialState, channels: ["todos"] }
  return { id, frames: 0, last: "", send(frame) { this.frames++; this.last = frame }, get state() { return state }, setState(s) { state = s as typeof state } }
}

const ours = async (receivers: number, handlerSql: "storage" | "sqlclient" = "storage") => {
  const sender = connection("sender")
  const conns = [sender, ...Array.from({ length: receivers }, (_, i) => connection(`r${i}`))]
  // synchronous transactions, as the Todo fixture runs them
  const storage = StorageSqlClient.layer.pipe(Layer.provideMerge(layerNodeSqlite(":memory:", { synchronous: true })))
  const handler = Layer.effect(ActionHandler, Effect.gen(function*() {
    const sql = yield* Storage
    const client = yield* SqlClient.SqlClient
    return ActionHandler.of({
      run: (_channel, action) => {
        const a = action as { payload: { id: string; text: string; completed: number } }
        const t = Date.now()
        const text = a.payload.text.trim()
        // the same statement through Storage.raw or through effect/sql's tagged template
        return (handlerSql === "storage"
          ? sql.raw("INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *", a.payload.id, text, a.payload.completed, t, t)
          : client`INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (${a.payload.id}, ${text}, ${a.payload.completed}, ${t}, ${t}) RETURNING *`) as Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, unknown>
      }
    })
  }))
  const layer = SyncLayer.layer.pipe(
    Layer.provide(Layer.mergeAll(handler, Authorizer.layerAllowAll)),
    Layer.provideMerge(Views.layerNone),
    Layer.provideMerge(storage),
    Layer.provideMerge(Layer.mergeAll(
      layerMemoryConnections(conns),
      Layer.succeed(Channels, Channels.fromList([todos])),
      Layer.succeed(SyncConfig, { ...defaultOptions, synchronousHandlers: true })
    ))
  )
  const runtime = ManagedRuntime.make(layer)
  await runtime.runPromise(Effect.gen(function*() {
    const sql = yield* Storage
    yield* sql.raw(TODO_TABLE)
    yield* Reconciliation.use((r) => r.install)
  }))
  const frames = Array.from({ length: N }, (_, i) =>
    JSON.stringify({ _tag: "Push", channel: "todos", clientId: "bench", clientKey: keyOf("bench"), actions: [{ seq: i + 1, action: { type: "create", payload: { id: `x${i}`, text: "a todo written by the benchmark", completed: 0 } } }], ...(i > 0 ? { confirmed: i } : {}) }))
  const t0 = now()
  for (const f of frames) await runtime.runPromise(ActionDispatch.use((d) => d.receive(sender, f)))
  const us = ((now() - t0) * 1000) / N
  // what was measured must be the actions applied, not a refusal of every frame
  const reply = JSON.parse(sender.last) as { _tag?: string; results?: Array<{ seq: number; rows?: Array<unknown> }> }
  if (reply._tag !== "Pushed" || reply.results?.[0]?.seq !== N || reply.results[0].rows?.length !== 1) {
    throw new Error(`bench: the last reply is not the last action applied: ${sender.last.slice(0, 300)}`)
  }
  await runtime.dispose()
  return us
}

const raw = (receivers: number) => {
  const db = new DatabaseSync(":memory:")
  db.exec(TODO_TABLE)
  const insert = db.prepare("INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *")
  insert.setReturnArrays(true)
  const frames = Array.from({ length: N }, (_, i) => JSON.stringify({ t: "create", r: String(i), id: `x${i}`, text: "a todo written by the benchmark", completed: 0 }))
  let sent = 0
  const t0 = now()
  for (const f of frames) {
    const m = JSON.parse(f)
    const t = Date.now()
    // partyserver's storage.sql.exec prepares per call too
    const row = db.prepare("INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *").all(m.id, m.text.trim(), m.completed, t, t)[0]
    const ack = JSON.stringify({ t: "ack", r: m.r, row })
    const out = JSON.stringify({ t: "row", row })
    sent += ack.length + out.length * receivers
  }
  const us = ((now() - t0) * 1000) / N
  db.close()
  return sent > 0 ? us : NaN
}

await ours(0); console.log("us", await ours(0))
