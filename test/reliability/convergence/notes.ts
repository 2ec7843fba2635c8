/**
 * A second channel for the convergence test's worker, so that every
 * simulated client runs two channels on one socket (sharing its in-flight
 * budget): `notes`, a few shared notes that any client sets (an upsert that
 * also revives a deleted note) or deletes. Ids come from a small pool, so
 * clients write the same rows concurrently. A body must be 1 to 40
 * characters, so some sets are refused.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { SqlClient } from "effect/sql"
import * as Channel from "../../../src/protocol/Channel.ts"
import { ActionRejected } from "../../../src/services/Errors.ts"
import { Storage } from "../../../src/services/Storage.ts"

/** [id, body, updated_at, deleted_at] */
export const Note = Schema.Tuple([Schema.String, Schema.String, Schema.Number, Schema.NullOr(Schema.Number)])
export type Note = typeof Note.Type

const Id = Schema.String.check(Schema.isBetweenLength(1, 64))
export const NoteAction = Schema.Union([
  Schema.Struct({ type: Schema.Literal("set"), id: Id, body: Schema.String.check(Schema.isMaxLength(1_000)) }),
  Schema.Struct({ type: Schema.Literal("delete"), id: Id })
])
export type NoteAction = typeof NoteAction.Type

export const notes = Channel.make("notes", { record: Note, action: NoteAction })

/** The server's rule for a note's body. */
export const validBody = (body: string): boolean => body.length >= 1 && body.length <= 40

/** The notes table, as the worker's third migration. */
export const createNotes = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe("CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL, deleted_at INTEGER)")
).pipe(Effect.asVoid)

const RETURNING = "RETURNING id, body, updated_at, deleted_at"

/** Applies a note action at time `now`; returns the changed rows. */
export const runNoteAction = (action: NoteAction, now: number) =>
  Effect.gen(function*() {
    const sql = yield* Storage
    if (action.type === "delete") {
      return yield* sql.raw(`UPDATE notes SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL ${RETURNING}`, now, now, action.id)
    }
    if (!validBody(action.body)) return yield* new ActionRejected({ message: "a note is 1 to 40 characters" })
    return yield* sql.raw(
      `INSERT INTO notes (id, body, updated_at, deleted_at) VALUES (?, ?, ?, NULL)
       ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, deleted_at = NULL ${RETURNING}`,
      action.id, action.body, now
    )
  })
