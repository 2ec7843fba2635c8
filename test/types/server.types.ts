/**
 * Type-level tests of SyncServer's typed principal and per-channel handlers:
 * checked by `tsc -p tsconfig.worker.json` (workers types; never run). Each
 * `@ts-expect-error` is a mistake that must not compile; the rest must
 * compile without a cast.
 */
import * as Effect from "effect/Effect"
import { ActionRejected, type Grant, type Handlers, NotAuthorized, Storage, SyncServer } from "../../src/server/index.ts"
import { type Board, cards, comments, migrations, User } from "../helpers/kanban.ts"

interface Env extends Cloudflare.Env {
  readonly Board: DurableObjectNamespace<KanbanBoard>
}

/** The principal from the request, as the app would verify a session. */
const userOf = (request: Request): User | undefined => {
  const id = new URL(request.url).searchParams.get("user")
  return id === null ? undefined : { id, role: id.startsWith("viewer") ? "viewer" : "editor" }
}

export class KanbanBoard extends SyncServer<Env, Board, never, User> {
  readonly channels = [cards, comments]
  override readonly migrations = migrations

  readonly handlers: Handlers<Board, User> = {
    cards: (action, caller) =>
      Effect.gen(function*() {
        const sql = yield* Storage
        switch (action.type) {
          case "add":
            return yield* sql.raw("INSERT INTO cards VALUES (?, ?, 'todo', ?, NULL) RETURNING *", action.id, action.title, caller.principal.id)
          case "move":
            return yield* sql.raw("UPDATE cards SET lane = ? WHERE id = ? RETURNING *", action.lane, action.id)
        }
      }),
    comments: (action, caller) =>
      action.type === "add"
        ? this.ctx.storage.sql.exec("INSERT INTO comments VALUES (?, ?, ?, ?, NULL) RETURNING *", action.id, action.card, action.body, caller.principal.id)
        : Effect.fail(new ActionRejected({ message: "comments stay" }))
  }

  override authorizeConnection(request: Request): Effect.Effect<Grant<User>, NotAuthorized> {
    const user = userOf(request)
    if (user === undefined) return Effect.fail(new NotAuthorized({ message: "sign in first", status: 401 }))
    return Effect.succeed({ principal: user, readOnly: user.role === "viewer" ? "viewers cannot edit this board" : false })
  }

  override authorizeAction(principal: User, channel: Board["name"]): Effect.Effect<void, NotAuthorized> {
    return channel === "comments" && principal.id === "mallory" ? Effect.fail(new NotAuthorized({ message: "no" })) : Effect.void
  }
}

/** The seed's onAction still compiles, on its own. */
export class SeedBoard extends SyncServer<Env, Board> {
  readonly channels = [cards, comments]

  onAction(channel: Board["name"], action: { readonly id: string }) {
    return channel === "cards" ? [[action.id]] : []
  }
}

export class WrongGrant extends SyncServer<Env, Board, never, User> {
  readonly channels = [cards, comments]
  readonly handlers: Handlers<Board, User> = { cards: () => [], comments: () => [] }

  // @ts-expect-error the grant's principal must be a User
  override authorizeConnection(): Effect.Effect<Grant<string>, NotAuthorized> {
    return Effect.succeed({ principal: "ada" })
  }
}

export class WrongAuthorizer extends SyncServer<Env, Board, never, User> {
  readonly channels = [cards, comments]
  readonly handlers: Handlers<Board, User> = { cards: () => [], comments: () => [] }

  // @ts-expect-error the principal is a User, not a number
  override authorizeAction(principal: number): Effect.Effect<void, NotAuthorized> {
    return principal > 0 ? Effect.void : Effect.void
  }
}

export class WrongHandlers extends SyncServer<Env, Board, never, User> {
  readonly channels = [cards, comments]
  // @ts-expect-error the handlers' principal type differs from the server's
  readonly handlers: Handlers<Board, string> = { cards: () => [], comments: () => [] }
}

export class CrossedHandlers extends SyncServer<Env, Board, never, User> {
  readonly channels = [cards, comments]
  readonly handlers: Handlers<Board, User> = {
    cards: () => [],
    // @ts-expect-error a comment handler typed with the cards channel's action
    comments: (action: typeof cards.action.Type) => [[action.id]]
  }
}

export class ReadOnlyGrant extends SyncServer<Env, Board, never, User> {
  readonly channels = [cards, comments]
  readonly handlers: Handlers<Board, User> = { cards: () => [], comments: () => [] }

  override authorizeConnection(): Effect.Effect<Grant<User>, NotAuthorized> {
    // @ts-expect-error readOnly is a flag or the refusal's message
    return Effect.succeed({ principal: { id: "ada", role: "viewer" }, readOnly: 1 })
  }
}
