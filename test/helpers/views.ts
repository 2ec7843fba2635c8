/**
 * A board app with read rules, and a protocol-level view client over a
 * TestServer connection, for the tests of views. The client applies every
 * frame it is sent exactly as the real one does (sync answers whole at
 * `Synced`, live changes after its cursor, soft deletes removed), and it
 * records every row content and every removed id that reached it, so a test
 * can check that nothing hidden ever did.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { SqlClient } from "effect/sql"
import * as Channel from "../../src/protocol/Channel.ts"
import { NotAuthorized } from "../../src/protocol/Errors.ts"
import { encodeClientMessage, type RowId, type ServerMessage, subOf, type WireRow } from "../../src/protocol/Protocol.ts"
import { Caller } from "../../src/services/Caller.ts"
import * as Rule from "../../src/services/Rule.ts"
import type { ReadRules } from "../../src/services/Views.ts"
import type { TestConnection } from "../../src/testing/TestServer.ts"

/** [id, board, owner, private, title, deleted_at] */
export const Card = Schema.Tuple([Schema.String, Schema.String, Schema.String, Schema.Number, Schema.String, Schema.NullOr(Schema.Number)])
export type Card = typeof Card.Type

export const CardAction = Schema.Union([
  Schema.Struct({ type: Schema.Literal("put"), id: Schema.String, board: Schema.String, owner: Schema.String, private: Schema.Number, title: Schema.String }),
  Schema.Struct({ type: Schema.Literal("remove"), id: Schema.String }),
  Schema.Struct({ type: Schema.Literal("purge"), id: Schema.String }),
  // writes a row that does not match the record (title NULL), to see what its refusal says
  Schema.Struct({ type: Schema.Literal("corrupt"), id: Schema.String })
])

/** A board's cards: the params name the board. */
export const cards = Channel.make("cards", {
  record: Card,
  action: CardAction,
  params: Schema.Struct({ board: Schema.String })
})

export const setup = [
  `CREATE TABLE cards (id TEXT PRIMARY KEY NOT NULL, board TEXT NOT NULL, owner TEXT NOT NULL, private INTEGER NOT NULL DEFAULT 0, title TEXT, deleted_at INTEGER)`,
  `CREATE INDEX cards_board ON cards (board)`,
  `CREATE TABLE members (user TEXT NOT NULL, board TEXT NOT NULL, PRIMARY KEY (user, board))`,
  `CREATE TABLE shares (card TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (user, card))`
]

/**
 * Who may read what: members of a board see its public cards, their own
 * private ones and the private ones shared with them (read from a table).
 */
export const views: ReadRules<typeof cards, string> = {
  cards: {
    authorize: (user, { board }) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT 1 FROM members WHERE user = ${user} AND board = ${board}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* new NotAuthorized({ message: `you are not a member of board ${board}` })
      }),
    read: (user, { board }) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const shared = yield* sql<{ card: string }>`SELECT card FROM shares WHERE user = ${user} ORDER BY card`.pipe(Effect.orDie)
        return Rule.and(
          Rule.eq("board", board),
          Rule.or(Rule.eq("private", 0), Rule.eq("owner", user), Rule.isIn("id", shared.map((s) => s.card)))
        )
      })
  }
}

/** Runs card actions as written: an action may write a row its author cannot read. */
export const handlers = {
  cards: (action: typeof CardAction.Type) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* Caller
      switch (action.type) {
        case "put":
          return yield* sql`INSERT INTO cards (id, board, owner, private, title) VALUES (${action.id}, ${action.board}, ${action.owner}, ${action.private}, ${action.title})
            ON CONFLICT (id) DO UPDATE SET board = excluded.board, owner = excluded.owner, private = excluded.private, title = excluded.title, deleted_at = NULL`
        case "remove":
          return yield* sql`UPDATE cards SET deleted_at = 1 WHERE id = ${action.id}`
        case "purge":
          return yield* sql`DELETE FROM cards WHERE id = ${action.id}`
        case "corrupt":
          return yield* sql`UPDATE cards SET title = NULL WHERE id = ${action.id}`
      }
    })
}

/** What one subscription of a view client holds. */
export interface Held {
  readonly rows: Map<RowId, WireRow>
  cursor: number | null
  history: string | undefined
  view: boolean
  /** Sync chunks waiting for their `Synced`. */
  pending: Array<{ readonly reset: boolean; readonly rows: ReadonlyArray<WireRow>; readonly deleted: ReadonlyArray<RowId> }>
  /** The server asked for a resubscribe. */
  resync: boolean
  /** Every id this subscription ever held (a removal of any other id names a row it never saw). */
  readonly ever: Set<RowId>
}

/** A frame's content as it reached a subscription, for leak checks. */
export interface Seen {
  readonly sub: string
  readonly rows: ReadonlyArray<WireRow>
  readonly removed: ReadonlyArray<RowId>
}

/** A protocol-level client of view subscriptions over a TestServer connection. */
export const viewClient = (connection: TestConnection<any>) => {
  const subs = new Map<string, Held>()
  const failures: Array<Extract<ServerMessage, { _tag: "Failure" }>> = []
  let read = 0
  const holdOf = (sub: string): Held => {
    let held = subs.get(sub)
    if (held === undefined) {
      subs.set(sub, (held = { rows: new Map(), cursor: null, history: undefined, view: false, pending: [], resync: false, ever: new Set() }))
    }
    return held
  }
  const patch = (held: Held, rows: ReadonlyArray<WireRow>, deleted: ReadonlyArray<RowId>) => {
    for (const row of rows) {
      const id = row[0] as RowId
      if (row[row.length - 1] === null) {
        held.rows.set(id, row)
        held.ever.add(id)
      } else held.rows.delete(id)
    }
    for (const id of deleted) held.rows.delete(id)
  }
  /** Applies the frames that arrived since the last call; returns what each carried. */
  const drain = (): Array<Seen> => {
    const frames = connection.frames()
    const seen: Array<Seen> = []
    for (; read < frames.length; read++) {
      const m = frames[read]!
      if (m._tag === "Failure") {
        failures.push(m)
        // as the client does: a subscription its read rule refuses loses what it held
        if (m.reason === "NotAuthorized" && m.channel !== null && m.clientId === undefined) {
          const held = holdOf(m.sub ?? m.channel)
          held.rows.clear()
          held.cursor = null
          held.history = undefined
          held.view = false
        }
        continue
      }
      if (m._tag !== "SyncRows" && m._tag !== "Synced" && m._tag !== "Change" && m._tag !== "Resync") continue
      const sub = m.sub ?? m.channel
      const held = holdOf(sub)
      switch (m._tag) {
        case "SyncRows":
          held.pending.push({ reset: m.reset, rows: m.rows, deleted: m.deleted })
          seen.push({ sub, rows: m.rows, removed: m.deleted })
          break
        case "Synced": {
          if (m.reset) held.rows.clear()
          for (const chunk of held.pending) patch(held, chunk.rows, chunk.deleted)
          held.pending = []
          held.cursor = m.version
          held.history = m.history
          held.view = m.view === true
          break
        }
        case "Change":
          seen.push({ sub, rows: m.rows, removed: m.deleted })
          if (held.cursor !== null && m.version <= held.cursor) break
          patch(held, m.rows, m.deleted)
          held.cursor = m.version
          break
        case "Resync":
          held.resync = true
          break
      }
    }
    return seen
  }
  /** Subscribes (or resubscribes from the cursor with the ids held); returns what the answer carried. */
  const subscribe = (channel: string, params?: unknown) =>
    Effect.gen(function*() {
      drain()
      const sub = subOf(channel, params)
      const held = holdOf(sub)
      held.resync = false
      const resume = {
        since: held.cursor,
        ...(held.history === undefined ? {} : { history: held.history }),
        ...(held.cursor !== null && held.view ? { held: [...held.rows.keys()] } : {})
      }
      yield* connection.sendFrame(encodeClientMessage({
        _tag: "Subscribe",
        channel,
        ...resume,
        ...(params === undefined ? {} : { sub, params })
      } as never))
      return drain()
    })
  const unsubscribe = (channel: string, params?: unknown) =>
    connection.sendFrame(encodeClientMessage({ _tag: "Unsubscribe", channel, ...(params === undefined ? {} : { sub: subOf(channel, params) }) }))
  return {
    socket: connection,
    subscribe,
    unsubscribe,
    drain,
    failures,
    held: (channel: string, params?: unknown) => holdOf(subOf(channel, params)),
    /** The rows a subscription holds once every frame sent so far is applied, sorted by id. */
    rows: (channel: string, params?: unknown) => {
      drain()
      return [...holdOf(subOf(channel, params)).rows.values()].sort((a, b) => String(a[0]).localeCompare(String(b[0])))
    },
    /** Takes over another client's state (the same browser, a new socket). */
    adopt: (other: { readonly subsOf: () => Map<string, Held> }) => {
      for (const [sub, held] of other.subsOf()) subs.set(sub, { ...held, rows: new Map(held.rows), pending: [], resync: false, ever: new Set(held.ever) })
    },
    subsOf: () => subs
  }
}

/** The view client's type. */
export type ViewClient = ReturnType<typeof viewClient>
