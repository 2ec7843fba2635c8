/**
 * Test-only worker for schema evolution: one Durable Object class whose
 * deploy (`DEPLOY`: v1, v2, v2-nostep, v3, v3-bare, or broken) picks the channel version and
 * the migrations, so a test can restart the same persisted state as the next
 * deploy. Handlers use effect/sql.
 */
import * as Effect from "effect/Effect"
import { SqlClient } from "effect/sql"
import { routePartykitRequest, SyncServer } from "../../../src/server/index.ts"
import { channelOf, migrationsOf, notesV1 } from "./channels.ts"

interface Env extends Cloudflare.Env {
  readonly DEPLOY?: string
}

type AnyNotes = typeof notesV1

export class Notes extends SyncServer<Env, AnyNotes> {
  readonly channels = [channelOf(this.env.DEPLOY ?? "v1") as AnyNotes]
  override readonly migrations = migrationsOf(this.env.DEPLOY ?? "v1")
  override readonly syncOptions = { synchronousHandlers: true }

  onAction(_channel: "notes", action: AnyNotes["action"]["Type"]) {
    const deploy = this.env.DEPLOY ?? "v1"
    return Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const a = action as { type: "add"; id: string; text?: string; body?: string; priority?: number } | { type: "remove"; id: string }
      if (a.type === "remove") return yield* sql`UPDATE notes SET deleted_at = 1 WHERE id = ${a.id} RETURNING *`
      return deploy === "v1"
        ? yield* sql`INSERT INTO notes (id, text) VALUES (${a.id}, ${a.text ?? ""}) RETURNING *`
        : yield* sql`INSERT INTO notes (id, text, priority) VALUES (${a.id}, ${a.body ?? ""}, ${a.priority ?? 0}) RETURNING *`
    })
  }

  override async onRequest(request: Request): Promise<Response> {
    const hook = new URL(request.url).pathname.split("/").pop()
    if (hook === "rows") return Response.json([...this.ctx.storage.sql.exec("SELECT * FROM notes ORDER BY rowid").raw()])
    if (hook === "migrations") return Response.json([...this.ctx.storage.sql.exec("SELECT migration_id, name FROM effect_sql_migrations ORDER BY migration_id").raw()])
    if (hook === "columns") return Response.json([...this.ctx.storage.sql.exec("SELECT name FROM pragma_table_info('notes')").raw()].map((r) => r[0]))
    return new Response("unknown hook", { status: 404 })
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return (await routePartykitRequest(request, env)) ?? new Response("Not found", { status: 404 })
  }
} satisfies ExportedHandler<Env>
