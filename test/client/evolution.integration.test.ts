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
import { notesV1, notesV2, notesV2NoStep, notesV3Bare } from "../server/evolution/channels.ts"
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

  it("the README's new-column recipe (version raised, no step): actions queued under the older version are applied as they are", async () => {
    const room = freshRoom("evo-recipe")
    const store = makeMemoryStore()
    const first = await deploy("v2")
    const port = Number(new URL(first.url).port)
    const socket = () => partySocket(worker!.url, room, { party: "notes" })
    const s2 = socket()
    const v2 = createSyncClient({ channel: notesV2, socket: s2, store })
    await eventually(() => (v2.getStatus().connection === "live" ? true : undefined), { what: "live" })
    s2.close()
    await eventually(() => (v2.getStatus().connection === "offline" ? true : undefined), { what: "offline" })
    void v2.send({ type: "add", id: "q1", body: "queued under v2", priority: 2 }).catch(() => {})
    await eventually(() => (v2.getStatus().pending === 1 ? true : undefined), { what: "queued" })
    await v2.close()

    await deploy("v3-bare", port)
    const v3 = createSyncClient({ channel: notesV3Bare, socket: socket(), store })
    await eventually(() => (v3.getStatus().connection === "live" && v3.getStatus().pending === 0 ? true : undefined), {
      what: "the v3 client live with the v2 action sent",
      timeoutMs: 30_000
    })
    expect(v3.getStatus().lastError).toBeNull()
    expect(v3.getDiscarded()).toEqual([])
    expect(v3.getSnapshot()).toEqual([["q1", "queued under v2", 2, 0, null]])
    await v3.close()
  })

  it("a queued action no step can bring to the new version is not dropped silently: it is listed as discarded, with its reason", async () => {
    const room = freshRoom("evo-discard")
    const store = makeMemoryStore()
    const first = await deploy("v1")
    const port = Number(new URL(first.url).port)
    const socket = () => partySocket(worker!.url, room, { party: "notes" })
    const s1 = socket()
    const v1 = createSyncClient({ channel: notesV1, socket: s1, store })
    await eventually(() => (v1.getStatus().connection === "live" ? true : undefined), { what: "live" })
    s1.close()
    await eventually(() => (v1.getStatus().connection === "offline" ? true : undefined), { what: "offline" })
    void v1.send({ type: "add", id: "lost", text: "no step brings me to v2" }).catch(() => {})
    await eventually(() => (v1.getStatus().pending === 1 ? true : undefined), { what: "queued" })
    await v1.close()

    await deploy("v2-nostep", port)
    const v2 = createSyncClient({ channel: notesV2NoStep, socket: socket(), store })
    await eventually(() => (v2.getStatus().connection === "live" && v2.getStatus().pending === 0 ? true : undefined), {
      what: "the v2 client live with the v1 action decided",
      timeoutMs: 30_000
    })
    expect(v2.getDiscarded()).toEqual([expect.objectContaining({
      seq: 1,
      schema: 1,
      action: undefined,
      encoded: { type: "add", id: "lost", text: "no step brings me to v2" },
      reason: "Outdated"
    })])
    expect(v2.getStatus().lastError).toMatchObject({ reason: "Outdated" })
    v2.dismissDiscarded()
    expect(v2.getDiscarded()).toEqual([])
    expect(v2.getSnapshot()).toEqual([])
    await v2.close()
  })
})
