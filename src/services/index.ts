/**
 * The services of a sync server, for code that composes its own Layers.
 *
 * @since 0.1.0
 */
export * from "./ActionDispatch.ts"
export * from "./ActionHandler.ts"
export * from "./Broadcast.ts"
export * from "./Caller.ts"
export * as Channel from "../protocol/Channel.ts"
export * from "./Connections.ts"
export * from "./Errors.ts"
export {
  type ActionResult,
  type ActionRows,
  type Handler,
  type Handlers,
  layer as layerFromHandlers,
  type OnAction,
  ServerDefinitionError
} from "./Handlers.ts"
export { MigrationFailed, type MigrationRecord } from "./Migrations.ts"
export * from "./Reconciliation.ts"
export * from "./Storage.ts"
export { layer as layerSqlClient } from "./StorageSqlClient.ts"
export * from "./SyncConfig.ts"
export * as Rule from "./Rule.ts"
export { type ReadRule, type ReadRules, ViewFailed, Views } from "./Views.ts"
