/**
 * The client's scenarios without a server, as rows of the report: 6 (client
 * apply against a bare Map measured the same way, rounds alternating; the
 * first load), 11 (the local cache: bytes per change in Node's
 * KeyValueStore layout and in Chromium's IndexedDB, a reload of 100k cached
 * rows in Chromium beside a raw read of the same data, the heap of a 100k-row
 * client in Node and in Chromium) and 12 (enqueue stays flat: the last
 * enqueues of a 1,000-action offline session against its first, in Node and
 * in Chromium). `npm run bench` includes them; `node bench/client.ts` runs
 * them alone.
 */
import { browserCache, browserEnqueue } from "./browser.ts"
import { bytesPerChange, clientHeap } from "./cache.ts"
import { offlineEnqueue } from "./enqueue.ts"
import { clientApply } from "./local.ts"
import { median, type ReportRow, round } from "./stats.ts"

/** How much to run. */
export interface ClientConfig {
  readonly applyChanges: number
  readonly applyRounds: number
  readonly reloads: number
  /** Offline sessions of 1,000 enqueues in Node, per kind (default 3). */
  readonly enqueueSessions?: number
}

const byRound = (ours: ReadonlyArray<number>, raw: ReadonlyArray<number>) => ({ ours: round(median(ours.map((v, i) => v / raw[i]!)), 2), wire: null })

/** Bytes per byte of row (two rows 1,000 bytes apart) and the fixed part, judged: at most 2 per byte, the same fixed part at 1k and 100k rows. */
const perByte = (at: ReadonlyArray<{ readonly rows: number; readonly row: number; readonly bytes: number; readonly long: number; readonly longBytes: number }>) =>
  at.map((b) => {
    const slope = (b.longBytes - b.bytes) / (b.long - b.row)
    return { ...b, slope: round(slope, 2), fixed: round(b.bytes - slope * b.row, 0) }
  })

/** Runs scenarios 6 and 11; `log` tells progress. */
export const clientScenarios = async (c: ClientConfig, log: (...args: Array<unknown>) => void) => {
  const rows: Array<ReportRow> = []
  log("6 client apply")
  const apply = await clientApply(100_000, c.applyChanges, c.applyRounds)
  const b2b = byRound(apply.backToBack.ours, apply.backToBack.map)
  const task = byRound(apply.perTask16.ours, apply.perTask16.map)
  rows.push({
    scenario: "6. client apply", metric: `${c.applyChanges} changes into 100k rows, back to back (${c.applyRounds} rounds)`, unit: "ms",
    ours: round(median(apply.backToBack.ours), 1), raw: round(median(apply.backToBack.map), 1),
    target: "<= 1.5x raw", pass: b2b.ours <= 1.5, roundRatios: b2b,
    note: "raw = a bare Map fed the same frames (JSON.parse + Map.set); the snapshot read once at the end"
  })
  rows.push({
    scenario: "6. client apply", metric: `${c.applyChanges} changes into 100k rows, one per task, the snapshot read every 16 ms`, unit: "ms",
    ours: round(median(apply.perTask16.ours), 1), raw: round(median(apply.perTask16.map), 1),
    target: "<= 2x raw", pass: task.ours <= 2, roundRatios: task,
    note: "raw = the bare Map the same way, its read Array.from(map.values()); ms until a read holds the last change"
  })
  // the floor the design sets: what checking with Schema alone costs over the bare Map, and ours over that
  const floors = [
    ["rowSchema", "the bare Map + the record Schema per row (Schema.decodeUnknownExit)"],
    ["frameSchema", "the bare Map + the Protocol's Change Schema per frame, rows by the record Schema"]
  ] as const
  for (const [how, sides] of [["back to back", apply.backToBack], ["one per task, read every 16 ms", apply.perTask16]] as const) {
    for (const [floor, what] of floors) {
      rows.push({
        scenario: "6. apply floor", metric: `${c.applyChanges} changes, ${how}: ${what}, against the bare Map`, unit: "ms",
        ours: round(median(sides[floor]), 1), raw: round(median(sides.map), 1), roundRatios: byRound(sides[floor], sides.map),
        note: "ours = the baseline that checks with Schema; above the target's ratio, the target is below what the checks alone cost"
      })
      rows.push({
        scenario: "6. apply floor", metric: `${c.applyChanges} changes, ${how}: the client against ${what}`, unit: "ms",
        ours: round(median(sides.ours), 1), raw: round(median(sides[floor]), 1), roundRatios: byRound(sides.ours, sides[floor]),
        note: "what the client costs beyond the Schema checks it must make"
      })
    }
  }
  rows.push({
    scenario: "6. client apply", metric: `${c.applyChanges} changes into 100k rows, one per task, read on every notification`, unit: "ms",
    ours: round(apply.notifiedMs, 1), raw: null, note: `${apply.notifications} reads (what a subscriber such as React does)`
  })
  rows.push({
    scenario: "6. client load", metric: "first load of 100k rows into the client (decode + snapshot)", unit: "ms",
    ours: round(apply.initialMs, 1), raw: null
  })

  log("11 client cache: Node")
  const kv = perByte([await bytesPerChange(1_000), await bytesPerChange(100_000)])
  const heap = await clientHeap(100_000)
  log("11 client cache: Chromium")
  const browser = await browserCache(c.reloads)
  const idb = perByte(browser.bytes)
  for (const [where, at] of [["KeyValueStore (Node)", kv], ["IndexedDB (Chromium)", idb]] as const) {
    for (const b of at) {
      rows.push({
        scenario: "11. cache writes", metric: `bytes written per single-row change, ${b.rows / 1000}k rows cached, ${where}`, unit: "B",
        ours: b.bytes, raw: b.row, target: "<= 2 B per row byte, fixed part the same at 1k and 100k",
        pass: at.every((x) => x.slope <= 2) && Math.abs(at[0]!.fixed - at[1]!.fixed) <= 32,
        note: `raw = the row's JSON (${b.row} B); ${b.slope} B per byte of row (a row ${b.long - b.row} B longer wrote ${b.longBytes - b.bytes} B more), fixed part ${b.fixed} B (meta and keys)`
      })
    }
  }
  const reload = byRound(browser.reload.ours, browser.reload.raw)
  rows.push({
    scenario: "11. reload", metric: `100k cached rows to the first snapshot, Chromium (${c.reloads} rounds)`, unit: "ms",
    ours: round(median(browser.reload.ours), 1), raw: round(median(browser.reload.raw), 1),
    target: "<= 200 ms", pass: median(browser.reload.ours) <= 200, roundRatios: reload,
    note: "raw = the same data read raw in a fresh page: the meta, pages and log in one transaction, the pages JSON.parse'd; ours from createSyncClient to a snapshot of every row"
  })
  rows.push({
    scenario: "11. client heap", metric: "a 100k-row client, Node (its memory store included)", unit: "MB",
    ours: round(heap.client / 1e6, 1), raw: round(heap.map / 1e6, 1), note: "raw = a bare Map of the same rows; V8 heap used after a collection"
  })
  rows.push({
    scenario: "11. client heap", metric: "a 100k-row client loaded from its cache, Chromium", unit: "MB",
    ours: round(browser.heap.ours / 1e6, 1), raw: round(browser.heap.raw / 1e6, 1), note: "raw = the raw read's arrays held; V8 used heap after a collection"
  })

  log("12 enqueue: Node")
  const enqueue = await offlineEnqueue(1_000, 1_000, c.enqueueSessions ?? 3)
  log("12 enqueue: Chromium")
  const idbEnqueue = await browserEnqueue()
  const firstLast = (per: ReadonlyArray<number>) => ({ first: median(per.slice(0, 10)), last: median(per.slice(-10)) })
  const sides = [
    ["Node, memory store, the queue alone", enqueue.queue.map((x) => firstLast(x.perEnqueue))],
    ["Node, memory store, a render's read after each", enqueue.render.map((x) => firstLast(x.perEnqueue))],
    ["Chromium, IndexedDB, the queue alone", [firstLast(idbEnqueue.queue)]],
    ["Chromium, IndexedDB, a render's read after each", [firstLast(idbEnqueue.render)]]
  ] as const
  for (const [where, sessions] of sides) {
    const ratio = round(median(sessions.map((x) => x.last / x.first)), 2)
    rows.push({
      scenario: "12. enqueue flat", metric: `the last 10 of 1,000 offline enqueues against the first 10, ${where} (${sessions.length} session${sessions.length > 1 ? "s" : ""})`, unit: "ms",
      ours: round(median(sessions.map((x) => x.last)), 3), raw: round(median(sessions.map((x) => x.first)), 3),
      target: "<= 2x raw", pass: ratio <= 2, roundRatios: { ours: ratio, wire: null },
      note: "raw = the median of the first 10 enqueues, ours = of the last 10 (1,000 cached rows, the Todo app's reducer); an enqueue runs from send until its record is stored"
    })
  }
  return { rows, detail: { clientApply: apply, cacheBytes: { kv, idb }, clientHeap: heap, browserCache: browser, enqueue, browserEnqueue: idbEnqueue } }
}
