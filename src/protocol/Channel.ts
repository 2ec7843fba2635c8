/**
 * A channel: one synced table, declared once with Schemas and shared by
 * server and client. The record is a tuple whose first element is the row id
 * and whose last is `deleted_at` (null while the row is live), as in partysync.
 *
 * A channel has a schema version. Raise it whenever the record or the action
 * Schema changes: clients built for an older version are told they are
 * outdated, caches written under another version are rebuilt, and actions
 * queued under an older version are upgraded by the channel's `upgrade`
 * functions (one per version step, on the encoded action) or refused.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** A record tuple codec: id first, `deleted_at` last. */
export type RecordSchema = Schema.Codec<ReadonlyArray<unknown>, ReadonlyArray<unknown>>
/** An action codec. */
export type ActionSchema = Schema.Codec<unknown, unknown>

/** A declared channel. */
export interface Channel<
  Name extends string = string,
  R extends RecordSchema = RecordSchema,
  A extends ActionSchema = ActionSchema,
  P = unknown
> {
  readonly name: Name
  /** The SQLite table that backs the channel. */
  readonly table: string
  readonly record: R
  readonly action: A
  /** The channel's schema version (1 unless declared); raise it when the record or action Schema changes. */
  readonly version: number
  /**
   * Upgrades of queued actions: `upgrade[n]` turns an action encoded for
   * version n into one encoded for version n + 1.
   */
  readonly upgrade: Readonly<Record<number, (action: unknown) => unknown>>
  /**
   * What a subscription may ask for (a board, a date range): the server
   * validates them with this Schema and its read rule receives them. None:
   * the channel takes no params.
   */
  readonly params: Schema.Codec<P, unknown> | undefined
}

/** Any channel. */
export type Any = Channel<string, RecordSchema, ActionSchema, any>

/** The record tuple type of a channel. */
export type RecordOf<C extends Any> = C["record"]["Type"]
/** The action type of a channel. */
export type ActionOf<C extends Any> = C["action"]["Type"]
/** The params type of a channel (`undefined` when it takes none). */
export type ParamsOf<C extends Any> = C extends Channel<string, RecordSchema, ActionSchema, infer P> ? P : never

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** True when `s` can name a channel or a table: it is only ever quoted into SQL after this check. */
export const isIdentifier = (s: string): boolean => IDENTIFIER.test(s) && !s.toLowerCase().startsWith("sqlite_")

/**
 * Declares a channel. The name (and table, which defaults to the name) must
 * be a plain SQL identifier; anything else throws at declaration time.
 */
export const make = <const Name extends string, R extends RecordSchema, A extends ActionSchema, P = undefined>(
  name: Name,
  options: {
    readonly record: R
    readonly action: A
    readonly table?: string
    readonly version?: number
    readonly upgrade?: Readonly<Record<number, (action: unknown) => unknown>>
    /** The params a subscription may pass (see `Channel.params`). */
    readonly params?: Schema.Codec<P, any>
  }
): Channel<Name, R, A, P> => {
  const table = options.table ?? name
  const version = options.version ?? 1
  // one message for the three checks: they run once, at declaration, and ship in every browser bundle
  if (!isIdentifier(name) || !isIdentifier(table) || table.startsWith("_psync") || !(version >= 1 && Number.isInteger(version))) {
    throw new TypeError(`effect-partysync: channel ${JSON.stringify(name)}: the name and table must be SQL identifiers (not _psync*), the version an integer >= 1`)
  }
  return {
    name,
    table,
    record: options.record,
    action: options.action,
    version,
    upgrade: options.upgrade ?? {},
    params: options.params as Schema.Codec<P, unknown> | undefined
  }
}

/**
 * Brings an action encoded for version `from` up to the channel's version by
 * the declared steps, in order; a version without a step leaves the action
 * as it is (a version raised for a new column needs none). The result is
 * checked against the current Schema by the caller: an action that does not
 * decode then is the one that needed a step. Throws when a step throws.
 */
export const upgradeAction = (channel: Any, from: number, action: unknown): unknown => {
  let value = action
  for (let v = from; v < channel.version; v++) {
    const step = channel.upgrade[v]
    if (step !== undefined) value = step(value)
  }
  return value
}

/** A subscription's params as they travel (the channel's params Schema, encoded); undefined when it takes none. */
export const encodeParams = <C extends Any>(channel: C, params: ParamsOf<C> | undefined): unknown =>
  channel.params === undefined || params === undefined ? undefined : Schema.encodeUnknownSync(channel.params)(params)
