/**
 * Wire-level bench clients with one shape for both sides, so a scenario is
 * written once and run against ours and raw alike.
 *
 * - `ours`: speaks the effect-partysync protocol directly (Subscribe, Push,
 *   SyncRows/Synced/Change/Pushed) and keeps a Map snapshot. It pushes as
 *   the protocol intends: one push in flight, every action queued meanwhile
 *   in the next one. An action counts as confirmed at its push's reply, which
 *   carries the push's Change frames, so the change is in the snapshot then.
 * - `raw`: speaks the raw baseline's frames (bench/raw/worker.ts).
 *
 * The real client (src/client) gets the same shape in bench/real.ts.
 */
import { bytesOf, now } from "./stats.ts"
import type { Side } from "./workers.ts"

/** The client key of a benchmark client id (the server binds an id to its key). */
const keyOf = (clientId: string) => `bench-key-${clientId}`.padEnd(16, "-").slice(0, 128)

/** What a sync answer cost the client. */
export interface SyncStats {
  /** From sending the request to the snapshot being complete. */
  readonly ms: number
  readonly bytes: number
  readonly frames: number
  readonly largestFrame: number
  readonly rows: number
  /** ours: the version reached (the resume cursor). */
  readonly version: number
  /** ours: the history the cursor belongs to. */
  readonly history?: string | undefined
}

/** A connected bench client. */
export interface BenchClient {
  readonly side: Side["name"]
  /** Creates a todo; resolves with the written rows once the server confirmed it (for ours, it is in the snapshot by then). */
  create(id: string, text: string): Promise<ReadonlyArray<Row>>
  /** Changes a todo's text; resolves like `create`. */
  update(id: string, text: string): Promise<ReadonlyArray<Row>>
  /** Soft-deletes a todo (ours only; the raw baseline has no deletes). */
  remove(id: string): Promise<ReadonlyArray<Row>>
  /** Requests the data: ours subscribes from `since` (null = full), raw asks for the whole table. */
  sync(since: number | null, history?: string): Promise<SyncStats>
  /** Called after the snapshot changed. */
  onChange: (() => void) | undefined
  /** Whether the snapshot holds a live row with this id. */
  has(id: string): boolean
  /** Rows in the local snapshot. */
  readonly size: number
  close(): void
}

/** Connects a bench client to a room of a side. */
export type Connector = (side: Side, room: string) => Promise<BenchClient>

/** One contestant: a server side and the client that talks to it. */
export interface Contender {
  /** "ours" (real client), "ours-wire" (protocol-level client) or "raw". */
  readonly label: string
  readonly side: Side
  readonly connect: Connector
}

let clientCounter = 0

/** Opens a WebSocket. */
export const open = (url: string): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.onopen = () => resolve(ws)
    ws.onerror = () => reject(new Error(`bench: could not connect to ${url}`))
  })

/** The WebSocket URL of a room. */
export const wsUrl = (side: Side, room: string) => `${side.url.replace(/^http/, "ws")}${side.party}/${room}`

let userCounter = 0
/**
 * The URL of one bench client: a user of its own (the fixture's `?user=`,
 * which raw ignores), as in a real room; clients without one would share the
 * principal "anonymous" and meet its cap of open sockets.
 */
export const clientUrl = (side: Side, room: string) => `${wsUrl(side, room)}?user=b${process.pid}-${++userCounter}`

/** A record tuple as it travels. */
export type Row = ReadonlyArray<unknown>

interface Pending {
  resolve: (rows: ReadonlyArray<Row>) => void
  reject: (e: Error) => void
}

/** A `Pushed` frame, as the push queue reads it. */
interface PushedFrame {
  readonly next: number
  readonly results: ReadonlyArray<{ readonly seq: number; readonly rows?: ReadonlyArray<Row>; readonly reason?: string; readonly message?: string }>
}

/**
 * The push side of a protocol-level client, run as the real client runs it:
 * one push in flight, carrying up to 64 queued actions; what the server did
 * not decide (its room was full) goes again, first; the highest seq settled
 * with nothing unsettled below it is confirmed by the next push.
 */
export const pushQueue = (send: (frame: string) => void, channel: string, clientId: string) => {
  const clientKey = keyOf(clientId)
  let seq = 0
  let confirmed = 0
  const pending = new Map<number, Pending>()
  const queued: Array<{ seq: number; action: unknown }> = []
  let inFlight: Array<{ seq: number; action: unknown }> = []

  const pushNext = () => {
    if (inFlight.length > 0 || queued.length === 0) return
    inFlight = queued.splice(0, 64)
    send(JSON.stringify({ _tag: "Push", channel, clientId, clientKey, actions: inFlight, ...(confirmed > 0 ? { confirmed } : {}) }))
  }

  return {
    /** Queues an action; resolves with its reply's rows, rejects with its refusal. */
    act: (action: unknown) =>
      new Promise<ReadonlyArray<Row>>((resolve, reject) => {
        const s = ++seq
        pending.set(s, { resolve, reject })
        queued.push({ seq: s, action })
        pushNext()
      }),
    /** Settles a `Pushed` frame's results and sends the next push. */
    pushed: (frame: PushedFrame) => {
      for (const r of frame.results) {
        const p = pending.get(r.seq)
        pending.delete(r.seq)
        if (r.reason === undefined) p?.resolve(r.rows ?? [])
        else p?.reject(new Error(`bench: ${r.reason}: ${r.message}`))
      }
      queued.unshift(...inFlight.filter((a) => a.seq >= frame.next))
      confirmed = Math.max(confirmed, frame.next - 1)
      inFlight = []
      pushNext()
    },
    /** Rejects every action waiting for an answer; `dropInFlight` also forgets the push in flight. */
    failAll: (error: Error, dropInFlight: boolean) => {
      for (const p of pending.values()) p.reject(error)
      pending.clear()
      if (dropInFlight) inFlight = []
    }
  }
}

/** Connects a client of the given side to a room. */
export const connect = async (side: Side, room: string): Promise<BenchClient> => {
  const ws = await open(clientUrl(side, room))
  return side.name === "ours" ? oursClient(ws, side) : rawClient(ws, side)
}

const oursClient = (ws: WebSocket, side: Side): BenchClient => {
  const clientId = `bench-${process.pid}-${++clientCounter}`
  const rows = new Map<unknown, Row>()
  const pushes = pushQueue((frame) => ws.send(frame), "todos", clientId)
  let buffer: Array<{ rows: ReadonlyArray<Row>; deleted: ReadonlyArray<unknown> }> = []
  let syncing: { start: number; bytes: number; frames: number; largest: number; done: (s: SyncStats) => void } | undefined

  const apply = (changed: ReadonlyArray<Row>, deleted: ReadonlyArray<unknown>) => {
    for (const row of changed) {
      if (row[row.length - 1] === null) rows.set(row[0], row)
      else rows.delete(row[0])
    }
    for (const id of deleted) rows.delete(id)
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
        apply(frame.rows, frame.deleted)
        client.onChange?.()
        return
      case "Pushed": {
        // the sender's own changes come inside its push's reply
        for (const change of frame.changes ?? []) apply(change.rows, change.deleted)
        if (frame.changes?.length) client.onChange?.()
        pushes.pushed(frame)
        return
      }
      case "SyncRows":
        buffer.push(frame)
        return
      case "Synced": {
        if (frame.reset) rows.clear()
        for (const chunk of buffer) apply(chunk.rows, chunk.deleted)
        buffer = []
        const s = syncing!
        syncing = undefined
        s.done({ ms: now() - s.start, bytes: s.bytes, frames: s.frames, largestFrame: s.largest, rows: rows.size, version: frame.version, history: frame.history })
        return
      }
      case "Failure": {
        if (frame.clientId === clientId) pushes.failAll(new Error(`bench: ${frame.reason}: ${frame.message}`), true)
        else console.error("bench: ours failure", frame)
      }
    }
  }

  const act = pushes.act

  const client: BenchClient = {
    side: side.name,
    create: (id, text) => act({ type: "create", payload: { id, text, completed: 0, priority: 1 } }),
    update: (id, text) => act({ type: "update", payload: { id, text } }),
    remove: (id) => act({ type: "delete", payload: { id } }),
    sync: (since, history) =>
      new Promise((done) => {
        syncing = { start: now(), bytes: 0, frames: 0, largest: 0, done }
        ws.send(JSON.stringify({ _tag: "Subscribe", channel: "todos", since, ...(history === undefined ? {} : { history }) }))
      }),
    onChange: undefined,
    has: (id) => rows.has(id),
    get size() {
      return rows.size
    },
    close: () => ws.close()
  }
  return client
}

const rawClient = (ws: WebSocket, side: Side): BenchClient => {
  let counter = 0
  const rows = new Map<unknown, Row>()
  const pending = new Map<string, Pending>()
  let syncing: { start: number; done: (s: SyncStats) => void } | undefined

  ws.onmessage = (event: MessageEvent) => {
    const text = event.data as string
    const frame = JSON.parse(text)
    switch (frame.t) {
      case "ack":
        if (frame.row !== null) rows.set(frame.row[0], frame.row)
        pending.get(frame.r)?.resolve(frame.row === null ? [] : [frame.row])
        pending.delete(frame.r)
        return
      case "row":
        if (frame.row !== null) {
          rows.set(frame.row[0], frame.row)
          client.onChange?.()
        }
        return
      case "all": {
        rows.clear()
        for (const row of frame.rows) rows.set(row[0], row)
        const s = syncing!
        syncing = undefined
        const b = bytesOf(text)
        s.done({ ms: now() - s.start, bytes: b, frames: 1, largestFrame: b, rows: rows.size, version: 0 })
        return
      }
      case "error":
        console.error("bench: raw error", frame.message)
    }
  }

  const act = (frame: Record<string, unknown>) =>
    new Promise<ReadonlyArray<Row>>((resolve, reject) => {
      const r = String(++counter)
      pending.set(r, { resolve, reject })
      ws.send(JSON.stringify({ ...frame, r }))
    })

  const client: BenchClient = {
    side: side.name,
    create: (id, text) => act({ t: "create", id, text, completed: 0 }),
    update: (id, text) => act({ t: "update", id, text }),
    remove: () => Promise.reject(new Error("bench: the raw baseline has no deletes")),
    sync: () =>
      new Promise((done) => {
        syncing = { start: now(), done }
        ws.send(JSON.stringify({ t: "all" }))
      }),
    onChange: undefined,
    has: (id) => rows.has(id),
    get size() {
      return rows.size
    },
    close: () => ws.close()
  }
  return client
}
