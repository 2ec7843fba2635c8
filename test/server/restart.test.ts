/**
 * Durability: rows, versions and applied sequence numbers survive a worker
 * restart on the same persist directory. Uses its own worker instance so the
 * shared one is not disturbed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hooks } from "../helpers/hooks.ts"
import { expectAck, freshRoom, ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { create, idsOf, remove } from "../helpers/todos.ts"
import { removeDir, type StartedWorker, startWorker, tempPersistDir } from "../helpers/worker.ts"

const persist = tempPersistDir("psync-restart-")
let worker: StartedWorker | undefined

beforeAll(async () => {
  worker = await startWorker({ persist })
})
afterAll(async () => {
  await worker?.dispose()
  removeDir(persist)
})

describe("worker restart", () => {
  it("rows, versions and applied sequence numbers survive a restart on the same persist directory", async () => {
    const room = freshRoom("restart")
    const before = await ProtocolClient.connect(roomUrl(worker!.url, room))
    await before.subscribe("todos", null)
    expectAck(await before.act({ clientId: "r", seq: 1, action: create("a", "alpha") }))
    const mid = expectAck(await before.act({ clientId: "r", seq: 2, action: create("b", "beta") }))
    const last = expectAck(await before.act({ clientId: "r", seq: 3, action: remove("a") }))
    const rowsBefore = await hooks(worker!.url, room).rows()
    await before.close()

    await worker!.dispose()
    worker = await startWorker({ persist })

    expect(await hooks(worker.url, room).rows()).toEqual(rowsBefore)
    const after = await ProtocolClient.connect(roomUrl(worker.url, room))
    // the version continues where it was: the old cursor is not reset and gets only the delete
    const resumed = await after.subscribe("todos", mid.version)
    expect(resumed).toMatchObject({ reset: false, version: last.version })
    expect(idsOf(resumed.rows)).toEqual(["a"])
    const full = await after.subscribe("todos", null)
    expect(idsOf(full.rows)).toEqual(["b"])
    // the applied sequence survived: a re-sent action is still a duplicate
    const retried = expectAck(await after.act({ clientId: "r", seq: 3, action: remove("a") }))
    expect(retried.duplicate).toBe(true)
    const next = expectAck(await after.act({ clientId: "r", seq: 4, action: create("c", "gamma") }))
    expect(next.version).toBeGreaterThan(last.version)
    await after.close()
  })
})

describe("waking up", () => {
  it("the cost of starting sync does not grow with the table: rows read on wake are the same for 1k and 100k rows", async () => {
    const small = freshRoom("wake-1k")
    const large = freshRoom("wake-100k")
    await hooks(worker!.url, small).seed(0, 1_000)
    // 100k rows in chunks of 25k (one statement each), as bulk writes would arrive
    for (let from = 0; from < 100_000; from += 25_000) await hooks(worker!.url, large).seed(from, 25_000)

    await worker!.dispose()
    worker = await startWorker({ persist })

    const wake = async (room: string) => {
      const h = hooks(worker!.url, room)
      // the first request wakes the object and starts sync after it answers
      expect(await h.rows().then((rows) => rows.length)).toBeGreaterThan(0)
      const report = await h.installation()
      expect(report).not.toBeNull()
      expect(report!.newHistory).toBe(false)
      return report!.usage
    }
    const a = await wake(small)
    const b = await wake(large)
    console.log(`[wake] 1k rows: ${JSON.stringify(a)}; 100k rows: ${JSON.stringify(b)}`)
    expect(b.rowsRead).toBe(a.rowsRead)
    expect(b.rowsWritten).toBe(a.rowsWritten)
    // and it reads the schema and the bookkeeping of the app's two channels, far below the smaller table's 1,000 rows
    expect(b.rowsRead).toBeLessThan(250)
  })
})
