/**
 * A fresh app outside the repository (in the OS temp folder), made from
 * test/consumer/template: `npm pack` of this repository (which builds it),
 * the app's package.json pinned to the tarball and to exactly the versions
 * this repository has installed (so npm takes everything from its cache),
 * then `npm install --prefer-offline`. Commands run with the Node that runs
 * the tests (the repository's Node 24) and without the outer npm's
 * `npm_*` environment.
 */
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))
const template = fileURLToPath(new URL("./template", import.meta.url))

/** The outcome of a command. */
export interface Ran {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

const env = (): NodeJS.ProcessEnv => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")))
  return { ...clean, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`, FORCE_COLOR: "0", NO_COLOR: "1" }
}

/** Runs a command to completion (killed after `timeoutMs`). */
export const run = (cwd: string, command: string, args: ReadonlyArray<string>, timeoutMs = 120_000): Ran => {
  const started = performance.now()
  const result = spawnSync(command, args, { cwd, env: env(), encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })
  return {
    status: result.status,
    stdout: result.stdout ?? "",
    stderr: `${result.stderr ?? ""}${result.error === undefined ? "" : `\n${String(result.error)}`}`,
    ms: Math.round(performance.now() - started)
  }
}

/** Runs a script with the tests' Node. */
export const node = (cwd: string, args: ReadonlyArray<string>, timeoutMs?: number): Ran => run(cwd, process.execPath, args, timeoutMs)

/** Throws with the command's output unless it succeeded. */
export const succeeded = (what: string, ran: Ran): Ran => {
  if (ran.status !== 0) throw new Error(`${what} failed (exit ${ran.status}):\n${ran.stdout}\n${ran.stderr}`.slice(0, 20_000))
  return ran
}

/** The consumer app. */
export interface ConsumerApp {
  readonly dir: string
  /** Paths inside the tarball (without the `package/` prefix). */
  readonly tarballFiles: ReadonlyArray<string>
  readonly tarballBytes: number
  /** How long each step took, in ms. */
  readonly timings: Record<string, number>
  readonly remove: () => void
}

const installedVersion = (name: string): string =>
  (JSON.parse(readFileSync(join(repoRoot, "node_modules", name, "package.json"), "utf8")) as { version: string }).version

/** Packs this repository and installs it into a fresh copy of the template. */
export const makeConsumerApp = (): ConsumerApp => {
  const dir = mkdtempSync(join(tmpdir(), "psync-consumer-"))
  const timings: Record<string, number> = {}
  try {
    cpSync(template, dir, { recursive: true })
    timings.pack = succeeded("npm pack", run(repoRoot, "npm", ["pack", "--pack-destination", dir, "--no-audit", "--no-fund"])).ms
    const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"))
    if (tarball === undefined) throw new Error("npm pack wrote no tarball")
    const listing = succeeded("tar", run(dir, "tar", ["-tzf", tarball])).stdout
    const tarballFiles = listing.split("\n").filter((l) => l !== "" && !l.endsWith("/")).map((l) => l.replace(/^package\//, ""))

    const manifestPath = join(dir, "package.json")
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Record<string, Record<string, string>>
    for (const field of ["dependencies", "devDependencies"]) {
      for (const name of Object.keys(manifest[field] ?? {})) {
        manifest[field]![name] = name === "effect-partysync" ? `file:./${tarball}` : installedVersion(name)
      }
    }
    writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`)
    timings.install = succeeded(
      "npm install",
      run(dir, "npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], 300_000)
    ).ms
    const tarballBytes = readFileSync(join(dir, tarball)).length
    return { dir, tarballFiles, tarballBytes, timings, remove: () => rmSync(dir, { recursive: true, force: true }) }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}
