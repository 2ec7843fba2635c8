/**
 * The wire protocol: every frame kind survives a Schema round trip, the
 * server's and the client's fast encoders produce exactly the Schema
 * encoding, and decoders refuse what is not a frame.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Exit from "effect/Exit"
import { encodeFrame } from "../../src/client/Frames.ts"
import {
  type ClientMessage,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerFrame,
  encodeServerMessage,
  type ServerMessage
} from "../../src/protocol/Protocol.ts"
import { keyOf } from "../helpers/protocol.ts"

const serverFrames: ReadonlyArray<ServerMessage> = [
  { _tag: "SyncRows", channel: "todos", reset: true, rows: [["a", "text \u2603 \"quoted\"", 0, 1, 2, null]], deleted: [] },
  { _tag: "SyncRows", channel: "todos", reset: false, rows: [], deleted: ["x", 7] },
  { _tag: "Synced", channel: "todos", version: 42, reset: false, history: "0123456789abcdef" },
  { _tag: "ResultRows", clientId: "c", seq: 1, rows: [["b", "t", 1, 5, 6, null]] },
  { _tag: "Change", channel: "todos", version: 3, rows: [["b", "", 1, 5, 6, 7]], deleted: [] },
  { _tag: "Pushed", channel: "todos", clientId: "c", version: 9, next: 2, results: [{ seq: 1, rows: [["b", "t", 1, 5, 6, null]] }] },
  {
    _tag: "Pushed", channel: "todos", clientId: "c", version: 11, next: 4,
    results: [{ seq: 2, reason: "ActionRejected", message: "no" }, { seq: 3, rows: [] }],
    changes: [{ _tag: "Change", channel: "todos", version: 11, rows: [["c", "t", 0, 1, 1, null]], deleted: ["d"] }]
  },
  { _tag: "Failure", requestId: null, channel: null, reason: "MalformedJson", message: "frame is not valid JSON" },
  { _tag: "Failure", requestId: null, channel: "todos", clientId: "c", reason: "TooManyInFlight", message: "more than 64 actions in flight" }
]

describe("Protocol", () => {
  it("the server's fast encoder writes exactly the Schema encoding of every frame kind", () => {
    for (const frame of serverFrames) {
      const fast = encodeServerFrame(frame)
      assert.strictEqual(fast, encodeServerMessage(frame))
      const decoded = decodeServerMessage(fast)
      assert.isTrue(Exit.isSuccess(decoded))
      if (Exit.isSuccess(decoded)) assert.deepStrictEqual(decoded.value, frame)
    }
  })

  it("the client's encoder (JSON.stringify) writes exactly the Schema encoding of every client frame kind", () => {
    const frames: ReadonlyArray<ClientMessage> = [
      { _tag: "Subscribe", channel: "todos", since: null, schema: 1 },
      { _tag: "Subscribe", channel: "todos", since: 12, history: "0123456789abcdef", schema: 2 },
      { _tag: "Unsubscribe", channel: "todos" },
      { _tag: "Push", channel: "todos", clientId: "c", clientKey: keyOf("c"), actions: [{ seq: 1, action: { type: "create", payload: { id: "a", text: "\u2603 \"q\"", completed: 0 } }, schema: 1 }] },
      { _tag: "Push", channel: "todos", clientId: "c", clientKey: keyOf("c"), actions: [{ seq: 2, action: null }, { seq: 3, action: 1 }], confirmed: 1, skip: 2 },
      { _tag: "Push", channel: "todos", clientId: "c", clientKey: keyOf("c"), actions: [], confirmed: 3 }
    ]
    for (const frame of frames) assert.strictEqual(encodeFrame(frame), encodeClientMessage(frame))
  })

  it("client frames round-trip and malformed ones are refused", () => {
    const frame = { _tag: "Push", channel: "todos", clientId: "c", clientKey: keyOf("c"), actions: [{ seq: 1, action: { type: "delete", payload: { id: "a" } } }] } as const
    const decoded = decodeClientMessage(encodeClientMessage(frame))
    assert.isTrue(Exit.isSuccess(decoded))
    for (const bad of ["{", "[]", "null", JSON.stringify({ _tag: "Push", channel: "todos", clientId: "c", clientKey: keyOf("c"), actions: [{ seq: 0, action: {} }] }),
      JSON.stringify({ _tag: "Push", channel: "todos", clientId: "c", clientKey: "short", actions: [] }),
      JSON.stringify({ _tag: "Subscribe", channel: "", since: null }), JSON.stringify({ _tag: "Subscribe", channel: "todos", since: -1 })]) {
      assert.isTrue(Exit.isFailure(decodeClientMessage(bad)), bad)
    }
  })
})
