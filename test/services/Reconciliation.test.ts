/**
 * Reconciliation over node:sqlite: capture from any code path, versions,
 * histories, delta vs reset answers, GC (tombstones, the log horizon,
 * compaction, idle clients) and the client ledger (keys, decisions,
 * refusals that stay refused).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { SyncRows } from "../../src/protocol/Protocol.ts"
import type { PreparedAction, PreparedPush } from "../../src/services/Batch.ts"
import { ActionRejected } from "../../src/services/Errors.ts"
import { initialState } from "../../src/services/Connections.ts"
import { MARK_EVERY, Reconciliation } from "../../src/services/Reconciliation.ts"
import { Storage } from "../../src/services/Storage.ts"
import { defaultOptions } from "../../src/services/SyncConfig.ts"
import { makeMemoryConnection } from "../../src/testing/MemoryConnections.ts"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { changesOf, decodedFrames } from "../helpers/memory.ts"
import { servicesLayer, TODO_TABLE } from "../helpers/services.ts"

const DAY = 24 * 60 * 60 * 1000

const insertRow = (id: string, deletedAt: number | null = null) =>
  Storage.use((sql) =>
    sql.raw("INSERT INTO todos (id, text, completed, created_at, updated_at, deleted_at) VALUES (?, ?, 0, 1, 1, ?)", id, `text ${id}`, deletedAt)
  )
const exec = (statement: string, ...params: Array<string | number | null>) => Storage.use((sql) => sql.raw(statement, ...params))

/** A fresh database with one connection that subscribes in the test. */
const withRoom = <A, E>(body: (watcher: ReturnType<typeof makeMemoryConnection>) => Effect.Effect<A, E, Reconciliation | Storage>) => {
  const watcher = makeMemoryConnection("watcher")
  return body(watcher).pipe(Effect.provide(servicesLayer({ connections: [watcher] })))
}

/** Subscribes a new connection from a cursor and returns its decoded sync answer. */
const sync = (since: number | null, history?: string) =>
  Effect.gen(function*() {
    const r = yield* Reconciliation
    const connection = makeMemoryConnection("syncer")
    const result = yield* r.subscribe(connection, todos, { since: since, history: history ?? r.history(), sub: "todos", params: undefined, held: undefined })
    const frames = decodedFrames(connection)
    const chunks = frames.filter((m): m is SyncRows => m._tag === "SyncRows")
    const last = frames[frames.length - 1]!
    assert.strictEqual(last._tag, "Synced")
    return {
      ...result,
      synced: last,
      ids: chunks.flatMap((c) => c.rows.map((row) => row[0])),
      rows: chunks.flatMap((c) => c.rows),
      deleted: chunks.flatMap((c) => c.deleted)
    }
  })

/** An action that inserts a row, one that is refused by its handler, one refused before it runs. */
const inserts = (seq: number, id: string): PreparedAction<Storage> => ({ seq, run: insertRow(id) })
const rejected = (seq: number, message: string): PreparedAction<Storage> => ({ seq, run: Effect.andThen(insertRow(`r${seq}`), Effect.fail(new ActionRejected({ message }))) })
const notAuthorized = (seq: number): PreparedAction<Storage> => ({ seq, refused: { reason: "NotAuthorized", message: "no" } })

/** Decides a push of `clientId` through Reconciliation, as dispatch does. */
const decide = (
  clientId: string,
  actions: ReadonlyArray<PreparedAction<Storage>>,
  extra: Partial<Omit<PreparedPush<Storage>, "actions" | "clientId">> = {}
) =>
  Effect.gen(function*() {
    const r = yield* Reconciliation
    return yield* r.exclusive(r.decide({
      channel: todos,
      clientId,
      clientKey: `key-of-${clientId}-0123456789`,
      principal: null,
      confirmed: undefined,
      skip: undefined,
      ...extra,
      actions
    }, makeMemoryConnection("pusher")))
  })

/** A decided batch's outcomes as `seq:outcome` (`seq:ids` applied, `seq:Reason` refused); a refused push as its reason. */
const outcomes = (decided: { readonly _tag: string; readonly results?: ReadonlyArray<unknown>; readonly failure?: { readonly reason: string } }) =>
  decided._tag === "Refused"
    ? decided.failure!.reason
    : (decided.results as ReadonlyArray<{ seq: number; rows?: ReadonlyArray<ReadonlyArray<unknown>>; reason?: string }>).map((r) =>
      `${r.seq}:${r.reason ?? r.rows!.map((row) => row[0]).join(",")}`
    )

/** How many entries the change log holds. */
const logSize = Effect.map(exec("SELECT count(*) FROM _psync_log"), (rows) => Number(rows[0]?.[0]))

/** 100 rows, then `rounds` writes to them, each to the next row in a stride: the most entries the log held. */
const largestLog = <E>(rounds: number, write: (id: string, i: number) => Effect.Effect<unknown, E, Reconciliation | Storage>) =>
  Effect.gen(function*() {
    const r = yield* Reconciliation
    for (let i = 0; i < 100; i++) yield* r.write(insertRow(`r${i}`))
    let most = 0
    for (let i = 0; i < rounds; i++) {
      yield* write(`r${(i * 7) % 100}`, i)
      yield* r.compacted
      most = Math.max(most, yield* logSize)
    }
    return most
  })

const ledgerRow = (clientId: string) => exec("SELECT seq, outcomes FROM _psync_clients WHERE client_id = ?", clientId)

describe("Reconciliation: capture and versions", () => {
  it.effect("triggers capture inserts, updates and hard deletes made with plain SQL outside write", () =>
    withRoom((watcher) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.subscribe(watcher, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined })
        watcher.sent.length = 0
        yield* insertRow("a")
        yield* r.flush
        yield* exec("UPDATE todos SET text = 'changed' WHERE id = 'a'")
        yield* r.flush
        yield* exec("DELETE FROM todos WHERE id = 'a'")
        yield* r.flush
        const changes = changesOf(watcher)
        assert.deepStrictEqual(changes.map((c) => [c.rows.map((row) => row.slice(0, 2)), c.deleted]), [
          [[["a", "text a"]], []],
          [[["a", "changed"]], []],
          [[], ["a"]]
        ])
        assert.deepStrictEqual(changes.map((c) => c.version), [1, 2, 3])
        assert.strictEqual(yield* r.version, 3)
      })))

  it.effect("an update that changes a row's id reports the old id as deleted", () =>
    withRoom((watcher) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* insertRow("old")
        yield* r.subscribe(watcher, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined })
        watcher.sent.length = 0
        yield* r.write(exec("UPDATE todos SET id = 'new' WHERE id = 'old'"))
        const [change] = changesOf(watcher)
        assert.deepStrictEqual(change!.deleted, ["old"])
        assert.deepStrictEqual(change!.rows.map((row) => row[0]), ["new"])
      })))

  it.effect("versions increase by one per row change, across writes and transactions; a row changed twice is sent once", () =>
    withRoom((watcher) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.subscribe(watcher, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined })
        watcher.sent.length = 0
        const seen: Array<number> = [yield* r.version]
        for (const id of ["a", "b"]) seen.push((yield* r.write(insertRow(id))).version)
        seen.push((yield* r.write(Effect.all([insertRow("c"), insertRow("d"), exec("UPDATE todos SET text = 'c2' WHERE id = 'c'")]))).version)
        assert.deepStrictEqual(seen, [0, 1, 2, 5])
        const last = changesOf(watcher).at(-1)!
        assert.deepStrictEqual(last.rows.map((row) => row.slice(0, 2)), [["d", "text d"], ["c", "c2"]])
      })))

  it.effect("a failed write publishes nothing and leaves the version where it was", () =>
    withRoom((watcher) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.subscribe(watcher, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined })
        watcher.sent.length = 0
        const exit = yield* Effect.exit(r.write(Effect.andThen(insertRow("x"), Effect.fail("no"))))
        assert.strictEqual(exit._tag, "Failure")
        assert.strictEqual(yield* r.version, 0)
        yield* r.flush
        assert.deepStrictEqual(watcher.sent, [])
        // the rolled-back version is taken by the next write, which is published
        yield* r.write(insertRow("y"))
        assert.deepStrictEqual(changesOf(watcher).map((c) => [c.version, c.rows.map((row) => row[0])]), [[1, ["y"]]])
      })))

  it.effect("a captured row that does not match the record Schema fails the write and names the column", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const exit = yield* Effect.exit(r.write(exec("INSERT INTO todos VALUES ('bad', 'text', 7, 1, 1, NULL, 1)")))
        assert.strictEqual(exit._tag, "Failure")
        const error = exit._tag === "Failure" ? String(JSON.stringify(exit.cause)) : ""
        assert.include(error, "InvalidRecord")
        assert.include(error, "column completed")
        assert.deepStrictEqual(yield* exec("SELECT id FROM todos"), [])
      })))
})

describe("Reconciliation: sync answers and histories", () => {
  it.effect("subscribe without a cursor gets a reset with live rows only; with a cursor, the delta incl. tombstones", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(Effect.all([insertRow("a"), insertRow("b"), insertRow("c")]))
        const cursor = yield* r.version
        yield* r.write(exec("UPDATE todos SET text = 'b2' WHERE id = 'b'"))
        yield* r.write(exec("UPDATE todos SET deleted_at = 5 WHERE id = 'c'"))
        yield* r.write(exec("DELETE FROM todos WHERE id = 'a'"))
        yield* r.write(insertRow("d"))

        const full = yield* sync(null)
        assert.isTrue(full.reset)
        assert.deepStrictEqual(full.ids.sort(), ["b", "d"])
        assert.deepStrictEqual(full.deleted, [])
        assert.strictEqual(full.version, yield* r.version)
        assert.deepStrictEqual(full.synced, { _tag: "Synced", channel: "todos", version: full.version, reset: true, history: r.history() })

        const delta = yield* sync(cursor)
        assert.isFalse(delta.reset)
        assert.deepStrictEqual(delta.ids, ["b", "c", "d"]) // in version order
        assert.strictEqual(delta.rows.find((row) => row[0] === "c")![6], 5) // the tombstone travels
        assert.deepStrictEqual(delta.deleted, ["a"])

        const none = yield* sync(yield* r.version)
        assert.isFalse(none.reset)
        assert.deepStrictEqual([none.ids, none.deleted], [[], []])
      })))

  it.effect("a cursor from another history, without one, or newer than the object gets a reset", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(Effect.all([insertRow("a"), insertRow("b")]))
        assert.match(r.history(), /^[0-9a-f]{16}$/)
        for (const [since, history] of [[1, "0123456789abcdef"], [1, undefined], [50, r.history()]] as const) {
          const answer = yield* Effect.gen(function*() {
            const connection = makeMemoryConnection("other")
            const result = yield* r.subscribe(connection, todos, { since: since, history: history, sub: "todos", params: undefined, held: undefined })
            return { result, ids: decodedFrames(connection).flatMap((m) => m._tag === "SyncRows" ? m.rows.map((row) => row[0]) : []) }
          })
          assert.isTrue(answer.result.reset, `since ${since} in ${history}`)
          assert.deepStrictEqual(answer.ids.sort(), ["a", "b"])
        }
      })))

  it.effect("rows that existed before the first install are part of a reset", () => {
    const connection = makeMemoryConnection("c", initialState)
    return Effect.gen(function*() {
      const result = yield* sync(null)
      assert.deepStrictEqual(result.ids, ["pre"])
      assert.strictEqual(result.version, 0)
    }).pipe(Effect.provide(servicesLayer({
      connections: [connection],
      setup: [TODO_TABLE, "INSERT INTO todos VALUES ('pre', 'before install', 0, 1, 1, NULL, 1)"]
    })))
  })

  it.effect("a row that does not match the record is logged at every full sync until it is fixed, from before install or written later", () => {
    const logged: Array<string> = []
    const logger = Logger.layer([Logger.make(({ message }) => {
      logged.push((Array.isArray(message) ? message : [message]).join(" "))
    })])
    const about = (id: string) => logged.filter((m) => m.includes(`todos row "${id}"`)).length
    return Effect.gen(function*() {
      yield* sync(null)
      assert.strictEqual(about("pre"), 1)
      yield* sync(null)
      assert.strictEqual(about("pre"), 2)
      yield* exec("UPDATE todos SET completed = 1 WHERE id = 'pre'")
      yield* sync(null)
      yield* sync(null)
      assert.strictEqual(about("pre"), 2)
      // broken again by plain SQL after full syncs found the table valid
      yield* exec("UPDATE todos SET completed = 7 WHERE id = 'pre'")
      yield* sync(null)
      const once = about("pre")
      assert.isAbove(once, 2)
      yield* sync(null)
      assert.isAbove(about("pre"), once)
    }).pipe(
      Effect.provide(servicesLayer({ connections: [], setup: [TODO_TABLE, "INSERT INTO todos VALUES ('pre', 'before install', 5, 1, 1, NULL, 1)"] })),
      Effect.provide(logger)
    )
  })
})

/** Runs `before`, then `after` on the same database file (a restart of the object). */
const restart = <A, B>(
  before: Effect.Effect<A, unknown, Reconciliation | Storage>,
  after: (a: A) => Effect.Effect<B, unknown, Reconciliation | Storage>,
  options: { readonly connections?: ReadonlyArray<ReturnType<typeof makeMemoryConnection>>; readonly setupAfter?: ReadonlyArray<string> } = {}
) => {
  const dir = mkdtempSync(join(tmpdir(), "psync-recon-"))
  const path = join(dir, "db.sqlite")
  return Effect.flatMap(
    before.pipe(Effect.provide(servicesLayer({ connections: [], path }))),
    (a) =>
      after(a).pipe(Effect.provide(servicesLayer({
        connections: [...(options.connections ?? [])],
        path,
        ...(options.setupAfter === undefined ? {} : { setup: options.setupAfter })
      })))
  ).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
}

describe("Reconciliation: restarts", () => {
  it.effect("a restart keeps the history and the versions, and does not rewrite the triggers", () =>
    restart(
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(insertRow("a"))
        return r.history()
      }),
      (history) =>
        Effect.gen(function*() {
          const r = yield* Reconciliation
          const report = yield* r.install
          assert.isFalse(report.newHistory)
          assert.strictEqual(r.history(), history)
          // every event publishes before it serves anything: the first one finds the versions where they were
          yield* r.flush
          assert.strictEqual(yield* r.version, 1)
          const triggers = yield* exec("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
          assert.deepStrictEqual(triggers.map((row) => row[0]), ["_psync_todos_delete", "_psync_todos_insert", "_psync_todos_update"])
          assert.strictEqual((yield* r.write(insertRow("b"))).version, 2)
        })
    ))

  it.effect("changes committed but not published before a restart are published after it, with their current values", () => {
    // a connection that stayed subscribed through the restart (a hibernated socket keeps its state)
    const survivor = makeMemoryConnection("survivor", { ...initialState, channels: ["todos"] })
    return restart(
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(exec("INSERT INTO todos VALUES ('sent', 's', 0, 1, 1, NULL, 1)"))
        // committed by code that never flushed, then the object went away
        yield* exec("INSERT INTO todos VALUES ('unsent', 'u', 0, 1, 1, NULL, 1)")
      }),
      () =>
        Effect.gen(function*() {
          const r = yield* Reconciliation
          yield* r.flush
          // 'sent' comes again (the stored mark lags behind actions), in the same frame, at the frame's version:
          // a client that had it skips nothing it lacks, and one at version 2 skips the whole frame
          assert.deepStrictEqual(changesOf(survivor).map((c) => [c.version, c.rows.map((row) => row[0])]), [[2, ["sent", "unsent"]]])
          yield* r.flush
          assert.strictEqual(changesOf(survivor).length, 1)
        }),
      { connections: [survivor] }
    )
  })

  it.effect(`actions store the published mark once per ${MARK_EVERY} versions: a restart publishes at most that many again`, () => {
    const survivor = makeMemoryConnection("survivor", { ...initialState, channels: ["todos"] })
    const actions = MARK_EVERY + 6
    return restart(
      Effect.gen(function*() {
        const r = yield* Reconciliation
        for (let i = 1; i <= actions; i++) yield* r.write(insertRow(`r${i}`))
        return yield* exec("SELECT value FROM _psync_meta WHERE key = 'published'")
      }),
      (storedBefore) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(storedBefore, [[MARK_EVERY]])
          const r = yield* Reconciliation
          yield* r.flush
          const frames = changesOf(survivor)
          assert.deepStrictEqual(frames.map((c) => c.version), [actions])
          assert.deepStrictEqual(frames[0]!.rows.map((row) => row[0]), Array.from({ length: 6 }, (_, i) => `r${MARK_EVERY + 1 + i}`))
          // a flush stores the mark it reached
          assert.deepStrictEqual(yield* exec("SELECT value FROM _psync_meta WHERE key = 'published'"), [[actions]])
        }),
      { connections: [survivor] }
    )
  })

  it.effect("a table rebuilt without its triggers (a migration) starts a new history: old cursors reset", () =>
    restart(
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(Effect.all([insertRow("a"), insertRow("b")]))
        return { history: r.history(), version: yield* r.version }
      }),
      (before) =>
        Effect.gen(function*() {
          const r = yield* Reconciliation
          assert.notStrictEqual(r.history(), before.history)
          const answer = yield* sync(before.version, before.history)
          assert.isTrue(answer.reset)
          assert.deepStrictEqual(answer.ids.sort(), ["a", "c"])
        }),
      {
        // the rebuild ran before capture was installed again, as a migration on wake does
        setupAfter: [
          "CREATE TABLE todos_new AS SELECT * FROM todos WHERE id = 'a'",
          "DROP TABLE todos",
          TODO_TABLE,
          "INSERT INTO todos SELECT * FROM todos_new",
          "INSERT INTO todos VALUES ('c', 'added while capture was gone', 0, 1, 1, NULL, 1)",
          "DROP TABLE todos_new"
        ]
      }
    ))

  it.effect("a storage wiped and written again passes the old cursor, but the old history gets a reset", () =>
    restart(
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(insertRow("old"))
        return { history: r.history(), version: yield* r.version }
      }),
      (before) =>
        Effect.gen(function*() {
          const r = yield* Reconciliation
          for (const id of ["n1", "n2", "n3"]) yield* r.write(insertRow(id))
          assert.isAbove(yield* r.version, before.version)
          const answer = yield* sync(before.version, before.history)
          assert.isTrue(answer.reset)
          assert.deepStrictEqual(answer.ids, ["n1", "n2", "n3"])
        }),
      { setupAfter: ["DROP TABLE IF EXISTS todos", ...["_psync_meta", "_psync_log", "_psync_channels", "_psync_checkpoints", "_psync_clients", "_psync_refused"].map((t) => `DROP TABLE IF EXISTS ${t}`), TODO_TABLE] }
    ))

  it.effect("an object from the first release (the _psync_changes table) starts a new history and drops the old tables", () =>
    Effect.gen(function*() {
      const r = yield* Reconciliation
      const tables = (yield* exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_psync%' ESCAPE '\\' ORDER BY name")).map((row) => row[0])
      assert.notInclude(tables, "_psync_changes")
      const answer = yield* sync(3, "anything")
      assert.isTrue(answer.reset)
      assert.deepStrictEqual(answer.ids, ["kept"])
      assert.strictEqual(r.history().length, 16)
    }).pipe(Effect.provide(servicesLayer({
      connections: [],
      setup: [
        TODO_TABLE,
        "INSERT INTO todos VALUES ('kept', 'k', 0, 1, 1, NULL, 1)",
        "CREATE TABLE _psync_meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)",
        "INSERT INTO _psync_meta VALUES ('version', 3), ('horizon', 0), ('published', 3)",
        "CREATE TABLE _psync_changes (channel TEXT NOT NULL, id NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL, PRIMARY KEY (channel, id))",
        "CREATE TABLE _psync_clients (client_id TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL, applied INTEGER NOT NULL DEFAULT 0)"
      ]
    }))))
})

describe("Reconciliation: GC", () => {
  it.effect("GC purges old tombstones without publishing; a cursor from before the soft delete still learns of it", () =>
    withRoom((watcher) =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const now = 100 * DAY
        yield* r.write(Effect.all([insertRow("live"), insertRow("old"), insertRow("young")]))
        const before = yield* r.version
        yield* r.write(exec("UPDATE todos SET deleted_at = ? WHERE id = 'old'", now - 8 * DAY))
        yield* r.write(exec("UPDATE todos SET deleted_at = ? WHERE id = 'young'", now - 1 * DAY))
        yield* r.subscribe(watcher, todos, { since: null, history: undefined, sub: "todos", params: undefined, held: undefined })
        watcher.sent.length = 0

        const result = yield* r.gc(now)
        assert.strictEqual(result.purged, 1)
        assert.deepStrictEqual((yield* exec("SELECT id FROM todos ORDER BY id")).map((row) => row[0]), ["live", "young"])
        assert.deepStrictEqual(watcher.sent, [])

        const old = yield* sync(before)
        assert.isFalse(old.reset)
        assert.deepStrictEqual(old.deleted, ["old"])
        assert.deepStrictEqual(old.ids, ["young"])
        // later writes continue above everything published
        const next = yield* r.write(insertRow("next"))
        assert.strictEqual(next.version, before + 3)
      })))

  it.effect("the horizon follows the retention: log entries older than it (hard deletes too) are dropped and older cursors reset", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const t0 = 100 * DAY
        yield* r.write(Effect.all([insertRow("a"), insertRow("b")]))
        yield* r.write(exec("DELETE FROM todos WHERE id = 'a'"))
        const early = yield* r.version // 3
        assert.deepStrictEqual(yield* r.gc(t0), { purged: 0, horizon: 0, clientsPruned: 0 })
        yield* r.write(insertRow("c"))
        // a day later nothing is older than the retention yet
        assert.strictEqual((yield* r.gc(t0 + DAY)).horizon, 0)
        assert.isFalse((yield* sync(1)).reset)
        // past the retention, the checkpoint of t0 becomes the horizon
        const gc = yield* r.gc(t0 + defaultOptions.tombstoneRetentionMs + DAY / 2)
        assert.strictEqual(gc.horizon, early)
        const log = (yield* exec("SELECT version, id, deleted FROM _psync_log ORDER BY version")).map((row) => row.join(":"))
        assert.deepStrictEqual(log, ["4:c:0"])
        const stale = yield* sync(1)
        assert.isTrue(stale.reset)
        assert.deepStrictEqual(stale.ids.sort(), ["b", "c"])
        const fresh = yield* sync(early)
        assert.isFalse(fresh.reset)
        assert.deepStrictEqual(fresh.ids, ["c"])
      })))

  it.effect("GC compacts the log to one entry per row; deltas stay the same", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(insertRow("a"))
        for (let i = 0; i < 20; i++) yield* r.write(exec("UPDATE todos SET text = ? WHERE id = 'a'", `v${i}`))
        const beforeGc = yield* sync(0)
        yield* r.gc(100 * DAY)
        assert.deepStrictEqual(yield* exec("SELECT count(*) FROM _psync_log"), [[1]])
        const afterGc = yield* sync(0)
        assert.deepStrictEqual(afterGc.rows, beforeGc.rows)
        assert.deepStrictEqual(afterGc.rows.map((row) => row[1]), ["v19"])
      })))

  it.effect("between GCs the log keeps at most an eighth more entries than rows (plus a slack): a resume after many writes to few rows reads about what changed", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const most = yield* largestLog(2_000, (id, i) => r.write(exec("UPDATE todos SET text = ? WHERE id = ?", `v${i}`, id)))
        // an eighth of 100 kept, the slack of 4, and the newest entry a compaction spares
        assert.isAtMost(most, 100 + 12 + 4 + 1)
        const resume = yield* sync(0)
        assert.strictEqual(resume.rows.length, 100)
      })))

  it.effect("a log that only grows with new rows is never read for a compaction: it holds nothing to drop", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const logKept = exec("SELECT value FROM _psync_meta WHERE key = 'log_kept'")
        for (let i = 0; i < 200; i++) {
          yield* r.write(insertRow(`n${i}`))
          yield* r.compacted
        }
        assert.deepStrictEqual(yield* logKept, [])
        assert.deepStrictEqual(yield* exec("SELECT count(*) FROM _psync_log"), [[200]])
        // updates count: with nothing kept yet, the fifth makes a compaction due, and it keeps all 200
        for (let i = 0; i < 30; i++) {
          yield* r.write(exec("UPDATE todos SET text = ? WHERE id = ?", `v${i}`, `n${i}`))
          yield* r.compacted
        }
        assert.deepStrictEqual(yield* logKept, [[200]])
      })))

  it.effect("a delete and a re-insert of the same id leave two older entries behind, and both count: the log stays within an eighth of its rows", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        const most = yield* largestLog(500, (id) => Effect.andThen(r.write(exec("DELETE FROM todos WHERE id = ?", id)), r.write(insertRow(id))))
        // as with updates: an eighth of 100 kept, the slack of 4, and the newest entry a compaction spares
        assert.isAtMost(most, 100 + 12 + 4 + 1)
        assert.strictEqual((yield* sync(0)).rows.length, 100)
      })))

  it.effect("updates published while nobody receives their channel still make a compaction due", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        for (let i = 0; i < 100; i++) yield* insertRow(`r${i}`)
        yield* r.flush
        let most = 0
        for (let i = 0; i < 1_000; i++) {
          // plain SQL, then a flush: with no subscriber, the flush publishes the versions without reading the rows
          yield* exec("UPDATE todos SET text = ? WHERE id = ?", `v${i}`, `r${(i * 7) % 100}`)
          yield* r.flush
          yield* r.compacted
          most = Math.max(most, yield* logSize)
        }
        assert.isAtMost(most, 100 + 12 + 4 + 1)
      })))

  it.effect("a compaction runs after the write that made it due, in a turn of its own: that write's answer does not wait for it", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* r.write(insertRow("a"))
        // past the slack of 4 (nothing kept yet), and more: none of it waits for the compaction
        for (let i = 0; i < 9; i++) yield* r.write(exec("UPDATE todos SET text = ? WHERE id = 'a'", `v${i}`))
        assert.strictEqual(yield* logSize, 10)
        // nothing else happens in the room: the compaction runs by itself
        yield* r.compacted
        assert.strictEqual(yield* logSize, 1)
        assert.deepStrictEqual((yield* sync(0)).rows.map((row) => row[1]), ["v8"])
      })))
})

describe("Reconciliation: the client ledger", () => {
  it.effect("a client's actions are decided in order, one batch in one write; a re-send gets its first outcome; one past the next waits", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const first = yield* decide("c1", [inserts(1, "a"), inserts(2, "b"), inserts(3, "c")])
        assert.deepStrictEqual(outcomes(first), ["1:a", "2:b", "3:c"])
        assert.strictEqual(first._tag === "Decided" && first.next, 4)
        assert.deepStrictEqual((yield* ledgerRow("c1")).map((row) => row[0]), [3])
        // a re-send of 2..3 and the new 4: the first two answered from the ledger, 4 applied
        const again = yield* decide("c1", [inserts(2, "b-again"), inserts(3, "c-again"), inserts(4, "d")])
        assert.deepStrictEqual(outcomes(again), ["2:b", "3:c", "4:d"])
        // 6 is past the next (5): nothing is decided, the reply says where to resume
        const gap = yield* decide("c1", [inserts(6, "f")])
        assert.deepStrictEqual(outcomes(gap), [])
        assert.strictEqual(gap._tag === "Decided" && gap.next, 5)
        assert.deepStrictEqual((yield* exec("SELECT id FROM todos ORDER BY id")).map((row) => row[0]), ["a", "b", "c", "d"])
        // bookkeeping is not a channel change
        assert.strictEqual(yield* Reconciliation.use((r) => r.version), 4)
      })))

  it.effect("a failing action rolls back only its own writes; the batch goes on and its refusal is final", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const batch = yield* decide("c", [inserts(1, "a"), rejected(2, "no b"), inserts(3, "c"), notAuthorized(4), inserts(5, "e")])
        assert.deepStrictEqual(outcomes(batch), ["1:a", "2:ActionRejected", "3:c", "4:NotAuthorized", "5:e"])
        assert.deepStrictEqual((yield* exec("SELECT id FROM todos ORDER BY id")).map((row) => row[0]), ["a", "c", "e"])
        // every re-send gets the first answer, even with an action that would now pass
        for (let i = 0; i < 2; i++) {
          assert.deepStrictEqual(outcomes(yield* decide("c", [inserts(2, "b"), inserts(4, "d")])), ["2:ActionRejected", "4:NotAuthorized"])
        }
        assert.deepStrictEqual((yield* exec("SELECT id FROM todos ORDER BY id")).map((row) => row[0]), ["a", "c", "e"])
      })))

  it.effect("outcomes are kept until the client confirms them, then forgotten; a confirm alone writes nothing at once", () =>
    withRoom(() =>
      Effect.gen(function*() {
        yield* decide("c", [inserts(1, "a"), rejected(2, "no")])
        const kept = JSON.parse(String((yield* ledgerRow("c"))[0]![1])) as Array<Array<unknown>>
        assert.deepStrictEqual(kept.map((o) => o[0]), [1, 2])
        // the next push confirms 1: its outcome goes, 2's stays
        yield* decide("c", [inserts(3, "c")], { confirmed: 1 })
        const after = JSON.parse(String((yield* ledgerRow("c"))[0]![1])) as Array<Array<unknown>>
        assert.deepStrictEqual(after.map((o) => o[0]), [2, 3])
        // a push with nothing to decide only remembers the confirm; the GC writes it
        const usage = (yield* Storage).usage()
        yield* decide("c", [], { confirmed: 3 })
        assert.strictEqual((yield* Storage).usage().rowsWritten, usage.rowsWritten)
        yield* Reconciliation.use((r) => r.gc(100 * DAY))
        assert.deepStrictEqual(yield* ledgerRow("c"), [[3, null]])
      })))

  it.effect("only the key that first used a client id may use it again: a forged push changes nothing", () =>
    withRoom(() =>
      Effect.gen(function*() {
        yield* decide("victim", [inserts(1, "v1")])
        const forged = yield* decide("victim", [inserts(2, "forged")], { clientKey: "forged-key-0123456789" })
        assert.strictEqual(outcomes(forged), "ClientMismatch")
        assert.deepStrictEqual(outcomes(yield* decide("victim", [inserts(2, "v2")])), ["2:v2"])
        assert.deepStrictEqual((yield* ledgerRow("victim")).map((row) => row[0]), [2])
      })))

  it.effect("a client that no longer holds the seq the ledger expects may skip it: decided as never applied", () =>
    withRoom(() =>
      Effect.gen(function*() {
        yield* decide("c", [inserts(1, "a")])
        assert.deepStrictEqual(outcomes(yield* decide("c", [inserts(4, "d")])), [])
        const skipped = yield* decide("c", [inserts(4, "d")], { skip: 2 })
        assert.deepStrictEqual(outcomes(skipped), ["4:d"])
        assert.deepStrictEqual(outcomes(yield* decide("c", [inserts(2, "b"), inserts(3, "c")])), ["2:Skipped", "3:Skipped"])
        // a skip that does not start at the next seq is ignored
        assert.deepStrictEqual(outcomes(yield* decide("c", [inserts(9, "i")], { skip: 7 })), [])
        assert.deepStrictEqual((yield* exec("SELECT id FROM todos ORDER BY id")).map((row) => row[0]), ["a", "d"])
      })))

  it.effect("idle clients with nothing to confirm are forgotten; one with outcomes to confirm is kept; a forgotten client's next push is new", () =>
    withRoom(() =>
      Effect.gen(function*() {
        const r = yield* Reconciliation
        yield* decide("settled", [inserts(1, "a")])
        yield* decide("settled", [], { confirmed: 1 })
        yield* decide("unsure", [inserts(1, "b")])
        const gc = yield* r.gc(Date.now() + defaultOptions.clientRetentionMs + DAY)
        assert.strictEqual(gc.clientsPruned, 1)
        assert.deepStrictEqual((yield* exec("SELECT client_id FROM _psync_clients")).map((row) => row[0]), ["unsure"])
        // the kept client's re-send is still answered from the ledger
        assert.deepStrictEqual(outcomes(yield* decide("unsure", [inserts(1, "b-again")])), ["1:b"])
        // the forgotten one had settled everything: what it pushes now is new, whatever its seq
        assert.deepStrictEqual(outcomes(yield* decide("settled", [inserts(2, "c")])), ["2:c"])
      })))

  it.effect("a principal holds at most maxClientsPerPrincipal client ids: a new one takes a confirmed one's place, or is refused", () => {
    const watcher = makeMemoryConnection("watcher")
    return Effect.gen(function*() {
      const as = (principal: string) => ({ principal })
      yield* decide("p1", [inserts(1, "a")], as("ada"))
      yield* decide("p2", [inserts(1, "b")], as("ada"))
      // both hold outcomes to confirm: a third id is refused, another principal is not
      assert.strictEqual(outcomes(yield* decide("p3", [inserts(1, "c")], as("ada"))), "TooManyClients")
      assert.deepStrictEqual(outcomes(yield* decide("q1", [inserts(1, "q")], as("bob"))), ["1:q"])
      // once p1 confirmed everything, the new id takes its place
      yield* decide("p1", [], { ...as("ada"), confirmed: 1 })
      yield* decide("p1", [inserts(2, "a2")], { ...as("ada"), confirmed: 1 })
      yield* decide("p1", [], { ...as("ada"), confirmed: 2 })
      yield* Reconciliation.use((r) => r.gc(1))
      assert.deepStrictEqual(outcomes(yield* decide("p3", [inserts(1, "c")], as("ada"))), ["1:c"])
      assert.deepStrictEqual((yield* exec("SELECT client_id FROM _psync_clients ORDER BY client_id")).map((row) => row[0]), ["p2", "p3", "q1"])
    }).pipe(Effect.provide(servicesLayer({ connections: [watcher], options: { maxClientsPerPrincipal: 2 } })))
  })

  it.effect("rows of the first releases' ledger are read: decided seqs are answered, seqs it never decided are decided once", () => {
    const watcher = makeMemoryConnection("watcher")
    return Effect.gen(function*() {
      // seq 5 highest; bit 0 (seq 4) and bit 2 (seq 2) decided; seqs 3 and 1 never were; seq 2 refused
      assert.deepStrictEqual(outcomes(yield* decide("old", [inserts(2, "x")])), ["2:HandlerFailed"])
      assert.deepStrictEqual(outcomes(yield* decide("old", [inserts(3, "three")])), ["3:three"])
      assert.deepStrictEqual(outcomes(yield* decide("old", [inserts(3, "three-again"), inserts(4, "y"), inserts(5, "z"), inserts(6, "six")])), ["3:three", "4:", "5:", "6:six"])
      assert.deepStrictEqual(outcomes(yield* decide("old", [inserts(1, "one")])), ["1:one"])
      assert.deepStrictEqual((yield* exec("SELECT id FROM todos ORDER BY id")).map((row) => row[0]), ["one", "six", "three"])
    }).pipe(Effect.provide(servicesLayer({
      connections: [watcher],
      setup: [
        TODO_TABLE,
        "CREATE TABLE _psync_clients (client_id TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, decided INTEGER NOT NULL DEFAULT 0, seen INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO _psync_clients VALUES ('old', 'key-of-old-0123456789', 5, 5, 1)",
        "CREATE TABLE _psync_refused (client_id TEXT NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (client_id, seq)) WITHOUT ROWID",
        "INSERT INTO _psync_refused VALUES ('old', 2, 'HandlerFailed', 'UNIQUE constraint failed')"
      ]
    })))
  })
})
