/**
 * A focused round-trip and throughput comparison for development: ours over
 * the protocol-level client against the raw baseline, alternating, with
 * medians per side. Not part of `npm run bench`; `ROUNDS` and `N` tune it.
 */
import { type Contender, connect } from "./clients.ts"
import { roundTrip, throughput } from "./network.ts"
import { median, round } from "./stats.ts"
import { startWorkers } from "./workers.ts"

const ROUNDS = Number(process.env.ROUNDS ?? 4)
const N = Number(process.env.N ?? 400)
const { ours, raw } = await startWorkers()
const sides: Array<Contender> = [{ label: "ours-wire", side: ours, connect }, { label: "raw", side: raw, connect }]
const rt = new Map<string, Array<number>>()
const tp = new Map<string, Array<number>>()
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of r % 2 === 0 ? sides : [...sides].reverse()) {
      rt.set(c.label, [...(rt.get(c.label) ?? []), ...(await roundTrip(c, N, 60_000))])
      tp.set(c.label, [...(tp.get(c.label) ?? []), await throughput(c, 1, 1000, 32, 60_000)])
    }
  }
  const p50 = (l: string) => median(rt.get(l)!)
  const t = (l: string) => median(tp.get(l)!)
  console.log(`round trip p50: ours ${round(p50("ours-wire"), 3)} ms, raw ${round(p50("raw"), 3)} ms, ratio ${round(p50("ours-wire") / p50("raw"), 2)}`)
  console.log(`throughput 1x32: ours ${round(t("ours-wire"), 0)}/s, raw ${round(t("raw"), 0)}/s, ratio ${round(t("ours-wire") / t("raw"), 2)}`)
} finally {
  await ours.dispose()
  await raw.dispose()
}
