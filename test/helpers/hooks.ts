/**
 * The Todo fixture's HTTP test hooks (enabled by the `TEST_HOOKS` binding):
 * writes outside `onAction`, tombstone GC on demand, and a view of the rows.
 */
import type { LimitCounts } from "../../src/services/Limits.ts"
import { roomUrl } from "./protocol.ts"

/** A Todo row as clients see it (schema 2): [id, text, completed, created_at, updated_at, priority, deleted_at]. */
export type TodoRow = [string, string, 0 | 1, number, number, 0 | 1 | 2, number | null]

/** A note row (schema 2): [id, owner, text, private, updated_at, deleted_at]. */
export type NoteRow = [string, string, string, 0 | 1, number, number | null]

const call = async <A>(workerUrl: string, room: string, hook: string, body?: unknown): Promise<A> => {
  const response = await fetch(`${roomUrl(workerUrl, room, { ws: false })}/hooks/${hook}`, body === undefined
    ? {}
    : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`hook ${hook} answered ${response.status}: ${await response.text()}`)
  return (await response.json()) as A
}

/**
 * A hook whose second run changes nothing more than its first (it sets a value, or writes and rolls back), sent
 * again when wrangler's dev proxy lost its connection to a workerd that was just restarted (it answers 500
 * "Network connection lost").
 */
const again = async <A>(workerUrl: string, room: string, hook: string, body: unknown): Promise<A> => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call<A>(workerUrl, room, hook, body)
    } catch (error) {
      if (attempt >= 5 || !String(error).includes("Network connection lost")) throw error
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt))
    }
  }
}

/** The hooks of one room. */
export const hooks = (workerUrl: string, room: string) => ({
  /** Every row, tombstones included, in insertion order, in wire order (a schema 1 deploy answers schema 1 rows). */
  rows: () => call<Array<TodoRow>>(workerUrl, room, "rows"),
  /** The last applied sequence number per client id. */
  clients: () => call<Array<{ client_id: string; seq: number }>>(workerUrl, room, "clients"),
  /** Inserts a row with raw SQL from an HTTP handler, outside any action. */
  rawWrite: (id: string, text: string) => call<{ ok: true }>(workerUrl, room, "raw-write", { id, text }),
  /**
   * Inserts a row with raw SQL from a method called over RPC (no fetch of the
   * object involved); the method calls `publishChanges()` unless `publish` is false.
   */
  rpcRawWrite: async (id: string, text: string, publish = true) => {
    const response = await fetch(`${workerUrl.replace(/\/$/, "")}/rpc/raw-write/${encodeURIComponent(room)}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, text, publish })
    })
    if (!response.ok) throw new Error(`rpc raw-write answered ${response.status}: ${await response.text()}`)
    return (await response.json()) as { ok: true }
  },
  /** Schedules an alarm (~10 ms later) that inserts a row. */
  alarmWrite: (id: string, text: string) => call<{ ok: true }>(workerUrl, room, "alarm-write", { id, text }),
  /** An id of the object's in-memory instance: it changes when the object is evicted or hibernates. */
  instance: () => call<{ instance: string }>(workerUrl, room, "instance").then((r) => r.instance),
  /** Runs tombstone GC as if the time were `now`. */
  gc: (now: number) => call<{ purged: number; horizon: number; clientsPruned: number }>(workerUrl, room, "gc", { now }),
  /** Makes `authorizeAction` wait this many ms (asynchronously) before deciding; 0 turns it off. */
  actionDelay: (ms: number) => again<{ ok: true }>(workerUrl, room, "action-delay", { ms }),
  /** Slows `authorizeAction` by this many scheduler yields (CPU-bound work). */
  actionSteps: (steps: number) => again<{ ok: true }>(workerUrl, room, "action-steps", { steps }),
  /** Writes a row in a user transaction that awaits and then rolls back. */
  rolledBackWrite: (id: string, text: string) => again<{ outcome: string }>(workerUrl, room, "rolled-back-write", { id, text }),
  /** Inserts `count` rows in one statement. */
  seed: (from: number, count: number) => call<{ ok: true }>(workerUrl, room, "seed", { from, count }),
  /** Wipes the object's storage (deleteAll), recreates the table and restarts sync. */
  wipe: () => call<{ ok: true }>(workerUrl, room, "wipe", {}),
  /** What the object's last start of the sync services did and cost. */
  /** The object's limit counters (`limits()`). */
  limits: () => call<LimitCounts | null>(workerUrl, room, "limits"),
  installation: () => call<{ history: string; newHistory: boolean; usage: { rowsRead: number; rowsWritten: number } } | null>(workerUrl, room, "installation"),
  /** The change log: [version, id, deleted]. */
  log: () => call<Array<[number, string, number]>>(workerUrl, room, "log"),
  /** Every note, tombstones included, in insertion order, in wire order. */
  noteRows: () => call<Array<NoteRow>>(workerUrl, room, "note-rows"),
  /** Shares a private note with a user (or stops sharing it): a row of the read rule's access table, nothing else. */
  shareNote: (note: string, user: string, shared = true) => call<{ ok: true }>(workerUrl, room, "note-share", { note, user, shared }),
  /** Calls the server's `refreshAccess` for `user`'s connections (every connection without one); the number resynced. */
  refreshAccess: (user?: string) => call<{ resynced: number }>(workerUrl, room, "refresh-access", user === undefined ? {} : { user }).then((r) => r.resynced)
})
