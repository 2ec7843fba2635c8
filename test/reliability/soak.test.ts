/**
 * Load soak: 200 real sync clients (SOAK_CLIENTS) spread over a few rooms
 * (SOAK_ROOMS) of a worker of this file's own, each running creates,
 * updates and deletes back to back for a bounded time (SOAK_SECONDS,
 * default 25). Afterwards no change is lost or duplicated, every client has
 * converged on the server's rows, and the memory of the workerd process that
 * runs the worker stayed bounded. Figures (actions/s, RSS) go to the console
 * and to test-results/reliability.json.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TodoAction } from "../../fixtures/todo-sync/src/shared.ts"
import { hooks } from "../helpers/hooks.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { cpuSeconds, eventually, liveRowsJson, type OwnWorker, rssKb, snapshotJson, startOwnWorker, type TodoClient, todoClient, writeFigures } from "./support.ts"

const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 200)
const ROOMS = Number(process.env.SOAK_ROOMS ?? 4)
const SECONDS = Number(process.env.SOAK_SECONDS ?? 25)

let worker: OwnWorker
beforeAll(async () => {
  worker = await startOwnWorker()
})
afterAll(async () => {
  await worker?.dispose()
})

/** A deterministic pseudo-random sequence per client (the mix of actions, not their timing). */
const prng = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

describe("load soak", () => {
  it(`${CLIENTS} clients over ${ROOMS} rooms for ${SECONDS} s: nothing lost or duplicated, all converge, memory bounded`, async () => {
    const rooms = Array.from({ length: ROOMS }, () => freshRoom("soak"))
    const clients: Array<TodoClient & { room: string }> = Array.from({ length: CLIENTS }, (_, i) => ({
      ...todoClient(worker.url, rooms[i % ROOMS]!),
      room: rooms[i % ROOMS]!
    }))
    try {
      await eventually(() => (clients.every((c) => c.client.getStatus().connection === "live") ? true : undefined), {
        timeoutMs: 60_000,
        what: "every client live"
      })
      const pid = worker.userPid()
      const rss: Array<number> = [rssKb(pid)]
      const sampler = setInterval(() => rss.push(rssKb(worker.userPid())), 1_000)

      const acked = new Map<string, Array<TodoAction>>(rooms.map((r) => [r, []]))
      const failures: Array<string> = []
      let stop = false
      const started = Date.now()
      const cpu0 = { node: process.cpuUsage(), workerd: cpuSeconds(pid) }
      const loops = clients.map(async (c, i) => {
        const random = prng(i + 1)
        const live: Array<string> = []
        let n = 0
        while (!stop) {
          const roll = random()
          let action: TodoAction
          if (live.length === 0 || roll < 0.55) {
            const id = `c${i}-${n++}`
            action = { type: "create", payload: { id, text: `todo ${id}`, completed: 0, priority: 1 } }
          } else if (roll < 0.9) {
            const id = live[Math.floor(random() * live.length)]!
            action = { type: "update", payload: { id, text: `edit ${n++} of ${id}`, completed: random() < 0.5 ? 0 : 1 } }
          } else {
            const id = live.splice(Math.floor(random() * live.length), 1)[0]!
            action = { type: "delete", payload: { id } }
          }
          try {
            await c.client.send(action)
            acked.get(c.room)!.push(action)
            if (action.type === "create") live.push(action.payload.id)
          } catch (error) {
            failures.push(`${JSON.stringify(action)}: ${String(error)}`)
            return
          }
        }
      })
      await new Promise((resolve) => setTimeout(resolve, SECONDS * 1_000))
      stop = true
      await Promise.all(loops)
      const elapsed = (Date.now() - started) / 1_000
      clearInterval(sampler)
      const nodeCpu = process.cpuUsage(cpu0.node)
      // where the time went: this process runs all the clients, workerd the server (and its restarts keep the pid)
      const cpu = {
        clientCpuSeconds: Number(((nodeCpu.user + nodeCpu.system) / 1e6).toFixed(1)),
        workerdCpuSeconds: Number((cpuSeconds(worker.userPid()) - cpu0.workerd).toFixed(1))
      }
      rss.push(rssKb(worker.userPid()))
      expect(failures).toEqual([])

      const total = [...acked.values()].reduce((sum, list) => sum + list.length, 0)
      for (const room of rooms) {
        const rows = await hooks(worker.url, room).rows()
        const mine = acked.get(room)!
        // every acknowledged create is a row exactly once, and there is no other row
        const creates = mine.filter((a) => a.type === "create").map((a) => a.payload.id)
        expect(rows.map((r) => r[0]).sort()).toEqual(creates.sort())
        // every acknowledged delete left a tombstone, and the last acknowledged text of each row is the row's text
        const deleted = new Set(mine.filter((a) => a.type === "delete").map((a) => a.payload.id))
        const lastText = new Map<string, string>()
        for (const a of mine) if (a.type !== "delete" && a.payload.text !== undefined) lastText.set(a.payload.id, a.payload.text)
        for (const row of rows) {
          expect(row[6] !== null, `row ${row[0]} deleted`).toBe(deleted.has(row[0]))
          expect(row[1], `row ${row[0]} text`).toBe(lastText.get(row[0]))
        }
        // every client of the room converged on exactly these rows
        const expected = liveRowsJson(rows)
        for (const c of clients.filter((x) => x.room === room)) {
          await eventually(
            () => (c.client.getStatus().pending === 0 && snapshotJson(c.client.getSnapshot()) === expected ? true : undefined),
            { timeoutMs: 60_000, what: `a client of ${room} converged` }
          )
        }
      }

      const settled = rss.slice(1)
      const start = rss[0]!
      const end = rss[rss.length - 1]!
      const peak = Math.max(...rss)
      // the second half of the run may not keep growing much beyond the first half's peak
      const half = settled.slice(0, Math.ceil(settled.length / 2))
      const firstHalfPeak = Math.max(start, ...half)
      const figures = {
        clients: CLIENTS,
        rooms: ROOMS,
        seconds: Number(elapsed.toFixed(1)),
        actions: total,
        actionsPerSecond: Math.round(total / elapsed),
        rssStartMb: Number((start / 1024).toFixed(1)),
        rssEndMb: Number((end / 1024).toFixed(1)),
        rssPeakMb: Number((peak / 1024).toFixed(1)),
        rssFirstHalfPeakMb: Number((firstHalfPeak / 1024).toFixed(1)),
        ...cpu
      }
      console.log(`[soak] ${JSON.stringify(figures)}`)
      writeFigures("soak", figures)
      expect(total).toBeGreaterThan(CLIENTS)
      expect(end, `workerd RSS grew from ${start} kB to ${end} kB`).toBeLessThan(firstHalfPeak * 1.5 + 64 * 1024)
    } finally {
      await Promise.all(clients.map((c) => c.close()))
    }
  }, 300_000)
})
