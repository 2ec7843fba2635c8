/**
 * Broadcast: fan-out of committed changes to the connections subscribed to
 * a channel, in version order. Each frame is encoded once and the same text
 * goes to every subscriber; a view's frames once per rule (and
 * subscription name), for every subscriber under it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Connections, type SyncConnection } from "./Connections.ts"
import { changeFrames, type ChannelChanges, resultRowFrames, syncFrames, utf8Length } from "./Frames.ts"
import { channelOfSub, encodeServerFrame, type Pushed, type ServerMessage } from "../protocol/Protocol.ts"
import { SyncConfig } from "./SyncConfig.ts"
import { Views } from "./Views.ts"
import * as ViewSync from "./ViewSync.ts"

/**
 * The most JSON characters a connection's state may take: the socket's
 * attachment holds 2,048 bytes, partyserver's id, tags and URL included.
 */
export const MAX_STATE_CHARS = 1_280

/** The Broadcast service. */
export class Broadcast extends Context.Service<Broadcast, {
  /** The channels some connection receives live changes for. */
  readonly subscribed: () => ReadonlySet<string>
  /**
   * Starts delivering a channel's live changes to a connection: the whole
   * channel, or as subscription `sub` (params or a read rule) under the rule
   * whose hash is `hash`. False when the connection's state cannot hold
   * one more subscription.
   */
  readonly subscribe: (connection: SyncConnection, channel: string, sub?: { readonly sub: string; readonly hash: string }) => Effect.Effect<boolean>
  /** Whether the connection's state has room for one more subscription of that name. */
  readonly fits: (connection: SyncConnection, sub: string) => boolean
  /** Stops delivering a channel's (or one subscription's) live changes to a connection. */
  readonly unsubscribe: (connection: SyncConnection, channel: string, sub?: string) => Effect.Effect<void>
  /**
   * Sends committed changes to every subscriber of their channel, except
   * `withheld`: its frames are returned instead (an action's sender gets them
   * inside its `Ack`). A view's subscribers get what their rule admits.
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
    history: string,
    sub?: string,
    view?: boolean
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

      const views = yield* Views

      const subscribe = Effect.fnUntraced(function*(connection: SyncConnection, channel: string, sub?: { readonly sub: string; readonly hash: string }) {
        const state = connection.state
        if (sub === undefined) {
          if (!state.channels.includes(channel)) connection.setState({ ...state, channels: [...state.channels, channel] })
          return true
        }
        const subs = (state.subs ?? []).filter(([name]) => name !== sub.sub)
        const next = { ...state, subs: [...subs, [sub.sub, sub.hash] as const] }
        // the state lives in the socket's attachment, which holds 2 KB with partyserver's own
        if (JSON.stringify(next).length > MAX_STATE_CHARS) return false
        try {
          connection.setState(next)
        } catch {
          return false
        }
        return true
      })
      // a rule's hash is 16 characters: the room a subscription's entry takes, measured as the state would hold it
      const fits = (connection: SyncConnection, sub: string) => {
        const state = connection.state
        const subs = (state.subs ?? []).filter(([name]) => name !== sub)
        return JSON.stringify({ ...state, subs: [...subs, [sub, "0123456789abcdef"]] }).length <= MAX_STATE_CHARS
      }
      const unsubscribe = Effect.fnUntraced(function*(connection: SyncConnection, channel: string, sub?: string) {
        const state = connection.state
        views.of(connection).delete(sub ?? channel)
        if (state.channels.includes(channel) && (sub === undefined || sub === channel)) {
          connection.setState({ ...state, channels: state.channels.filter((c) => c !== channel) })
        }
        const name = sub ?? channel
        if (state.subs?.some(([s]) => s === name)) {
          const current = connection.state
          connection.setState({ ...current, subs: current.subs!.filter(([s]) => s !== name) })
        }
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
        // a subscription's frames, filtered and encoded once per rule and name: subscribers that share both share them
        const subFrames = new Map<string, ReadonlyArray<string>>()
        const images = new Map<ChannelChanges, ReturnType<typeof ViewSync.imagesOf>>()
        const framesOfSub = (connection: SyncConnection, sub: string): ReadonlyArray<string> | undefined => {
          const channel = channelOfSub(sub)
          const change = byChannel.get(channel)
          if (change === undefined) return undefined
          const view = views.of(connection).get(sub)
          if (view === undefined) {
            // a channel with params and no rule; a view's subscription whose rule is not known here gets nothing
            return views.has(channel) ? undefined : sub === channel ? framesOf(channel) : cached(`\u0000${sub}`, () => changeFrames(change, limit, sub))
          }
          return cached(`${sub}\u0000${view.rule.key}`, () => {
            let imageOf = images.get(change)
            if (imageOf === undefined) images.set(change, (imageOf = ViewSync.imagesOf(change)))
            const seen = ViewSync.filterLive(change, view.rule, imageOf)
            return seen === undefined ? [] : changeFrames(seen, limit, sub)
          })
        }
        const cached = (key: string, make: () => ReadonlyArray<string>) => {
          let out = subFrames.get(key)
          if (out === undefined) subFrames.set(key, (out = make()))
          return out
        }
        for (const connection of connections.all()) {
          // by identity: two sockets may share an id (partyserver takes it from the client's `_pk`)
          const target = connection === withheld ? kept : undefined
          const state = connection.state
          for (const channel of state.channels) {
            const out = framesOf(channel)
            if (out === undefined) continue
            if (target !== undefined) target.push(...out)
            else for (const frame of out) connection.send(frame)
          }
          if (state.subs === undefined) continue
          for (const [sub] of state.subs) {
            const out = framesOfSub(connection, sub)
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
        function*(connection: SyncConnection, changes: ChannelChanges, reset: boolean, history: string, sub?: string, view?: boolean) {
          const named = sub === undefined || sub === changes.channel ? undefined : sub
          for (const frame of syncFrames(changes, reset, limit, named)) connection.send(frame)
          connection.send(encodeServerFrame({
            _tag: "Synced",
            channel: changes.channel,
            ...(named === undefined ? {} : { sub: named }),
            version: changes.version,
            reset,
            history,
            ...(view === true ? { view: true as const } : {})
          }))
        }
      )

      const subscribed = () => {
        const out = new Set<string>()
        for (const connection of connections.all()) {
          const state = connection.state
          for (const channel of state.channels) out.add(channel)
          if (state.subs !== undefined) for (const [sub] of state.subs) out.add(channelOfSub(sub))
        }
        return out
      }

      return Broadcast.of({ subscribed, subscribe, fits, unsubscribe, publish, pushed, send, sendSync })
    })
  )
}
