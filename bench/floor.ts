/**
 * Where the server's cost per action goes, in workerd: ours against raw and
 * against `raw-ledger` (bench/raw/ledger.ts), a raw object that runs our
 * storage design's SQL by hand (ledger claim, row insert with the change-log
 * trigger, changes read, one `transactionSync`) with none of the library's
 * code. Prints the server CPU per action (the workerd process's user +
 * system time) pipelined and one at a time, the round trip p50 and the
 * pipelined throughput of each, alternating sides round by round. One at a
 * time, every side spends more CPU per action than pipelined. Then the rows
 * each side writes per create (`cursor.rowsWritten`), one at a time and 300
 * at once, whether a Durable Object lets SQL keep anything in a TEMP
 * table (the only place SQLite could gather a transaction's changed ids
 * without writing a row per change), and what an `await` of a timer costs
 * right after an SQL write, as a lane's turn does between a push's slices
 * (each request's time over its 200 rounds, so it includes the request's own
 * share). A development
 * tool, not part of `npm run bench`; `ROUNDS` (default 4) and `N` (actions
 * per run, default 2000) tune it.
 */
import { type Contender, connect } from "./clients.ts"
import { rowsPerAction, roundTrip, throughput } from "./network.ts"
import { median, round } from "./stats.ts"
import { startWorkers, withCpu } from "./workers.ts"

const ROUNDS = Number(process.env.ROUNDS ?? 4)
const N = Number(process.env.N ?? 2000)
const { ours, raw } = await startWorkers()
const sides: Array<Contender> = [
  { label: "ours", side: ours, connect },
  { label: "raw", side: raw, connect },
  { label: "raw-ledger", side: { ...raw, party: "parties/raw-ledger" }, connect }
]
const cpu = new Map<string, Array<number>>()
const rate = new Map<string, Array<number>>()
const rt = new Map<string, Array<number>>()
const rtCpu = new Map<string, Array<number>>()
try {
  for (const c of sides) await throughput(c, 1, 300, 32, 60_000)
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of r % 2 === 0 ? sides : [...sides].reverse()) {
      const [perSecond, us] = await withCpu(c.side.pid, N, () => throughput(c, 1, N, 32, 120_000))
      rate.set(c.label, [...(rate.get(c.label) ?? []), perSecond])
      cpu.set(c.label, [...(cpu.get(c.label) ?? []), us])
      // the CPU of the round trips alone: the room's start and the connection stay outside the measure
      let each = 0
      const samples = await roundTrip(c, 300, 60_000, async (run) => {
        const [done, us] = await withCpu(c.side.pid, (done) => done.length, run)
        each = us
        return done
      })
      rt.set(c.label, [...(rt.get(c.label) ?? []), ...samples])
      rtCpu.set(c.label, [...(rtCpu.get(c.label) ?? []), each])
    }
  }
  const us = (l: string) => median(cpu.get(l)!)
  const tp = (l: string) => median(rate.get(l)!)
  const p50 = (l: string) => median(rt.get(l)!)
  const cold = (l: string) => median(rtCpu.get(l)!)
  for (const c of sides) {
    console.log(
      `${c.label.padEnd(10)} server CPU ${round(us(c.label), 0)} µs/action (${round(us(c.label) / us("raw"), 2)}x raw), ` +
        `${round(tp(c.label), 0)} actions/s (${round(tp(c.label) / tp("raw"), 2)}x raw), ` +
        `round trip p50 ${round(p50(c.label), 2)} ms (${round(p50(c.label) / p50("raw"), 2)}x raw), ` +
        `server CPU one at a time ${round(cold(c.label), 0)} µs/action (${round(cold(c.label) / cold("raw"), 2)}x raw)`
    )
  }
  for (const c of sides) {
    const one = await rowsPerAction(c, 200)
    const batched = await rowsPerAction(c, 300, true)
    console.log(`${c.label.padEnd(10)} rows written per create: ${round(one.written, 2)} one at a time, ${round(batched.written, 2)} 300 at once`)
  }
  const probe = await fetch(`${raw.url}parties/raw-ledger/probe/temp`)
  console.log(`a TEMP table in a Durable Object: ${((await probe.json()) as { temp: string }).temp}`)
  // a lane's turn returns to the event loop after a slice's writes: what that costs, as the median of 5 requests of 200 rounds
  const perRound = async (write: boolean, timer: boolean) => {
    const times: Array<number> = []
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      await (await fetch(`${raw.url}parties/raw-ledger/probe/yields?n=200&write=${write ? 1 : 0}&timer=${timer ? 1 : 0}`)).text()
      times.push(((performance.now() - t0) * 1000) / 200)
    }
    return round(median(times), 0)
  }
  console.log(
    `per round, µs: a microtask ${await perRound(false, false)}, a timer ${await perRound(false, true)}, ` +
      `a write and a microtask ${await perRound(true, false)}, a write and a timer ${await perRound(true, true)}`
  )
} finally {
  await ours.dispose()
  await raw.dispose()
}
