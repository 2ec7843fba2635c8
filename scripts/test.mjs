#!/usr/bin/env node
/**
 * `npm test`: the type checks (`tsc --noEmit` on tsconfig.json and on
 * tsconfig.worker.json, each counted as one check), every vitest project
 * (unit, integration, e2e, reliability, consumer), then one summary line,
 * always the last line printed: `N passed, N failed` (tests and checks).
 * Exits non-zero if any check, test or test file failed, or vitest itself
 * failed.
 *
 * The e2e project drives Debian's Chromium. When /usr/bin/chromium is missing
 * it is installed with apt-get if we are root, otherwise the run stops with
 * an instruction: tests are never skipped silently.
 *
 * Extra arguments go to vitest (e.g. `npm test -- --project unit`).
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const CHROMIUM = "/usr/bin/chromium"

const summary = (passed, failed) => {
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
}

const hasApt = () => spawnSync("sh", ["-c", "command -v apt-get"], { stdio: "ignore" }).status === 0

const ensureChromium = () => {
  if (existsSync(CHROMIUM)) return true
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0
  if (isRoot && hasApt()) {
    console.log(`${CHROMIUM} is missing (needed by the e2e tests): running apt-get update && apt-get install -y chromium`)
    const result = spawnSync("sh", ["-c", "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"], {
      stdio: "inherit"
    })
    if (result.status === 0 && existsSync(CHROMIUM)) return true
    console.error(`installing chromium failed (exit ${result.status})`)
    return false
  }
  console.error(`${CHROMIUM} is missing: install it with \`sudo apt-get install -y chromium\` (Debian) to run the e2e tests, then run npm test again`)
  return false
}

if (!ensureChromium()) {
  summary(0, 1)
  process.exit(1)
}

// vitest 5 needs Node >= 22.12: prefer the Node 24 from the `node` devDependency
const localNode = join(root, "node_modules", ".bin", "node")
const nodeBin = existsSync(localNode) ? localNode : process.execPath
const vitest = join(root, "node_modules", "vitest", "vitest.mjs")
const out = mkdtempSync(join(tmpdir(), "psync-test-"))

// Type checks first (a few seconds each): vitest strips types without checking them.
const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
let checksPassed = 0
let checksFailed = 0
for (const project of ["tsconfig.json", "tsconfig.worker.json"]) {
  const check = spawnSync(nodeBin, [tsc, "--noEmit", "-p", project], { cwd: root, encoding: "utf8" })
  if (check.status === 0) {
    checksPassed += 1
    console.log(`✓ tsc --noEmit -p ${project}`)
  } else {
    checksFailed += 1
    console.error(`✗ tsc --noEmit -p ${project} failed (exit ${check.status ?? check.signal ?? check.error}):`)
    console.error(`${check.stdout ?? ""}${check.stderr ?? ""}`.trimEnd())
  }
}
const report = join(out, "report.json")

const run = spawnSync(
  nodeBin,
  [vitest, "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit", env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? "0" } }
)

let passed = 0
let failed = 0
let skipped = 0
if (existsSync(report)) {
  const json = JSON.parse(readFileSync(report, "utf8"))
  passed = json.numPassedTests ?? 0
  failed = json.numFailedTests ?? 0
  skipped = (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0)
  // a file that failed to load or whose hooks failed has no failed test, but it failed
  for (const file of json.testResults ?? []) {
    const failedTests = (file.assertionResults ?? []).filter((t) => t.status === "failed").length
    if (file.status === "failed" && failedTests === 0) {
      console.error(`test file failed outside its tests: ${file.name}${file.message ? `\n${String(file.message).slice(0, 4000)}` : ""}`)
      failed += 1
    }
  }
} else {
  console.error("vitest wrote no report")
}
rmSync(out, { recursive: true, force: true })

const vitestFailed = run.status !== 0 || run.error !== undefined
if (vitestFailed && failed === 0) {
  console.error(`vitest exited with ${run.status ?? run.signal ?? run.error}`)
  failed = 1
}
// skipped tests are neither passed nor failed: say so rather than hide them
if (skipped > 0) console.log(`${skipped} skipped (it.skip / it.todo / filtered)`)
summary(passed + checksPassed, failed + checksFailed)
process.exit(failed > 0 || checksFailed > 0 || vitestFailed ? 1 : 0)
