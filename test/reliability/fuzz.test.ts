/**
 * Protocol fuzzing against the real worker: seeded, bounded fast-check runs
 * of hostile frames over one raw WebSocket. Each frame must get exactly one
 * typed reply: a `Failure` for a frame that is not a valid push or
 * subscription (nothing recorded), a refused outcome for a pushed action the
 * server refuses (its refusal is the action's decision: recorded under its
 * own client id), or a duplicate answer for a re-sent sequence number. No
 * frame changes a row or another client's sequence. The socket stays open
 * until it has sent more invalid frames than the server allows
 * (`maxInvalidFrames`): the one past that limit is answered
 * `TooManyInvalidFrames`, the socket muted and closed (1008) a little
 * later, and the fuzz goes on on a new one; valid frames keep working
 * afterwards.
 *
 * FUZZ_SEED and FUZZ_RUNS override the seed and the number of frames.
 */
import fc from "fast-check"
import * as Exit from "effect/Exit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Schema from "effect/Schema"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { decodeClientMessage, type ErrorReason, type ServerMessage } from "../../src/protocol/Protocol.ts"
import { hooks } from "../helpers/hooks.ts"
import { workerUrl } from "../helpers/inject.ts"
import { expectAck, freshRoom, ProtocolClient, roomUrl, keyOf } from "../helpers/protocol.ts"
import { create, remove, update } from "../helpers/todos.ts"

/** Client ids of pushed actions the server refuses (their refusals are recorded, by design). */
const REFUSED = "refused-"
/** Stands for a fresh client id in an action-level case's frame: each send gets its own. */
const FRESH = "__fresh-client__"

const SEED = Number(process.env.FUZZ_SEED ?? 20261126)
const RUNS = Number(process.env.FUZZ_RUNS ?? 400)

/** One hostile frame and the replies it may get. */
interface Case {
  readonly kind: string
  readonly frame: string | Uint8Array<ArrayBuffer>
  /** Reasons that are correct for this frame: of a `Failure`, or (with `refused`) of the action's refused outcome. */
  readonly reasons: ReadonlyArray<ErrorReason>
  /** The frame is a valid push whose action the server refuses: the reply is that refused outcome. */
  readonly refused?: boolean
  /** A re-sent (clientId, seq): the correct reply is the first outcome, marked duplicate. */
  readonly duplicate?: boolean
}

const HOSTILE_CHANNELS = [
  "todos; DROP TABLE todos",
  "sqlite_master",
  "todos WHERE 1=1 --",
  "_psync_clients",
  "_psync_changes",
  "todos\u0000",
  " todos",
  "TODOS",
  "__proto__",
  "constructor",
  "../todos",
  "todos\"; --"
]

const decodeTodoAction = Schema.decodeUnknownExit(todos.action)
const decodes = (text: string) => Exit.isSuccess(decodeClientMessage(text))
const json = (value: unknown) => JSON.stringify(value)
/** A push of one action, as a plain object. */
const push = (clientId: string, seq: unknown, action: unknown, channel = "todos") =>
  ({ _tag: "Push", channel, clientId, clientKey: keyOf(clientId), actions: [{ seq, action }] })

const channelName = fc.oneof(
  fc.constantFrom(...HOSTILE_CHANNELS),
  fc.string({ minLength: 1, maxLength: 128 }).filter((s) => s !== "todos")
)
const validAction = fc.oneof(
  fc.constant(create("fz", "fuzz")),
  fc.constant(update("seed", { completed: 1 })),
  fc.constant(remove("seed"))
)
const validFrames = fc.oneof(
  fc.constant({ _tag: "Subscribe", channel: "todos", since: null } as Record<string, unknown>),
  fc.constant({ _tag: "Unsubscribe", channel: "todos" } as Record<string, unknown>),
  validAction.map((action) => push("fz", 1, action) as Record<string, unknown>)
)
const hugeNumber = fc.constantFrom(2 ** 53, 2 ** 53 + 2, 1e308, -1e308, -1, 0, 0.5, 1.000001, Number.MAX_VALUE, Number.MIN_VALUE)
const nested = (depth: number, leaf: unknown): unknown => {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value }
  return value
}

const malformedJson = fc.oneof(
  // a proper prefix of a JSON object is never valid JSON
  fc.tuple(validFrames, fc.double({ min: 0, max: 0.999, noNaN: true })).map(([m, cut]) => {
    const text = json(m)
    return text.slice(0, Math.max(1, Math.floor(text.length * cut)))
  }),
  fc.string({ maxLength: 200 }).filter((s) => {
    try {
      JSON.parse(s)
      return false
    } catch {
      return true
    }
  }),
  fc.constantFrom("", "{", "}", "[", "{\"_tag\":", "undefined", "NaN", "{'_tag':'Subscribe'}", "\u0000", "{\"a\":1,}")
).map((frame): Case => ({ kind: "malformed JSON", frame, reasons: ["MalformedJson"] }))

const notAMessage = fc.jsonValue({ maxDepth: 4 })
  .map((v) => json(v) ?? "null")
  .filter((text) => !decodes(text))
  .map((frame): Case => ({ kind: "JSON that is no message", frame, reasons: ["UnknownMessage"] }))

// a valid frame with one field replaced by a value of a wrong type (or an extreme number)
const wrongTypes = fc.tuple(
  validFrames,
  fc.constantFrom("_tag", "channel", "since", "clientKey", "clientId", "actions"),
  fc.oneof(fc.jsonValue({ maxDepth: 2 }), hugeNumber, fc.constant(undefined))
).map(([message, field, value]) => json({ ...message, [field]: value }))
  .filter((text) => !decodes(text))
  .map((frame): Case => ({ kind: "wrong types", frame, reasons: ["UnknownMessage"] }))

// numbers JSON can spell but Schema.Int refuses: 1e400 parses to Infinity
const hugeLiterals = fc.constantFrom("1e400", "-1e400", "1e-400", "123456789012345678901234567890", "9007199254740993")
  .map((n): Case => ({
    kind: "huge number literal",
    frame: `{"_tag":"Push","channel":"todos","clientId":"fz","clientKey":"${keyOf("fz")}","actions":[{"seq":${n},"action":{"type":"delete","payload":{"id":"seed"}}}]}`,
    reasons: ["UnknownMessage"]
  }))
  .filter((c) => !decodes(c.frame as string))

const deepNesting = fc.oneof(
  // inside the action: the channel's Schema refuses it
  fc.integer({ min: 50, max: 3_000 }).map((depth): Case => ({
    kind: "deep nesting in the action",
    frame: json(push(FRESH, 1, nested(depth, "x"))),
    reasons: ["InvalidAction"],
    refused: true
  })),
  // a bare deep array: either the parser refuses it or it is no message
  fc.integer({ min: 1_000, max: 100_000 }).map((depth): Case => ({
    kind: "deep nesting of the frame",
    frame: "[".repeat(depth) + "]".repeat(depth),
    reasons: ["MalformedJson", "UnknownMessage"]
  }))
)

const bigStrings = fc.oneof(
  fc.constantFrom(1_000_000, 300 * 1024, 2_000_000).map((size): Case => ({
    kind: "string over the frame limit",
    frame: json(push("fz", 1, create("big", "x".repeat(size)))),
    reasons: ["FrameTooLarge"]
  })),
  fc.constantFrom(1_000_000, 300 * 1024).map((size): Case => ({
    kind: "string over the frame limit in a channel name",
    frame: json({ _tag: "Subscribe", channel: "c".repeat(size), since: null }),
    reasons: ["FrameTooLarge"]
  })),
  // under the frame limit but over the wire Schema's 10 000 characters
  fc.integer({ min: 10_001, max: 200_000 }).map((size): Case => ({
    kind: "text over the action Schema's limit",
    frame: json(push(FRESH, 1, create("big", "y".repeat(size)))),
    reasons: ["InvalidAction"],
    refused: true
  })),
  // within the Schema but refused by the server's rule (1 to 200 characters after trimming)
  fc.oneof(fc.integer({ min: 201, max: 10_000 }).map((n) => "z".repeat(n)), fc.constantFrom("", " ", "\t\n ")).map((text): Case => ({
    kind: "text refused by the handler",
    frame: json(push(FRESH, 1, create("big", text))),
    reasons: ["ActionRejected"],
    refused: true
  }))
)

const binary = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 2_048 }),
  validFrames.map((m) => new TextEncoder().encode(json(m)))
).map((bytes): Case => ({ kind: "binary frame", frame: new Uint8Array(bytes), reasons: ["UnknownMessage"] }))

const hostileChannels = fc.tuple(channelName, fc.constantFrom("Subscribe", "Unsubscribe", "Push"), validAction)
  .map(([channel, tag, action]): Case => ({
    kind: "unknown or hostile channel",
    frame: tag === "Subscribe"
      ? json({ _tag: tag, channel, since: null })
      : tag === "Unsubscribe"
      ? json({ _tag: tag, channel })
      : json(push("fz", 1, action, channel)),
    reasons: ["UnknownChannel"]
  }))

const spoofed = fc.oneof(
  // another client's id with a sequence number it already used: applied once, answered again with its first outcome
  fc.tuple(fc.integer({ min: 1, max: 3 }), validAction).map(([seq, action]): Case => ({
    kind: "spoofed client id with a used sequence number",
    frame: json(push("seed", seq, action)),
    reasons: [],
    duplicate: true
  })),
  // another client's id with the key of someone else: refused, its sequence untouched
  fc.tuple(fc.integer({ min: 1, max: 2 ** 40 }), validAction).map(([seq, action]): Case => ({
    kind: "another client's id with a forged key",
    frame: json({ ...push("seed", seq, action), clientKey: "a-forged-key-0123456789" }),
    reasons: ["ClientMismatch"]
  })),
  // a new client id, any first sequence number, an action its Schema refuses
  fc.tuple(
    fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant({ type: "create", payload: { id: "x", text: "x", completed: 2 } }))
  ).filter(([, action]) => !isTodoAction(action))
    .map(([seq, action]): Case => ({
      kind: "an invalid action under a new client id",
      frame: json(push(FRESH, seq, action ?? null)),
      reasons: ["InvalidAction"],
      refused: true
    })),
  // sequence numbers the protocol refuses
  fc.constantFrom(0, -1, -(2 ** 31), 1.5, 2 ** 53 + 2, 1e300).map((seq): Case => ({
    kind: "impossible sequence number",
    frame: json(push("seed", seq, remove("seed"))),
    reasons: ["UnknownMessage"]
  }))
)

/** Whether the Todo channel's action Schema accepts a value (to keep only actions it refuses). */
const isTodoAction = (value: unknown) => Exit.isSuccess(decodeTodoAction(value))

const anyCase = fc.oneof(
  malformedJson,
  notAMessage,
  wrongTypes,
  hugeLiterals,
  deepNesting,
  bigStrings,
  binary,
  hostileChannels,
  spoofed
)

const isReply = (m: ServerMessage) => m._tag === "Failure" || m._tag === "Pushed"
let fresh = 0

/** The ledger, less the clients whose only action the server refused (they are recorded by design). */
const ledger = async (h: ReturnType<typeof hooks>) => (await h.clients()).filter((c) => !c.client_id.startsWith(REFUSED))

let client: ProtocolClient
let room: string
const seen = new Map<string, number>()

beforeAll(async () => {
  room = freshRoom("fuzz")
  client = await ProtocolClient.connect(roomUrl(workerUrl(), room))
  await client.subscribe("todos", null)
  // the "seed" client has applied seq 1..3; "fz" has applied nothing
  expectAck(await client.act({ clientId: "seed", clientKey: keyOf("seed"), seq: 1, action: create("seed", "seed") }))
  expectAck(await client.act({ clientId: "seed", clientKey: keyOf("seed"), seq: 2, action: update("seed", { text: "seed 2" }) }))
  expectAck(await client.act({ clientId: "seed", clientKey: keyOf("seed"), seq: 3, action: create("other", "other") }))
})
afterAll(async () => {
  await client?.close()
  console.log(`[fuzz] seed ${SEED}, ${RUNS} runs, cases by kind: ${JSON.stringify(Object.fromEntries(seen))}`)
})

describe("protocol fuzzing against the real worker", () => {
  it(`hostile frames each get one typed reply, write nothing, and close the socket only past the invalid-frame limit (seed ${SEED}, ${RUNS} runs)`, async () => {
    const h = hooks(workerUrl(), room)
    const before = { rows: await h.rows(), clients: await ledger(h) }
    let closures = 0
    const muted: Array<ProtocolClient> = []
    await fc.assert(
      fc.asyncProperty(anyCase, async (c) => {
        seen.set(c.kind, (seen.get(c.kind) ?? 0) + 1)
        const from = client.mark()
        client.send(typeof c.frame === "string" ? c.frame.replace(`"${FRESH}"`, `"${REFUSED}${++fresh}"`).replace(`"${keyOf(FRESH)}"`, `"${keyOf("fresh")}"`) : c.frame)
        const reply = await client.next(isReply, { from, what: `a reply to a ${c.kind} frame` })
        if (reply._tag === "Failure" && reply.reason === "TooManyInvalidFrames") {
          // past the limit: the connection is muted, and closed with 1008 a little later; the fuzz goes on on a new one
          expect(c.refused !== true && c.duplicate !== true, `${c.kind}: ${JSON.stringify(reply)}`).toBe(true)
          muted.push(client)
          client = await ProtocolClient.connect(roomUrl(workerUrl(), room))
          closures++
        } else if (c.duplicate === true) {
          expect(reply._tag === "Pushed" && reply.results.map((r) => r.duplicate), `${c.kind}: ${JSON.stringify(reply)}`).toEqual([true])
        } else if (c.refused === true) {
          expect(reply._tag, `${c.kind}: ${JSON.stringify(reply)}`).toBe("Pushed")
          const result = reply._tag === "Pushed" ? reply.results[0] : undefined
          expect(result !== undefined && "reason" in result && c.reasons.includes(result.reason), `${c.kind}: ${JSON.stringify(reply)}`).toBe(true)
        } else {
          expect(reply._tag, `${c.kind}: ${JSON.stringify(reply)}`).toBe("Failure")
          if (reply._tag === "Failure") {
            expect(c.reasons, `${c.kind}: ${JSON.stringify(reply)}`).toContain(reply.reason)
            expect(reply.message.length).toBeGreaterThan(0)
          }
        }
        // exactly one reply, no Change: wait a round trip with a valid no-op frame (an empty push) and look again
        if (!(reply._tag === "Failure" && reply.reason === "TooManyInvalidFrames")) {
          const probe = client.mark()
          client.send({ _tag: "Push", channel: "todos", clientId: "probe", clientKey: keyOf("probe"), actions: [] })
          await client.next((m) => m._tag === "Pushed" && m.clientId === "probe", { from: probe })
          const replies = client.messages.slice(from, probe).filter((m) => isReply(m) || m._tag === "Change")
          expect(replies, c.kind).toHaveLength(1)
          expect(client.closeEvent, c.kind).toBeUndefined()
        }
        expect(await h.rows(), c.kind).toEqual(before.rows)
        expect(await ledger(h), c.kind).toEqual(before.clients)
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: false, verbose: 1 }
    )
    expect(client.invalid).toEqual([])
    // 400 mostly invalid frames: the limit was reached, more than once, and each muted socket was then closed (1008)
    if (RUNS >= 400) expect(closures).toBeGreaterThan(1)
    for (const closed of await Promise.all(muted.map((m) => m.closed))) {
      expect(closed.code).toBe(1008)
      expect(closed.reason).toMatch(/^TooManyInvalidFrames/)
    }
    // the socket in use now serves valid frames (a socket opened during the fuzz subscribes first)
    if (closures > 0) await client.subscribe("todos", null)

    // an action by a new client, then a new subscription
    const from = client.mark()
    const ack = expectAck(await client.act({ clientId: "fz", clientKey: keyOf("fz"), seq: 1, action: create("after", "after the fuzz") }))
    expect(ack.duplicate).toBe(false)
    await client.next((m) => m._tag === "Change" && m.rows.some((r) => r[0] === "after"), { from })
    const resync = await client.subscribe("todos", null)
    expect(resync.rows.map((r) => r[0]).sort()).toEqual(["after", "other", "seed"])
    expect((await ledger(h)).map((c) => [c.client_id, c.seq]).sort()).toEqual([["fz", 1], ["seed", 3]])
  })

  it("hostile ids and texts in valid actions are stored verbatim: SQL is never built from input", async () => {
    const r = freshRoom("fuzz-sql")
    const c = await ProtocolClient.connect(roomUrl(workerUrl(), r))
    const h = hooks(workerUrl(), r)
    const hostile = ["x'); DROP TABLE todos; --", "1 OR 1=1", "\"; DELETE FROM _psync_clients; --", "sqlite_master", "🙂\u0000nul"]
    let seq = 0
    for (const text of hostile) {
      expectAck(await c.act({ clientId: "'; DROP TABLE _psync_clients; --", clientKey: keyOf("'; DROP TABLE _psync_clients; --"), seq: ++seq, action: create(text.slice(0, 64), text) }))
    }
    const rows = await h.rows()
    expect(rows.map((row) => [row[0], row[1]])).toEqual(hostile.map((t) => [t.slice(0, 64), t.trim()]))
    expect(await h.clients()).toEqual([{ client_id: "'; DROP TABLE _psync_clients; --", seq: hostile.length }])
    const sync = await c.subscribe("todos", null)
    expect(sync.rows.map((row) => row[1])).toEqual(hostile.map((t) => t.trim()))
    await c.close()
  })
})
