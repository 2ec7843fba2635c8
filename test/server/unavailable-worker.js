/**
 * Test-only worker: a SyncServer whose channel's table is never created, so
 * its services cannot start. Clients must be told (a `Failure` with reason
 * `Unavailable`) instead of getting no answer.
 *
 * Plain JavaScript: tsconfig.json (DOM types) checks test/ and would follow a
 * TypeScript import into the Workers-typed server; the server itself is
 * typechecked by tsconfig.worker.json.
 */
import { routePartykitRequest, SyncServer } from "../../src/server/index.ts"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"

export class Broken extends SyncServer {
  channels = [todos]

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
