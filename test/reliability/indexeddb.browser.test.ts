/**
 * The IndexedDB store in real Chromium (playwright-core, Debian's chromium),
 * on a page served by the test itself (no app, no worker):
 * - a connection the browser closes under it (site data cleared) is
 *   dropped and the next call opens a new one, instead of every later write
 *   failing on the dead connection;
 * - an open that another page blocks (it holds the database during a
 *   deletion) fails with a clear KeyValueStoreError instead of hanging, and
 *   the store works once the other page lets go.
 */
import { build } from "esbuild"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchBrowser } from "../e2e/harness.ts"

const ORIGIN = "http://idb.test"

// exposes the store to the page as `window.kv`, each call's outcome as a string ("hung" after 5 s)
const harness = `
import * as Effect from "effect/Effect"
import { makeIndexedDb } from "./src/client/IndexedDbStore.ts"
const outcome = (effect) => Promise.race([
  Effect.runPromise(effect).then((value) => "ok:" + (value ?? ""), (error) => error._tag + ": " + error.message),
  new Promise((resolve) => setTimeout(() => resolve("hung"), 5000))
])
window.kv = (options) => {
  const store = makeIndexedDb(options)
  return { set: (k, v) => outcome(store.set(k, v)), get: (k) => outcome(store.get(k)) }
}
`

let browser: Browser
let context: BrowserContext
let script: string

beforeAll(async () => {
  const bundled = await build({
    stdin: { contents: harness, resolveDir: process.cwd(), loader: "ts" },
    bundle: true,
    format: "iife",
    platform: "browser",
    write: false,
    logLevel: "silent"
  })
  script = bundled.outputFiles[0]!.text
  browser = await launchBrowser()
  context = await browser.newContext()
  await context.route(`${ORIGIN}/**`, (route) =>
    route.fulfill({ contentType: "text/html", body: `<!doctype html><title>idb</title><script>${script.replace(/<\/script/g, "<\\/script")}</script>` }))
}, 120_000)
afterAll(async () => {
  await context?.close()
  await browser?.close()
})

const page = async (): Promise<Page> => {
  const p = await context.newPage()
  await p.goto(`${ORIGIN}/`)
  return p
}

describe("IndexedDbStore in Chromium", () => {
  it("a connection the browser closes is dropped: the next write opens a new one", async () => {
    const p = await page()
    const call = (method: "set" | "get", ...args: Array<string>) =>
      p.evaluate(([m, a]) => (window as any).store[m](...a), [method, args] as const)
    await p.evaluate(() => ((window as any).store = (window as any).kv({ database: "closing" })))
    expect(await call("set", "a", "1")).toBe("ok:")
    // what "clear site data" does: the database is deleted and its open connections are closed
    const cdp = await context.newCDPSession(p)
    await cdp.send("Storage.clearDataForOrigin", { origin: ORIGIN, storageTypes: "indexeddb" })
    expect(await call("set", "b", "2")).toBe("ok:")
    expect(await call("get", "b")).toBe("ok:2")
    expect(await call("get", "a")).toBe("ok:")
    await p.close()
  })

  it("an open blocked by another page fails with a KeyValueStoreError, and works once that page lets go", async () => {
    const holder = await page()
    // another page holds the database and ignores versionchange while a deletion waits for it
    await holder.evaluate(() => new Promise<void>((resolve) => {
      const r = indexedDB.open("blocked", 1)
      r.onsuccess = () => {
        ;(window as any).held = r.result
        indexedDB.deleteDatabase("blocked")
        resolve()
      }
    }))
    const p = await page()
    await p.evaluate(() => ((window as any).store = (window as any).kv({ database: "blocked", openTimeoutMs: 300 })))
    const outcome = await p.evaluate(() => (window as any).store.set("k", "v"))
    expect(outcome).toMatch(/^KeyValueStoreError: .*blocked/)
    await holder.evaluate(() => (window as any).held.close())
    await expect.poll(() => p.evaluate(() => (window as any).store.set("k", "v")), { timeout: 10_000 }).toBe("ok:")
    expect(await p.evaluate(() => (window as any).store.get("k"))).toBe("ok:v")
    await Promise.all([holder.close(), p.close()])
  })
})
