/**
 * A protocol-level bench client of one subscription to a channel of the
 * view bench server (bench/raw/views.ts), connected as a user (`?user=`),
 * with params or without; and the raw baseline's client of its board query.
 *
 * Like the `ours` client of clients.ts it pushes one push at a time, the
 * actions queued meanwhile going in the next one, and keeps a Map of the
 * rows it holds. It follows the view protocol: a `Resync` is answered with a
 * Subscribe from its cursor carrying the ids it holds (`autoResync`).
 */
import { subOf } from "../src/protocol/Protocol.ts"
import { open, pushQueue, type SyncStats, wsUrl } from "./clients.ts"
import { bytesOf, now } from "./stats.ts"
import type { Side } from "./workers.ts"

/** The party path of the view bench objects on each side. */
export const VIEW_PARTY = { ours: "parties/bench-views", raw: "parties/raw-views" } as const

/** The WebSocket URL of a view bench room, as a user. */
const viewUrl = (side: Side, room: string, user: string | undefined) =>
  `${wsUrl({ ...side, party: VIEW_PARTY[side.name] }, room)}${user === undefined ? "" : `?user=${encodeURIComponent(user)}`}`

/** A connected view client. */
export interface ViewClient {
  readonly user: string | undefined
  /** The subscription's name (the channel's, or `subOf(channel, params)`). */
  readonly sub: string
  /** Subscribes from scratch; resolves at `Synced`. */
  sync(): Promise<SyncStats>
  /** Writes a row through the channel's `put` action; resolves with the reply's rows. */
  put(id: string, board: string, bucket: number): Promise<ReadonlyArray<ReadonlyArray<unknown>>>
  /** Whether it holds a live row with this id. */
  has(id: string): boolean
  readonly size: number
  /** Called after a `Change` (or the sender's own changes) was applied. */
  onChange: (() => void) | undefined
  /** Called after a sync answer was applied (a Resync's included), with what it carried. */
  onSynced: ((s: SyncStats & { readonly removed: number }) => void) | undefined
  /** Called when a `Resync` arrived (before it is answered). */
  onResync: (() => void) | undefined
  /** Answers a `Resync` by subscribing again from the cursor with the ids held (on by default). */
  autoResync: boolean
  /** `Resync` frames received. */
  readonly resyncs: number
  close(): void
}

let counter = 0

/** Connects a view client to a room of our view bench object. */
export const connectView = async (side: Side, room: string, channel: string, options: { readonly user?: string; readonly params?: unknown } = {}): Promise<ViewClient> => {
  const ws = await open(viewUrl(side, room, options.user))
  const clientId = `view-${process.pid}-${++counter}`
  const sub = subOf(channel, options.params)
  const named = options.params === undefined ? {} : { sub, params: options.params }
  const rows = new Map<unknown, ReadonlyArray<unknown>>()
  let cursor: number | null = null
  let history: string | undefined
  let view = false
  let resyncs = 0
  const pushes = pushQueue((frame) => ws.send(frame), channel, clientId)
  let chunks: Array<{ rows: ReadonlyArray<ReadonlyArray<unknown>>; deleted: ReadonlyArray<unknown> }> = []
  let syncing: { start: number; bytes: number; frames: number; largest: number; done?: (s: SyncStats) => void } | undefined

  const apply = (changed: ReadonlyArray<ReadonlyArray<unknown>>, deleted: ReadonlyArray<unknown>) => {
    for (const row of changed) {
      if (row[row.length - 1] === null) rows.set(row[0], row)
      else rows.delete(row[0])
    }
    for (const id of deleted) rows.delete(id)
  }
  const subscribe = (resume: boolean) => {
    syncing = { ...syncing, start: now(), bytes: 0, frames: 0, largest: 0 }
    const from = resume && cursor !== null
      ? { since: cursor, ...(history === undefined ? {} : { history }), ...(view ? { held: [...rows.keys()] } : {}) }
      : { since: null }
    ws.send(JSON.stringify({ _tag: "Subscribe", channel, ...from, ...named }))
  }

  ws.onmessage = (event: MessageEvent) => {
    const text = event.data as string
    if (syncing !== undefined) {
      const b = bytesOf(text)
      syncing.bytes += b
      syncing.frames++
      if (b > syncing.largest) syncing.largest = b
    }
    const frame = JSON.parse(text)
    switch (frame._tag) {
      case "Change":
        if (cursor !== null && frame.version <= cursor) return
        apply(frame.rows, frame.deleted)
        cursor = frame.version
        client.onChange?.()
        return
      case "Pushed": {
        for (const change of frame.changes ?? []) {
          apply(change.rows, change.deleted)
          cursor = Math.max(cursor ?? 0, change.version)
        }
        if (frame.changes?.length) client.onChange?.()
        pushes.pushed(frame)
        return
      }
      case "SyncRows":
        chunks.push(frame)
        return
      case "Synced": {
        if (frame.reset) rows.clear()
        let removed = 0
        for (const chunk of chunks) {
          removed += chunk.deleted.length
          apply(chunk.rows, chunk.deleted)
        }
        const carried = chunks.reduce((n, c) => n + c.rows.length, 0)
        chunks = []
        cursor = frame.version
        history = frame.history
        view = frame.view === true
        const s = syncing!
        syncing = undefined
        const stats = { ms: now() - s.start, bytes: s.bytes, frames: s.frames, largestFrame: s.largest, rows: carried, version: frame.version, history: frame.history }
        s.done?.(stats)
        client.onSynced?.({ ...stats, removed })
        return
      }
      case "Resync":
        resyncs++
        client.onResync?.()
        if (client.autoResync) subscribe(true)
        return
      case "Failure":
        pushes.failAll(new Error(`bench: ${frame.reason}: ${frame.message}`), false)
        console.error("bench: view client failure", frame)
    }
  }

  const client: ViewClient = {
    user: options.user,
    sub,
    sync: () =>
      new Promise((done) => {
        subscribe(false)
        syncing!.done = done
      }),
    put: (id, board, bucket) => pushes.act({ type: "put", id, board, bucket }),
    has: (id) => rows.has(id),
    get size() {
      return rows.size
    },
    onChange: undefined,
    onSynced: undefined,
    onResync: undefined,
    autoResync: true,
    get resyncs() {
      return resyncs
    },
    close: () => ws.close()
  }
  return client
}

/** A client of the raw baseline's board query. */
export interface RawBoardClient {
  /** Asks for a board's rows; resolves when its one frame arrived. */
  query(board: string): Promise<SyncStats>
  close(): void
}

/** Connects a client of the raw baseline's board query. */
export const connectRawBoard = async (side: Side, room: string): Promise<RawBoardClient> => {
  const ws = await open(viewUrl(side, room, undefined))
  return {
    query: (board) =>
      new Promise<SyncStats>((resolve, reject) => {
        const start = now()
        ws.onmessage = (event: MessageEvent) => {
          const text = event.data as string
          const frame = JSON.parse(text)
          if (frame.t !== "all") return reject(new Error(`bench: raw views answered ${text.slice(0, 200)}`))
          const b = bytesOf(text)
          resolve({ ms: now() - start, bytes: b, frames: 1, largestFrame: b, rows: frame.rows.length, version: 0 })
        }
        ws.send(JSON.stringify({ t: "board", board }))
      }),
    close: () => ws.close()
  }
}
