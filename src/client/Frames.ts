/**
 * Decoding server frames on the client. The envelope of each frame is
 * checked with a Schema derived from the Protocol's, except that row tuples
 * are left for the channel's record Schema (which checks them fully anyway):
 * checking them twice doubled the cost of a 100k-row sync.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as Protocol from "../protocol/Protocol.ts"

const Rows = Schema.Array(Schema.Unknown)

/** A server frame with its rows not yet decoded. */
export const ServerFrame = Schema.Union([
  Schema.TaggedStruct("SyncRows", { ...Protocol.SyncRows.fields, rows: Rows }),
  Protocol.Synced,
  Schema.TaggedStruct("Change", { ...Protocol.Change.fields, rows: Rows }),
  Schema.TaggedStruct("AckRows", { ...Protocol.AckRows.fields, rows: Rows }),
  Schema.TaggedStruct("Ack", { ...Protocol.Ack.fields, rows: Rows }),
  Protocol.Failure
])
/** A server frame with its rows not yet decoded. */
export type ServerFrame = typeof ServerFrame.Type

const decodeEnvelope = Schema.decodeUnknownExit(ServerFrame)

/** Decodes one frame's text; a string result is the reason it was refused. */
export const decodeFrame = (text: string): ServerFrame | string => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return "frame is not valid JSON"
  }
  const exit = decodeEnvelope(value)
  if (Exit.isSuccess(exit)) return exit.value
  const error = Cause.findErrorOption(exit.cause)
  return error._tag === "Some" ? error.value.message : "not a server frame"
}

/**
 * Encodes a client frame. No client frame's Schema transforms a field, so
 * `JSON.stringify` is its Schema encoding (test/services/Protocol.test.ts
 * checks every kind), and browser bundles leave the Schema JSON codec out.
 */
export const encodeFrame = (message: Protocol.ClientMessage): string => JSON.stringify(message)

/**
 * A row decoder for a record Schema: rows that fail are left out and the
 * first failure is returned, so one bad row never blocks the others.
 */
export const rowDecoder = <R>(record: Schema.Codec<R, ReadonlyArray<unknown>>) => {
  const one = Schema.decodeUnknownExit(record)
  return (rows: ReadonlyArray<unknown>): { rows: Array<R>; error: string | null } => {
    const out: Array<R> = []
    let error: string | null = null
    for (let i = 0; i < rows.length; i++) {
      const exit = one(rows[i])
      if (Exit.isSuccess(exit)) out.push(exit.value)
      else if (error === null) {
        const e = Cause.findErrorOption(exit.cause)
        error = `row ${JSON.stringify(rows[i])?.slice(0, 200)} does not match the record: ${e._tag === "Some" ? e.value.message : "invalid"}`
      }
    }
    return { rows: out, error }
  }
}
