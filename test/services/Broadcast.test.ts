/**
 * Broadcast over in-memory connections: changes reach exactly the
 * subscribers of their channel, in order, as the same encoded text; sync
 * answers end with `Synced`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Views } from "../../src/services/Views.ts"
import { Broadcast } from "../../src/services/Broadcast.ts"
import { layerMemoryConnections, makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"
import type { ChannelChanges } from "../../src/services/Frames.ts"
import { defaultOptions, SyncConfig } from "../../src/services/SyncConfig.ts"
import { decodedFrames } from "../helpers/memory.ts"

const changes = (channel: string, version: number, ids: Array<string>): ChannelChanges => ({
  channel,
  rows: ids.map((id) => [id, `text ${id}`, 0, 1, 1, null]),
  rowVersions: ids.map((_, i) => version - ids.length + 1 + i),
  deleted: [],
  deletedVersions: [],
  version
})

const setup = (limit = defaultOptions.maxOutboundFrameBytes) => {
  const todos = makeMemoryConnection("todos")
  const notes = makeMemoryConnection("notes")
  const both = makeMemoryConnection("both")
  const none = makeMemoryConnection("none")
  const layer = Broadcast.layer.pipe(
    Layer.provide(layerMemoryConnections([todos, notes, both, none])),
    Layer.provide(Views.layerNone),
    Layer.provide(Layer.succeed(SyncConfig, { ...defaultOptions, maxOutboundFrameBytes: limit }))
  )
  return { todos, notes, both, none, layer }
}

describe("Broadcast", () => {
  it.effect("publishes each channel's changes only to its subscribers, in version order", () => {
    const { todos, notes, both, none, layer } = setup()
    return Effect.gen(function*() {
      const b = yield* Broadcast
      yield* b.subscribe(todos, "todos")
      yield* b.subscribe(notes, "notes")
      yield* b.subscribe(both, "todos")
      yield* b.subscribe(both, "notes")
      yield* b.publish([changes("todos", 1, ["t1"]), changes("notes", 2, ["n1"])])
      yield* b.publish([changes("todos", 3, ["t2"])])
      const summary = (c: typeof todos) => decodedFrames(c).map((m) => m._tag === "Change" ? `${m.channel}@${m.version}` : m._tag)
      assert.deepStrictEqual(summary(todos), ["todos@1", "todos@3"])
      assert.deepStrictEqual(summary(notes), ["notes@2"])
      assert.deepStrictEqual(summary(both), ["todos@1", "notes@2", "todos@3"])
      assert.deepStrictEqual(none.sent, [])
      // one encoding, the same text to every subscriber
      assert.strictEqual(todos.sent[0], both.sent[0])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a push's sender gets its changes inside the reply, the other subscribers as Change frames", () => {
    const { todos, both, layer } = setup()
    return Effect.gen(function*() {
      const b = yield* Broadcast
      yield* b.subscribe(todos, "todos")
      yield* b.subscribe(both, "todos")
      const withheld = yield* b.publish([changes("todos", 1, ["t1"])], todos)
      assert.deepStrictEqual(todos.sent, [])
      assert.deepStrictEqual(withheld, both.sent)
      yield* b.pushed(todos, { _tag: "Pushed", channel: "todos", clientId: "c", version: 1, next: 2, results: [{ seq: 1, rows: [] }] }, withheld)
      // one frame for the sender, and its Change is the very text the others got
      assert.strictEqual(todos.sent.length, 1)
      assert.include(todos.sent[0]!, both.sent[0]!)
      const frames = decodedFrames(todos)
      assert.deepStrictEqual(frames.map((m) => m._tag), ["Change", "Pushed"])
      assert.deepStrictEqual(frames[0], decodedFrames(both)[0])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a reply that would exceed the frame limit with its changes is sent after them, separately", () => {
    const { todos, layer } = setup(2_000)
    return Effect.gen(function*() {
      const b = yield* Broadcast
      yield* b.subscribe(todos, "todos")
      const ids = Array.from({ length: 60 }, (_, i) => `row-${i}`)
      const withheld = yield* b.publish([changes("todos", 60, ids)], todos)
      assert.isAbove(withheld.length, 1)
      yield* b.pushed(todos, { _tag: "Pushed", channel: "todos", clientId: "c", version: 60, next: 2, results: [{ seq: 1, rows: [] }] }, withheld)
      assert.strictEqual(todos.sent.length, withheld.length + 1)
      for (const frame of todos.sent) assert.isAtMost(new TextEncoder().encode(frame).length, 2_000)
      const frames = decodedFrames(todos)
      assert.strictEqual(frames[frames.length - 1]!._tag, "Pushed")
      assert.strictEqual((frames[frames.length - 1] as { changes?: unknown }).changes, undefined)
    }).pipe(Effect.provide(layer))
  })

  it.effect("subscribe is idempotent and unsubscribe stops delivery, both recorded in connection state", () => {
    const { todos, layer } = setup()
    return Effect.gen(function*() {
      const b = yield* Broadcast
      yield* b.subscribe(todos, "todos")
      yield* b.subscribe(todos, "todos")
      assert.deepStrictEqual(todos.state.channels, ["todos"])
      yield* b.publish([changes("todos", 1, ["a"])])
      assert.strictEqual(todos.sent.length, 1)
      yield* b.unsubscribe(todos, "todos")
      yield* b.unsubscribe(todos, "todos")
      assert.deepStrictEqual(todos.state.channels, [])
      yield* b.publish([changes("todos", 2, ["b"])])
      assert.strictEqual(todos.sent.length, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a large publish is split into several Change frames, all delivered in order", () => {
    const { todos, layer } = setup(2_000)
    return Effect.gen(function*() {
      const b = yield* Broadcast
      yield* b.subscribe(todos, "todos")
      const ids = Array.from({ length: 100 }, (_, i) => `row-${i}`)
      yield* b.publish([changes("todos", 100, ids)])
      const frames = decodedFrames(todos)
      assert.isAbove(frames.length, 1)
      assert.deepStrictEqual(frames.flatMap((m) => m._tag === "Change" ? m.rows.map((r) => r[0]) : []), ids)
    }).pipe(Effect.provide(layer))
  })

  it.effect("sendSync sends the chunks then Synced with the version and reset flag, to that connection only", () => {
    const { todos, both, layer } = setup(2_000)
    return Effect.gen(function*() {
      const b = yield* Broadcast
      yield* b.subscribe(both, "todos")
      const ids = Array.from({ length: 200 }, (_, i) => `row-${i}`)
      yield* b.sendSync(todos, changes("todos", 200, ids), false, "h1")
      const frames = decodedFrames(todos)
      const last = frames.pop()!
      assert.deepStrictEqual(last, { _tag: "Synced", channel: "todos", version: 200, reset: false, history: "h1" })
      assert.isAbove(frames.length, 1)
      assert.isTrue(frames.every((m) => m._tag === "SyncRows" && !m.reset))
      assert.deepStrictEqual(frames.flatMap((m) => m._tag === "SyncRows" ? m.rows.map((r) => r[0]) : []), ids)
      assert.deepStrictEqual(both.sent, [])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a result whose rows exceed the frame limit sends them first as ResultRows chunks below the limit, then the reply", () => {
    const limit = 2_000
    const { todos, layer } = setup(limit)
    return Effect.gen(function*() {
      const b = yield* Broadcast
      const rows = Array.from({ length: 300 }, (_, i) => [`row-${i}`, "x".repeat(20), 0, 1, 1, null])
      yield* b.pushed(todos, { _tag: "Pushed", channel: "todos", clientId: "big", version: 7, next: 2, results: [{ seq: 1, rows }] }, [])
      assert.isTrue(todos.sent.every((frame) => new TextEncoder().encode(frame).length <= limit))
      const frames = decodedFrames(todos)
      const last = frames.pop()!
      assert.deepStrictEqual(last, { _tag: "Pushed", channel: "todos", clientId: "big", version: 7, next: 2, results: [{ seq: 1, rows: [] }] })
      assert.isAbove(frames.length, 1)
      assert.isTrue(frames.every((m) => m._tag === "ResultRows" && m.clientId === "big" && m.seq === 1))
      assert.deepStrictEqual(frames.flatMap((m) => m._tag === "ResultRows" ? m.rows : []), rows)
    }).pipe(Effect.provide(layer))
  })

  it.effect("results that do not fit in one reply are split over several, each below the limit, in seq order", () => {
    const limit = 2_000
    const { todos, layer } = setup(limit)
    return Effect.gen(function*() {
      const b = yield* Broadcast
      const results = Array.from({ length: 40 }, (_, i) => ({ seq: i + 1, rows: [[`row-${i}`, "y".repeat(60), 0, 1, 1, null]] }))
      yield* b.pushed(todos, { _tag: "Pushed", channel: "todos", clientId: "many", version: 9, next: 41, results }, [])
      assert.isTrue(todos.sent.every((frame) => new TextEncoder().encode(frame).length <= limit))
      const frames = decodedFrames(todos)
      assert.isAbove(frames.length, 1)
      assert.isTrue(frames.every((m) => m._tag === "Pushed" && m.next === 41))
      assert.deepStrictEqual(frames.flatMap((m) => m._tag === "Pushed" ? m.results : []), results)
    }).pipe(Effect.provide(layer))
  })
})
