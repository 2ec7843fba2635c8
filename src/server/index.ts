/**
 * effect-partysync/server: `SyncServer` (a partyserver `Server` for
 * workerd), partyserver's routing helpers, and the services and Layers it
 * is built from, for handlers and for composing your own.
 *
 * This file is what the `workerd` and `worker` export conditions load. Any
 * other runtime (plain Node, vitest) gets `./node.ts`: the same services,
 * without partyserver, so a handlers module that imports `Storage` or
 * `ActionRejected` from here runs in a Node unit test.
 *
 * @since 0.1.0
 */
export * from "../services/index.ts"
export * as SyncLayer from "../layers/SyncLayer.ts"
export { type Grant, SyncServer } from "./SyncServer.ts"
export { getServerByName, routePartykitRequest } from "partyserver"
