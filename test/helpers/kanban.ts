/**
 * A two-channel app (a kanban board: cards and their comments) and its
 * principal, for the tests of per-channel handlers and typed principals:
 * the two channels' actions share a `type` name (`add`), so a handler fed
 * the other channel's action is a real mistake, not a caught typo.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { SqlClient } from "effect/sql"
import * as Channel from "../../src/protocol/Channel.ts"

/** Who is connected: the app's own principal. */
export const User = Schema.Struct({ id: Schema.String, role: Schema.Literals(["editor", "viewer"]) })
export type User = typeof User.Type

/** [id, title, lane, author, deleted_at] */
export const Card = Schema.Tuple([Schema.String, Schema.String, Schema.String, Schema.String, Schema.NullOr(Schema.Number)])
export const CardAction = Schema.Union([
  Schema.Struct({ type: Schema.Literal("add"), id: Schema.String, title: Schema.String }),
  Schema.Struct({ type: Schema.Literal("move"), id: Schema.String, lane: Schema.String })
])
export type CardAction = typeof CardAction.Type

/** [id, card, body, author, deleted_at] */
export const Comment = Schema.Tuple([Schema.String, Schema.String, Schema.String, Schema.String, Schema.NullOr(Schema.Number)])
export const CommentAction = Schema.Union([
  Schema.Struct({ type: Schema.Literal("add"), id: Schema.String, card: Schema.String, body: Schema.String }),
  Schema.Struct({ type: Schema.Literal("remove"), id: Schema.String })
])
export type CommentAction = typeof CommentAction.Type

export const cards = Channel.make("cards", { record: Card, action: CardAction })
export const comments = Channel.make("comments", { record: Comment, action: CommentAction })
export type Board = typeof cards | typeof comments

/** The board's tables. */
export const migrations = {
  "1_board": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE cards (id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, lane TEXT NOT NULL, author TEXT NOT NULL, deleted_at INTEGER)`
    yield* sql`CREATE TABLE comments (id TEXT PRIMARY KEY NOT NULL, card TEXT NOT NULL, body TEXT NOT NULL, author TEXT NOT NULL, deleted_at INTEGER)`
  })
}
