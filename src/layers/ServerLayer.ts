/**
 * Wires the services of one SyncServer object: Storage and effect/sql's
 * SqlClient over the object's SQLite, the app's own Layer, the handler and
 * authorizer built from the server's members, and the sync services.
 *
 * @since 0.2.0
 */
import * as Layer from "effect/Layer"
import type { SqlClient } from "effect/sql"
import type * as Channel from "../protocol/Channel.ts"
import type { ActionHandler } from "../services/ActionHandler.ts"
import type { Authorizer } from "../services/ActionHandler.ts"
import { Connections, type SyncConnection } from "../services/Connections.ts"
import { DurableObjectStorage, type DurableObjectSql, Storage } from "../services/Storage.ts"
import * as StorageSqlClient from "../services/StorageSqlClient.ts"
import { Channels, SyncConfig, type SyncOptions } from "../services/SyncConfig.ts"
import type { Views } from "../services/Views.ts"
import * as SyncLayer from "./SyncLayer.ts"

/** What an object's services are built from. */
export interface ServerParts<R> {
  readonly storage: DurableObjectSql
  readonly connections: () => Iterable<SyncConnection>
  readonly channels: ReadonlyArray<Channel.Any>
  readonly options: SyncOptions
  /** The app's own services (`SyncServer.layer`). */
  readonly app: Layer.Layer<R, unknown, SqlClient.SqlClient | Storage> | undefined
  readonly handler: Layer.Layer<ActionHandler, unknown, SqlClient.SqlClient | Storage | R>
  readonly authorizer: Layer.Layer<Authorizer>
  /** The channels' read rules. */
  readonly views: Layer.Layer<Views, never, SqlClient.SqlClient | Storage>
}

/** The services of one object, with the app's. */
export const make = <R>(parts: ServerParts<R>) => {
  const base = Layer.mergeAll(
    Layer.succeed(DurableObjectStorage, parts.storage),
    Layer.succeed(Connections, Connections.of({ all: parts.connections })),
    Layer.succeed(Channels, Channels.fromList(parts.channels)),
    Layer.succeed(SyncConfig, parts.options)
  )
  const storage = StorageSqlClient.layer.pipe(Layer.provideMerge(Storage.layer.pipe(Layer.provide(base))))
  const app = ((parts.app ?? Layer.empty) as Layer.Layer<R, unknown, SqlClient.SqlClient | Storage>).pipe(Layer.provideMerge(storage))
  return SyncLayer.layer.pipe(
    Layer.provide(Layer.mergeAll(parts.handler, parts.authorizer)),
    Layer.provideMerge(parts.views.pipe(Layer.provide(app))),
    Layer.provideMerge(app),
    Layer.provideMerge(base)
  )
}
