/**
 * The convergence test's worker: the Todo fixture's server (its hooks
 * included) with its second channel, `notes`, replaced by this test's own
 * (see notes.ts: same name and table, another record, no read rule), made by
 * its own third migration, the server's in-flight limit per connection taken from the
 * `MAX_IN_FLIGHT` var, lowered so that bursts get `TooManyInFlight`, and its
 * client retention from `CLIENT_RETENTION_MS`.
 *
 * Plain JavaScript, as bench/raw/ours.js: tsconfig.json (DOM types) checks
 * test/ and would follow a TypeScript import into the Workers-typed fixture
 * server, which tsconfig.worker.json checks.
 */
import fixture, { ToDos as FixtureToDos } from "../../../fixtures/todo-sync/src/server.ts"
import { createNotes, notes, runNoteAction } from "./notes.ts"

export class ToDos extends FixtureToDos {
  // field initializers run after the fixture's: extend what it declared
  channels = [...this.channels.filter((channel) => channel.name !== "notes"), notes]
  migrations = { ...this.migrations, "3_create_notes": createNotes }
  views = {}
  syncOptions = {
    ...this.syncOptions,
    ...(this.env.MAX_IN_FLIGHT === undefined ? {} : { maxInFlightPerConnection: Number(this.env.MAX_IN_FLIGHT) }),
    ...(this.env.CLIENT_RETENTION_MS === undefined ? {} : { clientRetentionMs: Number(this.env.CLIENT_RETENTION_MS) })
  }

  /** @param {string} channel @param {any} action @param {any} caller */
  onAction(channel, action, caller) {
    return channel === "notes" ? runNoteAction(action, Date.now()) : super.onAction(channel, action, caller)
  }

  /** @param {Request} request */
  async onRequest(request) {
    if (new URL(request.url).pathname.endsWith("/hooks/notes-rows")) {
      return Response.json([...this.ctx.storage.sql.exec("SELECT id, body, updated_at, deleted_at FROM notes ORDER BY rowid").raw()])
    }
    return super.onRequest(request)
  }
}

export default fixture
