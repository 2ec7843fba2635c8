/**
 * Test-only worker for the start guard: `Journal`, a sync server whose table
 * comes from a migration and whose alarm and close handlers write to it.
 * Its `arm` method, reached over RPC without going through fetch, sets an
 * alarm; an alarm or a close may then be the first event of a woken object.
 * What `onAlarm` saw first is kept in the object's key-value storage, which
 * works whether or not the table exists.
 *
 * Plain JavaScript, as servers-worker.js.
 */
import { routePartykitRequest, SyncServer } from "../../src/server/index.ts"
import * as Effect from "effect/Effect"
import { SqlClient } from "effect/sql"
import * as Schema from "effect/Schema"
import * as Channel from "../../src/protocol/Channel.ts"

const entries = Channel.make("entries", {
  record: Schema.Tuple([Schema.String, Schema.String, Schema.NullOr(Schema.Number)]),
  action: Schema.Struct({ id: Schema.String, text: Schema.String })
})

export class Journal extends SyncServer {
  channels = [entries]
  migrations = {
    "1_create_entries": Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.unsafe("CREATE TABLE entries (id TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL, deleted_at INTEGER)")
    ).pipe(Effect.asVoid)
  }

  /** @param {string} _channel @param {{ id: string, text: string }} action */
  onAction(_channel, action) {
    return this.ctx.storage.sql.exec("INSERT INTO entries (id, text) VALUES (?, ?) RETURNING *", action.id, action.text)
  }

  /** Over RPC: sets an alarm `ms` from now; `fail` makes onAlarm throw after writing. */
  async arm(ms = 10, fail = false) {
    await this.ctx.storage.put("fail", fail)
    await this.ctx.storage.setAlarm(Date.now() + ms)
  }

  /** Over RPC: what the first onAlarm saw, and whether an alarm is set now. */
  async state() {
    return { first: (await this.ctx.storage.get("first-alarm")) ?? null, alarm: await this.ctx.storage.getAlarm() }
  }

  async onAlarm() {
    let outcome = "ok"
    try {
      this.ctx.storage.sql.exec("INSERT INTO entries (id, text) VALUES (?, ?)", crypto.randomUUID(), "written by the alarm")
    } catch (error) {
      outcome = String(error)
    }
    if ((await this.ctx.storage.get("first-alarm")) === undefined) await this.ctx.storage.put("first-alarm", outcome)
    if (await this.ctx.storage.get("fail")) throw new Error("onAlarm failed on purpose")
  }

  /** @param {import("partyserver").Connection} _connection */
  onClose(_connection) {
    this.ctx.storage.sql.exec("INSERT INTO entries (id, text) VALUES (?, ?)", `closed-${Date.now()}`, "written by onClose")
  }
}

export default {
  /** @param {Request} request @param {any} env */
  async fetch(request, env) {
    // POST /rpc/<method>/<room> with a JSON array of arguments: the object's method, reached over RPC only
    const rpc = /^\/rpc\/(arm|state)\/([^/]+)$/.exec(new URL(request.url).pathname)
    if (rpc !== null) {
      const stub = env.Journal.get(env.Journal.idFromName(decodeURIComponent(rpc[2])))
      const args = request.method === "POST" ? await request.json() : []
      return Response.json((await stub[rpc[1]](...args)) ?? null)
    }
    return (await routePartykitRequest(request, env)) ?? new Response("Not found", { status: 404 })
  }
}
