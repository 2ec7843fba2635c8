/**
 * The view scenarios (14), against our view bench object
 * (bench/raw/views-server.ts) with the protocol-level view client, each
 * beside a baseline measured in the same run:
 * - filtered fan-out: 100 receivers, each seeing a different half of the
 *   rows (its own five of ten buckets), against the same fan-out on a
 *   channel without a read rule, and against all 100 under one shared rule;
 * - view sync: the 1,000 rows of one board out of 100,000, against the raw
 *   baseline's indexed `SELECT ... WHERE board = ?` (bench/raw/views-raw.ts),
 *   with the rows each side read;
 * - isolation: 99 connections making round trips while a 100th's access
 *   changes back to back (`refreshAccess` for it alone, its view
 *   re-answered), against rounds of the same run without access changes.
 *
 * `npm run bench` runs them; `node bench/views.ts` runs them alone.
 */
import { freshRoom } from "./network.ts"
import { median, now, quantile, type ReportRow, round, summarize } from "./stats.ts"
import { connectRawBoard, connectView, VIEW_PARTY, type ViewClient } from "./view-client.ts"
import { type Side, withCpu } from "./workers.ts"
import { BOARDS, BUCKETS } from "./raw/views.ts"

/** How much to run. */
export interface ViewConfig {
  readonly viewReceivers: number
  readonly viewFanRounds: number
  readonly viewFanPer: number
  readonly viewSyncReps: number
  /** Pairs of isolation rounds (one without access changes, one with). */
  readonly viewIsoPairs: number
  /** Round trips per connection in an isolation round. */
  readonly viewIsoPer: number
  /** Runs only these of "fan", "sync" and "iso" (all when absent). */
  readonly viewOnly?: ReadonlyArray<string> | undefined
}

const DEADLINE = 60_000
const SEEDED = 100_000
const ISOLATION_SEED = 1_000

const hook = (side: Side, room: string, name: string) => `${side.url}${VIEW_PARTY[side.name]}/${room}/${side.name === "ours" ? `hooks/${name}` : name}`

/** Rows read and written so far by a view bench room. */
const usage = async (side: Side, room: string): Promise<{ rowsRead: number; rowsWritten: number }> => {
  const res = await fetch(hook(side, room, "usage"))
  if (!res.ok) throw new Error(`bench: usage of ${side.name} views failed: ${res.status}`)
  return (await res.json()) as { rowsRead: number; rowsWritten: number }
}

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) })
  if (!res.ok) throw new Error(`bench: ${url} failed: ${res.status} ${await res.text()}`)
  return res.json() as Promise<unknown>
}

/** Seeds `count` rows into a table of a view bench room, 10,000 per request (an empty first one wakes the object). */
const seedTable = async (side: Side, room: string, table: string, count: number) => {
  await post(hook(side, room, "seed"), { table, from: 0, count: 0 })
  for (let i = 0; i < count; i += 10_000) await post(hook(side, room, "seed"), { table, from: i, count: Math.min(10_000, count - i) })
}

/** Connects `n` clients, 50 at a time, each synced before it is returned. */
const connectAll = async (n: number, make: (i: number) => Promise<ViewClient>) => {
  const out: Array<ViewClient> = []
  for (let i = 0; i < n; i += 50) {
    const group = await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => make(i + k)))
    await Promise.all(group.map((c) => c.sync()))
    out.push(...group)
  }
  return out
}

/** Runs `f` for each label, the order reversed every round (as run.ts's `alternate`). */
const alternate = async <L extends string, A>(rounds: number, labels: ReadonlyArray<L>, f: (label: L, round: number) => Promise<A>) => {
  const out = new Map<L, Array<A>>(labels.map((l) => [l, []]))
  for (let r = 0; r < rounds; r++) {
    for (const l of r % 2 === 0 ? labels : [...labels].reverse()) out.get(l)!.push(await f(l, r))
  }
  return out
}

const perRound = (mine: ReadonlyArray<number>, base: ReadonlyArray<number>) => round(median(mine.map((v, i) => v / base[i]!)), 2)

// ------------------------------------------------------------------ filtered fan-out

/**
 * Receiver sets of five buckets out of ten, in complementary pairs: every
 * receiver's set differs, and every bucket is seen by exactly half of them.
 */
const halves = (n: number): Array<Array<number>> => {
  const withZero: Array<Array<number>> = []
  const pick = (from: number, chosen: Array<number>) => {
    if (chosen.length === BUCKETS / 2) return void withZero.push(chosen)
    for (let b = from; b < BUCKETS; b++) pick(b + 1, [...chosen, b])
  }
  pick(1, [0])
  if (n / 2 > withZero.length) throw new Error(`bench: at most ${2 * withZero.length} distinct halves`)
  const out: Array<Array<number>> = []
  for (let k = 0; out.length < n; k++) {
    const set = withZero[k]!
    out.push(set)
    if (out.length < n) out.push(Array.from({ length: BUCKETS }, (_, b) => b).filter((b) => !set.includes(b)))
  }
  return out
}

type FanKind = "unfiltered" | "filtered" | "grouped"
const GROUP = [0, 1, 2, 3, 4]
const ALL = Array.from({ length: BUCKETS }, (_, b) => b)

interface FanRig {
  readonly sender: ViewClient
  readonly receivers: ReadonlyArray<ViewClient>
  /** The buckets each receiver sees. */
  readonly sees: ReadonlyArray<ReadonlySet<number>>
  /** The bucket of change `i`. */
  readonly bucketOf: (i: number) => number
  counter: number
  /** Ids written so far, with their bucket. */
  readonly written: Map<string, number>
}

const fanRig = async (side: Side, kind: FanKind, n: number): Promise<FanRig> => {
  const room = freshRoom(`vfan-${kind}`)
  const sets = kind === "filtered" ? halves(n) : Array.from({ length: n }, () => (kind === "grouped" ? GROUP : ALL))
  const channel = kind === "unfiltered" ? "everything" : "byBucket"
  const paramsOf = (buckets: Array<number>) => (kind === "unfiltered" ? {} : { params: { buckets } })
  const receivers = await connectAll(n, (i) => connectView(side, room, channel, { user: `r${i}`, ...paramsOf(sets[i]!) }))
  const [sender] = await connectAll(1, () => connectView(side, room, channel, { user: "writer", ...paramsOf(kind === "grouped" ? GROUP : ALL) }))
  return {
    sender: sender!,
    receivers,
    sees: sets.map((s) => new Set(s)),
    bucketOf: (i) => (kind === "grouped" ? i % GROUP.length : i % BUCKETS),
    counter: 0,
    written: new Map()
  }
}

/** Per change, ms from the send until every receiver whose rule admits the row holds it. */
const viewFanOut = async (rig: FanRig, changes: number): Promise<Array<number>> => {
  const samples: Array<number> = []
  const deadline = Date.now() + DEADLINE
  for (let i = 0; i < changes && Date.now() < deadline; i++) {
    const n = rig.counter++
    const id = `vf-${n}`
    const bucket = rig.bucketOf(n)
    rig.written.set(id, bucket)
    const expected = rig.receivers.filter((_, r) => rig.sees[r]!.has(bucket))
    let seen = 0
    let t0 = 0
    let done: () => void = () => {}
    const all = new Promise<void>((resolve) => {
      done = resolve
    })
    for (const r of rig.receivers) r.onChange = undefined
    for (const r of expected) {
      let mine = false
      r.onChange = () => {
        if (mine || !r.has(id)) return
        mine = true
        if (++seen === expected.length) {
          samples.push(now() - t0)
          done()
        }
      }
    }
    t0 = now()
    await Promise.race([
      Promise.all([rig.sender.put(id, "b0", bucket), all]),
      new Promise((_, reject) => setTimeout(() => reject(new Error("bench: a view change did not reach every receiver that may see it")), 10_000))
    ])
  }
  return samples
}

/** Rows a receiver holds that its rule does not admit (must be 0), over every change of the rig. */
const leaks = (rig: FanRig) => {
  let out = 0
  for (const [id, bucket] of rig.written) rig.receivers.forEach((r, i) => (!rig.sees[i]!.has(bucket) && r.has(id) ? out++ : 0))
  return out
}

const filteredFanOut = async (side: Side, c: ViewConfig, log: (...args: Array<unknown>) => void) => {
  const kinds = ["unfiltered", "filtered", "grouped"] as const
  const rigs = new Map<FanKind, FanRig>()
  for (const kind of kinds) rigs.set(kind, await fanRig(side, kind, c.viewReceivers))
  const cpu = new Map<FanKind, Array<number>>(kinds.map((k) => [k, []]))
  const fan = await alternate(c.viewFanRounds, kinds, async (kind) => {
    const rig = rigs.get(kind)!
    const [samples, us] = await withCpu(side.pid, (s: Array<number>) => s.length, () => viewFanOut(rig, c.viewFanPer))
    cpu.get(kind)!.push(us)
    return samples
  })
  const leaked = Object.fromEntries(kinds.map((k) => [k, leaks(rigs.get(k)!)]))
  for (const rig of rigs.values()) for (const client of [rig.sender, ...rig.receivers]) client.close()
  const p50s = (k: FanKind) => fan.get(k)!.map((x) => quantile(x, 0.5))
  log("14 filtered fan-out p50 per round", Object.fromEntries(kinds.map((k) => [k, p50s(k).map((x) => round(x, 2))])))
  return {
    summary: Object.fromEntries(kinds.map((k) => [k, summarize(fan.get(k)!.flat())])) as Record<FanKind, ReturnType<typeof summarize>>,
    p50Rounds: Object.fromEntries(kinds.map((k) => [k, p50s(k)])) as Record<FanKind, Array<number>>,
    cpuRounds: Object.fromEntries(cpu) as Record<FanKind, Array<number>>,
    latencyRatio: { filtered: perRound(p50s("filtered"), p50s("unfiltered")), grouped: perRound(p50s("grouped"), p50s("unfiltered")) },
    cpuRatio: { filtered: perRound(cpu.get("filtered")!, cpu.get("unfiltered")!), grouped: perRound(cpu.get("grouped")!, cpu.get("unfiltered")!) },
    leaked
  }
}

// ------------------------------------------------------------------ view sync

interface SyncSample {
  readonly ms: number
  readonly rowsRead: number
  readonly rows: number
  readonly bytes: number
}

const viewSync = async (ours: Side, raw: Side, c: ViewConfig) => {
  const rooms = { ours: freshRoom("vsync"), raw: freshRoom("vsync") }
  await seedTable(ours, rooms.ours, "items_board", SEEDED)
  await seedTable(raw, rooms.raw, "items_board", SEEDED)
  const expected = SEEDED / BOARDS
  const sides = { ours, raw }
  const boardOf = (r: number) => `b${(r * 37 + 11) % BOARDS}`
  // two syncs of other boards first, unmeasured: the first answers of a run are slower (the code path is cold; ours
  // measured 41 and 44 ms against 14 to 20 after)
  const measured = new Set(Array.from({ length: c.viewSyncReps }, (_, r) => boardOf(r)))
  const warm = Array.from({ length: BOARDS }, (_, b) => `b${b}`).filter((b) => !measured.has(b)).slice(0, 2)
  for (const board of warm) {
    const mine = await connectView(ours, rooms.ours, "byBoard", { user: `w-${board}`, params: { board } })
    await mine.sync()
    mine.close()
    const theirs = await connectRawBoard(raw, rooms.raw)
    await theirs.query(board)
    theirs.close()
  }
  const out = await alternate(c.viewSyncReps, ["ours", "raw"] as const, async (name, r): Promise<SyncSample> => {
    const side = sides[name]
    const room = rooms[name]
    const board = boardOf(r)
    const client = name === "ours"
      ? await connectView(side, room, "byBoard", { user: `s${r}`, params: { board } })
      : await connectRawBoard(side, room)
    try {
      const before = await usage(side, room)
      const stats = "query" in client ? await client.query(board) : await client.sync()
      const after = await usage(side, room)
      if (stats.rows !== expected) throw new Error(`bench: ${name} synced ${stats.rows} rows of board ${board}, expected ${expected}`)
      return { ms: stats.ms, rowsRead: after.rowsRead - before.rowsRead, rows: stats.rows, bytes: stats.bytes }
    } finally {
      client.close()
    }
  })
  return { ours: out.get("ours")!, raw: out.get("raw")!, ratio: perRound(out.get("ours")!.map((s) => s.ms), out.get("raw")!.map((s) => s.ms)) }
}

// ------------------------------------------------------------------ isolation

interface IsolationRound {
  readonly changing: boolean
  readonly p50: number
  readonly p99: number
  readonly n: number
  /** Server CPU per round trip (µs). */
  readonly cpuUs: number
  /** Access changes answered during the round, and ms from each hook call to the watcher's re-answer. */
  readonly refreshes: number
  readonly refreshMs: ReadonlyArray<number>
  /** ms from each hook call to the watcher's `Resync`. */
  readonly resyncMs: ReadonlyArray<number>
  /** Rows the re-answers carried and removed, per refresh (median). */
  readonly refreshRows: number
  readonly refreshRemoved: number
}

/**
 * What the p50 moves by between two rounds under the same conditions: the
 * median of max/min over the rounds of one kind that ran back to back
 * (rounds go B C, C B, B C, ...: the second pair's B and the third's are
 * adjacent, as are the first pair's C and the second's), or the spread of
 * the baseline rounds when no two did.
 */
const noiseOf = (rounds: ReadonlyArray<{ readonly changing: boolean; readonly p50: number }>) => {
  const adjacent: Array<number> = []
  for (let k = 1; k < rounds.length; k++) {
    const [a, b] = [rounds[k - 1]!, rounds[k]!]
    if (a.changing === b.changing) adjacent.push(Math.max(a.p50, b.p50) / Math.min(a.p50, b.p50))
  }
  const base = rounds.filter((r) => !r.changing).map((r) => r.p50)
  return round(adjacent.length > 0 ? median(adjacent) : Math.max(...base) / Math.min(...base), 2)
}

const LOW = [0, 1, 2, 3, 4]
const HIGH = [5, 6, 7, 8, 9]

const isolation = async (side: Side, c: ViewConfig, log: (...args: Array<unknown>) => void) => {
  const room = freshRoom("viso")
  await seedTable(side, room, "items_mine", ISOLATION_SEED)
  await post(hook(side, room, "access"), { user: "watcher", buckets: LOW })
  const [watcher] = await connectAll(1, () => connectView(side, room, "mine", { user: "watcher" }))
  if (watcher!.size !== ISOLATION_SEED / 2) throw new Error(`bench: the watcher holds ${watcher!.size} rows, expected ${ISOLATION_SEED / 2}`)
  const others = await connectAll(c.viewReceivers - 1, (i) => connectView(side, room, "mine", { user: `u${i}` }))
  let written = 0
  let granted = LOW
  const rounds: Array<IsolationRound> = []
  // B C, C B, B C ...: each pair's two rounds back to back, the order swapped every pair
  for (let p = 0; p < c.viewIsoPairs; p++) {
    for (const changing of p % 2 === 0 ? [false, true] : [true, false]) {
      let stop = false
      let failed: unknown
      const refreshMs: Array<number> = []
      // from the hook's call to the watcher's Resync: the rest of refreshMs is its Subscribe waiting for its turn and answered
      const resyncMs: Array<number> = []
      const carried: Array<number> = []
      const removed: Array<number> = []
      const refreshing = changing
        ? (async () => {
          while (!stop) {
            const t0 = now()
            let told = 0
            watcher!.onResync = () => {
              told = now()
            }
            const answered = new Promise<{ rows: number; removed: number }>((resolve, reject) => {
              const timer = setTimeout(() => reject(new Error("bench: an access change was not re-answered")), 10_000)
              watcher!.onSynced = (s) => {
                clearTimeout(timer)
                resolve(s)
              }
            })
            // awaited below, after the hook's answer: a timeout meanwhile is not an unhandled rejection
            answered.catch(() => undefined)
            granted = granted === LOW ? HIGH : LOW
            const { refreshed } = (await post(hook(side, room, "access"), { user: "watcher", buckets: granted })) as { refreshed: number }
            if (refreshed !== 1) throw new Error(`bench: an access change refreshed ${refreshed} subscriptions, expected 1`)
            const s = await answered
            refreshMs.push(now() - t0)
            resyncMs.push(told - t0)
            carried.push(s.rows)
            removed.push(s.removed)
          }
        })().catch((error: unknown) => {
          failed = error
        })
        : Promise.resolve()
      const deadline = Date.now() + DEADLINE
      const [samples, us] = await withCpu(side.pid, (s: Array<number>) => s.length, async () => {
        const all = await Promise.all(others.map(async (client) => {
          const mine: Array<number> = []
          for (let k = 0; k < c.viewIsoPer && Date.now() < deadline; k++) {
            const t0 = now()
            // bucket 99: outside every set the watcher is granted, so its view never holds these rows
            await client.put(`rt-${++written}`, "b0", 99)
            mine.push(now() - t0)
          }
          return mine
        }))
        return all.flat()
      })
      stop = true
      await refreshing
      if (failed !== undefined) throw failed
      watcher!.onSynced = undefined
      const holds = watcher!.size
      if (holds !== ISOLATION_SEED / 2) throw new Error(`bench: the watcher holds ${holds} rows after the round, expected ${ISOLATION_SEED / 2}`)
      rounds.push({
        changing,
        p50: quantile(samples, 0.5),
        p99: quantile(samples, 0.99),
        n: samples.length,
        cpuUs: us,
        refreshes: refreshMs.length,
        refreshMs,
        resyncMs,
        refreshRows: carried.length === 0 ? 0 : median(carried),
        refreshRemoved: removed.length === 0 ? 0 : median(removed)
      })
      log(
        `14 isolation round ${rounds.length}: ${changing ? "access changing" : "no access change"}, p50 ${round(quantile(samples, 0.5), 2)} ms, ` +
          `${refreshMs.length} refreshes (ms to Resync ${resyncMs.map((x) => round(x, 0)).join(" ")}; to re-answered ${refreshMs.map((x) => round(x, 0)).join(" ")})`
      )
    }
  }
  for (const client of [watcher!, ...others]) client.close()
  const base = rounds.filter((r) => !r.changing)
  const changed = rounds.filter((r) => r.changing)
  return {
    rounds,
    base: median(base.map((r) => r.p50)),
    changed: median(changed.map((r) => r.p50)),
    baseP99: median(base.map((r) => r.p99)),
    changedP99: median(changed.map((r) => r.p99)),
    ratio: perRound(changed.map((r) => r.p50), base.map((r) => r.p50)),
    noise: noiseOf(rounds),
    cpuRatio: perRound(changed.map((r) => r.cpuUs), base.map((r) => r.cpuUs))
  }
}

// ------------------------------------------------------------------ the report rows

const byRound = (x: number) => ({ ours: x, wire: null })

const fanRows = (fan: Awaited<ReturnType<typeof filteredFanOut>>, c: ViewConfig): Array<ReportRow> => [
  {
    scenario: "14. filtered fan-out", metric: `change seen by every receiver that may see it, ${c.viewReceivers} receivers each seeing a different half, p50`, unit: "ms",
    ours: fan.summary.filtered.p50, raw: fan.summary.unfiltered.p50, target: "<= 1.3x unfiltered", pass: fan.latencyRatio.filtered <= 1.3,
    roundRatios: byRound(fan.latencyRatio.filtered),
    note: `baseline ("raw" column) = the same fan-out on a channel without a read rule (every change to all ${c.viewReceivers}); ` +
      `each filtered change reaches ${c.viewReceivers / 2}; n=${fan.summary.filtered.n} changes per side; ` +
      `rows a receiver held that its rule hides: ${Object.values(fan.leaked).reduce((a, b) => a + b, 0)}`
  },
  {
    scenario: "14. filtered fan-out", metric: `server CPU per change, ${c.viewReceivers} receivers each seeing a different half`, unit: "µs",
    ours: round(median(fan.cpuRounds.filtered), 0), raw: round(median(fan.cpuRounds.unfiltered), 0), roundRatios: byRound(fan.cpuRatio.filtered),
    note: "workerd user + system time over the round, per change (the sender's push included); baseline = the unfiltered channel"
  },
  {
    scenario: "14. filtered fan-out", metric: `all ${c.viewReceivers} under one shared rule (every change admitted), p50`, unit: "ms",
    ours: fan.summary.grouped.p50, raw: fan.summary.unfiltered.p50, roundRatios: byRound(fan.latencyRatio.grouped),
    note: `server CPU per change ${round(median(fan.cpuRounds.grouped), 0)} µs (${fan.cpuRatio.grouped}x the unfiltered channel's)`
  }
]

const syncRows = (sync: Awaited<ReturnType<typeof viewSync>>): Array<ReportRow> => {
  const read = median(sync.ours.map((s) => s.rowsRead))
  return [
    {
      scenario: "14. view sync", metric: `${SEEDED / BOARDS} rows of one board out of ${SEEDED / 1000}k (Rule.eq on an indexed column), to Synced`, unit: "ms",
      ours: round(median(sync.ours.map((s) => s.ms)), 1), raw: round(median(sync.raw.map((s) => s.ms)), 1),
      target: "<= 1.5x raw", pass: sync.ratio <= 1.5, roundRatios: byRound(sync.ratio),
      note: `raw = an indexed SELECT ... WHERE board = ? sent in one frame; bytes ours ${sync.ours[0]!.bytes} / raw ${sync.raw[0]!.bytes}; ` +
        `after two unmeasured syncs of other boards per side`
    },
    {
      scenario: "14. view sync", metric: "rows read by that sync (storage usage)", unit: "rows",
      ours: read, raw: median(sync.raw.map((s) => s.rowsRead)), target: "<= 2,000", pass: read <= 2_000
    }
  ]
}

const isolationRows = (iso: Awaited<ReturnType<typeof isolation>>, c: ViewConfig): Array<ReportRow> => {
  const changing = iso.rounds.filter((r) => r.changing)
  const ms = (xs: ReadonlyArray<number>) => round(median(xs), 1)
  return [{
    scenario: "14. isolation", metric: `round trip of ${c.viewReceivers - 1} connections while a ${c.viewReceivers}th's access changes back to back, p50`, unit: "ms",
    ours: round(iso.changed, 2), raw: round(iso.base, 2), target: "rises no more than noise", pass: iso.ratio <= iso.noise,
    roundRatios: byRound(iso.ratio),
    note: `baseline = rounds of the same run without access changes, each beside one with them; noise = what the p50 moved by between two rounds of one kind run back to back (median), ${iso.noise}x; ` +
      `p99 ${round(iso.changedP99, 1)} ms against ${round(iso.baseP99, 1)}; server CPU per round trip ${iso.cpuRatio}x; ` +
      `${changing.map((r) => r.refreshes).join(" / ")} access changes per round, each moving ${median(changing.map((r) => r.refreshRows))} rows in and ` +
      `${median(changing.map((r) => r.refreshRemoved))} out of the view, re-answered ${ms(changing.flatMap((r) => r.refreshMs))} ms after the hook's call (p50): ` +
      `${ms(changing.flatMap((r) => r.resyncMs))} ms until the watcher's Resync arrived, the rest its Subscribe waiting for its turn among ${c.viewReceivers - 1} busy lanes`
  }]
}

/** Runs the view scenarios on running workers; `log` tells progress. */
export const viewScenarios = async (sides: { readonly ours: Side; readonly raw: Side }, c: ViewConfig, log: (...args: Array<unknown>) => void) => {
  const rows: Array<ReportRow> = []
  const detail: Record<string, unknown> = {}
  const runs = (what: string) => c.viewOnly === undefined || c.viewOnly.includes(what)
  if (runs("fan")) {
    log("14 filtered fan-out")
    const fan = await filteredFanOut(sides.ours, c, log)
    rows.push(...fanRows(fan, c))
    detail.viewFanOut = fan
  }
  if (runs("sync")) {
    log("14 view sync: seeding")
    const sync = await viewSync(sides.ours, sides.raw, c)
    rows.push(...syncRows(sync))
    detail.viewSync = sync
  }
  if (runs("iso")) {
    log("14 isolation")
    const iso = await isolation(sides.ours, c, log)
    rows.push(...isolationRows(iso, c))
    detail.viewIsolation = iso
  }
  return { rows, detail }
}
