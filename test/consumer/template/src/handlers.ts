/**
 * The chat room's rules, as Effects over Storage: the worker runs them in
 * `onAction`, the unit test runs them in Node through effect-partysync/testing.
 */
import * as Effect from "effect/Effect"
import { ActionRejected, Storage } from "effect-partysync/server"
import type { MemberAction, MessageAction } from "./shared"

export const TABLES = [
  `CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, author TEXT NOT NULL, text TEXT NOT NULL,
    sent_at INTEGER NOT NULL, deleted_at INTEGER)`,
  `CREATE TABLE IF NOT EXISTS members (id TEXT PRIMARY KEY, joined_at INTEGER NOT NULL, deleted_at INTEGER)`
]

export const runMessageAction = (action: MessageAction, now = Date.now()) =>
  Effect.gen(function*() {
    const sql = yield* Storage
    switch (action.type) {
      case "post": {
        const text = action.payload.text.trim()
        if (text === "") return yield* new ActionRejected({ message: "a message needs some text" })
        const member = yield* sql.raw("SELECT 1 FROM members WHERE id = ? AND deleted_at IS NULL", action.payload.author)
        if (member.length === 0) return yield* new ActionRejected({ message: `${action.payload.author} has not joined` })
        return yield* sql.raw(
          "INSERT INTO messages VALUES (?, ?, ?, ?, NULL) RETURNING *",
          action.payload.id,
          action.payload.author,
          text,
          now
        )
      }
      case "retract":
        return yield* sql.raw("UPDATE messages SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING *", now, action.payload.id)
    }
  })

export const runMemberAction = (action: MemberAction, now = Date.now()) =>
  Effect.gen(function*() {
    const sql = yield* Storage
    switch (action.type) {
      case "join":
        return yield* sql.raw(
          "INSERT INTO members VALUES (?, ?, NULL) ON CONFLICT (id) DO UPDATE SET joined_at = excluded.joined_at, deleted_at = NULL RETURNING *",
          action.payload.id,
          now
        )
      case "leave":
        return yield* sql.raw("UPDATE members SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING *", now, action.payload.id)
    }
  })
