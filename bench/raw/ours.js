/**
 * Our side of the benchmarks: the Todo fixture's server unchanged, plus
 * bench-only HTTP hooks shared with the raw baseline: `seed` (rows in one
 * transaction, one statement each), `bulk` (one multi-row INSERT ... SELECT)
 * and `usage` (rows read and written so far). Seeds and bulk writes go
 * through plain SQL, so the sync layer's triggers capture every row exactly
 * as they would any other write, and the request publishes them.
 *
 * Plain JavaScript on purpose: tsconfig.json (DOM types) checks everything
 * under bench/ and would follow this import into the Workers-typed fixture
 * server; the server itself is typechecked by tsconfig.worker.json.
 */
import fixture, { ToDos as FixtureToDos } from "../../fixtures/todo-sync/src/server.ts"
import { bulkInsert, seedRows } from "./worker.ts"

export class ToDos extends FixtureToDos {
  /** @param {Request} request */
  async onRequest(request) {
    const path = new URL(request.url).pathname
    if (path.endsWith("/hooks/seed")) {
      const { from, count } = await request.json()
      seedRows(this.ctx.storage, from, count)
      return Response.json({ ok: true })
    }
    if (path.endsWith("/hooks/bulk")) {
      const { from, count } = await request.json()
      bulkInsert(this.ctx.storage, from, count)
      return Response.json({ ok: true })
    }
    if (path.endsWith("/hooks/usage")) return Response.json(this.storageUsage() ?? null)
    return super.onRequest(request)
  }
}

export default fixture
