/**
 * A socket whose server is the test: it records what a client sends and
 * delivers the frames the test gives it (no worker). Opened and closed by
 * the test.
 */
import type { SocketLike } from "../../src/client/index.ts"
import type { ClientMessage, ServerMessage } from "../../src/protocol/Protocol.ts"

/** A fake socket at `url` (the client's cache is keyed by it). */
export class FakeSocket implements SocketLike {
  readyState = 0
  readonly url: string
  readonly sent: Array<ClientMessage> = []
  readonly #listeners = new Map<string, Set<(event: any) => void>>()
  constructor(url = "ws://fake.test/parties/to-dos/room") {
    this.url = url
  }
  addEventListener(type: string, listener: (event: any) => void) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set())
    this.#listeners.get(type)!.add(listener)
  }
  removeEventListener(type: string, listener: (event: any) => void) {
    this.#listeners.get(type)?.delete(listener)
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as ClientMessage)
  }
  #emit(type: string, event: unknown) {
    for (const l of [...(this.#listeners.get(type) ?? [])]) l(event)
  }
  open() {
    this.readyState = 1
    this.#emit("open", {})
  }
  close() {
    this.readyState = 3
    this.#emit("close", {})
  }
  deliver(frame: ServerMessage) {
    this.#emit("message", { data: JSON.stringify(frame) })
  }
  /** The frames of one kind the client sent. */
  frames<T extends ClientMessage["_tag"]>(tag: T): Array<Extract<ClientMessage, { _tag: T }>> {
    return this.sent.filter((m): m is Extract<ClientMessage, { _tag: T }> => m._tag === tag)
  }
}
