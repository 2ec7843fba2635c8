/**
 * The Todo fixture's HTTP test hooks (enabled by the `TEST_HOOKS` binding):
 * writes outside `onAction`, tombstone GC on demand, and a view of the rows.
 */
import type { LimitCounts } from "../../src/services/Limits.ts"
import { roomUrl } from "./protocol.ts"

/** A Todo row as clients see it (schema 2): [id, text, completed, created_at, updated_at, priority, deleted_at]. */
export type TodoRow = [string, string, 0 | 1, number, number, 0 | 1 | 2, number | null]

const call = async <A>(workerUrl: string, room: string, hook: string, body?: unknown): Promise<A> => {
  const response = await fetch(`${roomUrl(workerUrl, room, { ws: false })}/hooks/${hook}`, body === undefined
    ? {}
    : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`hook ${hook} answered ${response.status}: ${await response.text()}`)
  return (await response.json()) as A
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
  actionDelay: (ms: number) => call<{ ok: true }>(workerUrl, room, "action-delay", { ms }),
  /** Slows `authorizeAction` by this many scheduler yields (CPU-bound work). */
  actionSteps: (steps: number) => call<{ ok: true }>(workerUrl, room, "action-steps", { steps }),
  /** Writes a row in a user transaction that awaits and then rolls back. */
  rolledBackWrite: (id: string, text: string) => call<{ outcome: string }>(workerUrl, room, "rolled-back-write", { id, text }),
  /** Inserts `count` rows in one statement. */
  seed: (from: number, count: number) => call<{ ok: true }>(workerUrl, room, "seed", { from, count }),
  /** Wipes the object's storage (deleteAll), recreates the table and restarts sync. */
  wipe: () => call<{ ok: true }>(workerUrl, room, "wipe", {}),
  /** What the object's last start of the sync services did and cost. */
  /** The object's limit counters (`limits()`). */
  limits: () => call<LimitCounts | null>(workerUrl, room, "limits"),
  installation: () => call<{ history: string; newHistory: boolean; usage: { rowsRead: number; rowsWritten: number } } | null>(workerUrl, room, "installation"),
  /** The change log: [version, id, deleted]. */
  log: () => call<Array<[number, string, number]>>(workerUrl, room, "log")
})
