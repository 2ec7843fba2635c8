/**
 * Test-only worker with sync servers the Todo fixture is not:
 * - `Broken`: its channel's table is never created, so its services cannot
 *   start; clients must get a `Failure` with reason `Unavailable`.
 * - `SeedStyle`: partysync-style handlers (a SQL cursor, a Promise, a plain
 *   array, a throw), on the default asynchronous transactions, with the Todo
 *   channel as first shipped (schema 1: `RETURNING *` is its wire order).
 * - `Versioned`: the Todo channel at schema version 2, so that a client built
 *   with the fixture's version 1 is told it is `Outdated`.
 * - `KanbanBoard`: two channels with a handler each and a typed principal
 *   (test/types/server.types.ts, where its types are checked).
 * - `Misdeclared`: both `handlers` and `onAction`, so it must not start.
 *
 * Plain JavaScript: tsconfig.json (DOM types) checks test/ and would follow a
 * TypeScript import into the Workers-typed server; the server itself is
 * typechecked by tsconfig.worker.json.
 */
import { routePartykitRequest, SyncServer } from "../../src/server/index.ts"
import { todos, todosV1 } from "../../fixtures/todo-sync/src/shared.ts"
import { TODO_TABLE, TODO_TABLE_V1 } from "../../fixtures/todo-sync/src/table.ts"
import { cards, comments, migrations } from "../helpers/kanban.ts"

export { KanbanBoard } from "../types/server.types.ts"

export class Broken extends SyncServer {
  channels = [todos]

  onAction() {
    return []
  }
}

export class SeedStyle extends SyncServer {
  channels = [todosV1]

  onStart() {
    this.ctx.storage.sql.exec(TODO_TABLE_V1)
  }

  /** @param {string} _channel @param {any} action */
  onAction(_channel, action) {
    const sql = this.ctx.storage.sql
    const now = Date.now()
    switch (action.type) {
      case "create":
        // a throw after a write: the write must not stay
        if (action.payload.text === "throw") {
          sql.exec("INSERT INTO todos VALUES (?, ?, ?, ?, ?, NULL)", action.payload.id, "written", 0, now, now)
          throw new Error("the handler threw after writing")
        }
        // the seed's shape: the cursor of INSERT ... RETURNING *
        return sql.exec("INSERT INTO todos VALUES (?, ?, ?, ?, ?, NULL) RETURNING *", action.payload.id, action.payload.text, action.payload.completed, now, now)
      case "update":
        // an async handler: awaits, then writes, then rejects when asked to
        return (async () => {
          await new Promise((resolve) => setTimeout(resolve, 5))
          const rows = [...sql.exec("UPDATE todos SET text = ?, updated_at = ? WHERE id = ? RETURNING *", action.payload.text ?? "", now, action.payload.id).raw()]
          if (action.payload.text === "reject") throw new Error("the promise rejected after writing")
          return rows
        })()
      case "delete":
        // a plain array of objects
        return sql.exec("UPDATE todos SET deleted_at = ? WHERE id = ? RETURNING *", now, action.payload.id).toArray()
    }
  }
}

export class Versioned extends SyncServer {
  channels = [todos]

  onStart() {
    this.ctx.storage.sql.exec(TODO_TABLE)
  }

  onAction() {
    return []
  }
}

export class Misdeclared extends SyncServer {
  channels = [cards, comments]
  migrations = migrations
  handlers = { cards: () => [], comments: () => [] }

  onAction() {
    return []
  }
}

export default {
  /** @param {Request} request @param {unknown} env */
  async fetch(request, env) {
    return (await routePartykitRequest(request, env)) ?? new Response("Not found", { status: 404 })
  }
}
