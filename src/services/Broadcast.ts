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
import { changeFrames, type ChannelChanges, syncFrames } from "./Frames.ts"
import { encodeServerFrame, type ServerMessage } from "./Protocol.ts"
import { SyncConfig } from "./SyncConfig.ts"

/** The Broadcast service. */
export class Broadcast extends Context.Service<Broadcast, {
  /** Starts delivering a channel's live changes to a connection. */
  readonly subscribe: (connection: SyncConnection, channel: string) => Effect.Effect<void>
  /** Stops delivering a channel's live changes to a connection. */
  readonly unsubscribe: (connection: SyncConnection, channel: string) => Effect.Effect<void>
  /** Sends committed changes to every subscriber of their channel. */
  readonly publish: (changes: ReadonlyArray<ChannelChanges>) => Effect.Effect<void>
  /** Sends a sync answer (chunks, then `Synced`) to one connection. */
  readonly sendSync: (
    connection: SyncConnection,
    changes: ChannelChanges,
    reset: boolean
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
      const publish = Effect.fnUntraced(function*(changes: ReadonlyArray<ChannelChanges>) {
        if (changes.length === 0) return
        const frames = new Map<string, Array<string>>()
        for (const change of changes) frames.set(change.channel, changeFrames(change, limit))
        for (const connection of connections.all()) {
          for (const channel of connection.state.channels) {
            const out = frames.get(channel)
            if (out !== undefined) for (const frame of out) connection.send(frame)
          }
        }
      })

      const send = (connection: SyncConnection, message: ServerMessage) =>
        Effect.sync(() => connection.send(encodeServerFrame(message)))

      const sendSync = Effect.fn("Broadcast.sendSync")(
        function*(connection: SyncConnection, changes: ChannelChanges, reset: boolean) {
          for (const frame of syncFrames(changes, reset, limit)) connection.send(frame)
          connection.send(encodeServerFrame({ _tag: "Synced", channel: changes.channel, version: changes.version, reset }))
        }
      )

      return Broadcast.of({ subscribe, unsubscribe, publish, send, sendSync })
    })
  )
}
