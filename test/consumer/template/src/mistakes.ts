/**
 * Code that must not compile against the packed declarations: each line
 * after `@ts-expect-error` is a mistake, and tsc fails if one of them ever
 * compiles (the worker program checks this file; nothing imports it).
 */
import * as Effect from "effect/Effect"
import { Caller, type Grant, type Handlers, NotAuthorized, SyncServer } from "effect-partysync/server"
import { type Channels, handlers, Principal } from "./handlers"
import { members, messages } from "./shared"

export const crossed: Handlers<Channels, Principal> = {
  ...handlers,
  // @ts-expect-error a member action has no text (that is a message's)
  members: (action) => [[action.payload.text]]
}

export const stranger: Handlers<Channels, Principal> = {
  ...handlers,
  // @ts-expect-error the principal has a name, not an email
  members: (_action, caller) => [[caller.principal.email]]
}

// @ts-expect-error a handler for a channel the room does not have
export const extra: Handlers<Channels, Principal> = { ...handlers, reactions: () => [] }

// @ts-expect-error the accessor's value is the Schema's type
export const wrongAccessor: Effect.Effect<number, never, Caller> = Caller.principal(Principal)

export class WrongGrant extends SyncServer<Cloudflare.Env, Channels, never, Principal> {
  readonly channels = [messages, members]
  readonly handlers = handlers

  // @ts-expect-error the grant's principal is a Principal, not a string
  override authorizeConnection(): Effect.Effect<Grant<string>, NotAuthorized> {
    return Effect.succeed({ principal: "ada" })
  }
}
