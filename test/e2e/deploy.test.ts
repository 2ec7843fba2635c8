/**
 * A deploy of the Todo app's schema 2 (todos get a priority) over schema 1,
 * in a real browser: the app as first shipped (v1 build and worker) holds
 * confirmed todos and changes queued offline; the worker is replaced by the
 * v2 deploy on the same port and the same Durable Object state. Back online,
 * the old page is told to reload; the reload gets the new build through the
 * service worker (network first) and shows every todo once, the old ones at
 * normal priority, with the queued v1 changes upgraded and applied once.
 * Nobody clears anything by hand.
 */
import type { Browser } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hooks } from "../helpers/hooks.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { removeDir, tempPersistDir } from "../helpers/worker.ts"
import { launchBrowser, serveApp, type ServedApp, User, WAIT_MS } from "./harness.ts"

const persist = tempPersistDir("todo-deploy-")
let app: ServedApp | undefined
let browser: Browser
let user: User | undefined

beforeAll(async () => {
  browser = await launchBrowser()
})

afterAll(async () => {
  await user?.close()
  await browser?.close()
  await app?.stop()
  removeDir(persist)
})

const poll = { timeout: WAIT_MS, interval: 100 }

describe("deploying schema 2 over schema 1", () => {
  it("keeps every todo once, shows the old ones at normal priority and applies the changes queued offline under v1", async () => {
    const room = freshRoom("e2e-deploy")
    app = await serveApp({ schema: 1, persist })
    const port = Number(new URL(app.url).port)
    const alice = user = await User.open(browser, app, room, "alice")
    expect(await alice.schema()).toBe("1")
    expect(await alice.page.getByLabel("Priority", { exact: true }).count()).toBe(0)

    await alice.add("Buy stamps")
    await alice.add("Post the letters")
    await alice.add("Call the bank")
    await alice.waitForConnection("live", 0)
    await alice.waitForOfflineReady()

    // offline under v1: a create, an edit, a toggle and a delete wait in the browser's queue
    await alice.setOffline(true)
    await alice.waitForConnection("offline")
    await alice.add("Write to grandma")
    await alice.edit("Buy stamps", "Buy stamps and envelopes")
    await alice.toggle("Post the letters")
    await alice.remove("Call the bank")
    await alice.waitForTexts(["Buy stamps and envelopes", "Post the letters", "Write to grandma"])
    await alice.waitForConnection("offline", 4)
    await alice.waitForCached(["Write to grandma", "Buy stamps and envelopes"])
    await alice.screenshot("deploy-v1-offline")

    // the deploy: v2's worker and build on the same port, over the same Durable Object state
    await app.stop()
    app = await serveApp({ schema: 2, persist, port })
    expect(app.url).toBe(`http://127.0.0.1:${port}`)

    // back online, the page still runs the v1 build: the server says it is outdated, and nothing queued is sent
    await alice.setOffline(false)
    await alice.waitForConnection("outdated", 4)
    expect((await hooks(app.url, room).rows()).map((row) => row[1])).toEqual(["Buy stamps", "Post the letters", "Call the bank"])
    await alice.screenshot("deploy-v1-outdated")

    // the badge's Reload: the service worker fetches the new build first, the v2 client adopts the v1 queue
    await alice.status.getByRole("button", { name: "Reload" }).click()
    await alice.page.waitForFunction(() => document.querySelector(".app")?.getAttribute("data-schema") === "2", undefined, { timeout: WAIT_MS })
    expect(await alice.page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true)
    await alice.waitForConnection("live", 0)
    await alice.waitForTexts(["Buy stamps and envelopes", "Post the letters", "Write to grandma"])
    await alice.waitForDone("Post the letters", true)
    expect(await alice.priorities()).toEqual(["Normal", "Normal", "Normal"])
    expect(await alice.error.count()).toBe(0)

    // the server: each todo once, in the v2 record, the queued create upgraded to normal priority
    await expect.poll(async () => (await hooks(app!.url, room).rows()).length, poll).toBe(4)
    const rows = await hooks(app.url, room).rows()
    expect(rows.map((row) => [row[1], row[2], row[5], row[6] === null])).toEqual([
      ["Buy stamps and envelopes", 0, 1, true],
      ["Post the letters", 1, 1, true],
      ["Call the bank", 0, 1, false],
      ["Write to grandma", 0, 1, true]
    ])
    // one client id, each of its four queued actions applied once after the three confirmed ones
    expect((await hooks(app.url, room).clients()).map((c) => c.seq)).toEqual([7])

    // the new build's priorities work on the migrated rows
    await alice.cyclePriority("Write to grandma")
    await alice.add("Renew the passport", "High")
    await alice.waitForConnection("live", 0)
    await expect.poll(async () => (await hooks(app!.url, room).rows()).map((row) => [row[1], row[5]]), poll).toEqual([
      ["Buy stamps and envelopes", 1],
      ["Post the letters", 1],
      ["Call the bank", 1],
      ["Write to grandma", 2],
      ["Renew the passport", 2]
    ])
    await alice.screenshot("deploy-v2-live")
  })
})
