/**
 * An app's worker in local workerd, for integration tests: wrangler's
 * `unstable_startWorker` on the app's wrangler config, then a wait until the
 * worker answers HTTP (wrangler's `ready` comes a little before it does, and
 * a WebSocket opened first can fail).
 *
 * wrangler is the app's own devDependency (an optional peer of this
 * package), imported only when a worker starts. Its types are not imported
 * either: they pull in `@cloudflare/workers-types`, which a Node test program
 * cannot load beside `@types/node`; the few options used here are typed
 * below.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/** Options of `startWorker`. */
export interface LocalWorkerOptions {
  /** The app's wrangler config, relative to the current directory (default `wrangler.toml`). */
  readonly config?: string | undefined
  /** Where Durable Objects keep their data: a directory (start again on it to restart with data), or false for memory (default). */
  readonly persist?: string | false | undefined
  /** Plain-text bindings added to the config's (the worker's environment variables). */
  readonly vars?: Readonly<Record<string, string>> | undefined
  /** The port to listen on on 127.0.0.1 (default: any free one). */
  readonly port?: number | undefined
  /** How long to wait for the worker to answer, in ms (default 30 000). */
  readonly timeoutMs?: number | undefined
}

/** A worker running in local workerd. */
export interface LocalWorker {
  /** Its base URL, `http://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string
  /** `127.0.0.1:<port>`: the `host` of a partysocket or a client's options (with `protocol: "ws"`). */
  readonly host: string
  /** Stops it; a `persist` directory is kept. */
  readonly dispose: () => Promise<void>
}

/** The worker could not be started: wrangler is missing, the config is wrong, or it never answered. */
export class WorkerStartError extends Schema.TaggedError<WorkerStartError>()("WorkerStartError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

/** What this module uses of wrangler's `unstable_startWorker`. */
interface Wrangler {
  readonly unstable_startWorker: (options: {
    readonly config: string
    readonly bindings: Record<string, { readonly type: "plain_text"; readonly value: string }>
    readonly dev: {
      readonly server: { readonly hostname: string; readonly port: number }
      readonly inspector: false
      readonly persist: string | false
      readonly watch: false
      readonly logLevel: "warn"
    }
  }) => Promise<{ readonly ready: Promise<unknown>; readonly url: Promise<URL>; dispose(): Promise<void> }>
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const importWrangler = async (): Promise<Wrangler> => {
  // read by wrangler when it loads: no outbound requests, no metrics, no local tracing (it halves WebSocket throughput)
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false"
  process.env.WRANGLER_SEND_METRICS ??= "false"
  process.env.X_LOCAL_OBSERVABILITY ??= "false"
  process.env.WRANGLER_LOG ??= "warn"
  // a specifier in a variable: bundlers and type checkers leave the app's devDependency alone
  const specifier = "wrangler"
  try {
    return (await import(/* @vite-ignore */ specifier)) as Wrangler
  } catch (cause) {
    throw new WorkerStartError({
      message: `effect-partysync/testing: startWorker needs wrangler, installed in the app (npm install -D wrangler): ${describe(cause)}`,
      cause
    })
  }
}

const answers = async (url: string, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      await (await fetch(url)).arrayBuffer()
      return
    } catch (error) {
      last = error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  throw new Error(`it did not answer within ${timeoutMs} ms: ${describe(last)}`)
}

/**
 * Starts the app's worker in local workerd and resolves once it answers
 * HTTP; rejects with `WorkerStartError`. Call `dispose()` when done.
 */
export const startWorker = async (options: LocalWorkerOptions = {}): Promise<LocalWorker> => {
  const { unstable_startWorker } = await importWrangler()
  const config = options.config ?? "wrangler.toml"
  let worker: Awaited<ReturnType<Wrangler["unstable_startWorker"]>> | undefined
  try {
    worker = await unstable_startWorker({
      config,
      bindings: Object.fromEntries(Object.entries(options.vars ?? {}).map(([name, value]) => [name, { type: "plain_text" as const, value }])),
      dev: {
        server: { hostname: "127.0.0.1", port: options.port ?? 0 },
        inspector: false,
        persist: options.persist ?? false,
        watch: false,
        logLevel: "warn"
      }
    })
    await worker.ready
    const url = (await worker.url).toString().replace(/\/$/, "")
    await answers(`${url}/`, options.timeoutMs ?? 30_000)
    const running = worker
    return { url, host: new URL(url).host, dispose: () => running.dispose() }
  } catch (cause) {
    await worker?.dispose().catch(() => {})
    throw new WorkerStartError({ message: `effect-partysync/testing: the worker of ${config} did not start: ${describe(cause)}`, cause })
  }
}

/** `startWorker` as an Effect: the worker runs for the length of the Scope. */
export const localWorker = (options: LocalWorkerOptions = {}): Effect.Effect<LocalWorker, WorkerStartError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startWorker(options),
      catch: (cause) =>
        cause instanceof WorkerStartError ? cause : new WorkerStartError({ message: `effect-partysync/testing: ${describe(cause)}`, cause })
    }),
    (worker) => Effect.promise(() => worker.dispose())
  )
