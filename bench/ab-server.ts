/**
 * Two builds of the server side by side: starts our bench worker from
 * another checkout (`OLD_ROOT`, which needs its own node_modules, a symlink
 * will do) and from this one, then alternates rounds of 500 round trips
 * between them in one session, with the protocol-level client and the real
 * one, and prints each build's median p50, p99 and workerd CPU per round trip with
 * every round's figures. A development tool for judging a server change, not
 * part of `npm run bench`: full runs move more between themselves than a
 * small change does. `ROUNDS` (default 6) rounds per build.
 *
 *   OLD_ROOT=../other-checkout npx node bench/ab-server.ts
 */
import { connect } from "./clients.ts"
import { connectReal } from "./real.ts"
import { roundTrip } from "./network.ts"
import { median, quantile } from "./stats.ts"
import { SIDES, start, withCpu } from "./workers.ts"
if (process.env.OLD_ROOT === undefined) throw new Error("bench: set OLD_ROOT to the checkout of the other build")
const sides = {
  old: await start("ours", `${process.env.OLD_ROOT}/${SIDES.ours.config}`, SIDES.ours.party),
  new: await start("ours", SIDES.ours.config, SIDES.ours.party)
}
const out: Record<string, Array<{ p50: number; p99: number; cpu: number }>> = {}
for (const [name, side] of Object.entries(sides)) for (const [label, c] of [["real", connectReal], ["wire", connect]] as const) await roundTrip({ label, side, connect: c }, 300, 60_000)
for (let r = 0; r < Number(process.env.ROUNDS ?? 6); r++) {
  const order = r % 2 === 0 ? ["old", "new"] : ["new", "old"]
  for (const name of order) {
    const side = sides[name as "old" | "new"]
    for (const [label, c] of [["wire", connect], ["real", connectReal]] as const) {
      const [samples, cpu] = await withCpu(side.pid, 500, () => roundTrip({ label, side, connect: c }, 500, 60_000))
      ;(out[`${name} ${label}`] ??= []).push({ p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), cpu })
    }
  }
}
for (const [k, v] of Object.entries(out)) console.log(k, "p50", median(v.map((o) => o.p50)).toFixed(3), "p99", median(v.map((o) => o.p99)).toFixed(2), "cpu", median(v.map((o) => o.cpu)).toFixed(0), "| p50s", v.map((o) => o.p50.toFixed(2)).join(" "), "| cpus", v.map((o) => o.cpu.toFixed(0)).join(" "))
await Promise.all(Object.values(sides).map((s) => s.dispose()))
process.exit(0)
