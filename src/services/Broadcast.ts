/**
 * Broadcast: fan-out of committed changes to the connections subscribed to
 * a channel, in version order. Each frame is encoded once and the same text
 * goes to every subscriber.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Connections, type SyncConnection } from "./Connections.ts"
import { changeFrames, type ChannelChanges, resultRowFrames, syncFrames, utf8Length } from "./Frames.ts"
import { encodeServerFrame, type Pushed, type ServerMessage } from "../protocol/Protocol.ts"
import { SyncConfig } from "./SyncConfig.ts"

/** The Broadcast service. */
export class Broadcast extends Context.Service<Broadcast, {
  /** The channels some connection receives live changes for. */
  readonly subscribed: () => ReadonlySet<string>
  /** Starts delivering a channel's live changes to a connection. */
  readonly subscribe: (connection: SyncConnection, channel: string) => Effect.Effect<void>
  /** Stops delivering a channel's live changes to a connection. */
  readonly unsubscribe: (connection: SyncConnection, channel: string) => Effect.Effect<void>
  /**
   * Sends committed changes to every subscriber of their channel, except
   * `withheld`: its frames are returned instead (an action's sender gets them
   * inside its `Ack`).
   */
  readonly publish: (
    changes: ReadonlyArray<ChannelChanges>,
    withheld?: SyncConnection | undefined
  ) => Effect.Effect<ReadonlyArray<string>>
  /**
   * Sends a push's reply carrying the `Change` frames `publish` withheld for
   * its sender. What does not fit in one frame goes before it: the changes as
   * they are, an action's rows as `ResultRows` chunks; results that do not
   * fit together are split over several `Pushed` frames.
   */
  readonly pushed: (connection: SyncConnection, reply: Pushed, changes: ReadonlyArray<string>) => Effect.Effect<void>
  /** Sends a sync answer (chunks, then `Synced` with the history) to one connection. */
  readonly sendSync: (
    connection: SyncConnection,
    changes: ChannelChanges,
    reset: boolean,
    history: string
  ) => Effect.Effect<void>
  /** Sends one message to one connection. */
  readonly send: (connection: SyncConnection, message: ServerMessage) => Effect.Effect<void>
}>()("effect-partysync/Broadcast") {
  /** Broadcast over the connections in context. */
  static readonly layer = Layer.effect(
    Broadcast,
    Effect.gen(function*() {
      const connections = yield* Connections
      const config = yield* SyncConfig
      const limit = config.maxOutboundFrameBytes

      const subscribe = Effect.fnUntraced(function*(connection: SyncConnection, channel: string) {
        const state = connection.state
        if (state.channels.includes(channel)) return
        connection.setState({ ...state, channels: [...state.channels, channel] })
      })
      const unsubscribe = Effect.fnUntraced(function*(connection: SyncConnection, channel: string) {
        const state = connection.state
        if (!state.channels.includes(channel)) return
        connection.setState({ ...state, channels: state.channels.filter((c) => c !== channel) })
      })

      // untraced: it runs for every committed action, and a span costs more than the fan-out of a small change
      const publish = (changes: ReadonlyArray<ChannelChanges>, withheld?: SyncConnection) => Effect.sync(() => {
        const kept: Array<string> = []
        if (changes.length === 0) return kept
        const byChannel = new Map<string, ChannelChanges>()
        for (const change of changes) byChannel.set(change.channel, change)
        // encoded once per channel, and only once someone receives it
        const frames = new Map<string, Array<string>>()
        const framesOf = (channel: string) => {
          let out = frames.get(channel)
          if (out === undefined) {
            const change = byChannel.get(channel)
            if (change === undefined) return undefined
            frames.set(channel, (out = changeFrames(change, limit)))
          }
          return out
        }
        for (const connection of connections.all()) {
          // by identity: two sockets may share an id (partyserver takes it from the client's `_pk`)
          const target = connection === withheld ? kept : undefined
          for (const channel of connection.state.channels) {
            const out = framesOf(channel)
            if (out === undefined) continue
            if (target !== undefined) target.push(...out)
            else for (const frame of out) connection.send(frame)
          }
        }
        return kept
      })

      // The sender of a push gets its changes inside the reply: one frame instead of two on the
      // hot path. The Change frames are embedded as they are (already encoded for the others).
      const withChanges = (plain: string, changes: ReadonlyArray<string>) => `${plain.slice(0, -1)},"changes":[${changes.join(",")}]}`
      const pushed = (connection: SyncConnection, reply: Pushed, changes: ReadonlyArray<string>) =>
        Effect.sync(() => {
          const plain = encodeServerFrame(reply)
          // the common case, a small reply with small changes, fits at 3 bytes per unit: nothing to count
          let bound = plain.length * 3 + 16
          for (const frame of changes) bound += frame.length * 3 + 1
          if (bound <= limit) return connection.send(changes.length === 0 ? plain : withChanges(plain, changes))
          let size = utf8Length(plain)
          for (const frame of changes) size += utf8Length(frame) + 1
          if (size + 16 <= limit) return connection.send(withChanges(plain, changes))
          for (const frame of changes) connection.send(frame)
          // results packed into frames below the limit; one whose rows alone are too large sends them ahead in chunks
          const head = { ...reply, results: [] as Array<Pushed["results"][number]> }
          const base = utf8Length(encodeServerFrame(head)) + 16
          let batch: Array<Pushed["results"][number]> = []
          let used = base
          const flush = () => {
            if (batch.length > 0) connection.send(encodeServerFrame({ ...head, results: batch }))
            batch = []
            used = base
          }
          for (const result of reply.results) {
            let one = result
            let bytes = utf8Length(JSON.stringify(one)) + 1
            if (base + bytes > limit && "rows" in one) {
              for (const frame of resultRowFrames(reply.clientId, one.seq, one.rows, limit)) connection.send(frame)
              one = { seq: one.seq, rows: [] }
              bytes = utf8Length(JSON.stringify(one)) + 1
            }
            if (used + bytes > limit) flush()
            batch.push(one)
            used += bytes
          }
          if (batch.length > 0 || reply.results.length === 0) connection.send(encodeServerFrame({ ...head, results: batch }))
        })

      const send = (connection: SyncConnection, message: ServerMessage) =>
        Effect.sync(() => connection.send(encodeServerFrame(message)))

      const sendSync = Effect.fn("Broadcast.sendSync")(
        function*(connection: SyncConnection, changes: ChannelChanges, reset: boolean, history: string) {
          for (const frame of syncFrames(changes, reset, limit)) connection.send(frame)
          connection.send(encodeServerFrame({ _tag: "Synced", channel: changes.channel, version: changes.version, reset, history }))
        }
      )

      const subscribed = () => {
        const out = new Set<string>()
        for (const connection of connections.all()) for (const channel of connection.state.channels) out.add(channel)
        return out
      }

      return Broadcast.of({ subscribed, subscribe, unsubscribe, publish, pushed, send, sendSync })
    })
  )
}
