/**
 * Views through the real dispatch path (TestServer over node:sqlite): who may
 * subscribe, which rows each subscription sees on every path (sync answers,
 * live changes, resumes, an action's reply, refusals), rows moving in and
 * out of view, access changes, and the hostile cases: forged params,
 * another user's params, a forbidden channel, a stale cursor, forged held
 * ids, an action whose reply would reveal a hidden row.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { encodeClientMessage, type RowId } from "../../src/protocol/Protocol.ts"
import { NotAuthorized, SyncRefused } from "../../src/protocol/Errors.ts"
import * as TestServer from "../../src/testing/TestServer.ts"
import { cards, handlers, type Seen, setup, viewClient, views } from "../helpers/views.ts"

const server = Effect.gen(function*() {
  const s = yield* TestServer.make({ channels: [cards], setup, views, handlers })
  const storage = yield* s.storage
  yield* storage.raw(`INSERT INTO members (user, board) VALUES ('ann', 'b1'), ('bob', 'b1'), ('bob', 'b2'), ('cat', 'b2')`)
  return { ...s, storage }
})

const put = (id: string, board: string, owner: string, priv: number, title = id) =>
  ({ type: "put", id, board, owner, private: priv, title }) as const

const ids = (rows: ReadonlyArray<ReadonlyArray<unknown>>) => rows.map((r) => r[0])
const b1 = { board: "b1" }
const b2 = { board: "b2" }

/** Every row content and removed id that reached a client. */
const everything = (seen: ReadonlyArray<Seen>) => ({
  rows: seen.flatMap((s) => s.rows.map((r) => r[0] as RowId)),
  removed: seen.flatMap((s) => s.removed)
})

describe("views", () => {
  it.effect("two users subscribed to the same board see different rows", () =>
    Effect.gen(function*() {
      const s = yield* server
      const admin = s.connect("ann")
      yield* admin.send("cards", put("c1", "b1", "ann", 0))
      yield* admin.send("cards", put("c2", "b1", "ann", 1))
      yield* admin.send("cards", put("c3", "b2", "bob", 0))
      assert.deepStrictEqual(ids(yield* s.connect("ann").subscribe("cards", b1)), ["c1", "c2"])
      assert.deepStrictEqual(ids(yield* s.connect("bob").subscribe("cards", b1)), ["c1"])
      assert.deepStrictEqual(ids(yield* s.connect("bob").subscribe("cards", b2)), ["c3"])
    }).pipe(Effect.scoped))

  it.effect("a subscribe the channel's authorize refuses gets NotAuthorized for that subscription only", () =>
    Effect.gen(function*() {
      const s = yield* server
      const ann = s.connect("ann")
      yield* ann.send("cards", put("c1", "b1", "ann", 0))
      const refused = yield* Effect.flip(ann.subscribe("cards", b2))
      assert.instanceOf(refused, NotAuthorized)
      assert.include(refused.message, "not a member of board b2")
      const failure = ann.frames().find((m) => m._tag === "Failure")
      assert.strictEqual(failure?._tag === "Failure" ? failure.sub : undefined, `cards?{"board":"b2"}`)
      // the same socket's other subscription is unaffected
      assert.deepStrictEqual(ids(yield* ann.subscribe("cards", b1)), ["c1"])
    }).pipe(Effect.scoped))

  it.effect("forged params get InvalidParams and nothing else", () =>
    Effect.gen(function*() {
      const s = yield* server
      const bob = s.connect("bob")
      yield* bob.send("cards", put("c1", "b1", "ann", 1))
      for (const params of [{ board: 5 }, { board: "b1", extra: "' OR 1=1 --" }, "b1", null, undefined]) {
        const frames = yield* bob.sendFrame(JSON.stringify({ _tag: "Subscribe", channel: "cards", since: null, ...(params === undefined ? {} : { params }) }))
        const failure = frames.find((m) => m._tag === "Failure")
        if (params !== undefined && typeof params === "object" && params !== null && "extra" in params) {
          // extra keys are dropped by the Struct: the subscription is board b1's, which bob may read (without the private card)
          assert.isUndefined(failure)
          assert.deepStrictEqual(frames.flatMap((m) => (m._tag === "SyncRows" ? m.rows : [])), [])
          continue
        }
        assert.strictEqual(failure?._tag === "Failure" && failure.reason, "InvalidParams", JSON.stringify(params))
        assert.isFalse(frames.some((m) => m._tag === "SyncRows" || m._tag === "Synced"))
      }
      // a subscription name that does not match its params
      const frames = yield* bob.sendFrame(encodeClientMessage({ _tag: "Subscribe", channel: "cards", since: null, sub: `cards?{"board":"b2"}`, params: b1 }))
      assert.deepStrictEqual(frames.map((m) => m._tag === "Failure" && m.reason), ["InvalidParams"])
    }).pipe(Effect.scoped))

  it.effect("another user's params are refused, not answered with their rows", () =>
    Effect.gen(function*() {
      const s = yield* server
      const bob = s.connect("bob")
      yield* bob.send("cards", put("c9", "b2", "cat", 0))
      const ann = s.connect("ann")
      const refused = yield* Effect.flip(ann.subscribe("cards", b2))
      assert.instanceOf(refused, NotAuthorized)
      assert.isFalse(ann.frames().some((m) => m._tag === "SyncRows" || m._tag === "Change"))
      // live changes of b2 never reach her either
      yield* bob.send("cards", put("c10", "b2", "cat", 0))
      assert.isFalse(ann.frames().some((m) => m._tag === "SyncRows" || m._tag === "Change"))
    }).pipe(Effect.scoped))

  it.effect("one socket holds two subscriptions of a channel with different params, each fed its own rows", () =>
    Effect.gen(function*() {
      const s = yield* server
      const bob = viewClient(s.connect("bob"))
      const writer = s.connect("ann")
      yield* writer.send("cards", put("c1", "b1", "ann", 0))
      yield* bob.subscribe("cards", b1)
      yield* bob.subscribe("cards", b2)
      yield* writer.send("cards", put("c2", "b2", "bob", 0))
      yield* writer.send("cards", put("c3", "b1", "ann", 0))
      bob.drain()
      assert.deepStrictEqual(ids(bob.rows("cards", b1)), ["c1", "c3"])
      assert.deepStrictEqual(ids(bob.rows("cards", b2)), ["c2"])
    }).pipe(Effect.scoped))

  it.effect("a row made private leaves the other user's view, and its new contents never reach them", () =>
    Effect.gen(function*() {
      const s = yield* server
      const annSocket = s.connect("ann")
      const ann = viewClient(annSocket)
      const bob = viewClient(s.connect("bob"))
      yield* annSocket.send("cards", put("c1", "b1", "ann", 0, "public title"))
      yield* ann.subscribe("cards", b1)
      yield* bob.subscribe("cards", b1)
      assert.deepStrictEqual(ids(bob.rows("cards", b1)), ["c1"])
      yield* annSocket.send("cards", put("c1", "b1", "ann", 1, "secret title"))
      const seen = bob.drain()
      assert.deepStrictEqual(everything(seen), { rows: [], removed: ["c1"] })
      assert.deepStrictEqual(bob.rows("cards", b1), [])
      assert.deepStrictEqual(ann.rows("cards", b1), [["c1", "b1", "ann", 1, "secret title", null]])
      // hidden before and after: no frame at all
      yield* annSocket.send("cards", put("c1", "b1", "ann", 1, "still secret"))
      assert.deepStrictEqual(bob.drain(), [])
      yield* annSocket.send("cards", { type: "purge", id: "c1" })
      assert.deepStrictEqual(bob.drain(), [])
      // made public: it enters the view
      yield* annSocket.send("cards", put("c1", "b1", "ann", 0, "public again"))
      assert.deepStrictEqual(everything(bob.drain()), { rows: ["c1"], removed: [] })
      assert.deepStrictEqual(ids(bob.rows("cards", b1)), ["c1"])
      // deleted while visible: removed
      yield* annSocket.send("cards", { type: "purge", id: "c1" })
      assert.deepStrictEqual(everything(bob.drain()), { rows: [], removed: ["c1"] })
    }).pipe(Effect.scoped))

  it.effect("an action that writes a row its author cannot read is applied without the row", () =>
    Effect.gen(function*() {
      const s = yield* server
      const bobSocket = s.connect("bob")
      const bob = viewClient(bobSocket)
      yield* bob.subscribe("cards", b1)
      const rows = yield* bobSocket.send("cards", put("c1", "b1", "ann", 1, "ann's secret"))
      assert.deepStrictEqual(rows, [])
      const frames = bobSocket.frames()
      assert.notInclude(JSON.stringify(frames), "ann's secret")
      // no row or removal names it (the frames' own text may hold "c1" by chance: a history is random hex)
      const named = frames.flatMap((m) => (m._tag === "SyncRows" || m._tag === "Change" ? [...m.rows.map((r) => r[0]), ...m.deleted] : []))
      assert.notInclude(named, "c1")
      // ann owns it and sees it
      assert.deepStrictEqual(ids(yield* s.connect("ann").subscribe("cards", b1)), ["c1"])
      // a row it can read comes back as usual
      assert.deepStrictEqual(ids(yield* bobSocket.send("cards", put("c2", "b1", "bob", 1))), ["c2"])
      // without a subscription to the channel its author reads none of it
      assert.deepStrictEqual(yield* s.connect("bob").send("cards", put("c3", "b1", "bob", 0)), [])
    }).pipe(Effect.scoped))

  it.effect("a refused action's message in a view channel names no row and no value", () =>
    Effect.gen(function*() {
      const s = yield* server
      const ann = s.connect("ann")
      yield* ann.send("cards", put("c1", "b1", "ann", 1, "ann's secret"))
      const bob = s.connect("bob")
      yield* bob.subscribe("cards", b1)
      const refused = yield* Effect.flip(bob.send("cards", { type: "corrupt", id: "c1" }))
      assert.strictEqual(refused._tag, "HandlerFailed")
      assert.notInclude(refused.message, "c1")
      assert.include(refused.message, "does not match the channel's record")
    }).pipe(Effect.scoped))

  it.effect("a resume removes the held rows that left the view while away, and sends no hidden row", () =>
    Effect.gen(function*() {
      const s = yield* server
      const annSocket = s.connect("ann")
      for (const id of ["c1", "c2", "c3"]) yield* annSocket.send("cards", put(id, "b1", "ann", 0))
      const away = viewClient(s.connect("bob"))
      yield* away.subscribe("cards", b1)
      assert.deepStrictEqual(ids(away.rows("cards", b1)), ["c1", "c2", "c3"])
      yield* away.unsubscribe("cards", b1)
      away.drain()
      // while bob is away: c1 made private, c2 deleted, c3 edited, c4 created private, c5 created public
      yield* annSocket.send("cards", put("c1", "b1", "ann", 1, "secret"))
      yield* annSocket.send("cards", { type: "purge", id: "c2" })
      yield* annSocket.send("cards", put("c3", "b1", "ann", 0, "edited"))
      yield* annSocket.send("cards", put("c4", "b1", "ann", 1, "secret too"))
      yield* annSocket.send("cards", put("c5", "b1", "ann", 0, "new"))
      const back = viewClient(s.connect("bob"))
      back.adopt(away)
      const seen = yield* back.subscribe("cards", b1)
      const synced = back.held("cards", b1)
      assert.isTrue(synced.view)
      assert.deepStrictEqual(everything(seen), { rows: ["c3", "c5"], removed: ["c1", "c2"] })
      assert.deepStrictEqual(back.rows("cards", b1), [["c3", "b1", "ann", 0, "edited", null], ["c5", "b1", "ann", 0, "new", null]])
    }).pipe(Effect.scoped))

  it.effect("forged held ids get the same answer whether the row is hidden or never was", () =>
    Effect.gen(function*() {
      const s = yield* server
      const ann = s.connect("ann")
      yield* ann.send("cards", put("c1", "b1", "ann", 1, "secret"))
      yield* ann.send("cards", put("c2", "b1", "ann", 0))
      const bob = s.connect("bob")
      yield* bob.subscribe("cards", b1)
      const synced = bob.frames().find((m) => m._tag === "Synced")!
      assert(synced._tag === "Synced")
      const probe = (id: string) =>
        Effect.map(
          s.connect("bob").sendFrame(encodeClientMessage({
            _tag: "Subscribe",
            channel: "cards",
            since: synced.version,
            history: synced.history,
            sub: `cards?{"board":"b1"}`,
            params: b1,
            held: [id]
          })),
          (frames) => frames.map((m) => (m._tag === "SyncRows" ? { rows: m.rows, deleted: m.deleted.map(() => "<id>") } : m._tag))
        )
      assert.deepStrictEqual(yield* probe("c1"), yield* probe("nope"))
      assert.deepStrictEqual(yield* probe("c1"), [{ rows: [], deleted: ["<id>"] }, "Synced"])
    }).pipe(Effect.scoped))

  it.effect("a cursor from before access was lost is refused, or answered under the new rule", () =>
    Effect.gen(function*() {
      const s = yield* server
      const ann = s.connect("ann")
      yield* ann.send("cards", put("c1", "b1", "ann", 1, "shared secret"))
      yield* ann.send("cards", put("c2", "b1", "ann", 0))
      yield* s.storage.raw(`INSERT INTO shares (card, user) VALUES ('c1', 'bob')`)
      const away = viewClient(s.connect("bob"))
      yield* away.subscribe("cards", b1)
      assert.deepStrictEqual(ids(away.rows("cards", b1)), ["c1", "c2"])
      yield* away.unsubscribe("cards", b1)
      // the share is revoked while bob is away (no connection of his is open to refresh)
      yield* s.storage.raw(`DELETE FROM shares WHERE user = 'bob'`)
      yield* ann.send("cards", put("c1", "b1", "ann", 1, "new secret"))
      const back = viewClient(s.connect("bob"))
      back.adopt(away)
      const seen = yield* back.subscribe("cards", b1)
      assert.deepStrictEqual(everything(seen), { rows: [], removed: ["c1"] })
      assert.notInclude(JSON.stringify(seen), "new secret")
      assert.isFalse(back.held("cards", b1).history === away.held("cards", b1).history)
      assert.deepStrictEqual(ids(back.rows("cards", b1)), ["c2"])
      // membership revoked: the subscription is refused outright
      yield* s.storage.raw(`DELETE FROM members WHERE user = 'bob'`)
      yield* back.unsubscribe("cards", b1)
      const again = viewClient(s.connect("bob"))
      again.adopt(back)
      yield* again.subscribe("cards", b1)
      assert.deepStrictEqual(again.failures.map((f) => f.reason), ["NotAuthorized"])
    }).pipe(Effect.scoped))

  it.effect("refreshAccess resyncs the changed principal's subscriptions: rows added and removed without a reset", () =>
    Effect.gen(function*() {
      const s = yield* server
      const annSocket = s.connect("ann")
      yield* annSocket.send("cards", put("c1", "b1", "ann", 1, "secret"))
      yield* annSocket.send("cards", put("c2", "b1", "ann", 0))
      const bobSocket = s.connect("bob")
      const bob = viewClient(bobSocket)
      const ann = viewClient(annSocket)
      yield* bob.subscribe("cards", b1)
      yield* ann.subscribe("cards", b1)
      yield* s.storage.raw(`INSERT INTO shares (card, user) VALUES ('c1', 'bob')`)
      assert.strictEqual(yield* s.refreshAccess((p) => p === "bob"), 1)
      bob.drain()
      assert.isTrue(bob.held("cards", b1).resync)
      assert.isFalse(ann.held("cards", b1).resync)
      const seen = yield* bob.subscribe("cards", b1)
      assert.deepStrictEqual(everything(seen), { rows: ["c1"], removed: [] })
      const shared = bob.held("cards", b1).history
      assert.deepStrictEqual(ids(bob.rows("cards", b1)), ["c1", "c2"])
      const synced = bobSocket.frames().filter((m) => m._tag === "Synced").map((m) => m._tag === "Synced" && m.reset)
      assert.deepStrictEqual(synced, [true, false])
      assert.isFalse(
        s.connect("bob").frames().length > 0,
        "a fresh connection was sent nothing"
      )
      // nothing changed for bob: nothing to resync
      assert.strictEqual(yield* s.refreshAccess(), 0)
      yield* s.storage.raw(`DELETE FROM shares`)
      assert.strictEqual(yield* s.refreshAccess(), 1)
      bob.drain()
      const removed = yield* bob.subscribe("cards", b1)
      assert.deepStrictEqual(everything(removed), { rows: [], removed: ["c1"] })
      assert.deepStrictEqual(ids(bob.rows("cards", b1)), ["c2"])
      assert.notStrictEqual(bob.held("cards", b1).history, shared)
      // while told to resync, a subscription gets no live changes
      yield* s.storage.raw(`INSERT INTO shares (card, user) VALUES ('c1', 'bob')`)
      yield* s.refreshAccess()
      bob.drain()
      yield* annSocket.send("cards", put("c2", "b1", "ann", 0, "edited"))
      assert.deepStrictEqual(bob.drain(), [])
    }).pipe(Effect.scoped))

  it.effect("a connection that cannot hold another subscription is refused TooManySubscriptions", () =>
    Effect.gen(function*() {
      const s = yield* server
      const boards = Array.from({ length: 40 }, (_, i) => `board-with-a-rather-long-name-${i}`)
      yield* s.storage.raw(`INSERT INTO members (user, board) VALUES ${boards.map((b) => `('dan', '${b}')`).join(", ")}`)
      const dan = s.connect("dan")
      const outcomes: Array<string> = []
      for (const board of boards) {
        outcomes.push(yield* dan.subscribe("cards", { board }).pipe(Effect.as("ok"), Effect.catch((e) => Effect.succeed(e instanceof SyncRefused ? e.reason : e._tag))))
      }
      assert.include(outcomes, "TooManySubscriptions")
      assert.strictEqual(outcomes.indexOf("TooManySubscriptions"), outcomes.lastIndexOf("ok") + 1)
    }).pipe(Effect.scoped))
})
