/**
 * The chat worker: one ChatRoom Durable Object per room, syncing its
 * `messages` and `members` tables to every client.
 */
import { routePartykitRequest, SyncServer } from "effect-partysync/server"
import { runMemberAction, runMessageAction, TABLES } from "./handlers"
import { type MemberAction, type MessageAction, members, messages } from "./shared"

export interface Env {
  readonly ChatRoom: DurableObjectNamespace<ChatRoom>
}

export class ChatRoom extends SyncServer<Env, typeof messages | typeof members> {
  readonly channels = [messages, members]

  override onStart() {
    for (const statement of TABLES) this.ctx.storage.sql.exec(statement)
  }

  onAction(channel: "messages" | "members", action: MessageAction | MemberAction) {
    return channel === "messages" ? runMessageAction(action as MessageAction) : runMemberAction(action as MemberAction)
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return (await routePartykitRequest(request, env)) ?? new Response("not found", { status: 404 })
  }
} satisfies ExportedHandler<Env>
