/**
 * The client's scenarios alone (6, 7 and 11: no server, a few minutes):
 * prints each row and writes bench/results.client.json. `BENCH_QUICK=1` runs
 * fewer rounds. A development tool; `npm run bench` runs the same rows.
 */
import { writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { clientScenarios } from "./client-scenarios.ts"
import { bundleRow, bundleSize } from "./local.ts"
import { round } from "./stats.ts"

const QUICK = process.env.BENCH_QUICK === "1"
const config = { applyChanges: 10_000, applyRounds: QUICK ? 2 : 5, reloads: QUICK ? 3 : 7 }
const log = (...args: Array<unknown>) => console.error("bench:", ...args)
const loadBefore = loadavg()
const { rows, detail } = await clientScenarios(config, log)
const bundle = await bundleSize()
rows.push(bundleRow(bundle))
for (const r of rows) {
  const ratio = r.roundRatios?.ours ?? (r.ours !== null && r.raw ? round(r.ours / r.raw, 2) : null)
  const verdict = r.pass === undefined || r.pass === null ? "" : r.pass ? "pass" : "MISS"
  console.log(`| ${r.scenario} | ${r.metric} | ${r.ours} ${r.unit} | ${r.raw ?? "-"} | ${ratio === null ? "-" : `${ratio}x`} | ${r.target ?? ""} | ${verdict} |`)
  if (r.note !== undefined) console.log(`    ${r.note}`)
}
const machine = { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadavgBefore: loadBefore.map((x) => round(x, 2)), loadavgAfter: loadavg().map((x) => round(x, 2)) }
console.log(`load average before ${machine.loadavgBefore.join(" ")}, after ${machine.loadavgAfter.join(" ")}`)
writeFileSync("bench/results.client.json", JSON.stringify({ when: new Date().toISOString(), quick: QUICK, machine, config, rows, detail: { ...detail, bundle } }, null, 2) + "\n")
process.exit(0)
