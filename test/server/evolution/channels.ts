/**
 * Three versions of one channel, as three deploys of an app would declare
 * it, for the schema-evolution tests (a test-only worker serves whichever
 * the test asks for):
 * - v1: notes [id, text, deleted_at]; action add { id, text }.
 * - v2: a `priority` column (migration 2); the action's `text` is renamed
 *   `body`, and v1 actions are upgraded.
 * - v3: a `pinned` column (migration 3); actions are unchanged.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { SqlClient } from "effect/sql"
import * as Channel from "../../../src/protocol/Channel.ts"

const Id = Schema.String.check(Schema.isBetweenLength(1, 64))
const Remove = Schema.Struct({ type: Schema.Literal("remove"), id: Id })

export const notesV1 = Channel.make("notes", {
  version: 1,
  record: Schema.Tuple([Schema.String, Schema.String, Schema.NullOr(Schema.Number)]),
  action: Schema.Union([Schema.Struct({ type: Schema.Literal("add"), id: Id, text: Schema.String }), Remove])
})

const addV2 = Schema.Struct({ type: Schema.Literal("add"), id: Id, body: Schema.String, priority: Schema.optional(Schema.Int) })
const renameText = (action: unknown) => {
  const a = action as { type: string; text?: unknown }
  if (a.type !== "add") return action
  const { text, ...rest } = a
  return { ...rest, body: text }
}

export const notesV2 = Channel.make("notes", {
  version: 2,
  record: Schema.Tuple([Schema.String, Schema.String, Schema.Number, Schema.NullOr(Schema.Number)]),
  action: Schema.Union([addV2, Remove]),
  upgrade: { 1: renameText }
})

export const notesV3 = Channel.make("notes", {
  version: 3,
  record: Schema.Tuple([Schema.String, Schema.String, Schema.Number, Schema.Literals([0, 1]), Schema.NullOr(Schema.Number)]),
  action: Schema.Union([addV2, Remove]),
  upgrade: { 1: renameText, 2: (action) => action }
})

/** v3 as the README's "new column" recipe declares it: the version raised, no step for 2 (v2 actions decode as they are). */
export const notesV3Bare = Channel.make("notes", {
  version: 3,
  record: notesV3.record,
  action: notesV3.action,
  upgrade: { 1: renameText }
})

/** v2 without its step: v1 actions (with `text`, not `body`) do not decode, so they cannot be upgraded. */
export const notesV2NoStep = Channel.make("notes", { version: 2, record: notesV2.record, action: notesV2.action })

const migration = (statement: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(statement)
  })

/** The migrations of each deploy; `broken` fails its second migration after a first statement. */
export const migrationsOf = (deploy: string): Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> => {
  const m1 = { "1_create_notes": migration("CREATE TABLE notes (id TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL, deleted_at INTEGER)") }
  const m2 = { "2_add_priority": migration("ALTER TABLE notes ADD COLUMN priority INTEGER NOT NULL DEFAULT 0") }
  const m3 = { "3_add_pinned": migration("ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0") }
  switch (deploy) {
    case "v1":
      return m1
    case "v2":
      return { ...m1, ...m2 }
    case "v3":
    case "v3-bare":
      return { ...m1, ...m2, ...m3 }
    case "v2-nostep":
      return { ...m1, ...m2 }
    default:
      return {
        ...m1,
        "2_add_priority": Effect.andThen(
          migration("ALTER TABLE notes ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"),
          migration("UPDATE no_such_table SET x = 1")
        )
      }
  }
}

/** The channel a deploy serves. */
export const channelOf = (deploy: string) =>
  deploy === "v3" ? notesV3 : deploy === "v3-bare" ? notesV3Bare : deploy === "v2" ? notesV2 : deploy === "v2-nostep" ? notesV2NoStep : notesV1
