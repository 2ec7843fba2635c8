/**
 * Schema evolution with real clients, in real workerd: clients of deploy v1
 * cache rows and queue actions offline; the same persisted state restarts as
 * v2 (a column added, an action field renamed). Clients built for v2 rebuild
 * their cache, send the queued v1 actions (upgraded by the channel's
 * declared function), and end with every row once; a client still built for
 * v1 is told it is outdated and sends nothing. Uses its own worker, restarted
 * on the same port so that the clients' cache keys stay the same.
 */
import { afterAll, describe, expect, it } from "vitest"
import { createSyncClient, makeMemoryStore } from "../../src/client/index.ts"
import { notesV1, notesV2 } from "../server/evolution/channels.ts"
import { freshRoom, roomUrl } from "../helpers/protocol.ts"
import { removeDir, type StartedWorker, startWorker, tempPersistDir } from "../helpers/worker.ts"
import { eventually, partySocket } from "./support.ts"

const CONFIG = "test/server/evolution/wrangler.toml"
const persist = tempPersistDir("psync-client-evolution-")
let worker: StartedWorker | undefined

const deploy = async (version: string, port?: number) => {
  await worker?.dispose()
  worker = await startWorker({ config: CONFIG, persist, hooks: false, vars: { DEPLOY: version }, ...(port === undefined ? {} : { port }) })
  return worker
}

afterAll(async () => {
  await worker?.dispose()
  removeDir(persist)
})

describe("clients across a deploy", () => {
  it("v1 clients cache and queue offline; after the v2 deploy the cache is rebuilt, queued actions are upgraded and applied once, a v1 client is outdated", async () => {
    const room = freshRoom("evo-client")
    const store = makeMemoryStore()
    const first = await deploy("v1")
    const port = Number(new URL(first.url).port)
    const socket = () => partySocket(worker!.url, room, { party: "notes" })

    // v1: one note confirmed, then two queued while offline
    const s1 = socket()
    const v1 = createSyncClient({ channel: notesV1, socket: s1, store })
    await v1.send({ type: "add", id: "n1", text: "confirmed under v1" })
    s1.close()
    await eventually(() => (v1.getStatus().connection === "offline" ? true : undefined), { what: "offline" })
    const queued = [v1.send({ type: "add", id: "n2", text: "queued under v1" }), v1.send({ type: "add", id: "n3", text: "also queued" })]
      .map((p) => p.then(() => "applied", (e: { _tag: string }) => e._tag))
    await eventually(() => (v1.getStatus().pending === 2 ? true : undefined), { what: "two queued" })
    await v1.close()
    expect(await Promise.all(queued)).toEqual(["ActionDiscarded", "ActionDiscarded"])

    await deploy("v2", port)
    // a client still built for v1 (its tab was never reloaded): outdated, and nothing it holds is sent
    const stale = createSyncClient({ channel: notesV1, socket: socket(), store: makeMemoryStore() })
    await eventually(() => (stale.getStatus().connection === "outdated" ? true : undefined), { what: "outdated" })
    void stale.send({ type: "add", id: "never", text: "from a stale tab" }).catch(() => {})

    // the reloaded app, built for v2, on the same storage
    const v2 = createSyncClient({ channel: notesV2, socket: socket(), store })
    await eventually(() => (v2.getStatus().connection === "live" && v2.getStatus().pending === 0 ? true : undefined), {
      what: "the v2 client live with its adopted queue sent",
      timeoutMs: 30_000
    })
    // rows in v2's shape ([id, body, priority, deleted_at]): the cache of v1 rows was not read as v2 rows
    expect([...v2.getSnapshot()].sort((a, b) => a[0].localeCompare(b[0]))).toEqual([
      ["n1", "confirmed under v1", 0, null],
      ["n2", "queued under v1", 0, null],
      ["n3", "also queued", 0, null]
    ])
    const rows = await (await fetch(`${roomUrl(worker!.url, room, { party: "notes", ws: false })}/rows`)).json() as Array<Array<unknown>>
    expect(rows.map((r) => r[0])).toEqual(["n1", "n2", "n3"])
    expect(stale.getStatus().connection).toBe("outdated")
    await stale.close()
    await v2.close()
  })
})
