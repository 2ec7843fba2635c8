/**
 * The chat rules in Node, without workerd: effect-partysync/testing runs the
 * services over node:sqlite, and the handlers module's `Storage` and
 * `ActionRejected` come from effect-partysync/server (its Node variant here).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { ActionHandler, layerTest } from "effect-partysync/testing"
import { ActionRejected, Storage } from "effect-partysync/server"
import { describe, expect, it } from "vitest"
import { runMemberAction, runMessageAction, TABLES } from "../src/handlers"
import { type MemberAction, type MessageAction, members, messages } from "../src/shared"

const handler = Layer.effect(
  ActionHandler,
  Effect.gen(function*() {
    const storage = yield* Storage
    return ActionHandler.of({
      run: (channel, action) =>
        (channel.name === "messages" ? runMessageAction(action as MessageAction, 1) : runMemberAction(action as MemberAction, 1)).pipe(
          Effect.provideService(Storage, storage)
        )
    })
  })
)

const run = <A, E>(effect: Effect.Effect<A, E, Storage>) =>
  Effect.runPromise(effect.pipe(Effect.provide(layerTest({ channels: [messages, members], handler, setup: TABLES }))))

describe("chat rules", () => {
  it("a member who joined may post; the row comes back", async () => {
    const rows = await run(Effect.gen(function*() {
      yield* runMemberAction({ type: "join", payload: { id: "ada" } }, 1)
      return yield* runMessageAction({ type: "post", payload: { id: "m1", author: "ada", text: " hi " } }, 2)
    }))
    expect(rows).toEqual([["m1", "ada", "hi", 2, null]])
  })

  it("a post by someone who has not joined is refused with ActionRejected and writes nothing", async () => {
    const [error, count] = await run(Effect.gen(function*() {
      const error = yield* Effect.flip(runMessageAction({ type: "post", payload: { id: "m1", author: "bob", text: "hi" } }))
      const sql = yield* Storage
      return [error, (yield* sql.raw("SELECT count(*) FROM messages"))[0]![0]] as const
    }))
    expect(error).toBeInstanceOf(ActionRejected)
    expect(error.message).toBe("bob has not joined")
    expect(count).toBe(0)
  })
})
