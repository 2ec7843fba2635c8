/**
 * The open sockets of one object, as the services see them, and the caps on
 * them: per principal (`maxConnectionsPerPrincipal`) and per object
 * (`maxConnectionsPerRoom`). The set is built from partyserver's list once
 * per wake (that list reads every socket's attachment each time, which cost
 * more than a small action) and kept up to date by connect and close.
 *
 * Sockets are counted by the principal `authorizeConnection` granted, from
 * the upgrade (a place is reserved while partyserver accepts it, so a crowd
 * of upgrades at once cannot all pass) until the socket closes. The
 * principal null, the default grant, counts toward the room's cap only: it
 * names nobody.
 *
 * @since 0.2.0
 */
import { principalKey } from "../services/ClientLedger.ts"
import type { SyncConnection } from "../services/Connections.ts"
import type { LimitKind } from "../services/Limits.ts"
import type { SyncOptions } from "../services/SyncConfig.ts"
import { refuseSocketWith, TRY_AGAIN_LATER } from "./Sockets.ts"

/** The caps a new socket is checked against. */
export type Caps = Pick<SyncOptions, "maxConnectionsPerPrincipal" | "maxConnectionsPerRoom">

/** The open sockets of one object, counted per principal. */
export class LiveSockets {
  readonly #list: () => Iterable<SyncConnection>
  readonly #onClosed: (connection: SyncConnection) => void
  #all: Set<SyncConnection> | undefined
  readonly #byPrincipal = new Map<string | null, number>()
  #total = 0

  /** `list` reads the open sockets from partyserver (once per wake); `onClosed` hears of every socket that closes. */
  constructor(list: () => Iterable<SyncConnection>, onClosed: (connection: SyncConnection) => void = () => {}) {
    this.#list = list
    this.#onClosed = onClosed
  }

  /** The open connections. */
  all(): Set<SyncConnection> {
    if (this.#all === undefined) {
      this.#all = new Set(this.#list())
      for (const connection of this.#all) this.#count(principalKey(connection.state.principal), 1)
    }
    return this.#all
  }

  #count(key: string | null, delta: number) {
    const n = (this.#byPrincipal.get(key) ?? 0) + delta
    if (n > 0) this.#byPrincipal.set(key, n)
    else this.#byPrincipal.delete(key)
    this.#total = Math.max(0, this.#total + delta)
  }

  /** A socket was accepted with this principal. */
  opened(connection: SyncConnection, principal: unknown): void {
    if (this.#all === undefined || this.#all.has(connection)) return
    this.#all.add(connection)
    this.#count(principalKey(principal), 1)
  }

  /** A socket closed (or failed). */
  closed(connection: SyncConnection): void {
    this.#onClosed(connection)
    if (this.#all?.delete(connection) === true) this.#count(principalKey(connection.state.principal), -1)
  }

  /**
   * Reserves a place for a new socket of `principal`: the function that
   * gives it back once partyserver accepted the socket (it is counted as open
   * then) or did not; or, over a cap, the refusal to answer the upgrade with
   * (the socket is told `TooManyConnections` and closed with 1013), after
   * `hit` names the cap and the principal.
   */
  admit(principal: unknown, caps: Caps, hit: (kind: LimitKind, principal: string | null) => void): Response | (() => void) {
    this.all()
    const key = principalKey(principal)
    const over = this.#total >= caps.maxConnectionsPerRoom
      ? "socketsPerRoom"
      : key !== null && (this.#byPrincipal.get(key) ?? 0) >= caps.maxConnectionsPerPrincipal
      ? "socketsPerPrincipal"
      : undefined
    if (over !== undefined) {
      hit(over, key)
      const cap = over === "socketsPerRoom" ? `${caps.maxConnectionsPerRoom} open sockets in this room` : `${caps.maxConnectionsPerPrincipal} open sockets per principal`
      return refuseSocketWith("TooManyConnections", `the server allows ${cap}; try again later`, TRY_AGAIN_LATER)
    }
    this.#count(key, 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#count(key, -1)
    }
  }
}
