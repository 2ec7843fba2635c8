/**
 * A protocol-level test client: a plain WebSocket (Node's global one) that
 * decodes every server frame with the Protocol Schemas and lets a test wait
 * until a frame matching a predicate arrives, with a timeout. No client
 * library code is involved, so integration tests exercise only the server.
 */
import { randomUUID } from "node:crypto"
import * as Exit from "effect/Exit"
import {
  type Applied,
  type Change,
  type ClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  type Failure,
  type Pushed,
  type Refused,
  type ServerMessage,
  type Synced,
  type SyncRows
} from "../../src/protocol/Protocol.ts"

/** Default wait for a frame: generous, the machine may be loaded. */
export const DEFAULT_TIMEOUT_MS = 15_000

/** The client key a test client uses for a client id: stable, so re-sends of that id are accepted. */
export const keyOf = (clientId: string): string => `test-key-${clientId}`.slice(0, 128).padEnd(16, "-")

/** A fresh room name, so tests never share a Durable Object. */
export const freshRoom = (prefix = "t"): string => `${prefix}-${randomUUID()}`

/** The partyserver URL of a room, for HTTP (`ws: false`) or WebSocket. */
export const roomUrl = (workerUrl: string, room: string, options: { ws?: boolean; party?: string } = {}): string => {
  const base = `${workerUrl.replace(/\/$/, "")}/parties/${options.party ?? "to-dos"}/${encodeURIComponent(room)}`
  return options.ws === false ? base : base.replace(/^http/, "ws")
}

/** Polls `check` until it returns a value other than undefined, or throws after the timeout (`what` is read then). */
export const eventually = async <A>(
  check: () => A | undefined | Promise<A | undefined>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string | (() => string) } = {}
): Promise<A> => {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) {
      const what = typeof options.what === "function" ? options.what() : options.what
      throw new Error(`timed out waiting for ${what ?? "a condition"}${lastError ? `: ${String(lastError)}` : ""}`)
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25))
  }
}

/** The result of a sync answer: every `SyncRows` chunk merged, and the `Synced` marker. */
export interface SyncResult {
  readonly chunks: ReadonlyArray<SyncRows>
  readonly rows: ReadonlyArray<ReadonlyArray<unknown>>
  readonly deleted: ReadonlyArray<string | number>
  readonly reset: boolean
  readonly version: number
  readonly history: string
}

interface Waiter {
  readonly predicate: (message: ServerMessage) => boolean
  readonly from: number
  readonly resolve: (index: number) => void
}

/**
 * The history last seen in a `Synced` for each room and channel, by any
 * client of this test process: `subscribe` resumes in it by default, as a
 * client's cache would.
 */
const histories = new Map<string, string>()
const historyKey = (url: string, channel: string) => `${new URL(url).pathname}#${channel}`

/** A WebSocket speaking the protocol, recording every frame it receives. */
export class ProtocolClient {
  /** Every decoded server frame, in arrival order. */
  readonly messages: Array<ServerMessage> = []
  /** The UTF-8 size of each frame in `messages` (same index). */
  readonly frameBytes: Array<number> = []
  /** Frames that did not decode with `ServerMessageJson` (a test should expect none). */
  readonly invalid: Array<string> = []
  /** Set once the socket closed. */
  closeEvent: { code: number; reason: string } | undefined
  readonly closed: Promise<{ code: number; reason: string }>
  #waiters: Array<Waiter> = []
  #cursor = 0
  #requests = 0

  readonly socket: WebSocket
  readonly url: string

  private constructor(socket: WebSocket, url: string) {
    this.socket = socket
    this.url = url
    let onClose!: (e: { code: number; reason: string }) => void
    this.closed = new Promise((resolve) => (onClose = resolve))
    socket.addEventListener("message", (event) => {
      const data = event.data
      if (typeof data !== "string") {
        this.invalid.push(`<binary ${String(data)}>`)
        return
      }
      const exit = decodeServerMessage(data)
      if (Exit.isFailure(exit)) {
        this.invalid.push(data)
        return
      }
      // a push's reply carries its sender's Change frames: list them before it, as separate frames would be
      const message = exit.value
      if (message._tag === "Synced") histories.set(historyKey(url, message.channel), message.history)
      if (message._tag === "Pushed") for (const change of message.changes ?? []) this.#push(change, 0)
      this.#push(message, Buffer.byteLength(data, "utf8"))
    })
    socket.addEventListener("close", (event) => {
      this.closeEvent = { code: event.code, reason: event.reason }
      onClose(this.closeEvent)
    })
  }

  #push(message: ServerMessage, bytes: number) {
    this.messages.push(message)
    this.frameBytes.push(bytes)
    const index = this.messages.length - 1
    this.#waiters = this.#waiters.filter((w) => {
      if (index >= w.from && w.predicate(message)) {
        w.resolve(index)
        return false
      }
      return true
    })
  }

  /** Opens a socket to `url` (a `ws://` URL, see `roomUrl`) and waits until it is open. */
  static async connect(url: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProtocolClient> {
    const socket = new WebSocket(url)
    const client = new ProtocolClient(socket, url)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`WebSocket to ${url} did not open in ${timeoutMs} ms`)), timeoutMs)
      socket.addEventListener("open", () => {
        clearTimeout(timer)
        resolve()
      }, { once: true })
      socket.addEventListener("error", () => {
        clearTimeout(timer)
        reject(new Error(`WebSocket to ${url} failed to open`))
      }, { once: true })
    })
    return client
  }

  /** Index of the next frame to arrive: pass it as `from` to wait only for later frames. */
  mark(): number {
    return this.messages.length
  }

  /** Sends a protocol message, or a raw text/binary frame as is. */
  send(message: ClientMessage | string | ArrayBuffer | Uint8Array<ArrayBuffer>): void {
    if (typeof message === "string" || message instanceof ArrayBuffer || message instanceof Uint8Array) {
      this.socket.send(message)
    } else {
      this.socket.send(encodeClientMessage(message))
    }
  }

  /**
   * Resolves with the first frame at index >= `from` (default: the read
   * cursor) that matches; fails after the timeout, listing what did arrive.
   * Advances the read cursor past the match.
   */
  async next<M extends ServerMessage>(
    predicate: ((message: ServerMessage) => message is M) | ((message: ServerMessage) => boolean),
    options: { from?: number; timeoutMs?: number; what?: string } = {}
  ): Promise<M> {
    const from = options.from ?? this.#cursor
    const index = await this.#find(predicate, from, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, options.what)
    this.#cursor = Math.max(this.#cursor, index + 1)
    return this.messages[index] as M
  }

  /** Like `next`, searching from the first frame ever received, without moving the read cursor. */
  async waitFor<M extends ServerMessage>(
    predicate: ((message: ServerMessage) => message is M) | ((message: ServerMessage) => boolean),
    options: { timeoutMs?: number; what?: string } = {}
  ): Promise<M> {
    const index = await this.#find(predicate, 0, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, options.what)
    return this.messages[index] as M
  }

  #find(predicate: (message: ServerMessage) => boolean, from: number, timeoutMs: number, what?: string): Promise<number> {
    for (let i = from; i < this.messages.length; i++) if (predicate(this.messages[i]!)) return Promise.resolve(i)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter)
        const seen = this.messages.slice(from).map((m) => JSON.stringify(m).slice(0, 200))
        reject(new Error(
          `timed out after ${timeoutMs} ms waiting for ${what ?? "a matching frame"}; frames since #${from}:\n${seen.join("\n")}` +
            (this.closeEvent ? `\n(socket closed: ${this.closeEvent.code} ${this.closeEvent.reason})` : "")
        ))
      }, timeoutMs)
      const waiter: Waiter = {
        predicate,
        from,
        resolve: (index) => {
          clearTimeout(timer)
          resolve(index)
        }
      }
      this.#waiters.push(waiter)
    })
  }

  /**
   * Subscribes and collects the sync answer (all `SyncRows` chunks up to
   * `Synced`). A cursor resumes in `options.history`, by default the last
   * history any test client saw for this room.
   */
  async subscribe(
    channel: string,
    since: number | null,
    options: { timeoutMs?: number; history?: string | undefined } = {}
  ): Promise<SyncResult> {
    const from = this.mark()
    const history = options.history ?? histories.get(historyKey(this.url, channel))
    this.send({ _tag: "Subscribe", channel, since, ...(history === undefined ? {} : { history }) })
    const synced = await this.next<Synced>(
      (m) => m._tag === "Synced" && m.channel === channel,
      { from, what: `Synced for ${channel}`, ...options }
    )
    const end = this.messages.indexOf(synced)
    const chunks = this.messages
      .slice(from, end)
      .filter((m): m is SyncRows => m._tag === "SyncRows" && m.channel === channel)
    return {
      chunks,
      rows: chunks.flatMap((c) => c.rows),
      deleted: chunks.flatMap((c) => c.deleted),
      reset: synced.reset,
      version: synced.version,
      history: synced.history
    }
  }

  /**
   * Pushes actions of one client and waits for the reply that answers the
   * last of them (or, when `until` says so, any reply): a `Pushed` frame, or
   * a `Failure` naming the client id.
   */
  async push(
    input: {
      channel?: string
      clientId: string
      clientKey?: string
      actions: ReadonlyArray<{ seq: number; action: unknown; schema?: number }>
      confirmed?: number
      skip?: number
    },
    options: { timeoutMs?: number; until?: "last" | "any" } = {}
  ): Promise<Pushed | Failure> {
    const from = this.mark()
    this.send({
      _tag: "Push",
      channel: input.channel ?? "todos",
      clientId: input.clientId,
      clientKey: input.clientKey ?? keyOf(input.clientId),
      actions: input.actions.map((a) => (a.schema === undefined ? { seq: a.seq, action: a.action } : a)),
      ...(input.confirmed === undefined ? {} : { confirmed: input.confirmed }),
      ...(input.skip === undefined ? {} : { skip: input.skip })
    })
    const first = input.actions[0]?.seq
    const last = input.actions[input.actions.length - 1]?.seq
    // a reply to this push: it decides one of its actions, or none (the server expects an earlier seq); replies to
    // pushes sent before it on the socket come first and decide none of its seqs
    const answers = (m: Pushed) =>
      first === undefined || last === undefined || options.until === "any" ||
      m.results.some((r) => r.seq >= first && r.seq <= last) || (m.results.length === 0 && m.next <= first)
    return this.next<Pushed | Failure>(
      (m) => (m._tag === "Failure" && m.clientId === input.clientId) || (m._tag === "Pushed" && m.clientId === input.clientId && answers(m)),
      { from, what: `the reply to ${input.clientId}'s push`, ...options }
    )
  }

  /**
   * Pushes one action and waits for its outcome: an `Ack` (applied: the rows
   * its change capture saw), or a `Failure` (its refusal, or the push's).
   */
  async act(
    input: { channel?: string; clientId: string; clientKey?: string; seq: number; action: unknown; schema?: number; confirmed?: number },
    options: { timeoutMs?: number } = {}
  ): Promise<Reply> {
    const reply = await this.push({
      ...(input.channel === undefined ? {} : { channel: input.channel }),
      clientId: input.clientId,
      ...(input.clientKey === undefined ? {} : { clientKey: input.clientKey }),
      actions: [input.schema === undefined ? { seq: input.seq, action: input.action } : { seq: input.seq, action: input.action, schema: input.schema }],
      ...(input.confirmed === undefined ? {} : { confirmed: input.confirmed })
    }, options)
    return toReply(reply, input.seq)
  }

  /** Live `Change` frames received so far for a channel. */
  changes(channel = "todos"): Array<Change> {
    return this.messages.filter((m): m is Change => m._tag === "Change" && m.channel === channel)
  }

  /** Closes the socket and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.closeEvent !== undefined) return
    this.socket.close(1000, "test done")
    await Promise.race([this.closed, new Promise((resolve) => setTimeout(resolve, 2_000))])
  }
}

/** One action's outcome, as the tests read it. */
export type Reply =
  | { readonly _tag: "Ack"; readonly seq: number; readonly rows: Applied["rows"]; readonly version: number; readonly next: number; readonly duplicate: boolean }
  | { readonly _tag: "Failure"; readonly reason: Failure["reason"]; readonly message: string; readonly channel: string | null; readonly next?: number }
  | { readonly _tag: "Pending"; readonly next: number }

/** The outcome of action `seq` in a push's reply. */
export const toReply = (reply: Pushed | Failure, seq: number): Reply => {
  if (reply._tag === "Failure") return { _tag: "Failure", reason: reply.reason, message: reply.message, channel: reply.channel }
  const result = reply.results.find((r) => r.seq === seq)
  if (result === undefined) return { _tag: "Pending", next: reply.next }
  if ("reason" in result) return { _tag: "Failure", reason: (result as Refused).reason, message: (result as Refused).message, channel: reply.channel, next: reply.next }
  return { _tag: "Ack", seq, rows: (result as Applied).rows, version: reply.version, next: reply.next, duplicate: (result as Applied).duplicate === true }
}

/** Narrows a reply to an `Ack`, failing the test with the Failure otherwise. */
export const expectAck = (reply: Reply): Extract<Reply, { _tag: "Ack" }> => {
  if (reply._tag !== "Ack") throw new Error(`expected Ack, got ${JSON.stringify(reply)}`)
  return reply
}

/** Narrows a reply to a `Failure`, failing the test with the Ack otherwise. */
export const expectFailure = (reply: Reply): Extract<Reply, { _tag: "Failure" }> => {
  if (reply._tag !== "Failure") throw new Error(`expected Failure, got ${JSON.stringify(reply)}`)
  return reply
}
