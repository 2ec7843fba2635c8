/**
 * Opening a partysocket from `host`/`party`/`room` options. Kept apart from
 * the client core so that code which always passes its own socket (the
 * React hooks) does not bundle partysocket twice or at all.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Scope from "effect/Scope"
import { PartySocket } from "partysocket"
import type * as Channel from "../protocol/Channel.ts"
import { createSyncClientWith, type FacadeOptions, type PlainSyncClient } from "./Facade.ts"
import { type ClientOptions, makeWith, type OpenSocket, type SocketLike, type SyncClient } from "./SyncClient.ts"

/** Opens (and on scope close, closes) a partysocket to `host`/`party`/`room`. */
export const openPartySocket: OpenSocket = (options) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (options.host === undefined || options.room === undefined) {
        throw new TypeError("effect-partysync: pass `socket`, or `host` and `room`")
      }
      return new PartySocket({
        host: options.host,
        room: options.room,
        ...(options.party === undefined ? {} : { party: options.party }),
        ...(options.protocol === undefined ? {} : { protocol: options.protocol }),
        // partysocket calls a function before every (re)connect
        ...(options.query === undefined ? {} : { query: options.query }),
        ...(options.WebSocket === undefined ? {} : { WebSocket: options.WebSocket as typeof WebSocket })
      }) as unknown as SocketLike & { close(): void }
    }),
    (socket) => Effect.sync(() => socket.close())
  )

/** Makes a sync client over `socket`, or over a partysocket it opens from `host`/`room`. */
export const make = <C extends Channel.Any>(
  options: ClientOptions<C>
): Effect.Effect<SyncClient<C>, never, Scope.Scope | KeyValueStore.KeyValueStore> => makeWith(options, openPartySocket)

/** Creates a sync client outside Effect, over `socket` or a partysocket it opens from `host`/`room`. */
export const createSyncClient = <C extends Channel.Any>(options: FacadeOptions<C>): PlainSyncClient<C> =>
  createSyncClientWith(options, openPartySocket)
