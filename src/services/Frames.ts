/**
 * Encodes the row-carrying server frames (`SyncRows`, `Change`) in chunks
 * below the outbound frame limit. Each row is serialised once and its size
 * measured from that text, so a 100k-row sync costs one pass; the frames are
 * exactly the `ServerMessageJson` encoding of the Protocol Schemas (a test
 * decodes them with it).
 *
 * @since 0.1.0
 */
import type { RowId, WireRow } from "../protocol/Protocol.ts"

/** Changes of one channel, in version order. */
export interface ChannelChanges {
  readonly channel: string
  /** The version of each entry of `rows` (same length). */
  readonly rowVersions: ReadonlyArray<number>
  readonly rows: ReadonlyArray<WireRow>
  readonly deleted: ReadonlyArray<RowId>
  /** The version of each entry of `deleted` (same length). */
  readonly deletedVersions: ReadonlyArray<number>
  /** The highest version among rows and deleted. */
  readonly version: number
  /**
   * A view channel's live changes: each changed id's image (JSON, wire
   * order) before the changes, null when it had no row. A rule tests it to
   * tell whether a client held the row.
   */
  readonly olds?: ReadonlyMap<RowId, string | null> | undefined
}

const OVERHEAD = 200

interface Entry {
  readonly version: number
  readonly json: string
  readonly deleted: boolean
}

/** True when a string's UTF-8 form is at most `limit` bytes; counts only when 3 bytes per unit could exceed it. */
export const fitsIn = (s: string, limit: number): boolean => s.length * 3 <= limit || utf8Length(s) <= limit

/** UTF-8 byte length of a string, without allocating. */
export const utf8Length = (s: string): number => {
  let bytes = s.length
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) bytes += 1
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // surrogate pair: 4 bytes for 2 units
      bytes += 2
      i++
    } else bytes += 2 // the rest of the BMP, and lone surrogates (encoded as U+FFFD): 3 bytes
  }
  return bytes
}

const entriesOf = (changes: ChannelChanges): Array<Entry> => {
  const entries: Array<Entry> = []
  let r = 0
  let d = 0
  // merge rows and deletes by version so every chunk covers a version range
  while (r < changes.rows.length || d < changes.deleted.length) {
    const rv = r < changes.rows.length ? changes.rowVersions[r]! : Infinity
    const dv = d < changes.deleted.length ? changes.deletedVersions[d]! : Infinity
    if (rv <= dv) {
      entries.push({ version: rv, json: JSON.stringify(changes.rows[r++]), deleted: false })
    } else {
      entries.push({ version: dv, json: JSON.stringify(changes.deleted[d++]), deleted: true })
    }
  }
  return entries
}

/**
 * Splits entries into chunks of at most `limit` UTF-8 bytes. For live changes a
 * boundary never falls inside one version, so a cursor taken after any chunk
 * is exact; sync answers are applied whole, so they split anywhere.
 */
const chunk = (entries: ReadonlyArray<Entry>, limit: number, wholeVersions: boolean): Array<Array<Entry>> => {
  const chunks: Array<Array<Entry>> = []
  let current: Array<Entry> = []
  let size = OVERHEAD
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!
    const splitAllowed = current.length > 0 && (!wholeVersions || current[current.length - 1]!.version !== e.version)
    const bytes = utf8Length(e.json) + 1
    if (splitAllowed && size + bytes > limit) {
      chunks.push(current)
      current = []
      size = OVERHEAD
    }
    current.push(e)
    size += bytes
  }
  if (current.length > 0 || chunks.length === 0) chunks.push(current)
  return chunks
}

const body = (entries: ReadonlyArray<Entry>) => {
  const rows: Array<string> = []
  const deleted: Array<string> = []
  for (const e of entries) (e.deleted ? deleted : rows).push(e.json)
  return `"rows":[${rows.join(",")}],"deleted":[${deleted.join(",")}]`
}

/** The frame's channel, and its subscription when it has params. */
const target = (channel: string, sub: string | undefined) =>
  sub === undefined || sub === channel ? `"channel":${JSON.stringify(channel)}` : `"channel":${JSON.stringify(channel)},"sub":${JSON.stringify(sub)}`

/** `Change` frames for live changes; each frame's version is the highest it carries. */
export const changeFrames = (changes: ChannelChanges, limit: number, sub?: string): Array<string> =>
  chunk(entriesOf(changes), limit, true).map((entries) => {
    const version = entries.length > 0 ? entries[entries.length - 1]!.version : changes.version
    return `{"_tag":"Change",${target(changes.channel, sub)},"version":${version},${body(entries)}}`
  })

/** `SyncRows` frames for a sync answer (the client applies them all at `Synced`). */
export const syncFrames = (changes: ChannelChanges, reset: boolean, limit: number, sub?: string): Array<string> =>
  chunk(entriesOf(changes), limit, false).map((entries) =>
    `{"_tag":"SyncRows",${target(changes.channel, sub)},"reset":${reset},${body(entries)}}`
  )

/** `ResultRows` frames for an action's rows that do not fit in its push's reply. */
export const resultRowFrames = (clientId: string, seq: number, rows: ReadonlyArray<WireRow>, limit: number): Array<string> =>
  chunk(rows.map((row, i) => ({ version: i, json: JSON.stringify(row), deleted: false })), limit, false).map((entries) =>
    `{"_tag":"ResultRows","clientId":${JSON.stringify(clientId)},"seq":${seq},"rows":[${entries.map((e) => e.json).join(",")}]}`
  )
