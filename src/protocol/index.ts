/**
 * effect-partysync: keep a Durable Object's SQLite records in sync with
 * every connected client. This entry is isomorphic: channels, the wire
 * protocol and the errors a client can see, for modules that both the
 * server and the browser import. It never loads partyserver or a
 * `cloudflare:` module. The server is `effect-partysync/server`, the client
 * `effect-partysync/client`, the React hooks `effect-partysync/react`.
 *
 * @since 0.2.0
 */
export * as Channel from "./Channel.ts"
export * as Protocol from "./Protocol.ts"
export {
  ActionDiscarded,
  ActionRejected,
  DiscardReason,
  fromFailure,
  HandlerFailed,
  HandlerFailure,
  InvalidAction,
  NotAuthorized,
  type SendError,
  SyncRefused
} from "./Errors.ts"
export type { ErrorReason, ProtocolReason, RowId, WireRow } from "./Protocol.ts"
