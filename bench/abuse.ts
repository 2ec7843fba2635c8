/**
 * Fairness under abuse (issue 20): the last part of `npm run bench`, runnable
 * alone as `./node_modules/.bin/node bench/abuse.ts`. Its baseline is the
 * same room with no attack (raw partyserver has no protection to compare).
 *
 * Ten well-behaved protocol-level clients make round trips (a create, then
 * a ~20 ms pause) in a room seeded with 20k rows, connected to the workerd
 * process that runs the worker (not through wrangler's dev proxy, see
 * `directUrl`). Each attack runs for 10 s from a process of its own
 * (bench/abuse-attacker.ts): a Subscribe storm, an action flood, a junk
 * flood, and many sockets at once; a 3 s pause follows each, and a 10 s
 * baseline phase with no attack comes before the first and after each one.
 * An attack's p50 and p99 are compared with the mean of the baselines just
 * before and after it (the machine drifts over a run). It reports the
 * others' actions failed or lost, whether the worker stayed up (same
 * process, same object), what each attacker got, the CPU the worker and the
 * attacker used per phase, and the server's limit counters. Results also go
 * to bench/abuse-results.json.
 *
 * ABUSE_SECONDS (10), ABUSE_ROWS (20000), ABUSE_CLIENTS (10) and
 * ABUSE_PHASES (storm,flood,junk,sockets) change the run; BENCH_QUICK=1
 * runs 3 s phases and writes bench/abuse-results.quick.json.
 */
import { fork } from "node:child_process"
import { writeFileSync } from "node:fs"
import { loadavg } from "node:os"
import { fileURLToPath } from "node:url"
import { type BenchClient, connect } from "./clients.ts"
import { now, quantile, round, sleep } from "./stats.ts"
import { cpuMicros, directUrl, seed, SIDES, type Side, start } from "./workers.ts"

const QUICK = process.env.BENCH_QUICK === "1"
const SECONDS = Number(process.env.ABUSE_SECONDS ?? (QUICK ? 3 : 10))
const ROWS = Number(process.env.ABUSE_ROWS ?? 20_000)
const CLIENTS = Number(process.env.ABUSE_CLIENTS ?? 10)
const ATTACKS = (process.env.ABUSE_PHASES ?? "storm,flood,junk,sockets").split(",").filter((p) => p !== "")
const PAUSE_MS = 20
const GAP_MS = 3_000
const TIMEOUT_MS = 30_000

const log = (...args: Array<unknown>) => console.error("abuse:", ...args)

interface Sample {
  readonly phase: string
  readonly ms: number
  /** When it was sent, ms after its phase began. */
  readonly at: number
}

/** The well-behaved clients: each creates a row, waits for its reply, pauses, again. */
const runClients = (clients: ReadonlyArray<BenchClient>, phase: { current: string; began: number }) => {
  const samples: Array<Sample> = []
  const acked: Array<string> = []
  const failures: Array<string> = []
  let running = true
  let counter = 0
  const loops = clients.map(async (client, c) => {
    // spread the clients' turns over the pause
    await sleep((PAUSE_MS * c) / clients.length)
    while (running) {
      const id = `good-${c}-${counter++}`
      const label = phase.current
      const t0 = now()
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no reply in 30 s")), TIMEOUT_MS))
      try {
        await Promise.race([client.create(id, "a well-behaved todo"), timeout])
        samples.push({ phase: label, ms: now() - t0, at: t0 - phase.began })
        acked.push(id)
      } catch (error) {
        failures.push(`${label} ${id}: ${String(error)}`)
      }
      await sleep(PAUSE_MS)
    }
  })
  return {
    samples,
    acked,
    failures,
    stop: async () => {
      running = false
      await Promise.all(loops)
    }
  }
}

/** Runs one attack in its own process for the phase; resolves with what it reports. */
const attacker = (mode: string, wsRoom: string) => {
  const child = fork(fileURLToPath(new URL("./abuse-attacker.ts", import.meta.url)), [mode, wsRoom, String(SECONDS + 5)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const report = new Promise<Record<string, unknown>>((resolve) => {
    child.on("message", (m) => resolve(m as Record<string, unknown>))
    child.on("exit", () => resolve({ mode, exited: true }))
  })
  return { stop: () => child.send("stop"), report, pid: child.pid! }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const main = async () => {
  const side = await start("ours", SIDES.ours.config, SIDES.ours.party)
  const direct: Side = { ...side, url: directUrl(side) }
  const room = `abuse-${Date.now().toString(36)}`
  const http = `${direct.url}${direct.party}/${room}`
  const wsRoom = http.replace(/^http/, "ws")
  const load = { before: loadavg()[0] }
  log(`worker ${side.pid} at ${direct.url} (proxy ${side.url}); seeding ${ROWS} rows`)
  try {
    await seed(direct, room, 0, ROWS)
    const instance = async () => ((await (await fetch(`${http}/instance`)).json()) as { instance: string }).instance
    const first = await instance()
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect(direct, room)))
    if (process.env.ABUSE_NOSUB !== "1") await Promise.all(clients.map((c) => c.sync(null)))
    const phase = { current: "warmup", began: now() }
    const run = runClients(clients, phase)
    await sleep(2_000)
    const attacks: Record<string, Record<string, unknown>> = {}
    const cpu: Record<string, { worker: number; clients: number; attacker?: number }> = {}
    const phases = ATTACKS.flatMap((a, i) => [`baseline-${i}`, a]).concat(`baseline-${ATTACKS.length}`)
    for (const name of phases) {
      log(`phase ${name}`)
      const attack = name.startsWith("baseline") ? undefined : attacker(name, wsRoom)
      phase.current = name
      phase.began = now()
      const before = { worker: cpuMicros(side.pid), clients: process.cpuUsage(), attacker: attack === undefined ? 0 : cpuMicros(attack.pid) }
      await sleep(SECONDS * 1000)
      // CPU share of one core over the phase
      cpu[name] = {
        worker: round((cpuMicros(side.pid) - before.worker) / (SECONDS * 1e6), 2),
        // this process: the well-behaved clients, decoding every change the room publishes
        clients: (({ user, system }) => round((user + system) / (SECONDS * 1e6), 2))(process.cpuUsage(before.clients)),
        ...(attack === undefined ? {} : { attacker: round((cpuMicros(attack.pid) - before.attacker) / (SECONDS * 1e6), 2) })
      }
      attack?.stop()
      phase.current = `${name}-gap`
      if (attack !== undefined) attacks[name] = await attack.report
      await sleep(GAP_MS)
    }
    await run.stop()

    // nothing acknowledged is missing: a fresh full sync holds every acked row
    const checker = await connect(direct, room)
    await checker.sync(null)
    const lost = run.acked.filter((id) => !checker.has(id))
    checker.close()
    for (const c of clients) c.close()
    const limits = await fetch(`${http}/hooks/limits`).then((r) => (r.ok ? r.json() : null), () => null)
    const sameObject = (await instance()) === first

    const of = (name: string) => run.samples.filter((s) => s.phase === name).map((s) => s.ms)
    const table = phases.map((name) => {
      const xs = of(name)
      const p50 = quantile(xs, 0.5)
      const p99 = quantile(xs, 0.99)
      const i = ATTACKS.indexOf(name)
      // an attack against the mean of the baselines around it
      const around = i < 0 ? undefined : [`baseline-${i}`, `baseline-${i + 1}`].map(of)
      const b50 = around === undefined ? undefined : (quantile(around[0]!, 0.5) + quantile(around[1]!, 0.5)) / 2
      const b99 = around === undefined ? undefined : (quantile(around[0]!, 0.99) + quantile(around[1]!, 0.99)) / 2
      return {
        phase: name,
        n: xs.length,
        p50: round(p50, 2),
        p99: round(p99, 2),
        max: round(Math.max(...xs), 1),
        p50x: b50 === undefined ? undefined : round(p50 / b50, 2),
        p99x: b99 === undefined ? undefined : round(p99 / b99, 2),
        pass: b50 === undefined || b99 === undefined ? undefined : p50 <= 2 * b50 && p99 <= 3 * b99,
        // the slowest round trips, with when they were sent: a stall shows as several at one moment
        slowest: run.samples.filter((x) => x.phase === name).sort((x, y) => y.ms - x.ms).slice(0, 5).map((x) => ({ ms: round(x.ms, 1), at: Math.round(x.at) })),
        workerCpu: cpu[name]?.worker,
        clientsCpu: cpu[name]?.clients,
        attackerCpu: cpu[name]?.attacker
      }
    })
    const result = {
      when: new Date().toISOString(),
      seconds: SECONDS,
      rows: ROWS,
      clients: CLIENTS,
      table,
      failed: run.failures.length,
      failures: run.failures.slice(0, 20),
      acked: run.acked.length,
      lost: lost.length,
      workerAlive: alive(side.pid) && sameObject,
      sameObject,
      attacks,
      limits,
      load: { ...load, after: loadavg()[0] }
    }
    console.table(table.map(({ slowest: _, ...row }) => row))
    for (const row of table) if (!row.phase.startsWith("baseline")) console.log(`${row.phase}: slowest round trips (ms, sent at ms into the phase) ${row.slowest.map((x) => `${x.ms}@${x.at}`).join(" ")}`)
    console.log(JSON.stringify({ failed: result.failed, lost: result.lost, acked: result.acked, workerAlive: result.workerAlive, load: result.load }))
    console.log(JSON.stringify({ attacks, limits }, null, 1))
    writeFileSync(fileURLToPath(new URL(QUICK ? "./abuse-results.quick.json" : "./abuse-results.json", import.meta.url)), JSON.stringify(result, null, 2) + "\n")
  } finally {
    await side.dispose()
  }
}

await main()
