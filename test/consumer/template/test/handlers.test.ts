/**
 * The chat rules in Node, without workerd: effect-partysync/testing runs the
 * room's handlers through the real dispatch path over node:sqlite, with a
 * typed principal per connection (the handlers module's `Storage`,
 * `ActionRejected` and `Caller` come from effect-partysync/server, its Node
 * variant here).
 */
import * as Effect from "effect/Effect"
import { TestServer } from "effect-partysync/testing"
import { ActionRejected, SyncRefused } from "effect-partysync/server"
import { describe, expect, it } from "vitest"
import { handlers, Principal, TABLES } from "../src/handlers"
import { members, messages } from "../src/shared"

const room = TestServer.make({ channels: [messages, members], principal: Principal, handlers, setup: TABLES })
const run = <A, E>(program: (server: Effect.Success<typeof room>) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(room, program)))

describe("chat rules", () => {
  it("a member who joined may post as themselves; the row comes back", async () => {
    const rows = await run((server) =>
      Effect.gen(function*() {
        const ada = server.connect({ name: "ada" })
        yield* ada.send("members", { type: "join", payload: { id: "ada" } })
        return yield* ada.send("messages", { type: "post", payload: { id: "m1", author: "ada", text: " hi " } })
      }))
    expect(rows.map((row) => row.slice(0, 3))).toEqual([["m1", "ada", "hi"]])
  })

  it("a post by someone who has not joined, or as someone else, is refused with the room's message", async () => {
    const [notJoined, impostor] = await run((server) =>
      Effect.gen(function*() {
        const bob = server.connect({ name: "bob" })
        const notJoined = yield* Effect.flip(bob.send("messages", { type: "post", payload: { id: "m1", author: "bob", text: "hi" } }))
        yield* server.connect({ name: "ada" }).send("members", { type: "join", payload: { id: "ada" } })
        const impostor = yield* Effect.flip(bob.send("messages", { type: "post", payload: { id: "m2", author: "ada", text: "hi" } }))
        return [notJoined, impostor] as const
      }))
    expect(notJoined).toBeInstanceOf(ActionRejected)
    expect(notJoined.message).toBe("bob has not joined")
    expect(impostor.message).toBe("you are bob, not ada")
  })

  it("a read-only connection is refused with the room's message", async () => {
    const refused = await run((server) =>
      Effect.flip(server.connect({ name: "guest" }, { readOnly: "guests can only read" }).send("members", { type: "join", payload: { id: "guest" } })))
    expect(refused).toBeInstanceOf(SyncRefused)
    expect(refused).toMatchObject({ reason: "ReadOnly", message: "guests can only read" })
  })
})
