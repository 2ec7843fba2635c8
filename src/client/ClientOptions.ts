/**
 * What a sync client is made from: the channel (and its params), the user,
 * the socket or where to open one, the optimistic reducer and the limits.
 * Every entry takes these (the Effect `make`, `createSyncClient`, the React
 * hooks' defaults), so they are documented once here, apart from how
 * `makeCore` wires them.
 *
 * @since 0.3.0
 */
import type * as Channel from "../protocol/Channel.ts"
import type { RowId } from "../protocol/Protocol.ts"
import type { SocketLike } from "./Transport.ts"

/** The optimistic reducer: the seed's `(records, action) => records`. */
export type Optimistic<C extends Channel.Any> = (
  records: ReadonlyArray<Channel.RecordOf<C>>,
  action: Channel.ActionOf<C>
) => ReadonlyArray<Channel.RecordOf<C>>

/** Query parameters of the connection URL (e.g. a token); null and undefined values are left out. */
export type QueryParams = Readonly<Record<string, string | null | undefined>>

/**
 * partysocket's `query`: an object, or a function called before every
 * (re)connect, so a token can be refreshed.
 */
export type QueryOption = QueryParams | (() => QueryParams | Promise<QueryParams>)

/** How to reach the server when no socket is given. */
export interface Connection {
  readonly host: string
  readonly party: string
  readonly room: string
  readonly query?: QueryOption
  /** A WebSocket constructor where there is no global one. */
  readonly WebSocket?: unknown
  readonly protocol?: "ws" | "wss"
}

/** Options of a sync client. */
export interface ClientOptions<C extends Channel.Any> {
  readonly channel: C
  /**
   * What part of the channel to sync, for a channel declared with `params`
   * (a board, a date range): the server checks them with the channel's
   * params Schema and its read rule decides the rows. Each params value is
   * its own subscription, with its own local cache.
   */
  readonly params?: Channel.ParamsOf<C> | undefined
  /**
   * Who is signed in (your user's id): the local cache, rows and queued
   * actions, is kept apart per user, so the next user of a browser never
   * sees the last one's rows or sends their queued actions. Set it whenever
   * a browser may be shared. Without it, a view's rows (a channel with a
   * read rule) are kept in memory only.
   */
  readonly userId?: string | undefined
  /** A shared socket (partysocket or WebSocket-like); the client never closes it. */
  readonly socket?: SocketLike | undefined
  /** Without `socket`: where to connect (the client owns and closes that partysocket). */
  readonly host?: string | undefined
  readonly party?: string | undefined
  readonly room?: string | undefined
  /** Query parameters of the URL the client opens (partysocket's `query`); not part of the local cache's key. */
  readonly query?: QueryOption | undefined
  readonly WebSocket?: unknown
  readonly protocol?: "ws" | "wss" | undefined
  /** Applied over the confirmed records for every pending action. */
  readonly optimistic?: Optimistic<C> | undefined
  /** Ids a pending action touches (default: `action.payload.id` or `action.id`). */
  readonly pendingIdsOf?: ((action: Channel.ActionOf<C>) => Iterable<RowId>) | undefined
  /**
   * This instance's client id (default: a fresh random UUID). A fixed one
   * outlives the instance: it is used per channel (the id on the wire is
   * `<clientId>@<channel>`), must be unique per running instance, and each of
   * its actions is sent only once stored.
   */
  readonly clientId?: string | undefined
  /**
   * The most actions unanswered at once on the socket, shared by every client on it (the
   * smallest value among them applies). Default 64, the server's default
   * `maxInFlightPerConnection`; it must not exceed the server's value, or the excess is refused
   * (`TooManyInFlight`) and retried after a backoff.
   */
  readonly maxInFlight?: number | undefined
  /** Records and cursor are written at most this often, in ms (default 500), or 20 times as long as the last write took (that at most 30 s). */
  readonly persistDelayMs?: number | undefined
  /** A pending queue whose heartbeat is older than this (ms) is adopted (default 10000). */
  readonly leaseMs?: number | undefined
  /**
   * The largest frame the client sends, in bytes (default 256 KiB, the
   * server's default `maxInboundFrameBytes`; never above the server's). A push
   * carries as many queued actions as fit; an action that cannot fit alone
   * fails with `InvalidAction`.
   */
  readonly maxFrameBytes?: number | undefined
}
