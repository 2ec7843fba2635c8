/**
 * The chat room's rules: one handler per channel, typed by its channel and
 * by the room's principal (who `authorizeConnection` says is connected).
 * The worker serves them, the unit test runs them in Node through
 * effect-partysync/testing.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { ActionRejected, Caller, type Handlers, Storage } from "effect-partysync/server"
import type { MemberAction, MessageAction, members, messages } from "./shared"

/** Who is connected: a name, from the connection's `?name=`. */
export const Principal = Schema.Struct({ name: Schema.String })
export type Principal = typeof Principal.Type

export type Channels = typeof messages | typeof members

export const TABLES = [
  `CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, author TEXT NOT NULL, text TEXT NOT NULL,
    sent_at INTEGER NOT NULL, deleted_at INTEGER)`,
  `CREATE TABLE IF NOT EXISTS members (id TEXT PRIMARY KEY, joined_at INTEGER NOT NULL, deleted_at INTEGER)`
]

export const runMessageAction = (action: MessageAction, me: Principal, now = Date.now()) =>
  Effect.gen(function*() {
    const sql = yield* Storage
    switch (action.type) {
      case "post": {
        const text = action.payload.text.trim()
        if (text === "") return yield* new ActionRejected({ message: "a message needs some text" })
        const member = yield* sql.raw("SELECT 1 FROM members WHERE id = ? AND deleted_at IS NULL", action.payload.author)
        if (member.length === 0) return yield* new ActionRejected({ message: `${action.payload.author} has not joined` })
        if (action.payload.author !== me.name) return yield* new ActionRejected({ message: `you are ${me.name}, not ${action.payload.author}` })
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

// written without a caller argument: it reads the principal from its context, checked by the Schema
export const runMemberAction = (action: MemberAction, now = Date.now()) =>
  Effect.gen(function*() {
    const sql = yield* Storage
    const me = yield* Caller.principal(Principal)
    if (action.payload.id !== me.name) return yield* new ActionRejected({ message: `you are ${me.name}, not ${action.payload.id}` })
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

/** One handler per channel: each gets its own channel's action, and the caller's principal typed. */
export const handlers: Handlers<Channels, Principal> = {
  messages: (action, caller) => runMessageAction(action, caller.principal),
  members: (action) => runMemberAction(action)
}
