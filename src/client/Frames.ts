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

const Change = Schema.TaggedStruct("Change", { ...Protocol.Change.fields, rows: Rows })

/** The server's frames with their rows not yet decoded, one Schema per tag. */
const frames = [
  Schema.TaggedStruct("SyncRows", { ...Protocol.SyncRows.fields, rows: Rows }),
  Protocol.Synced,
  Change,
  Schema.TaggedStruct("ResultRows", { ...Protocol.ResultRows.fields, rows: Rows }),
  Schema.TaggedStruct("Pushed", {
    ...Protocol.Pushed.fields,
    results: Schema.Array(Schema.Union([Schema.Struct({ ...Protocol.Applied.fields, rows: Rows }), Protocol.Refused])),
    changes: Schema.optionalKey(Schema.Array(Change))
  }),
  Protocol.Failure,
  Protocol.Resync
] as const
/** A server frame with its rows not yet decoded. */
export type ServerFrame = (typeof frames)[number]["Type"]

// Each frame is decoded by its own tag's Schema: a third of the cost of letting a union find
// it, which counts when a burst of Change frames is decoded one by one.
const decoders = new Map(frames.map((frame) => [frame.fields._tag.schema.literal, Schema.decodeUnknownExit(frame)] as const))
const NOT_A_FRAME = "not a server frame"

/** Decodes one frame's text; a string result is the reason it was refused. */
export const decodeFrame = (text: string): ServerFrame | string => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return "invalid JSON"
  }
  const decode = decoders.get((value as { _tag?: never } | null)?._tag as never)
  if (decode === undefined) return NOT_A_FRAME
  const exit = decode(value) as Exit.Exit<ServerFrame, Schema.SchemaError>
  if (Exit.isSuccess(exit)) return exit.value
  const error = Cause.findErrorOption(exit.cause)
  return error._tag === "Some" ? error.value.message : NOT_A_FRAME
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
