/**
 * Reconciliation's housekeeping, as synchronous SQL run inside one
 * transaction each: install (bookkeeping tables, capture on every channel
 * table, the feed's state; its cost never depends on table sizes) and the
 * GC pass (tombstones, the log's horizon and compaction, idle clients).
 *
 * @since 0.3.0
 */
import type * as Channel from "../protocol/Channel.ts"
import * as Capture from "./Capture.ts"
import * as ChangeLog from "./ChangeLog.ts"
import * as Ledger from "./ClientLedger.ts"
import * as Histories from "./Histories.ts"
import * as Legacy from "./LedgerLegacy.ts"
import type { StorageShape } from "./Storage.ts"
import type { InstallReport } from "./Reconciliation.ts"

const exists = (storage: StorageShape, table: string) =>
  storage.rawUnsafe(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`, table).length > 0

/**
 * Install, inside one transaction. Its cost does not depend on table sizes:
 * it reads the schema, the channel map and the meta rows, never a table.
 */
export const installSync = (storage: StorageShape, channels: ReadonlyMap<string, Channel.Any>, isView: (channel: string) => boolean) => {
  const before = storage.usage()
  // the first release's bookkeeping: start over with a new history
  const legacy = ChangeLog.LEGACY_TABLES.some((t) => exists(storage, t))
  if (legacy) {
    for (const t of [...ChangeLog.LEGACY_TABLES, ...Legacy.TABLES, "_psync_meta"]) storage.rawUnsafe(`DROP TABLE IF EXISTS ${t}`)
  }
  for (const statement of ChangeLog.SCHEMA) storage.rawUnsafe(statement)
  Legacy.install(storage)
  const { logs, rebuilt } = Capture.install(storage, channels, isView)
  const state = Histories.install(storage, rebuilt)
  const after = storage.usage()
  return {
    channelLogs: logs,
    state: { history: state.history, published: state.published, horizon: state.horizon },
    // the log's size is not read at install (a wake must not scan it): the first compaction comes after that many
    // appends at the latest, and counts it then
    size: Number(Histories.meta(storage, "log_kept") ?? 0),
    report: {
      history: state.history,
      newHistory: state.started,
      replaced: state.replaced || legacy,
      usage: { rowsRead: after.rowsRead - before.rowsRead, rowsWritten: after.rowsWritten - before.rowsWritten }
    } satisfies InstallReport
  }
}

export const gcSync = (
  storage: StorageShape,
  logs: ReadonlyArray<Capture.ChannelLog>,
  config: { readonly tombstoneRetentionMs: number; readonly clientRetentionMs: number },
  now: number,
  feed: Histories.FeedState
) => {
  const cutoff = now - config.tombstoneRetentionMs
  let purged = 0
  for (const { info } of logs) {
    const d = ChangeLog.q(info.deletedAt)
    purged += storage.rawUnsafe(`DELETE FROM ${ChangeLog.q(info.channel.table)} WHERE ${d} IS NOT NULL AND ${d} < ? RETURNING 1`, cutoff).length
  }
  // the purge is not a change clients need (they dropped these rows when they were soft deleted), and
  // the soft delete's own entry now finds no row, so a cursor from before it still learns of the delete
  storage.rawUnsafe(`DELETE FROM _psync_log WHERE version > ?`, feed.published)
  storage.rawUnsafe(`INSERT OR REPLACE INTO _psync_checkpoints (at, version) VALUES (?, ?)`, now, feed.published)
  const old = storage.rawUnsafe(`SELECT at, version FROM _psync_checkpoints WHERE at < ? ORDER BY at DESC LIMIT 1`, cutoff)[0]
  let horizon = feed.horizon
  if (old !== undefined) {
    horizon = Math.max(horizon, Number(old[1]))
    storage.rawUnsafe(`DELETE FROM _psync_checkpoints WHERE at < ?`, old[0]!)
    storage.rawUnsafe(ChangeLog.TRUNCATE, horizon)
  }
  storage.rawUnsafe(ChangeLog.COMPACT, feed.published, feed.published)
  const kept = Number(storage.rawUnsafe(`SELECT count(*) FROM _psync_log`)[0]?.[0] ?? 0)
  Histories.setMeta(storage, "horizon", horizon)
  Histories.setMeta(storage, "log_kept", kept)
  const idleSince = now - config.clientRetentionMs
  const clientsPruned = Number(storage.rawUnsafe(`SELECT count(*) FROM _psync_clients WHERE seen < ? AND outcomes IS NULL`, idleSince)[0]?.[0] ?? 0)
  if (clientsPruned > 0) {
    storage.rawUnsafe(Ledger.PRUNE, idleSince)
    if (exists(storage, Legacy.REFUSALS)) storage.rawUnsafe(Legacy.PRUNE)
  }
  return { purged, horizon, clientsPruned, kept }
}

