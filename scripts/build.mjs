#!/usr/bin/env node
/**
 * `npm run build` (and `prepack`): compiles src/ to dist/ with TypeScript's
 * own `tsc`: ES modules, `.d.ts` files and source maps (sources inlined, so
 * the package needs no src/). No bundler: each module stays a file, so apps
 * tree-shake what they do not import.
 *
 * Two programs, because only the workerd server may see
 * `@cloudflare/workers-types`:
 * - tsconfig.build.json: the root entry (protocol), client, React, testing,
 *   the Node server variant and the services, without workers types;
 * - tsconfig.build.worker.json: src/server/index.ts and SyncServer (workers
 *   types). It is emitted into a sibling folder; only its own files are
 *   copied into dist/, and the files both programs emit must be identical.
 *
 * Then: `tsc` keeps `./x.ts` specifiers in `.d.ts` files (it rewrites them
 * only in JavaScript), so they are rewritten to `./x.js` here; and the
 * client, React and protocol declarations are checked never to mention
 * Cloudflare or Durable Object types.
 */
import { spawnSync } from "node:child_process"
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const dist = join(root, "dist")
const workerOut = join(root, ".build-worker") // same depth as dist/, so source map paths match
const tsc = join(root, "node_modules", "typescript", "bin", "tsc")

const fail = (message) => {
  console.error(`build: ${message}`)
  process.exit(1)
}

const compile = (project, outDir) => {
  const result = spawnSync(process.execPath, [tsc, "-p", project, "--outDir", outDir], { cwd: root, stdio: "inherit" })
  if (result.status !== 0) fail(`tsc -p ${project} failed`)
}

const filesUnder = (dir) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))

rmSync(dist, { recursive: true, force: true })
rmSync(workerOut, { recursive: true, force: true })
compile("tsconfig.build.json", dist)
compile("tsconfig.build.worker.json", workerOut)

for (const file of filesUnder(workerOut)) {
  const target = join(dist, file)
  if (!existsSync(target)) cpSync(join(workerOut, file), target)
  else if (!readFileSync(target).equals(readFileSync(join(workerOut, file)))) {
    fail(`${file} differs between the two programs (a shared module must not depend on workers types)`)
  }
}
rmSync(workerOut, { recursive: true, force: true })

// `export ... from "./x.ts"` and `import("./x.ts")` in declarations -> ".js"
const tsSpecifier = /((?:from|import)\s*\(?\s*)(["'])(\.\.?\/[^"']*?)\.ts\2/g
const declarations = filesUnder(dist).filter((f) => f.endsWith(".d.ts"))
for (const file of declarations) {
  const path = join(dist, file)
  const text = readFileSync(path, "utf8")
  const rewritten = text.replace(tsSpecifier, (_, lead, quote, base) => `${lead}${quote}${base}.js${quote}`)
  if (rewritten !== text) writeFileSync(path, rewritten)
  if (/(["'])\.\.?\/[^"']*\.ts\1/.test(rewritten)) fail(`${file} still has a .ts specifier`)
}

// what a browser app type-checks must not need @cloudflare/workers-types
const workersTypes = /\bCloudflare\b|\bDurableObject[A-Z]\w*|\bDurableObject\b|cloudflare:|workers-types|partyserver/
for (const file of declarations) {
  if (!/^(client|react|protocol)\//.test(file)) continue
  const code = readFileSync(join(dist, file), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "")
  const line = code.split("\n").find((l) => workersTypes.test(l))
  if (line !== undefined) fail(`dist/${file} refers to workers types: ${line.trim()}`)
}

console.log(`build: dist/ has ${filesUnder(dist).length} files`)
