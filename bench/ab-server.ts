/**
 * Two builds of the server side by side: starts our bench worker from
 * another checkout (`OLD_ROOT`, which needs its own node_modules, a symlink
 * will do) and from this one, then alternates rounds between them in one
 * session, with the protocol-level client and the real one, and prints each
 * build's medians with every round's figures. A development tool for judging
 * a server change, not part of `npm run bench`: full runs move more between
 * themselves than a small change does. `ROUNDS` (default 6) rounds per build;
 * `SCENARIO` picks what a round measures:
 * - `rt` (default): 500 round trips, one action at a time: p50, p99 and
 *   workerd's CPU per round trip;
 * - `tp`: one client with 32 in flight until 3,000 are confirmed: actions/s
 *   and workerd's CPU per action;
 * - `sync`: the initial sync of a room of 10,000 rows (`N`): ms;
 * - `bulk`: one `INSERT … SELECT` of 100,000 rows in a fresh room, to its
 *   answer (capture and publishing included): ms, the same for both clients;
 * - `drain`: 1,000 creates (`N`) in a fresh room, to the last confirmed:
 *   queued offline for the real client, sent at once by the protocol-level
 *   one (the full bench's scenario 11): ms;
 * - `rows`: rows written and read per create (Cloudflare's counts), 300
 *   creates one at a time and 300 sent at once (the full bench's rows
 *   written): the same for both clients, so the protocol-level one only.
 *
 *   OLD_ROOT=../other-checkout SCENARIO=tp npx node bench/ab-server.ts
 */
import { connect } from "./clients.ts"
import { drainReal, drainWire } from "./core.ts"
import { connectReal } from "./real.ts"
import { bulkWrite, freshRoom, initialSync, roundTrip, rowsPerAction, throughput } from "./network.ts"
import { median, quantile } from "./stats.ts"
import { seed, type Side, SIDES, start, withCpu } from "./workers.ts"
if (process.env.OLD_ROOT === undefined) throw new Error("bench: set OLD_ROOT to the checkout of the other build")
const SCENARIO = process.env.SCENARIO ?? "rt"
const N = Number(process.env.N ?? (SCENARIO === "drain" ? 1_000 : 10_000))
const sides = {
  old: await start("ours", `${process.env.OLD_ROOT}/${SIDES.ours.config}`, SIDES.ours.party),
  new: await start("ours", SIDES.ours.config, SIDES.ours.party)
}
const clients = SCENARIO === "rows" ? [["wire", connect]] as const : [["wire", connect], ["real", connectReal]] as const
type Connector = (typeof clients)[number][1]

/** One round's figures, by name. */
type Figures = Record<string, number>
const rooms = new Map<Side, string>()
const measure: Record<string, (side: Side, label: string, c: Connector) => Promise<Figures>> = {
  rt: async (side, label, c) => {
    const [samples, cpu] = await withCpu(side.pid, 500, () => roundTrip({ label, side, connect: c }, 500, 60_000))
    return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), cpu }
  },
  tp: async (side, label, c) => {
    const [rate, cpu] = await withCpu(side.pid, 3_000, () => throughput({ label, side, connect: c }, 1, 3_000, 32, 120_000))
    return { rate, cpu }
  },
  sync: async (side, label, c) => {
    let room = rooms.get(side)
    if (room === undefined) {
      room = freshRoom("ab-sync")
      // an empty first seed wakes the object so that its capture versions the seeded rows
      await seed(side, room, 0, 0)
      await seed(side, room, 0, N)
      rooms.set(side, room)
    }
    return { ms: (await initialSync({ label, side, connect: c }, room, N)).ms }
  },
  bulk: async (side, label, c) => ({ ms: await bulkWrite({ label, side, connect: c }, 100_000) }),
  drain: async (side, label, c) => ({ ms: c === connect ? await drainWire({ label, side, connect: c }, N) : await drainReal(side, N, 120_000) }),
  rows: async (side, label, c) => {
    const one = await rowsPerAction({ label, side, connect: c }, 300)
    const sent = await rowsPerAction({ label, side, connect: c }, 300, true)
    return { written: one.written, read: one.read, writtenAtOnce: sent.written, readAtOnce: sent.read }
  }
}
const run = measure[SCENARIO]
if (run === undefined) throw new Error(`bench: SCENARIO is one of ${Object.keys(measure).join(", ")}`)

// a warm-up round per build and client, not counted
for (const side of Object.values(sides)) for (const [label, c] of clients) await run(side, label, c)
const out: Record<string, Array<Figures>> = {}
for (let r = 0; r < Number(process.env.ROUNDS ?? 6); r++) {
  for (const name of r % 2 === 0 ? ["old", "new"] : ["new", "old"]) {
    const side = sides[name as "old" | "new"]
    for (const [label, c] of clients) (out[`${name} ${label}`] ??= []).push(await run(side, label, c))
  }
}
for (const [k, rounds] of Object.entries(out)) {
  // milliseconds to two decimals; rates and CPU microseconds whole
  const digits = (f: string) => (f === "rate" || f === "cpu" ? 0 : 2)
  const figures = Object.keys(rounds[0]!).map((f) => `${f} ${median(rounds.map((o) => o[f]!)).toFixed(digits(f))} [${rounds.map((o) => o[f]!.toFixed(digits(f))).join(" ")}]`)
  console.log(k, figures.join(" | "))
}
await Promise.all(Object.values(sides).map((s) => s.dispose()))
process.exit(0)
