/**
 * Our side of the benchmarks: the Todo fixture's server unchanged, plus one
 * bench-only HTTP hook that seeds rows in bulk (the fixture's raw-write hook
 * inserts one row per request, far too slow for 100k rows). The seed writes
 * through plain SQL, so the sync layer's triggers version every row exactly
 * as they would any other write.
 *
 * Plain JavaScript on purpose: tsconfig.json (DOM types) checks everything
 * under bench/ and would follow this import into the Workers-typed fixture
 * server; the server itself is typechecked by tsconfig.worker.json.
 */
import fixture, { ToDos as FixtureToDos } from "../../fixtures/todo-sync/src/server.ts"
import { seedRows } from "./worker.ts"

export class ToDos extends FixtureToDos {
  /** @param {Request} request */
  async onRequest(request) {
    if (new URL(request.url).pathname.endsWith("/hooks/seed")) {
      const { from, count } = await request.json()
      seedRows(this.ctx.storage, from, count)
      return Response.json({ ok: true })
    }
    return super.onRequest(request)
  }
}

export default fixture
