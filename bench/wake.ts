/**
 * 10. Waking up: the cost of an object's first request after a restart, with
 * 1k, 10k and 100k rows in its table. Each side runs in its own workerd with
 * its objects persisted to a temp folder, is seeded, stopped and started
 * again; then each room's first request is timed. For ours that request
 * starts sync (migrations, capture): its rows read come from the object's
 * installation report, and must not grow with the table.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { now } from "./stats.ts"
import { seed, type Side, SIDES, start } from "./workers.ts"

/** One table size's wake on both sides. */
export interface WakeRow {
  readonly rows: number
  readonly oursMs: number
  readonly rawMs: number
  /** Rows our start read (schema and bookkeeping, never the table). */
  readonly oursRowsRead: number
}

const firstRequest = async (side: Side, room: string): Promise<number> => {
  const path = side.name === "ours" ? "hooks/usage" : "usage"
  const t0 = now()
  const res = await fetch(`${side.url}${side.party}/${room}/${path}`)
  await res.text()
  return now() - t0
}

/** Measures the wake of rooms of each size on both sides. */
export const wakeRounds = async (sizes: ReadonlyArray<number>): Promise<Array<WakeRow>> => {
  const dirs = { ours: mkdtempSync(join(tmpdir(), "bench-wake-ours-")), raw: mkdtempSync(join(tmpdir(), "bench-wake-raw-")) }
  const room = (n: number) => `wake-${n}`
  try {
    for (const name of ["ours", "raw"] as const) {
      const side = await start(name, SIDES[name].config, SIDES[name].party, { persist: dirs[name] })
      for (const n of sizes) {
        await seed(side, room(n), 0, 0)
        await seed(side, room(n), 0, n)
      }
      await side.dispose()
    }
    const ours = await start("ours", SIDES.ours.config, SIDES.ours.party, { persist: dirs.ours })
    const raw = await start("raw", SIDES.raw.config, SIDES.raw.party, { persist: dirs.raw })
    try {
      const out: Array<WakeRow> = []
      for (const n of sizes) {
        const oursMs = await firstRequest(ours, room(n))
        const rawMs = await firstRequest(raw, room(n))
        const report = (await (await fetch(`${ours.url}${ours.party}/${room(n)}/hooks/installation`)).json()) as {
          usage: { rowsRead: number }
        } | null
        if (report === null) throw new Error("bench: our object reported no installation after its first request")
        out.push({ rows: n, oursMs, rawMs, oursRowsRead: report.usage.rowsRead })
      }
      return out
    } finally {
      await ours.dispose()
      await raw.dispose()
    }
  } finally {
    rmSync(dirs.ours, { recursive: true, force: true })
    rmSync(dirs.raw, { recursive: true, force: true })
  }
}
