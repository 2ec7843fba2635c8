/**
 * 13. The worker's startup: its bundle as wrangler uploads it (default and
 * `--minify`, from `wrangler deploy --dry-run`) and the time V8 takes to
 * evaluate its modules. Cloudflare limits a worker's startup CPU, and
 * workerd cannot time it from inside (its clocks stand still while code
 * runs), so the bundle is evaluated by Node's V8 with `cloudflare:workers`
 * stubbed, in a fresh process per sample. A first copy is imported untimed:
 * it loads the Node built-ins the bundle touches (undici for `WebSocket`,
 * web crypto), which workerd has natively; a second copy (a different
 * source, so nothing compiled is reused) is timed. Raw is measured the same
 * way, built from its partyserver object alone. Runnable alone: `./node_modules/.bin/node bench/startup.ts`.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import { median, round } from "./stats.ts"
import { SIDES } from "./workers.ts"

/** What scenario 13's startup rows measured for one side. */
export interface Startup {
  readonly bytes: number
  readonly gzipped: number
  readonly minifiedBytes: number
  readonly minifiedGzipped: number
  /** Module evaluation, ms, one fresh process per sample (the minified bundle: what a deploy with `--minify` starts). */
  readonly evaluateMs: ReadonlyArray<number>
}

const STUB = `export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env } }
export class WorkerEntrypoint { constructor(ctx, env) { this.ctx = ctx; this.env = env } }
export const env = {}
`

// timed in the child: the import of the second copy
const TIMER = `await import(process.argv[2])
const t0 = performance.now()
await import(process.argv[3])
process.stdout.write(String(performance.now() - t0))
`

const bundle = (config: string, out: string, minify: boolean): string => {
  execFileSync(process.execPath, ["node_modules/wrangler/bin/wrangler.js", "deploy", "--dry-run", "--outdir", out, "-c", config, ...(minify ? ["--minify"] : [])], {
    stdio: "ignore"
  })
  const file = readdirSync(out).find((f) => f.endsWith(".js"))
  if (file === undefined) throw new Error(`bench: wrangler wrote no bundle for ${config}`)
  return readFileSync(join(out, file), "utf8")
}

/**
 * What each side bundles: ours is the bench's worker; raw is its partyserver
 * object alone (the raw worker of the other scenarios also holds the bench's
 * other baselines, which bundle parts of effect).
 */
const CONFIGS = { ours: SIDES.ours.config, raw: "bench/raw/startup.wrangler.toml" } as const

/** Bundles one side twice and evaluates its minified bundle `samples` times. */
export const startup = (name: keyof typeof CONFIGS, samples: number): Startup => {
  const dir = mkdtempSync(join(tmpdir(), `bench-startup-${name}-`))
  try {
    const plain = bundle(CONFIGS[name], join(dir, "plain"), false)
    const minified = bundle(CONFIGS[name], join(dir, "min"), true)
    writeFileSync(join(dir, "cloudflare-workers.mjs"), STUB)
    writeFileSync(join(dir, "timer.mjs"), TIMER)
    const source = minified.replace(/(["'])cloudflare:workers\1/g, JSON.stringify("./cloudflare-workers.mjs"))
    const [warm, timed] = [join(dir, "warm.mjs"), join(dir, "worker.mjs")]
    writeFileSync(warm, source)
    writeFileSync(timed, `${source}\n// the timed copy\n`)
    const evaluateMs = Array.from({ length: samples }, () => round(Number(execFileSync(process.execPath, [join(dir, "timer.mjs"), warm, timed]).toString()), 2))
    return {
      bytes: Buffer.byteLength(plain),
      gzipped: gzipSync(plain).byteLength,
      minifiedBytes: Buffer.byteLength(minified),
      minifiedGzipped: gzipSync(minified).byteLength,
      evaluateMs
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  for (const name of ["ours", "raw"] as const) {
    const s = startup(name, 9)
    console.log(name, { ...s, evaluateMedianMs: median([...s.evaluateMs]) })
  }
}
