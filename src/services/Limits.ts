/**
 * Who hit which limit: one counter per kind of refusal or closure, read by
 * `SyncServer.limits()`, and a warning in the log naming the connection and
 * its principal. A flood must not flood the log too: each connection is
 * named once per kind, and every other hit of a kind is summed into one line
 * at most every `LOG_EVERY_MS`.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"

/** The limits a connection or a socket can hit. */
export type LimitKind =
  /** A new socket over `maxConnectionsPerPrincipal`. */
  | "socketsPerPrincipal"
  /** A new socket over `maxConnectionsPerRoom`. */
  | "socketsPerRoom"
  /** A connection closed after `maxInvalidFrames`. */
  | "invalidFrames"
  /** A connection closed over `maxInboundBytesPerSecond`. */
  | "byteRate"
  /** A push refused over `maxInFlightPerConnection`. */
  | "inFlight"
  /** A Subscribe refused over `minSyncIntervalMs` (or too many waiting). */
  | "syncRate"
  /** A full sync that had to wait for `maxFullSyncsPerRoom` or `maxFullSyncsPerConnection`. */
  | "fullSyncQueued"

/** Counts per limit since the object started, and full syncs now. */
export interface LimitCounts {
  readonly refused: {
    /** Sockets refused by the per-principal and per-room caps. */
    readonly socketsPerPrincipal: number
    readonly socketsPerRoom: number
    /** Pushes refused with `TooManyInFlight`. */
    readonly inFlight: number
    /** Subscribes refused with `TooManyInFlight`. */
    readonly syncRate: number
  }
  readonly closed: {
    /** Connections closed (1008) after too many invalid frames. */
    readonly invalidFrames: number
    /** Connections closed (1008) over the byte rate. */
    readonly byteRate: number
  }
  readonly fullSyncs: {
    /** Full syncs that waited for a budget. */
    readonly queued: number
    /** Full syncs waiting now, and running now. */
    readonly waiting: number
    readonly running: number
  }
}

/** Who hit a limit, for the log. */
export interface Offender {
  readonly connection?: object | undefined
  readonly id?: string | undefined
  readonly principal: string | null
}

/** How often, at most, the hits of one kind not named individually are summed in the log. */
export const LOG_EVERY_MS = 10_000

const describe: Record<LimitKind, string> = {
  socketsPerPrincipal: "socket refused: too many open sockets for its principal",
  socketsPerRoom: "socket refused: too many open sockets in the room",
  invalidFrames: "connection closed: too many invalid frames",
  byteRate: "connection closed: over the inbound byte rate",
  inFlight: "push refused: too many actions in flight",
  syncRate: "Subscribe refused: sync answers are rate-limited",
  fullSyncQueued: "full sync queued: the sync budget is in use"
}

/** Principals named per kind before every further one is only summed (the log must stay bounded). */
const MAX_NAMED_PRINCIPALS = 1_000

/** The counters of one object. */
export const make = (log: (line: string) => void = (line) => console.warn(line)) => {
  const counts = new Map<LimitKind, number>()
  const connections = new Map<LimitKind, WeakSet<object>>()
  const principals = new Map<LimitKind, Set<string | null>>()
  const unlogged = new Map<LimitKind, { n: number; since: number }>()
  let waiting = 0
  let running = 0

  /** True the first time this connection (or, for a socket, this principal) hits this kind. */
  const first = (kind: LimitKind, who: Offender): boolean => {
    if (who.connection !== undefined) {
      let seen = connections.get(kind)
      if (seen === undefined) connections.set(kind, (seen = new WeakSet()))
      if (seen.has(who.connection)) return false
      seen.add(who.connection)
      return true
    }
    let seen = principals.get(kind)
    if (seen === undefined) principals.set(kind, (seen = new Set()))
    if (seen.has(who.principal) || seen.size >= MAX_NAMED_PRINCIPALS) return false
    seen.add(who.principal)
    return true
  }

  const hit = (kind: LimitKind, who: Offender, now = Date.now()): void => {
    counts.set(kind, (counts.get(kind) ?? 0) + 1)
    if (first(kind, who)) {
      const connection = who.connection === undefined ? "" : `connection ${JSON.stringify(who.id ?? "?")}, `
      log(`effect-partysync: ${describe[kind]} (${connection}principal ${who.principal ?? "null"})`)
      return
    }
    const pending = unlogged.get(kind)
    if (pending === undefined) {
      unlogged.set(kind, { n: 1, since: now })
      return
    }
    pending.n++
    if (now - pending.since >= LOG_EVERY_MS) {
      log(`effect-partysync: ${describe[kind]}: ${pending.n} more in the last ${Math.round((now - pending.since) / 1000)} s`)
      unlogged.set(kind, { n: 0, since: now })
    }
  }

  return {
    hit,
    /** A full sync starts waiting for the budget (`queued`), or stops waiting. */
    waiting: (delta: number) => {
      waiting += delta
    },
    running: (delta: number) => {
      running += delta
    },
    counts: (): LimitCounts => ({
      refused: {
        socketsPerPrincipal: counts.get("socketsPerPrincipal") ?? 0,
        socketsPerRoom: counts.get("socketsPerRoom") ?? 0,
        inFlight: counts.get("inFlight") ?? 0,
        syncRate: counts.get("syncRate") ?? 0
      },
      closed: { invalidFrames: counts.get("invalidFrames") ?? 0, byteRate: counts.get("byteRate") ?? 0 },
      fullSyncs: { queued: counts.get("fullSyncQueued") ?? 0, waiting, running }
    })
  }
}

/** The counters of one object. */
export class Limits extends Context.Service<Limits, ReturnType<typeof make>>()("effect-partysync/Limits") {
  /** Fresh counters that log with `console.warn`. */
  static readonly layer = Layer.sync(Limits, () => make())
}
