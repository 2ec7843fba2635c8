/**
 * Wires the four services of a sync server together. Storage is left to the
 * caller: the Durable Object provides `Storage.layer`, unit tests provide
 * `layerNodeSqlite`.
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import { ActionDispatch } from "../services/ActionDispatch.ts"
import { Broadcast } from "../services/Broadcast.ts"
import { Limits } from "../services/Limits.ts"
import { Reconciliation } from "../services/Reconciliation.ts"

/** ActionDispatch, Reconciliation, Broadcast and the limit counters; needs Storage, Connections, Channels, Views, ActionHandler, Authorizer. */
export const layer = ActionDispatch.layer.pipe(
  Layer.provideMerge(Reconciliation.layer),
  Layer.provideMerge(Broadcast.layer),
  Layer.provideMerge(Limits.layer)
)
