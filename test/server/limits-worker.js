/**
 * Test-only worker for the limits of issue 20: the Todo fixture's server
 * (its hooks included) with low limits, so that tests reach them with a few
 * sockets and frames.
 *
 * Plain JavaScript, as servers-worker.js: tsconfig.json (DOM types) checks
 * test/ and would follow a TypeScript import into the Workers-typed server.
 */
import fixture, { ToDos as FixtureToDos } from "../../fixtures/todo-sync/src/server.ts"
import { LIMITS } from "./limits.ts"

export class ToDos extends FixtureToDos {
  // field initializers run after the fixture's: extend what it declared
  syncOptions = { ...this.syncOptions, ...LIMITS }
}

export default fixture
