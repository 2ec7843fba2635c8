/**
 * Multi-tab in a real browser: two pages of one Chromium context share the
 * app's IndexedDB cache and its network. Both go offline, both queue todos,
 * come back: every todo is applied exactly once and both pages show them all.
 */
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { launchBrowser, type ServedApp, serveApp, WAIT_MS } from "../e2e/harness.ts"
import { hooks } from "../helpers/hooks.ts"
import { freshRoom } from "../helpers/protocol.ts"

let app: ServedApp
let browser: Browser
let context: BrowserContext | undefined

beforeAll(async () => {
  app = await serveApp()
  browser = await launchBrowser()
}, 180_000)
afterAll(async () => {
  await context?.close()
  await browser?.close()
  await app?.stop()
})

const waitForStatus = (page: Page, connection: string, pending?: number) =>
  page.locator(`[data-testid=status][data-connection=${connection}]${pending === undefined ? "" : `[data-pending="${pending}"]`}`)
    .waitFor({ state: "visible", timeout: WAIT_MS })

const add = async (page: Page, text: string) => {
  const input = page.getByLabel("New todo")
  await input.fill(text)
  await input.press("Enter")
}

const texts = (page: Page) => page.getByTestId("todo-text").allInnerTexts()

describe("two tabs of one browser", () => {
  it("both offline, both queue todos, back online: each todo applied exactly once and shown in both tabs", async () => {
    const room = freshRoom("tabs-browser")
    context = await browser.newContext({ viewport: { width: 760, height: 640 } })
    context.setDefaultTimeout(WAIT_MS)
    const one = await context.newPage()
    const two = await context.newPage()
    for (const page of [one, two]) {
      await page.goto(`${app.url}/?room=${encodeURIComponent(room)}`)
      await waitForStatus(page, "live")
    }

    await context.setOffline(true)
    await Promise.all([waitForStatus(one, "offline"), waitForStatus(two, "offline")])
    const fromOne = ["tab one: first", "tab one: second", "tab one: third"]
    const fromTwo = ["tab two: first", "tab two: second"]
    for (const text of fromOne) await add(one, text)
    for (const text of fromTwo) await add(two, text)
    await waitForStatus(one, "offline", fromOne.length)
    await waitForStatus(two, "offline", fromTwo.length)

    await context.setOffline(false)
    await Promise.all([waitForStatus(one, "live", 0), waitForStatus(two, "live", 0)])

    const all = [...fromOne, ...fromTwo].sort()
    const rows = await hooks(app.url, room).rows()
    expect(rows.map((r) => r[1]).sort()).toEqual(all)
    expect(rows.every((r) => r[6] === null)).toBe(true)
    // two client ids (one per tab), each with its own sequence
    expect((await hooks(app.url, room).clients()).map((c) => c.seq).sort()).toEqual([fromTwo.length, fromOne.length].sort())
    for (const page of [one, two]) {
      await page.waitForFunction((n) => document.querySelectorAll("[data-testid=todo-text]").length === n, all.length, { timeout: WAIT_MS })
      expect((await texts(page)).sort()).toEqual(all)
    }
  }, 120_000)
})
