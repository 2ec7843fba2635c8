/**
 * Protocol abuse ends the connection: each connection may send a few
 * invalid frames within a window (`maxInvalidFrames` per
 * `invalidFramesWindowMs`), and bytes ahead of the server at a bounded rate
 * (a bucket of `maxInboundBurstBytes` refilled at
 * `maxInboundBytesPerSecond`). Past either, its next frame gets a verdict:
 * the connection is told why and closed with 1008 (policy violation).
 *
 * Bytes count when a frame arrives while the connection's earlier frames
 * are still being worked on: a client that waits for its answers paces
 * itself, however large its frames; one that pipelines without waiting is
 * the flood. The library's own client stays far inside both limits: it
 * sends only valid frames, keeps within the in-flight budget, and has at
 * most one push per channel unanswered, each no larger than the server's
 * frame limit, and 1 MiB of them in all beyond the last one sent.
 * Allowances are kept per connection object, so a hibernated connection
 * starts afresh when it wakes.
 *
 * @since 0.2.0
 */
import type { ErrorReason } from "../protocol/Protocol.ts"
import type { SyncConnection } from "./Connections.ts"
import type { SyncOptions } from "./SyncConfig.ts"

/** Why a connection is closed. */
export interface Verdict {
  readonly kind: "invalidFrames" | "byteRate"
  /** The typed reason: in the `Failure` frame, and first in the close reason. */
  readonly reason: Extract<ErrorReason, "TooManyInvalidFrames" | "ByteRateExceeded">
  readonly message: string
}

/** The close code of a connection closed for abuse: policy violation. */
export const POLICY_VIOLATION = 1008

/**
 * Refusals that count as invalid frames: a client of ours never sends one
 * twice in a row. `TooManyInFlight` counts too: our client keeps within the
 * in-flight budget and waits between Subscribes, so only a client that
 * pipelines past them gets many.
 */
export const INVALID_REASONS: ReadonlySet<string> = new Set(["MalformedJson", "UnknownMessage", "FrameTooLarge", "UnknownChannel", "TooManyInFlight"])

interface Allowance {
  tokens: number
  at: number
  /** When each recent invalid frame came, oldest first. */
  readonly invalid: Array<number>
}

type Limits = Pick<SyncOptions, "maxInvalidFrames" | "invalidFramesWindowMs" | "maxInboundBytesPerSecond" | "maxInboundBurstBytes">

/** The allowances of one object's connections. */
export const make = (limits: Limits) => {
  const allowances = new WeakMap<SyncConnection, Allowance>()
  const closed = new WeakSet<SyncConnection>()

  const of = (connection: SyncConnection, now: number): Allowance => {
    let a = allowances.get(connection)
    if (a === undefined) allowances.set(connection, (a = { tokens: limits.maxInboundBurstBytes, at: now, invalid: [] }))
    return a
  }

  return {
    /** The connection was closed for abuse: its later frames are dropped unread. */
    isClosed: (connection: SyncConnection): boolean => closed.has(connection),
    /** Marks a connection closed for abuse. */
    close: (connection: SyncConnection): void => {
      closed.add(connection)
    },
    /**
     * Charges a frame's size (UTF-16 units of a text frame, bytes of a binary
     * one) to its connection, when it came while earlier ones were in progress.
     */
    frame: (connection: SyncConnection, size: number, pipelined: boolean, now = Date.now()): Verdict | undefined => {
      if (!pipelined) return undefined
      const a = of(connection, now)
      a.tokens = Math.min(limits.maxInboundBurstBytes, a.tokens + ((now - a.at) * limits.maxInboundBytesPerSecond) / 1000)
      a.at = now
      a.tokens -= size
      if (a.tokens >= 0) return undefined
      return {
        kind: "byteRate",
        reason: "ByteRateExceeded",
        message: `this connection sent more than ${limits.maxInboundBytesPerSecond} bytes per second ahead of the server (bursts up to ${limits.maxInboundBurstBytes})`
      }
    },
    /** Counts an invalid frame against its connection. */
    invalid: (connection: SyncConnection, now = Date.now()): Verdict | undefined => {
      const a = of(connection, now)
      a.invalid.push(now)
      while (a.invalid.length > 0 && now - a.invalid[0]! > limits.invalidFramesWindowMs) a.invalid.shift()
      if (a.invalid.length <= limits.maxInvalidFrames) return undefined
      return {
        kind: "invalidFrames",
        reason: "TooManyInvalidFrames",
        message: `this connection sent more than ${limits.maxInvalidFrames} invalid or over-budget frames in ${limits.invalidFramesWindowMs} ms`
      }
    }
  }
}

/** The allowances of one object's connections. */
export type Abuse = ReturnType<typeof make>
