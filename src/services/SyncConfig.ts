/**
 * The declared channels and the tunables of one sync server.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Channel from "../protocol/Channel.ts"
import { DEFAULT_MAX_INBOUND_FRAME_BYTES, MAX_OUTBOUND_FRAME_BYTES } from "../protocol/Protocol.ts"

/** The channels a server declares, by name. A wire channel name is only ever looked up here. */
export class Channels extends Context.Service<Channels, ReadonlyMap<string, Channel.Any>>()(
  "effect-partysync/Channels"
) {
  /** Builds the registry; duplicate names or tables throw. */
  static fromList(channels: ReadonlyArray<Channel.Any>): ReadonlyMap<string, Channel.Any> {
    const map = new Map<string, Channel.Any>()
    const tables = new Set<string>()
    for (const channel of channels) {
      if (map.has(channel.name)) throw new TypeError(`effect-partysync: channel ${channel.name} declared twice`)
      if (tables.has(channel.table)) throw new TypeError(`effect-partysync: table ${channel.table} backs two channels`)
      map.set(channel.name, channel)
      tables.add(channel.table)
    }
    return map
  }
}

/** Tunables. */
export interface SyncOptions {
  /** Soft-deleted rows older than this (by their `deleted_at`, in ms) are removed by the GC alarm. */
  readonly tombstoneRetentionMs: number
  /**
   * Clients not seen for this long that have confirmed every outcome are
   * forgotten by the GC alarm (anything they push later is new). Clients with
   * outcomes to confirm are kept.
   */
  readonly clientRetentionMs: number
  /** How often the GC alarm runs. 0 disables it. */
  readonly gcIntervalMs: number
  /** Inbound frames larger than this are refused with `FrameTooLarge`. */
  readonly maxInboundFrameBytes: number
  /** Outbound frames are split to stay below this. */
  readonly maxOutboundFrameBytes: number
  /**
   * After two sync answers for a channel on a connection, further Subscribes
   * for it are answered at most once per this many ms (more get
   * `TooManyInFlight`, which clients retry later).
   */
  readonly minSyncIntervalMs: number
  /** Actions a connection may have queued and undecided at once before `TooManyInFlight`. */
  readonly maxInFlightPerConnection: number
  /**
   * Client ids one principal may hold in the ledger. A new client id past it
   * takes the place of the principal's longest-idle client that has confirmed
   * every outcome; when none has, its push is refused with `TooManyClients`.
   */
  readonly maxClientsPerPrincipal: number
  /**
   * Run transactions (and so every `onAction`) synchronously inside
   * `transactionSync`, for servers whose handlers never await (they only
   * use Storage): cheaper per action, with no promise hop per transaction.
   * A handler that awaits then fails with `HandlerFailed` and writes
   * nothing. Off by default.
   */
  readonly synchronousHandlers: boolean
  /**
   * Actions a push decides per turn: a larger push is decided in slices of
   * this many (one transaction each), and other connections' work runs
   * between them. Its reply still comes once, after the last slice.
   */
  readonly actionsPerTurn: number
  /**
   * Actions a push decides per turn while its connection is the only one
   * open in the object: with no other connection to let in, fewer turns
   * (each pays its slice's commit) drain a queue faster.
   */
  readonly actionsPerTurnAlone: number
  /** Rows a full sync (a reset answer) reads and sends per turn; other work runs between them. */
  readonly syncRowsPerTurn: number
  /**
   * Rows a full sync reads and sends per turn while its connection is the
   * only one open in the object: each turn costs a trip through the event
   * loop, and with no other connection to let in, fewer turns answer sooner.
   * A turn then reads at most half of `maxOutboundFrameBytes` (at the bytes
   * per row of the chunk before), and never fewer than `syncRowsPerTurn`
   * rows; the sync's first chunk is `syncRowsPerTurn` rows, which shows how
   * large they are, and its turn reads on from there. So wide rows are read
   * `syncRowsPerTurn` at a time as before.
   */
  readonly syncRowsPerTurnAlone: number
  /** Full syncs in progress at once in the object; more wait for one to end (they are never refused for it). */
  readonly maxFullSyncsPerRoom: number
  /** Full syncs in progress at once on one connection; more wait likewise. */
  readonly maxFullSyncsPerConnection: number
  /**
   * Open sockets one principal may hold in the object; past it a new socket
   * is refused with `TooManyConnections`. Sockets granted the principal null
   * (the default grant) count only toward `maxConnectionsPerRoom`.
   */
  readonly maxConnectionsPerPrincipal: number
  /** Open sockets the object accepts; past it a new socket is refused with `TooManyConnections`. */
  readonly maxConnectionsPerRoom: number
  /**
   * Invalid frames (malformed, unknown, too large, for an unknown channel, or
   * refused as `TooManyInFlight`) a connection may send within
   * `invalidFramesWindowMs`; one more closes it with 1008 (policy violation)
   * and the reason `TooManyInvalidFrames`.
   */
  readonly maxInvalidFrames: number
  /** The window `maxInvalidFrames` counts in. */
  readonly invalidFramesWindowMs: number
  /**
   * Bytes per second a connection may send ahead of the server (frames that
   * arrive while its earlier frames are still being worked on), on average:
   * a bucket of `maxInboundBurstBytes` refilled at this rate. A frame that
   * finds it empty closes the connection with 1008 and the reason
   * `ByteRateExceeded`. A client that waits for each answer before sending
   * more never pays; ours, with several clients on one socket, keeps what it
   * sends ahead within its byte budget (see `maxInboundBurstBytes`).
   */
  readonly maxInboundBytesPerSecond: number
  /**
   * The most bytes a connection may send ahead at once before
   * `maxInboundBytesPerSecond` applies. It bounds how much of a flood the
   * object works through before muting it, while the others' frames wait
   * behind it in the runtime's queue. Our client keeps its pushes ahead
   * within 1 MiB plus one push (`MAX_BYTES_IN_FLIGHT`): never set this below
   * that.
   */
  readonly maxInboundBurstBytes: number
  /**
   * A connection over either abuse limit is told why and muted at once (its
   * frames dropped unread, unanswered), then closed this long after.
   */
  readonly abuseCloseDelayMs: number
}

/** The default tunables. */
export const defaultOptions: SyncOptions = {
  tombstoneRetentionMs: 7 * 24 * 60 * 60 * 1000,
  clientRetentionMs: 30 * 24 * 60 * 60 * 1000,
  gcIntervalMs: 60 * 60 * 1000,
  maxInboundFrameBytes: DEFAULT_MAX_INBOUND_FRAME_BYTES,
  maxOutboundFrameBytes: MAX_OUTBOUND_FRAME_BYTES,
  maxInFlightPerConnection: 64,
  maxClientsPerPrincipal: 1_000,
  minSyncIntervalMs: 1_000,
  synchronousHandlers: false,
  actionsPerTurn: 8,
  actionsPerTurnAlone: 64,
  syncRowsPerTurn: 125,
  syncRowsPerTurnAlone: 2_000,
  maxFullSyncsPerRoom: 2,
  maxFullSyncsPerConnection: 1,
  maxConnectionsPerPrincipal: 100,
  maxConnectionsPerRoom: 1_000,
  maxInvalidFrames: 20,
  invalidFramesWindowMs: 10_000,
  maxInboundBytesPerSecond: 4 * 1024 * 1024,
  maxInboundBurstBytes: 4 * 1024 * 1024,
  abuseCloseDelayMs: 5_000
}

/** The tunables in force. */
export const SyncConfig = Context.Reference<SyncOptions>("effect-partysync/SyncConfig", {
  defaultValue: () => defaultOptions
})
