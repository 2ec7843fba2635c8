/**
 * The chat room's channels, imported by the worker and the browser alike
 * (so only from the package's isomorphic root entry).
 */
import * as Schema from "effect/Schema"
import { Channel } from "effect-partysync"

/** [id, author, text, sent_at, deleted_at] */
export const Message = Schema.Tuple([
  Schema.String,
  Schema.String,
  Schema.String,
  Schema.Number,
  Schema.NullOr(Schema.Number)
])
export type Message = typeof Message.Type

export const MessageAction = Schema.Union([
  Schema.Struct({
    type: Schema.Literal("post"),
    payload: Schema.Struct({ id: Schema.String, author: Schema.String, text: Schema.String })
  }),
  Schema.Struct({ type: Schema.Literal("retract"), payload: Schema.Struct({ id: Schema.String }) })
])
export type MessageAction = typeof MessageAction.Type

/** [name, joined_at, deleted_at]: a member who left is a tombstone until they join again. */
export const Member = Schema.Tuple([Schema.String, Schema.Number, Schema.NullOr(Schema.Number)])
export type Member = typeof Member.Type

export const MemberAction = Schema.Union([
  Schema.Struct({ type: Schema.Literal("join"), payload: Schema.Struct({ id: Schema.String }) }),
  Schema.Struct({ type: Schema.Literal("leave"), payload: Schema.Struct({ id: Schema.String }) })
])
export type MemberAction = typeof MemberAction.Type

export const messages = Channel.make("messages", { record: Message, action: MessageAction })
export const members = Channel.make("members", { record: Member, action: MemberAction })
