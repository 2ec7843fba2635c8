/**
 * The view scenarios alone (14: filtered fan-out, view sync, isolation):
 * starts both workers, prints each row and writes bench/results.views.json.
 * `BENCH_QUICK=1` runs fewer rounds; `VIEWS=sync` (or `fan`, `iso`, a comma
 * list) runs only those. A development tool; `npm run bench` runs the same
 * rows.
 */
import { writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { round } from "./stats.ts"
import { viewScenarios } from "./view-scenarios.ts"
import { startWorkers } from "./workers.ts"

const QUICK = process.env.BENCH_QUICK === "1"
const config = QUICK
  ? { viewReceivers: 100, viewFanRounds: 2, viewFanPer: 15, viewSyncReps: 5, viewIsoPairs: 2, viewIsoPer: 10 }
  : { viewReceivers: 100, viewFanRounds: 4, viewFanPer: 40, viewSyncReps: 15, viewIsoPairs: 8, viewIsoPer: 10 }
const only = process.env.VIEWS?.split(",")
const log = (...args: Array<unknown>) => console.error("bench:", ...args)
const loadBefore = loadavg()
const started = Date.now()
const sides = await startWorkers()
let result: Awaited<ReturnType<typeof viewScenarios>>
try {
  result = await viewScenarios(sides, { ...config, viewOnly: only }, log)
} finally {
  await sides.ours.dispose()
  await sides.raw.dispose()
}
for (const r of result.rows) {
  const ratio = r.roundRatios?.ours ?? (r.ours !== null && r.raw ? round(r.ours / r.raw, 2) : null)
  const verdict = r.pass === undefined || r.pass === null ? "" : r.pass ? "pass" : "MISS"
  console.log(`| ${r.scenario} | ${r.metric} | ${r.ours} ${r.unit} | ${r.raw ?? "-"} | ${ratio === null ? "-" : `${ratio}x`} | ${r.target ?? ""} | ${verdict} |`)
  if (r.note !== undefined) console.log(`    ${r.note}`)
}
const machine = { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadavgBefore: loadBefore.map((x) => round(x, 2)), loadavgAfter: loadavg().map((x) => round(x, 2)) }
const durationS = round((Date.now() - started) / 1000, 1)
console.log(`load average before ${machine.loadavgBefore.join(" ")}, after ${machine.loadavgAfter.join(" ")}; ${durationS} s`)
writeFileSync(
  QUICK ? "bench/results.views.quick.json" : "bench/results.views.json",
  JSON.stringify({ when: new Date().toISOString(), quick: QUICK, machine, durationS, config, rows: result.rows, detail: result.detail }, null, 2) + "\n"
)
process.exit(0)
