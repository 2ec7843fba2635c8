/**
 * `npm start`: builds the Todo app (React client + the fixture's worker) with
 * Vite and serves it on local workerd with wrangler, Durable Object SQLite
 * state kept in fixtures/todo-sync/.wrangler/state, then prints the address.
 * This is the app as it would be deployed, service worker (offline start)
 * included. `npm start -- --dev` runs the Vite dev server with hot reload
 * instead (same worker and state; no service worker).
 * Environment: PORT (default 5173; a free one if taken), HOST (default 127.0.0.1),
 * VITE_TODO_SCHEMA (the Todo schema version of app and worker: default 2, "1"
 * for the app as first shipped; see fixtures/todo-sync/README.md).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { createServer as createNetServer } from "node:net"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"

const major = Number(process.versions.node.split(".")[0])
if (major < 22) {
  console.error(`Node ${process.versions.node} is too old: run \`npm start\` (it uses the project's Node 24).`)
  process.exit(1)
}

// Keep the local runtime quiet and offline: no metrics, no outbound cf fetch, no local tracing.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false"
process.env.WRANGLER_SEND_METRICS ??= "false"
process.env.X_LOCAL_OBSERVABILITY ??= "false"

const dev = process.argv.includes("--dev")
const host = process.env.HOST ?? "127.0.0.1"
const port = Number(process.env.PORT ?? 5173)

const { appRoot, todoViteConfig } = await import("../fixtures/todo-sync/vite.config.ts")
const state = join(appRoot, ".wrangler", "state")

/** Whether `p` can be listened on (wrangler would otherwise fail late). */
const portFree = (p) =>
  new Promise((resolve) => {
    const probe = createNetServer()
    probe.once("error", () => resolve(false))
    probe.listen(p, host, () => probe.close(() => resolve(true)))
  })

/** Serves the built app with wrangler; answers the address and a stop function. */
const serveBuilt = async () => {
  const { createBuilder } = await import("vite")
  console.log("Building the Todo app…")
  // A build folder of our own: a second `npm start` must not rebuild under a running one.
  const outDir = mkdtempSync(join(tmpdir(), "todo-sync-app-"))
  const removeBuild = () => rmSync(outDir, { recursive: true, force: true })
  process.once("exit", removeBuild)
  const builder = await createBuilder(todoViteConfig({ outDir, persist: state }))
  await builder.buildApp()
  // The build leaves a redirect for wrangler commands run in the app folder; it would point at our temp folder.
  rmSync(join(appRoot, ".wrangler", "deploy"), { recursive: true, force: true })
  const { unstable_startWorker } = await import("wrangler")
  const worker = await unstable_startWorker({
    config: join(outDir, "todo_sync", "wrangler.json"),
    dev: {
      server: { hostname: host, port: (await portFree(port)) ? port : 0 },
      inspector: false,
      persist: state,
      watch: false,
      logLevel: "warn"
    }
  })
  await worker.ready
  const url = await worker.url
  return { address: url.toString(), stop: () => worker.dispose() }
}

/** Runs the Vite dev server (hot reload) with the worker beside it. */
const serveDev = async () => {
  const { createServer } = await import("vite")
  const server = await createServer({ ...todoViteConfig({ persist: state }), server: { host, port, strictPort: false } })
  await server.listen()
  return { address: server.resolvedUrls?.local[0] ?? `http://${host}:${port}/`, stop: () => server.close() }
}

const { address, stop } = dev ? await serveDev() : await serveBuilt()
// Wake the worker so the first page load does not pay for its start.
await fetch(new URL("parties/to-dos/default", address)).catch(() => undefined)

const tty = process.stdout.isTTY
const bold = (s) => (tty ? `\x1b[1m${s}\x1b[22m` : s)
const cyan = (s) => (tty ? `\x1b[36m${s}\x1b[39m` : s)
console.log(`
  ${bold("Todo app")} (effect-partysync) is running on local workerd with SQLite${dev ? " (Vite dev server, hot reload)" : ""}:

    ${cyan(address)}
    ${cyan(`${address}?room=my-room`)}   a room of your own

  Open it in two windows to watch changes sync; go offline in one and keep working.
  Worker: fixtures/todo-sync/src/server.ts (wrangler.toml). State: ${relative(process.cwd(), state) || state}
  ${dev ? "" : "After editing the app, restart (or use `npm start -- --dev` for hot reload). "}Press Ctrl+C to stop.
`)

let stopping = false
const shutdown = async () => {
  if (stopping) return
  stopping = true
  await stop().catch(() => undefined)
  process.exit(0)
}
process.once("SIGINT", () => void shutdown())
process.once("SIGTERM", () => void shutdown())
