/**
 * Starts a real worker in local workerd for integration tests and the vitest
 * global setup, through the package's own `startWorker`
 * (effect-partysync/testing), so every integration run also exercises it.
 * Adds what only this repository's tests need: a temp persist directory by
 * default, and the Todo fixture's `TEST_HOOKS` switch.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startWorker as startLocalWorker } from "../../src/testing/Worker.ts"

/** A running worker. */
export interface StartedWorker {
  /** Base URL, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string
  /** The directory its Durable Objects persist to (false: in memory). */
  readonly persist: string | false
  /** Stops the worker; the persist directory is kept for a restart. */
  readonly dispose: () => Promise<void>
}

/** Options for `startWorker`. */
export interface StartWorkerOptions {
  /** Wrangler config path, relative to the repository root. Default: the Todo fixture's `wrangler.toml`. */
  readonly config?: string
  /** A directory to persist to (reuse one to restart with data), `true` for a fresh temp dir, or false. */
  readonly persist?: string | boolean
  /** Sets the `TEST_HOOKS` binding to "1" (default true). */
  readonly hooks?: boolean
  /** More plain-text bindings (environment variables of the worker). */
  readonly vars?: Readonly<Record<string, string>>
  /** A port to listen on (default: any free one); a restart on the same port keeps clients' cache keys. */
  readonly port?: number
}

/** Makes a fresh temp directory for Durable Object persistence. */
export const tempPersistDir = (prefix = "psync-persist-"): string => mkdtempSync(join(tmpdir(), prefix))

/** Removes a persist directory made by `tempPersistDir`. */
export const removeDir = (dir: string): void => rmSync(dir, { recursive: true, force: true })

/**
 * Waits until the worker answers plain HTTP: `ready` resolves a little before
 * it does, and a WebSocket opened first can fail.
 */
export const waitForHttp = async (url: string, timeoutMs = 30_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url)
      await response.arrayBuffer()
      return
    } catch (error) {
      last = error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  throw new Error(`worker at ${url} did not answer within ${timeoutMs} ms: ${String(last)}`)
}

/** Starts a worker and waits until it answers HTTP. */
export const startWorker = async (options: StartWorkerOptions = {}): Promise<StartedWorker> => {
  const persist = options.persist === true || options.persist === undefined
    ? tempPersistDir()
    : options.persist
  const worker = await startLocalWorker({
    config: options.config ?? "wrangler.toml",
    persist,
    vars: { ...(options.hooks === false ? {} : { TEST_HOOKS: "1" }), ...options.vars },
    ...(options.port === undefined ? {} : { port: options.port })
  })
  return { url: worker.url, persist, dispose: worker.dispose }
}
