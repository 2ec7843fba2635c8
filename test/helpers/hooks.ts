/**
 * The Todo fixture's HTTP test hooks (enabled by the `TEST_HOOKS` binding):
 * writes outside `onAction`, tombstone GC on demand, and a view of the rows.
 */
import { roomUrl } from "./protocol.ts"

/** A Todo row as the server stores it: [id, text, completed, created_at, updated_at, deleted_at]. */
export type TodoRow = [string, string, 0 | 1, number, number, number | null]

const call = async <A>(workerUrl: string, room: string, hook: string, body?: unknown): Promise<A> => {
  const response = await fetch(`${roomUrl(workerUrl, room, { ws: false })}/hooks/${hook}`, body === undefined
    ? {}
    : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`hook ${hook} answered ${response.status}: ${await response.text()}`)
  return (await response.json()) as A
}

/** The hooks of one room. */
export const hooks = (workerUrl: string, room: string) => ({
  /** Every row, tombstones included, in insertion order. */
  rows: () => call<Array<TodoRow>>(workerUrl, room, "rows"),
  /** The last applied sequence number per client id. */
  clients: () => call<Array<{ client_id: string; seq: number }>>(workerUrl, room, "clients"),
  /** Inserts a row with raw SQL from an HTTP handler, outside any action. */
  rawWrite: (id: string, text: string) => call<{ ok: true }>(workerUrl, room, "raw-write", { id, text }),
  /** Inserts a row with raw SQL from a method called over RPC (no fetch of the object involved). */
  rpcRawWrite: async (id: string, text: string) => {
    const response = await fetch(`${workerUrl.replace(/\/$/, "")}/rpc/raw-write/${encodeURIComponent(room)}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, text })
    })
    if (!response.ok) throw new Error(`rpc raw-write answered ${response.status}: ${await response.text()}`)
    return (await response.json()) as { ok: true }
  },
  /** Schedules an alarm (~10 ms later) that inserts a row. */
  alarmWrite: (id: string, text: string) => call<{ ok: true }>(workerUrl, room, "alarm-write", { id, text }),
  /** An id of the object's in-memory instance: it changes when the object is evicted or hibernates. */
  instance: () => call<{ instance: string }>(workerUrl, room, "instance").then((r) => r.instance),
  /** Runs tombstone GC as if the time were `now`. */
  gc: (now: number) => call<{ purged: number; horizon: number }>(workerUrl, room, "gc", { now })
})
