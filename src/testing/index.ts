/**
 * effect-partysync/testing: run a sync server's services in Node, for unit
 * tests of your handlers. Storage is `node:sqlite` (in memory by default),
 * connections are in-memory objects that record the frames they were sent.
 * For integration tests, `startWorker` runs the app's worker in local
 * workerd (with the app's own wrangler).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { SqlClient } from "effect/sql"
import * as SyncLayer from "../layers/SyncLayer.ts"
import type * as Channel from "../protocol/Channel.ts"
import { ActionHandler, Authorizer } from "../services/ActionHandler.ts"
import type { SyncConnection } from "../services/Connections.ts"
import { Reconciliation } from "../services/Reconciliation.ts"
import { type MigrationRecord, run as runMigrations } from "../services/Migrations.ts"
import { Storage } from "../services/Storage.ts"
import * as StorageSqlClient from "../services/StorageSqlClient.ts"
import { type ReadRule, Views } from "../services/Views.ts"
import { Channels, defaultOptions, SyncConfig, type SyncOptions } from "../services/SyncConfig.ts"
import { layerMemoryConnections } from "./MemoryConnections.ts"
import { layerNodeSqlite } from "./StorageSqlite.ts"

export { Connections, initialState, type SyncConnection } from "../services/Connections.ts"
export { layerMemoryConnections, makeMemoryConnection, type MemoryConnection } from "./MemoryConnections.ts"
export { layerNodeSqlite } from "./StorageSqlite.ts"
export { ActionHandler, Authorizer } from "../services/ActionHandler.ts"
export * as TestServer from "./TestServer.ts"
export { localWorker, type LocalWorker, type LocalWorkerOptions, startWorker, WorkerStartError } from "./Worker.ts"

/** Options of `layerTest`. */
export interface TestOptions {
  readonly channels: ReadonlyArray<Channel.Any>
  /** Runs actions, as `onAction` would (it may use Storage). */
  readonly handler: Layer.Layer<ActionHandler, never, SqlClient.SqlClient | Storage>
  /** Statements that create the channel tables, run before change capture is installed. */
  readonly setup?: ReadonlyArray<string> | undefined
  /** The server's migrations, run (as on wake) after `setup` and before change capture is installed. */
  readonly migrations?: MigrationRecord | undefined
  readonly connections?: Array<SyncConnection> | undefined
  readonly authorizer?: Layer.Layer<Authorizer> | undefined
  readonly options?: Partial<SyncOptions> | undefined
  /** The channels' read rules (as `SyncServer.views`); default: none, every channel is read whole. */
  readonly views?: Readonly<Record<string, ReadRule | undefined>> | undefined
  /** A database file, to reuse one database across layers (a restart); default: a fresh in-memory one. */
  readonly path?: string | undefined
}

/** ActionDispatch, Reconciliation, Broadcast and Storage over node:sqlite, with change capture installed. */
export const layerTest = (options: TestOptions) => {
  const options_ = { ...defaultOptions, ...options.options }
  const storage = StorageSqlClient.layer.pipe(
    Layer.provideMerge(layerNodeSqlite(options.path, { synchronous: options_.synchronousHandlers }))
  )
  const tables = Layer.effectDiscard(Effect.gen(function*() {
    const sql = yield* Storage
    for (const statement of options.setup ?? []) yield* sql.raw(statement)
    if (options.migrations !== undefined) yield* runMigrations(options.migrations)
  })).pipe(Layer.orDie)
  const base = Layer.mergeAll(
    layerMemoryConnections(options.connections ?? []),
    Layer.succeed(Channels, Channels.fromList(options.channels)),
    Layer.succeed(SyncConfig, options_),
    options.handler,
    options.authorizer ?? Authorizer.layerAllowAll
  )
  const install = Layer.effectDiscard(Reconciliation.use((r) => r.install)).pipe(Layer.orDie)
  const views = options.views === undefined ? Views.layerNone : Views.layerFrom(options.views)
  return install.pipe(
    Layer.provideMerge(SyncLayer.layer),
    Layer.provideMerge(views),
    Layer.provideMerge(base),
    Layer.provideMerge(tables),
    Layer.provideMerge(storage)
  )
}
