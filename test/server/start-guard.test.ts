/**
 * One start guard at every entry point (test/server/start-worker.js, real
 * workerd): an object whose first event is an alarm set over RPC has run its
 * migrations before the app's onAlarm; the GC alarm is armed again when
 * onAlarm throws; rows onClose writes after a wake reach subscribers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freshRoom, ProtocolClient, roomUrl } from "../helpers/protocol.ts"
import { type StartedWorker, startWorker } from "../helpers/worker.ts"

let worker: StartedWorker | undefined
beforeAll(async () => {
  worker = await startWorker({ config: "test/server/wrangler.start.toml", persist: false, hooks: false })
})
afterAll(async () => {
  await worker?.dispose()
})

const rpc = async (method: "arm" | "state", room: string, args: ReadonlyArray<unknown> = []) =>
  (await (await fetch(`${worker!.url}/rpc/${method}/${encodeURIComponent(room)}`, { method: "POST", body: JSON.stringify(args) })).json()) as
    { first: string | null; alarm: number | null } | null

describe("the start guard", () => {
  it("an alarm that is the object's first event runs after the migrations", async () => {
    const room = freshRoom("alarm-first")
    await rpc("arm", room, [10])
    const state = await eventually(async () => {
      const s = await rpc("state", room)
      return s?.first !== null ? s : undefined
    }, { what: "the first alarm ran" })
    expect(state!.first).toBe("ok")
  })

  it("onAlarm that throws still leaves the GC alarm armed", async () => {
    const room = freshRoom("alarm-throws")
    await rpc("arm", room, [10, true])
    await eventually(async () => ((await rpc("state", room))?.first !== null ? true : undefined), { what: "the alarm ran" })
    // the runtime retries a failed alarm; the GC alarm the library set is an hour out
    const state = await eventually(async () => {
      const s = await rpc("state", room)
      return s?.alarm !== null && s!.alarm! > Date.now() + 30 * 60_000 ? s : undefined
    }, { what: "the GC alarm armed" })
    expect(state!.alarm).toBeGreaterThan(Date.now() + 30 * 60_000)
  })

  it("a row onClose writes reaches the room's subscribers", async () => {
    const room = freshRoom("close-writes")
    const url = roomUrl(worker!.url, room, { party: "journal" })
    const watcher = await ProtocolClient.connect(url)
    await watcher.subscribe("entries", null)
    const leaving = await ProtocolClient.connect(url)
    await leaving.close()
    await watcher.next((m) => m._tag === "Change" && m.rows.some((r) => String(r[0]).startsWith("closed-")), { what: "the row onClose wrote" })
    await watcher.close()
  })
})
