/**
 * effect-partysync: keep a Durable Object's SQLite records in sync with
 * every connected client.
 *
 * @since 0.1.0
 */
export { type ActionResult, type Grant, SyncServer } from "./SyncServer.ts"
export * as Channel from "../services/Channel.ts"
export { ActionRejected, NotAuthorized, StorageError, SyncFailure } from "../services/Errors.ts"
export { Storage, type SqlValue } from "../services/Storage.ts"
export { Reconciliation } from "../services/Reconciliation.ts"
export type { SyncOptions } from "../services/SyncConfig.ts"
export { getServerByName, routePartykitRequest } from "partyserver"
