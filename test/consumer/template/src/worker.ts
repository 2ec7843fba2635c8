/**
 * The chat worker: one ChatRoom Durable Object per room, syncing its
 * `messages` and `members` tables to every client. Who is connected comes
 * from `?name=` (a real app would verify a session); `guest` may read only.
 */
import * as Effect from "effect/Effect"
import { type Grant, NotAuthorized, routePartykitRequest, SyncServer } from "effect-partysync/server"
import { type Channels, handlers, type Principal, TABLES } from "./handlers"
import { members, messages } from "./shared"

export interface Env {
  readonly ChatRoom: DurableObjectNamespace<ChatRoom>
}

export class ChatRoom extends SyncServer<Env, Channels, never, Principal> {
  readonly channels = [messages, members]
  readonly handlers = handlers

  override onStart() {
    for (const statement of TABLES) this.ctx.storage.sql.exec(statement)
  }

  override authorizeConnection(request: Request): Effect.Effect<Grant<Principal>, NotAuthorized> {
    const name = new URL(request.url).searchParams.get("name")
    if (name === null || name === "") return Effect.fail(new NotAuthorized({ message: "say who you are: ?name=", status: 401 }))
    return Effect.succeed({ principal: { name }, readOnly: name === "guest" ? "guests can only read" : false })
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return (await routePartykitRequest(request, env)) ?? new Response("not found", { status: 404 })
  }
} satisfies ExportedHandler<Env>
