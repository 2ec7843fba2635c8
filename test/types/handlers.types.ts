/**
 * Type-level tests of per-channel handlers, the typed principal and
 * TestServer: checked by `tsc -p tsconfig.json` (never run). Each
 * `@ts-expect-error` is a mistake that must not compile: if it ever
 * compiles, tsc fails on the unused directive. The rest is right code that
 * must compile without a cast.
 */
import * as Effect from "effect/Effect"
import { SqlClient } from "effect/sql"
import { ActionRejected, NotAuthorized } from "../../src/protocol/Errors.ts"
import { Caller } from "../../src/services/Caller.ts"
import type { Handlers } from "../../src/services/Handlers.ts"
import * as TestServer from "../../src/testing/TestServer.ts"
import { type Board, cards, comments, migrations, User } from "../helpers/kanban.ts"

// ---------------------------------------------------------------- right code, no casts

export const handlers: Handlers<Board, User> = {
  cards: (action, caller) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // the principal is the app's type: no guard
      if (caller.principal.role === "viewer") return yield* new ActionRejected({ message: "viewers cannot edit" })
      switch (action.type) {
        case "add":
          return yield* sql`INSERT INTO cards VALUES (${action.id}, ${action.title}, 'todo', ${caller.principal.id}, NULL) RETURNING *`
        case "move":
          return yield* sql`UPDATE cards SET lane = ${action.lane} WHERE id = ${action.id} RETURNING *`
      }
    }),
  // seed style: rows, or nothing
  comments: (action) => (action.type === "add" ? [[action.id, action.card, action.body, "?", null]] : [])
}

// a `sql` statement returned straight from a switch (its row type is inferred from where it is returned)
export const statements: Handlers<Board> = {
  cards: (action) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) => {
      switch (action.type) {
        case "add":
          return sql`INSERT INTO cards (id, title, lane, author) VALUES (${action.id}, ${action.title}, 'todo', '') RETURNING *`
        case "move":
          return sql`UPDATE cards SET lane = ${action.lane} WHERE id = ${action.id} RETURNING *`
      }
    }),
  comments: () => Effect.succeed([])
}

// an Effect deep in the app reads the principal typed, checked by the Schema
export const authorOf: Effect.Effect<string, never, Caller> = Effect.map(Caller.principal(User), (user) => user.id)
// `yield* Caller` keeps working, its principal unknown
export const raw: Effect.Effect<unknown, never, Caller> = Effect.map(Caller, (caller) => caller.principal)

export const program = Effect.scoped(Effect.gen(function*() {
  const server = yield* TestServer.make({
    channels: [cards, comments],
    principal: User,
    migrations,
    handlers,
    authorizeAction: (principal, channel, action) =>
      channel === "comments" && action.type === "remove" && principal.role !== "editor"
        ? Effect.fail(new NotAuthorized({ message: "editors only" }))
        : Effect.void
  })
  const ada = server.connect({ id: "ada", role: "editor" }, { readOnly: false })
  yield* ada.send("cards", { type: "add", id: "c1", title: "write tests" })
  yield* ada.send("comments", { type: "add", id: "m1", card: "c1", body: "soon" })
  const viewer = server.connect({ id: "vic", role: "viewer" }, { readOnly: "viewers cannot edit this board" })
  return viewer.clientId
}))

// handlers written inline are typed by their channel too
export const inline = TestServer.make({
  channels: [cards, comments],
  principal: User,
  handlers: {
    cards: (action, caller) => [[action.id, action.type, "todo", caller.principal.id, null]],
    comments: (action) => Promise.resolve(action.type === "remove" ? [] : [[action.id, action.card, action.body, "x", null]])
  }
})

// without a principal Schema, an annotated authorizeAction types the principal
export const viaAuthorizer = Effect.map(
  TestServer.make({
    channels: [cards, comments],
    handlers: { cards: (_action, caller) => [[caller.principal.role]], comments: () => [] },
    authorizeAction: (principal: User) => (principal.role === "viewer" ? Effect.void : Effect.void)
  }),
  (server) => {
    // @ts-expect-error the principal is the authorizer's User
    server.connect("ada")
    return server.connect({ id: "ada", role: "editor" })
  }
)

// the seed's onAction keeps working
export const seed = TestServer.make({
  channels: [cards, comments],
  onAction: (channel, action) => (channel === "cards" ? [] : [[String(action.type)]])
})

// without a principal Schema the principal is unknown and may be left out
export const anonymous = Effect.map(seed, (server) => server.connect())

// ---------------------------------------------------------------- wrong code

// @ts-expect-error a channel without a handler
export const missing: Handlers<Board> = {
  cards: () => []
}

export const unknownChannel: Handlers<Board> = {
  cards: () => [],
  comments: () => [],
  // @ts-expect-error a handler for a channel the server does not declare
  tags: () => []
}

export const crossed: Handlers<Board> = {
  cards: (action) => {
    // @ts-expect-error a card action has no body (that is a comment's)
    return [[action.body]]
  },
  comments: () => []
}

export const wrongPrincipal: Handlers<Board, User> = {
  cards: (_action, caller) => {
    // @ts-expect-error a User has no name
    return [[caller.principal.name]]
  },
  comments: () => []
}

export const wrongResult: Handlers<Board> = {
  // @ts-expect-error a handler returns rows, a cursor, a Promise or an Effect of them
  cards: () => 42,
  comments: () => []
}

export const principalUnknown: Handlers<Board> = {
  cards: (_action, caller) => {
    // @ts-expect-error without a principal type, the principal is unknown: no property to read
    return [[caller.principal.id]]
  },
  comments: () => []
}

// @ts-expect-error handlers and onAction: one would never run
export const both = TestServer.make({
  channels: [cards, comments],
  handlers,
  onAction: () => []
})

// @ts-expect-error neither handlers nor onAction
export const neither = TestServer.make({ channels: [cards, comments] })

export const misuse = Effect.scoped(Effect.gen(function*() {
  const server = yield* TestServer.make({ channels: [cards, comments], principal: User, handlers })
  // @ts-expect-error the principal is a User, not a string
  server.connect("ada")
  // @ts-expect-error a User is required: null is not one
  server.connect()
  const ada = server.connect({ id: "ada", role: "editor" })
  // @ts-expect-error a comment action sent on the cards channel
  yield* ada.send("cards", { type: "add", id: "m1", card: "c1", body: "hi" })
  // @ts-expect-error an unknown channel
  yield* ada.send("tags", { type: "add" })
}))

export const wrongAuthorizer = TestServer.make({
  channels: [cards, comments],
  principal: User,
  handlers,
  // @ts-expect-error the principal is a User, whose role is editor or viewer
  authorizeAction: (principal) => (principal.role === "admin" ? Effect.void : Effect.void)
})

// @ts-expect-error Caller.principal's value is the Schema's type
export const wrongAccessor: Effect.Effect<number, never, Caller> = Caller.principal(User)
