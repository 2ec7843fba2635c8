/**
 * The Storage contract (test/services/StorageContract.ts) against
 * `Storage.layer` over a real Durable Object's SQLite: a test-only worker
 * (contract-worker.ts) runs each case inside workerd, in a fresh object.
 */
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type StartedWorker, startWorker } from "../helpers/worker.ts"
import { cases } from "../services/StorageContract.ts"

let worker: StartedWorker | undefined
beforeAll(async () => {
  worker = await startWorker({ config: "test/server/wrangler.contract.toml", persist: false, hooks: false })
})
afterAll(async () => {
  await worker?.dispose()
})

describe("Storage contract: Storage.layer on a Durable Object", () => {
  it("the worker runs the same cases as the Node suite", async () => {
    const names = await (await fetch(`${worker!.url}/cases`)).json()
    expect(names).toEqual(cases.map((c) => c.name))
  })

  for (const c of cases) {
    it(c.name, async () => {
      const url = new URL(`${worker!.url}/run`)
      url.searchParams.set("case", c.name)
      url.searchParams.set("room", randomUUID())
      const response = await fetch(url)
      const result = (await response.json()) as { ok: boolean; error?: string }
      expect(result.error ?? "").toBe("")
      expect(result.ok).toBe(true)
    })
  }
})
