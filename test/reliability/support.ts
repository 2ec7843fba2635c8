/**
 * Support for the reliability tests: a worker of their own that can be
 * crashed (SIGKILL of the workerd process running it) and restarted on the
 * same port and persist directory, its memory (RSS from /proc), sync clients
 * on reconnecting partysockets, and the figures file the README quotes
 * (test-results/reliability.json).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { todos } from "../../fixtures/todo-sync/src/shared.ts"
import { optimisticReducer } from "../../fixtures/todo-sync/src/app/optimistic.ts"
import { createSyncClient, makeMemoryStore, type PlainSyncClient } from "../../src/client/index.ts"
import type { KeyValueStore } from "effect/persistence"
import { eventually } from "../helpers/protocol.ts"
import { removeDir, tempPersistDir, waitForHttp } from "../helpers/worker.ts"
import type { PartySocket } from "partysocket"
import { partySocket as clientPartySocket } from "../client/support.ts"

interface Proc {
  readonly pid: number
  /** Start time in clock ticks since boot: orders processes even when pids wrap. */
  readonly start: number
}

/** The workerd processes that are children of this process. */
export const workerdChildren = (): Array<Proc> =>
  readdirSync("/proc").filter((p) => /^\d+$/.test(p)).flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // after the command: state, ppid, ... starttime is field 22 of the whole line, 20th after the command
      return comm === "workerd" && Number(fields[1]) === process.pid ? [{ pid: Number(pid), start: Number(fields[19]) }] : []
    } catch {
      return []
    }
  })

/** Resident memory of a process in kB (0 if it is gone). */
export const rssKb = (pid: number): number => {
  try {
    return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1] ?? 0)
  } catch {
    return 0
  }
}

/** CPU time (user + system) a process has used, in seconds (0 if it is gone). */
export const cpuSeconds = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 per second on Linux)
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** A worker of one test file that it may crash and restart. */
export interface OwnWorker {
  readonly url: string
  /** The pid of the workerd process running the worker (not wrangler's proxy). */
  readonly userPid: () => number
  /** SIGKILLs the workerd process running the worker; resolves once it answers again (same URL, data intact). */
  readonly crash: () => Promise<void>
  /** Stops the worker and starts it again on the same port and persist directory. */
  readonly restart: () => Promise<void>
  readonly dispose: () => Promise<void>
}

type Started = { dispose(): Promise<void> }

/** Which worker `startOwnWorker` runs. */
export interface OwnWorkerOptions {
  /** Its wrangler config (default: the Todo fixture's `wrangler.toml`). */
  readonly config?: string
  /** More plain-text vars besides `TEST_HOOKS`. */
  readonly vars?: Readonly<Record<string, string>>
}

const boot = async (persist: string, port: number, options: OwnWorkerOptions): Promise<{ worker: Started; url: string }> => {
  process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false"
  process.env.WRANGLER_SEND_METRICS = "false"
  process.env.X_LOCAL_OBSERVABILITY = "false"
  process.env.WRANGLER_LOG ??= "warn"
  const { unstable_startWorker } = await import("wrangler")
  const worker = await unstable_startWorker({
    config: options.config ?? "wrangler.toml",
    bindings: {
      TEST_HOOKS: { type: "plain_text", value: "1" },
      ...Object.fromEntries(Object.entries(options.vars ?? {}).map(([name, value]) => [name, { type: "plain_text" as const, value }]))
    },
    dev: { server: { hostname: "127.0.0.1", port }, inspector: false, persist, watch: false, logLevel: "warn" }
  })
  await worker.ready
  const url = (await worker.url).toString().replace(/\/$/, "")
  await waitForHttp(`${url}/`)
  return { worker, url }
}

/** Starts a worker of its own (fresh persist directory, test hooks on). */
export const startOwnWorker = async (options: OwnWorkerOptions = {}): Promise<OwnWorker> => {
  const persist = tempPersistDir("psync-reliability-")
  const others = new Set(workerdChildren().map((p) => p.pid))
  let { worker, url } = await boot(persist, 0, options)
  const port = Number(new URL(url).port)
  // wrangler runs two workerd processes: its proxy (started first, kept across crashes) and the one running the worker
  const ours = () => workerdChildren().filter((p) => !others.has(p.pid)).sort((a, b) => a.start - b.start || a.pid - b.pid)
  let proxy = ours()[0]!.pid
  const userPid = () => {
    const user = ours().filter((p) => p.pid !== proxy)
    if (user.length === 0) throw new Error("no workerd process runs the worker")
    return user[user.length - 1]!.pid
  }
  userPid()
  return {
    url,
    userPid,
    crash: async () => {
      const pid = userPid()
      process.kill(pid, "SIGKILL")
      await eventually(() => (ours().some((p) => p.pid !== proxy && p.pid !== pid) ? true : undefined), {
        timeoutMs: 30_000,
        what: "workerd restarted after SIGKILL"
      })
      await waitForHttp(`${url}/`)
    },
    restart: async () => {
      await worker.dispose()
      const next = await boot(persist, port, options)
      if (next.url !== url) throw new Error(`restarted on ${next.url}, expected ${url}`)
      worker = next.worker
      proxy = ours()[0]!.pid
    },
    dispose: async () => {
      await worker.dispose()
      removeDir(persist)
    }
  }
}

/** A reconnecting partysocket to a room of the Todo fixture, patient enough for worker restarts. */
export const partySocket = (workerUrl: string, room: string, options: { startClosed?: boolean } = {}) =>
  clientPartySocket(workerUrl, room, { ...options, maxReconnectionDelay: 250, connectionTimeout: 2_000 })


/** A sync client of the Todo channel with the app's optimistic reducer, on its own partysocket. */
export interface TodoClient {
  readonly party: PartySocket
  readonly client: PlainSyncClient<typeof todos>
  readonly store: KeyValueStore.KeyValueStore
  readonly close: () => Promise<void>
}

/** Makes a Todo sync client on a partysocket to `room`. */
export const todoClient = (
  workerUrl: string,
  room: string,
  options: { store?: KeyValueStore.KeyValueStore; startClosed?: boolean } = {}
): TodoClient => {
  const party = partySocket(workerUrl, room, options)
  const store = options.store ?? makeMemoryStore()
  const client = createSyncClient({ channel: todos, socket: party, optimistic: optimisticReducer, store })
  return {
    party,
    client,
    store,
    close: async () => {
      await client.close()
      party.close()
    }
  }
}

/** Server rows without tombstones, sorted by id, as JSON (for comparing with a client snapshot). */
export const liveRowsJson = (rows: ReadonlyArray<ReadonlyArray<unknown>>): string =>
  JSON.stringify(rows.filter((r) => r[r.length - 1] === null).toSorted((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)))

/** A client snapshot, sorted by id, as JSON. */
export const snapshotJson = (rows: ReadonlyArray<ReadonlyArray<unknown>>): string =>
  JSON.stringify(rows.toSorted((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)))

const FIGURES = join(process.cwd(), "test-results", "reliability.json")

/** Merges figures into test-results/reliability.json under `key` (the README quotes them). */
export const writeFigures = (key: string, figures: Record<string, unknown>): void => {
  mkdirSync(join(process.cwd(), "test-results"), { recursive: true })
  let all: Record<string, unknown> = {}
  try {
    all = JSON.parse(readFileSync(FIGURES, "utf8")) as Record<string, unknown>
  } catch {
    // first figures of this run
  }
  all[key] = { ...figures, at: new Date().toISOString() }
  writeFileSync(FIGURES, JSON.stringify(all, null, 2) + "\n")
}

export { eventually }
