/**
 * Starts the two workers the benchmarks compare, each in its own local
 * workerd on 127.0.0.1 with tracing off: ours (the Todo fixture's server plus
 * a bulk-seed hook, bench/raw/ours.js) and the raw partyserver baseline
 * (bench/raw/worker.ts). It also finds each one's workerd process so the
 * memory scenario can read its RSS.
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"

// Must be set before wrangler is imported (see the testing notes).
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false"
process.env.WRANGLER_SEND_METRICS = "false"
process.env.X_LOCAL_OBSERVABILITY = "false"

/** One running worker. */
export interface Side {
  readonly name: "ours" | "raw"
  /** http://127.0.0.1:port/ */
  readonly url: string
  /** The workerd process running it. */
  readonly pid: number
  /** The party path prefix, e.g. `parties/to-dos`. */
  readonly party: string
  readonly dispose: () => Promise<void>
}

const workerdChildren = (): Set<number> => {
  const out = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)]).toString()
  return new Set(
    out.split("\n").map((l) => l.trim().split(/\s+/)).filter((p) => p[1] === "workerd").map((p) => Number(p[0]))
  )
}

/** How to start a side. */
export interface StartOptions {
  /** Keeps its Durable Objects in this folder (a restart on it keeps the rows). */
  readonly persist?: string | false
  /** Opens the V8 inspector on this port (for the profiler). */
  readonly inspectorPort?: number
}

/** Starts one side. */
export const start = async (name: Side["name"], config: string, party: string, options: StartOptions = {}): Promise<Side> => {
  const { unstable_startWorker } = await import("wrangler")
  const before = workerdChildren()
  const worker = await unstable_startWorker({
    config,
    dev: {
      server: { hostname: "127.0.0.1", port: 0 },
      inspector: options.inspectorPort === undefined ? false : { port: options.inspectorPort },
      persist: options.persist ?? false,
      watch: false,
      logLevel: "warn"
    }
  })
  await worker.ready
  const url = (await worker.url).href
  // `ready` resolves before the worker answers: one plain request first
  for (let i = 0; i < 50; i++) {
    try {
      await (await fetch(`${url}${party}/warmup`)).text()
      break
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  // wrangler runs a proxy workerd (it listens on the URL's port) in front of the one running the worker
  const port = new URL(url).port
  const listener = execFileSync("ss", ["-ltnpH", `sport = :${port}`]).toString()
  const pids = [...workerdChildren()].filter((p) => !before.has(p) && !listener.includes(`pid=${p},`))
  if (pids.length !== 1) throw new Error(`bench: expected one workerd process running ${name}, found ${pids.length}`)
  return { name, url, pid: pids[0]!, party, dispose: () => worker.dispose() }
}

/**
 * The URL of the workerd process running a side's worker, bypassing wrangler's dev proxy (a second workerd in
 * front of it, which relays every frame): the one port that process listens on.
 */
export const directUrl = (side: Side): string => {
  const listening = execFileSync("ss", ["-ltnpH"]).toString().split("\n").filter((l) => l.includes(`pid=${side.pid},`))
  const ports = listening.map((l) => /127\.0\.0\.1:(\d+)/.exec(l)?.[1]).filter((p): p is string => p !== undefined)
  if (ports.length !== 1) throw new Error(`bench: expected workerd ${side.pid} to listen on one port, found ${ports.length}`)
  return `http://127.0.0.1:${ports[0]}/`
}

/** The config and party path of each side. */
export const SIDES = {
  ours: { config: "bench/raw/ours.wrangler.toml", party: "parties/to-dos" },
  raw: { config: "bench/raw/wrangler.toml", party: "parties/raw" }
} as const

/** Starts ours and raw. */
export const startWorkers = async (): Promise<{ ours: Side; raw: Side }> => {
  const ours = await start("ours", SIDES.ours.config, SIDES.ours.party)
  const raw = await start("raw", SIDES.raw.config, SIDES.raw.party)
  return { ours, raw }
}

const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim())

/** CPU time a process has used so far (user + system), in µs, at the kernel's tick resolution. */
export const cpuMicros = (pid: number): number => {
  // the fields after the command name, whose own parentheses may hold anything
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ").pop()!.split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / ticksPerSecond
}

/**
 * Runs `f` and returns its result with the CPU `pid` spent meanwhile, per action (µs) over `actions`, a count or, when
 * only the result knows it, a function of the result.
 */
export const withCpu = async <A>(pid: number, actions: number | ((value: A) => number), f: () => Promise<A>): Promise<readonly [A, number]> => {
  const before = cpuMicros(pid)
  const value = await f()
  return [value, (cpuMicros(pid) - before) / (typeof actions === "number" ? actions : actions(value))]
}

/** Resident set size of a process in bytes (VmRSS). */
export const rssBytes = (pid: number): number => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const match = /VmRSS:\s+(\d+) kB/.exec(status)
  if (match === null) throw new Error(`bench: no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

/** Seeds `count` rows t<from>.. into a room in chunks, through each side's bulk hook. */
export const seed = async (side: Side, room: string, from: number, count: number): Promise<void> => {
  const path = side.name === "ours" ? "hooks/seed" : "seed"
  const step = 10_000
  for (let i = from; i < from + count; i += step) {
    const res = await fetch(`${side.url}${side.party}/${room}/${path}`, {
      method: "POST",
      body: JSON.stringify({ from: i, count: Math.min(step, from + count - i) })
    })
    if (!res.ok) throw new Error(`bench: seed ${side.name} failed: ${res.status} ${await res.text()}`)
    await res.text()
  }
}
