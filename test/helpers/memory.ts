/** Reading what an in-memory connection was sent, decoded with the Protocol Schemas. */
import * as Exit from "effect/Exit"
import { type Change, decodeServerMessage, type ServerMessage } from "../../src/protocol/Protocol.ts"

/**
 * Decodes every frame a memory connection received; a frame that does not
 * decode fails the test. The Change frames a push's reply carries are listed before
 * it, as separate frames would be.
 */
export const decodedFrames = (connection: { readonly sent: ReadonlyArray<string> }): Array<ServerMessage> =>
  connection.sent.flatMap((frame): Array<ServerMessage> => {
    const exit = decodeServerMessage(frame)
    if (Exit.isFailure(exit)) throw new Error(`frame does not decode with ServerMessageJson: ${frame.slice(0, 300)}`)
    const message = exit.value
    return message._tag === "Pushed" ? [...(message.changes ?? []), message] : [message]
  })

/** The `Change` frames a memory connection received. */
export const changesOf = (connection: { readonly sent: ReadonlyArray<string> }): Array<Change> =>
  decodedFrames(connection).filter((m): m is Change => m._tag === "Change")
