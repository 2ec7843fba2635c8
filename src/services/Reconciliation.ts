/**
 * Reconciliation: change capture and versions.
 *
 * Triggers that the library installs on every channel table record each
 * committed insert, update and delete in `_psync_changes` with the next value
 * of a per-object counter, inside the writer's own transaction. Capture
 * therefore does not depend on handlers returning rows: a write from an
 * alarm, a method or raw SQL reaches clients too.
 *
 * Writes, publishing and sync answers run one at a time under one lock, so
 * clients see changes in version order and a sync answer never sees a
 * transaction that is still open.
 *
 * Tombstone GC removes soft-deleted rows older than the retention and moves
 * the horizon: a client whose cursor is older than the horizon, or newer
 * than the current version (another object's cursor), gets a reset.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Semaphore from "effect/Semaphore"
import { Broadcast } from "./Broadcast.ts"
import type * as Channel from "../protocol/Channel.ts"
import type { SyncConnection } from "./Connections.ts"
import { StorageError } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import type { RowId, WireRow } from "../protocol/Protocol.ts"
import { type SqlValue, Storage } from "./Storage.ts"
import { Channels, SyncConfig } from "./SyncConfig.ts"

/** What a GC pass did. */
export interface GcResult {
  readonly purged: number
  readonly horizon: number
}

/** A channel table's shape, read from SQLite at install time. */
interface TableInfo {
  readonly channel: Channel.Any
  readonly id: string
  readonly deletedAt: string
  readonly hasRowid: boolean
}

/** How many seqs below a client's highest applied one are told apart (applied or not); older ones count as applied. */
export const APPLIED_WINDOW = 62
const APPLIED_MASK = "4611686018427387903" // 2^62 - 1

const q = (identifier: string) => `"${identifier}"`

const META = [
  `CREATE TABLE IF NOT EXISTS _psync_meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)`,
  `INSERT OR IGNORE INTO _psync_meta (key, value) VALUES ('version', 0), ('horizon', 0)`,
  // the last version sent to live connections: changes committed after it (by code that did not
  // publish before the object was evicted or hibernated) are sent on the next flush after a wake
  `INSERT OR IGNORE INTO _psync_meta (key, value) SELECT 'published', value FROM _psync_meta WHERE key = 'version'`,
  `CREATE TABLE IF NOT EXISTS _psync_changes (channel TEXT NOT NULL, id NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL, PRIMARY KEY (channel, id))`,
  `CREATE INDEX IF NOT EXISTS _psync_changes_by_version ON _psync_changes (channel, version)`,
  // per client: the highest applied seq, and a bitmask of which of the APPLIED_WINDOW seqs below it were applied
  `CREATE TABLE IF NOT EXISTS _psync_clients (client_id TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL, applied INTEGER NOT NULL DEFAULT 0)`,
  // refused actions, so that one re-sent after a later seq was applied is refused again, not taken for a duplicate
  `CREATE TABLE IF NOT EXISTS _psync_refused (client_id TEXT NOT NULL, seq INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (client_id, seq))`
]

/** Refusals remembered per client (the newest); a client re-sends only its few unanswered actions. */
const REFUSALS_KEPT = 256

const bump = `UPDATE _psync_meta SET value = value + 1 WHERE key = 'version';`
const record = (channel: string, id: string, deleted: 0 | 1, where = "") =>
  `INSERT INTO _psync_changes (channel, id, version, deleted) SELECT '${channel}', ${id}, ` +
  `(SELECT value FROM _psync_meta WHERE key = 'version'), ${deleted} WHERE true ${where} ` +
  `ON CONFLICT (channel, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted;`

/** The trigger statements for one channel (names are checked identifiers). */
export const triggerSql = (info: Pick<TableInfo, "channel" | "id">): Array<string> => {
  const { name, table } = info.channel
  const t = q(table)
  const id = q(info.id)
  return [
    `DROP TRIGGER IF EXISTS _psync_${table}_insert`,
    `DROP TRIGGER IF EXISTS _psync_${table}_update`,
    `DROP TRIGGER IF EXISTS _psync_${table}_delete`,
    `CREATE TRIGGER _psync_${table}_insert AFTER INSERT ON ${t} BEGIN ${bump} ${record(name, `NEW.${id}`, 0)} END`,
    `CREATE TRIGGER _psync_${table}_update AFTER UPDATE ON ${t} BEGIN ${bump} ` +
    `${record(name, `OLD.${id}`, 1, `AND OLD.${id} IS NOT NEW.${id}`)} ${record(name, `NEW.${id}`, 0)} END`,
    `CREATE TRIGGER _psync_${table}_delete AFTER DELETE ON ${t} BEGIN ${bump} ${record(name, `OLD.${id}`, 1)} END`
  ]
}

/** The Reconciliation service. */
export class Reconciliation extends Context.Service<Reconciliation, {
  /** Creates the bookkeeping tables and the triggers on every channel table. */
  readonly install: Effect.Effect<void, StorageError>
  /** The current version of the change feed. */
  readonly version: Effect.Effect<number, StorageError>
  /**
   * Runs `self` in a transaction under the write lock, then publishes what
   * it changed. Returns its value, the version after it and, when a `sender`
   * is given, the `Change` frames withheld from it (for its `Ack`).
   */
  readonly write: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    sender?: SyncConnection
  ) => Effect.Effect<
    { readonly value: A; readonly version: number; readonly withheld: ReadonlyArray<string> },
    E | StorageError,
    R
  >
  /** Publishes changes that were committed outside `write` (alarms, raw SQL). */
  readonly flush: Effect.Effect<void, StorageError>
  /** Subscribes a connection to a channel and sends it every change after `since`. */
  readonly subscribe: (
    connection: SyncConnection,
    channel: Channel.Any,
    since: number | null
  ) => Effect.Effect<{ readonly reset: boolean; readonly version: number }, StorageError>
  /**
   * Claims sequence number `seq` for a client in one statement: true when it
   * was not applied before (and is now recorded), false for a re-sent action.
   * Call inside `write`, so a refused action releases it.
   */
  readonly claim: (clientId: string, seq: number) => Effect.Effect<boolean, StorageError>
  /** The last sequence number applied for a client (0 when none). */
  readonly lastSeq: (clientId: string) => Effect.Effect<number, StorageError>
  /** The message an action (clientId, seq) was refused with earlier, if it was. */
  readonly refusal: (clientId: string, seq: number) => Effect.Effect<string | undefined, StorageError>
  /** Remembers that an action was refused (outside `write`: the refused write was rolled back). */
  readonly recordRefusal: (clientId: string, seq: number, message: string) => Effect.Effect<void, StorageError>
  /** Removes tombstones whose `deleted_at` is older than `now - retention`. */
  readonly gc: (now: number) => Effect.Effect<GcResult, StorageError>
}>()("effect-partysync/Reconciliation") {
  /** Reconciliation over Storage, publishing through Broadcast. */
  static readonly layer = Layer.effect(
    Reconciliation,
    Effect.gen(function*() {
      const storage = yield* Storage
      const channels = yield* Channels
      const broadcast = yield* Broadcast
      const config = yield* SyncConfig
      const lock = yield* Semaphore.make(1)
      const tables = new Map<string, TableInfo>()
      let published = 0

      const meta = (key: "version" | "horizon" | "published") =>
        Effect.map(storage.raw(`SELECT value FROM _psync_meta WHERE key = ?`, key), (rows) => Number(rows[0]?.[0] ?? 0))

      const describe = Effect.fnUntraced(function*(channel: Channel.Any) {
        const columns = yield* storage.raw(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, channel.table)
        if (columns.length < 2) {
          return yield* new StorageError({
            message: `table ${channel.table} for channel ${channel.name} must exist (with the id first and deleted_at last) before the server starts`,
            cause: null
          })
        }
        const hasRowid = yield* storage.raw(`SELECT rowid FROM ${q(channel.table)} LIMIT 0`).pipe(
          Effect.as(true),
          Effect.catch(() => Effect.succeed(false))
        )
        return {
          channel,
          id: String(columns[0]![0]),
          deletedAt: String(columns[columns.length - 1]![0]),
          hasRowid
        } satisfies TableInfo
      })

      const install = storage.transaction(Effect.gen(function*() {
        for (const statement of META) yield* storage.raw(statement)
        // objects created before the applied-seq window existed
        const clientColumns = yield* storage.raw(`SELECT name FROM pragma_table_info('_psync_clients')`)
        if (!clientColumns.some((c) => c[0] === "applied")) {
          yield* storage.raw(`ALTER TABLE _psync_clients ADD COLUMN applied INTEGER NOT NULL DEFAULT 0`)
        }
        for (const channel of channels.values()) {
          const info = yield* describe(channel)
          tables.set(channel.name, info)
          // a woken object re-runs install: only rewrite triggers whose text changed
          const wanted = triggerSql(info).filter((statement) => statement.startsWith("CREATE"))
          const existing = yield* storage.raw(
            `SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND name LIKE '_psync_%' ORDER BY name`,
            channel.table
          )
          const have = new Set(existing.map((row) => String(row[0])))
          if (existing.length !== wanted.length || wanted.some((statement) => !have.has(statement))) {
            for (const statement of triggerSql(info)) yield* storage.raw(statement)
          }
          // rows that predate the triggers enter the feed at version 0: resets include them
          yield* storage.raw(
            `INSERT OR IGNORE INTO _psync_changes (channel, id, version, deleted) SELECT ?, ${q(info.id)}, 0, 0 FROM ${q(channel.table)}`,
            channel.name
          )
        }
        published = yield* meta("published")
      })).pipe(Effect.withSpan("Reconciliation.install"))

      const tableOf = (channel: string) => {
        const info = tables.get(channel)
        if (info === undefined) throw new Error(`effect-partysync: Reconciliation.install has not run for ${channel}`)
        return info
      }

      /** Changes to one channel after `since`, in version order, with the rows' current values. */
      const changesSince = (info: TableInfo, since: number): Omit<ChannelChanges, "version"> => {
        const result = storage.rawUnsafe(
          `SELECT c.version, c.deleted, c.id, t.* FROM _psync_changes c LEFT JOIN ${q(info.channel.table)} t ` +
            `ON t.${q(info.id)} = c.id WHERE c.channel = ? AND c.version > ? ORDER BY c.version`,
          info.channel.name,
          since
        )
        const rows: Array<WireRow> = []
        const rowVersions: Array<number> = []
        const deleted: Array<RowId> = []
        const deletedVersions: Array<number> = []
        for (const r of result) {
          if (r[1] === 1 || r[3] === null) {
            deleted.push(r[2] as RowId)
            deletedVersions.push(r[0] as number)
          } else {
            rows.push(r.slice(3))
            rowVersions.push(r[0] as number)
          }
        }
        return { channel: info.channel.name, rows, rowVersions, deleted, deletedVersions }
      }

      /**
       * Reads every change after `published` and marks it published, in one
       * pass: no counter read (the highest version found is the new mark).
       * Inside a writer's transaction the mark commits with the writes.
       */
      const collect = Effect.try({
        try: () => {
          const changes: Array<ChannelChanges> = []
          let version = published
          for (const info of tables.values()) {
            const found = changesSince(info, published)
            const last = Math.max(found.rowVersions[found.rowVersions.length - 1] ?? 0, found.deletedVersions[found.deletedVersions.length - 1] ?? 0)
            if (last === 0) continue
            changes.push({ ...found, version: last })
            version = Math.max(version, last)
          }
          if (version !== published) storage.rawUnsafe(`UPDATE _psync_meta SET value = ? WHERE key = 'published'`, version)
          return { changes, version }
        },
        catch: (cause) => new StorageError({ message: String(cause), cause })
      })

      const publishCollected = (
        collected: { readonly changes: ReadonlyArray<ChannelChanges>; readonly version: number },
        withheld?: SyncConnection
      ) => {
        published = collected.version
        return broadcast.publish(collected.changes, withheld)
      }

      const flushUnlocked = Effect.asVoid(Effect.flatMap(collect, (collected) => publishCollected(collected)))

      const write = <A, E, R>(self: Effect.Effect<A, E, R>, sender?: SyncConnection) =>
        lock.withPermits(1)(Effect.gen(function*() {
          const [value, collected] = yield* storage.transaction(Effect.all([self, collect]))
          const withheld = yield* publishCollected(collected, sender)
          return { value, version: published, withheld }
        }))

      const subscribe = Effect.fn("Reconciliation.subscribe")(function*(
        connection: SyncConnection,
        channel: Channel.Any,
        since: number | null
      ) {
        return yield* lock.withPermits(1)(Effect.gen(function*() {
          yield* flushUnlocked
          const info = tableOf(channel.name)
          const version = published
          const horizon = yield* meta("horizon")
          const reset = since === null || since < horizon || since > version
          const changes: ChannelChanges = yield* Effect.try({
            try: () => {
              if (!reset) return { ...changesSince(info, since!), version }
              const rows = storage.rawUnsafe(
                `SELECT * FROM ${q(channel.table)} WHERE ${q(info.deletedAt)} IS NULL${info.hasRowid ? " ORDER BY rowid" : ""}`
              ) as Array<WireRow>
              return { channel: channel.name, rows, rowVersions: rows.map(() => version), deleted: [], deletedVersions: [], version }
            },
            catch: (cause) => new StorageError({ message: String(cause), cause })
          })
          yield* broadcast.subscribe(connection, channel.name)
          yield* broadcast.sendSync(connection, changes, reset)
          return { reset, version }
        }))
      })

      const gc = Effect.fn("Reconciliation.gc")(function*(now: number) {
        return yield* lock.withPermits(1)(Effect.gen(function*() {
          yield* flushUnlocked
          const cutoff = now - config.tombstoneRetentionMs
          let purged = 0
          const result = yield* storage.transaction(Effect.gen(function*() {
            let horizon = yield* meta("horizon")
            for (const info of tables.values()) {
              const t = q(info.channel.table)
              const d = q(info.deletedAt)
              const [stats] = yield* storage.raw(
                `SELECT COUNT(*), MAX(c.version) FROM ${t} t JOIN _psync_changes c ON c.channel = ? AND c.id = t.${q(info.id)} ` +
                  `WHERE t.${d} IS NOT NULL AND t.${d} < ?`,
                info.channel.name,
                cutoff
              )
              const count = Number(stats?.[0] ?? 0)
              if (count === 0) continue
              const before = yield* meta("version")
              yield* storage.raw(`DELETE FROM ${t} WHERE ${d} IS NOT NULL AND ${d} < ?`, cutoff)
              // the purge itself is not a change clients need: they dropped these rows when they were soft deleted
              yield* storage.raw(`DELETE FROM _psync_changes WHERE channel = ? AND deleted = 1 AND version > ?`, info.channel.name, before)
              purged += count
              horizon = Math.max(horizon, Number(stats?.[1] ?? 0))
            }
            yield* storage.raw(`UPDATE _psync_meta SET value = ? WHERE key = 'horizon'`, horizon)
            // the purge itself is not published: mark its versions as sent
            yield* storage.raw(`UPDATE _psync_meta SET value = (SELECT value FROM _psync_meta WHERE key = 'version') WHERE key = 'published'`)
            return horizon
          }))
          published = yield* meta("version")
          return { purged, horizon: result }
        }))
      })

      const lastSeq = (clientId: string) =>
        Effect.map(storage.raw(`SELECT seq FROM _psync_clients WHERE client_id = ?`, clientId), (rows) => Number(rows[0]?.[0] ?? 0))
      // Bit i of `applied` says seq - 1 - i was applied. A new highest seq shifts the window up; a seq
      // below the highest is new when its bit is clear (it was refused, or never arrived, before a later
      // one was applied), a duplicate when set, and taken for a duplicate when older than the window.
      const claim = (clientId: string, seq: number) =>
        Effect.map(
          storage.raw(
            `INSERT INTO _psync_clients AS c (client_id, seq, applied) VALUES (?, ?, 0) ON CONFLICT (client_id) DO UPDATE SET ` +
              `applied = CASE WHEN excluded.seq > c.seq THEN ` +
              `(CASE WHEN excluded.seq - c.seq > ${APPLIED_WINDOW} THEN 0 ` +
              `ELSE (c.applied << (excluded.seq - c.seq)) | (1 << (excluded.seq - c.seq - 1)) END) & ${APPLIED_MASK} ` +
              `ELSE c.applied | (1 << (c.seq - 1 - excluded.seq)) END, ` +
              `seq = max(c.seq, excluded.seq) ` +
              `WHERE excluded.seq > c.seq OR (excluded.seq < c.seq AND c.seq - 1 - excluded.seq < ${APPLIED_WINDOW} ` +
              `AND (c.applied & (1 << (c.seq - 1 - excluded.seq))) = 0) RETURNING seq`,
            clientId,
            seq
          ),
          (rows) => rows.length > 0
        )

      const refusal = (clientId: string, seq: number) =>
        Effect.map(
          storage.raw(`SELECT message FROM _psync_refused WHERE client_id = ? AND seq = ?`, clientId, seq),
          (rows) => (rows.length === 0 ? undefined : String(rows[0]![0]))
        )
      const recordRefusal = (clientId: string, seq: number, message: string) =>
        Effect.andThen(
          storage.raw(`INSERT OR REPLACE INTO _psync_refused (client_id, seq, message) VALUES (?, ?, ?)`, clientId, seq, message),
          storage.raw(
            `DELETE FROM _psync_refused WHERE client_id = ? AND seq <= (SELECT seq FROM _psync_refused WHERE client_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
            clientId,
            clientId,
            REFUSALS_KEPT
          )
        ).pipe(Effect.asVoid)

      return Reconciliation.of({
        install,
        version: meta("version"),
        write,
        flush: lock.withPermits(1)(flushUnlocked),
        subscribe,
        claim,
        lastSeq,
        refusal,
        recordRefusal,
        gc
      })
    })
  )
}

/** Row values SQLite may hold, re-exported for handler authors. */
export type { SqlValue }
