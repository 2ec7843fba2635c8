/**
 * effect-partysync/server outside workerd (plain Node, vitest): every
 * service and Layer of `./index.ts`, so handlers can be unit-tested, but no
 * partyserver, whose module imports `cloudflare:workers`. `SyncServer` and
 * the routing helpers exist so that a server module still loads; using
 * them throws.
 *
 * @since 0.2.0
 */
export * from "../services/index.ts"
export * as SyncLayer from "../layers/SyncLayer.ts"

const needsWorkerd = (name: string) =>
  new Error(
    `effect-partysync/server: ${name} runs in workerd (the "workerd" export condition). ` +
      "In Node, test handlers with effect-partysync/testing."
  )

/** Stands in for `SyncServer` outside workerd: a subclass can be declared, not constructed. */
export class SyncServer {
  constructor() {
    throw needsWorkerd("SyncServer")
  }
}

/** Stands in for partyserver's `routePartykitRequest` outside workerd. */
export const routePartykitRequest = (..._args: ReadonlyArray<unknown>): never => {
  throw needsWorkerd("routePartykitRequest")
}

/** Stands in for partyserver's `getServerByName` outside workerd. */
export const getServerByName = (..._args: ReadonlyArray<unknown>): never => {
  throw needsWorkerd("getServerByName")
}
