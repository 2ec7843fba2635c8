/**
 * The scheduler's turns (src/services/Lanes.ts), with real fibers and the
 * real event loop: round-robin across connections and principals, a unit
 * that gives its turn away between steps, and one away from the scheduler.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Lanes from "../../src/services/Lanes.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"

/** A scheduler with lanes made on demand, recording the order units ran in. */
const rig = Effect.gen(function*() {
  const lanes = Lanes.make(yield* Effect.scope)
  const ran: Array<string> = []
  const laneOf = (name: string, principal: string | null = "p") => {
    const lane = lanes.laneOf(makeMemoryConnection(name), principal)
    lanes.begin(lane)
    return lane
  }
  const record = (label: string) => Effect.sync(() => void ran.push(label))
  return { lanes, ran, laneOf, record }
})

describe("Lanes", () => {
  it.live("a lane with many units waits behind its own work: another lane's unit runs after at most one of them", () =>
    Effect.scoped(Effect.gen(function*() {
      const { lanes, ran, laneOf, record } = yield* rig
      const flood = laneOf("flood")
      const other = laneOf("other")
      const ends = Array.from({ length: 10 }, (_, i) => lanes.enqueue(flood, () => record(`flood-${i}`)))
      ends.push(lanes.enqueue(other, () => record("other")))
      yield* lanes.run
      for (const end of ends) yield* end
      assert.isAtMost(ran.indexOf("other"), 1, ran.join(" "))
      assert.deepStrictEqual(ran.filter((r) => r.startsWith("flood")), Array.from({ length: 10 }, (_, i) => `flood-${i}`))
    })))

  it.live("turns go round principals first: one principal's many connections do not crowd out another's one", () =>
    Effect.scoped(Effect.gen(function*() {
      const { lanes, ran, laneOf, record } = yield* rig
      const ends: Array<Effect.Effect<void>> = []
      for (let c = 0; c < 5; c++) {
        const lane = laneOf(`crowd-${c}`, "crowd")
        for (let i = 0; i < 3; i++) ends.push(lanes.enqueue(lane, () => record(`crowd-${c}-${i}`)))
      }
      ends.push(lanes.enqueue(laneOf("alone", "alone"), () => record("alone")))
      yield* lanes.run
      for (const end of ends) yield* end
      assert.isAtMost(ran.indexOf("alone"), 1, ran.join(" "))
    })))

  it.live("a unit that gives its turn away lets the others run between its steps; its own lane's later units wait for it", () =>
    Effect.scoped(Effect.gen(function*() {
      const { lanes, ran, laneOf, record } = yield* rig
      const long = laneOf("long")
      const other = laneOf("other")
      const ends = [
        lanes.enqueue(long, (turns) =>
          Effect.gen(function*() {
            for (let step = 1; step <= 3; step++) {
              yield* record(`long-${step}`)
              if (step < 3) yield* turns.turn
            }
          })),
        lanes.enqueue(long, () => record("long-later")),
        lanes.enqueue(other, () => record("other-1")),
        lanes.enqueue(other, () => record("other-2"))
      ]
      yield* lanes.run
      for (const end of ends) yield* end
      assert.deepStrictEqual(ran, ["long-1", "other-1", "long-2", "other-2", "long-3", "long-later"])
    })))

  it.live("a unit away from the scheduler releases it: other lanes run meanwhile, its own lane waits", () =>
    Effect.scoped(Effect.gen(function*() {
      const { lanes, ran, laneOf, record } = yield* rig
      const waiting = laneOf("waiting")
      const other = laneOf("other")
      let release: (() => void) | undefined
      const gate = Effect.callback<void>((resume) => {
        release = () => resume(Effect.void)
      })
      const ends = [
        lanes.enqueue(waiting, (turns) => Effect.andThen(turns.away(gate), record("waiting-back"))),
        lanes.enqueue(waiting, () => record("waiting-later"))
      ]
      yield* lanes.run
      const others = Array.from({ length: 3 }, (_, i) => lanes.enqueue(other, () => record(`other-${i}`)))
      yield* lanes.run
      for (const end of others) yield* end
      assert.deepStrictEqual(ran, ["other-0", "other-1", "other-2"])
      release!()
      for (const end of ends) yield* end
      assert.deepStrictEqual(ran, ["other-0", "other-1", "other-2", "waiting-back", "waiting-later"])
    })))
})
