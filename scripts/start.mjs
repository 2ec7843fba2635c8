/**
 * `npm start`: serves the Todo app and its worker together on local workerd
 * (Vite dev server with the Cloudflare plugin), Durable Object SQLite state
 * kept in fixtures/todo-sync/.wrangler/state, and prints the address.
 * Environment: PORT (default 5173, the next free one if taken), HOST (default localhost).
 */
import { relative } from "node:path"

const major = Number(process.versions.node.split(".")[0])
if (major < 22) {
  console.error(`Node ${process.versions.node} is too old: run \`npm start\` (it uses the project's Node 24).`)
  process.exit(1)
}

// Keep the local runtime quiet and offline: no metrics, no outbound cf fetch, no local tracing.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false"
process.env.WRANGLER_SEND_METRICS ??= "false"
process.env.X_LOCAL_OBSERVABILITY ??= "false"

const { createServer } = await import("vite")
const { appRoot, todoViteConfig } = await import("../fixtures/todo-sync/vite.config.ts")

const host = process.env.HOST ?? "localhost"
const port = Number(process.env.PORT ?? 5173)
const state = `${appRoot}.wrangler/state`

const server = await createServer({
  ...todoViteConfig({ persist: state }),
  server: { host, port, strictPort: false }
})
await server.listen()

const address = server.resolvedUrls?.local[0] ?? `http://${host}:${port}/`
// Wake the worker so the first page load does not pay for its start.
await fetch(new URL("parties/to-dos/default", address)).catch(() => undefined)

const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[22m` : s)
const cyan = (s) => (process.stdout.isTTY ? `\x1b[36m${s}\x1b[39m` : s)
console.log(`
  ${bold("Todo app")} (effect-partysync) is running on local workerd with SQLite:

    ${cyan(address)}
    ${cyan(`${address}?room=my-room`)}   a room of your own

  Open it in two windows to watch changes sync; try going offline in one.
  Worker: fixtures/todo-sync/src/server.ts (wrangler.toml). State: ${relative(process.cwd(), state) || state}
  Press Ctrl+C to stop.
`)

const stop = async () => {
  await server.close()
  process.exit(0)
}
process.once("SIGINT", () => void stop())
process.once("SIGTERM", () => void stop())
