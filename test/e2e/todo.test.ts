/**
 * The Todo app in a real browser: two users (one Chromium context each) on
 * the built app and its worker in local workerd. They see each other's
 * changes and priorities live, keep working offline and catch up, reload
 * into their cached list, see the server refuse a bad change and the list
 * roll back, and see why the server refuses a user's token.
 * Screenshots go to test-results/e2e; UPDATE_SCREENSHOTS=1 also refreshes
 * the README's docs/todo-app.png.
 */
import { randomUUID } from "node:crypto"
import { copyFileSync } from "node:fs"
import { join } from "node:path"
import type { Browser, WebSocketRoute } from "playwright-core"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { hooks, type TodoRow } from "../helpers/hooks.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { launchBrowser, SCREENSHOTS, serveApp, type ServedApp, User, WAIT_MS } from "./harness.ts"

let app: ServedApp
let browser: Browser
const users: Array<User> = []

beforeAll(async () => {
  app = await serveApp()
  browser = await launchBrowser()
})

afterEach(async () => {
  await Promise.all(users.splice(0).map((user) => user.close()))
})

afterAll(async () => {
  await browser?.close()
  await app?.stop()
})

const open = async (room: string, name: string, token?: string, connection?: Parameters<User["waitForConnection"]>[0]) => {
  const user = await User.open(browser, app, room, name, token, connection)
  users.push(user)
  return user
}

/** The server's live rows of a room with this text. */
const serverRows = async (room: string, text: string): Promise<Array<TodoRow>> =>
  (await hooks(app.url, room).rows()).filter((row) => row[1] === text)

const poll = { timeout: WAIT_MS, interval: 100 }

describe("Todo app in the browser", () => {
  it("shows each user's adds, toggles, edits and deletes to the other", async () => {
    const room = freshRoom("e2e-live")
    const alice = await open(room, "alice")
    const bob = await open(room, "bob")

    await alice.add("Buy oat milk")
    await alice.add("Water the plants")
    await bob.waitForTexts(["Buy oat milk", "Water the plants"])

    await bob.add("Call the plumber")
    await alice.waitForTexts(["Buy oat milk", "Water the plants", "Call the plumber"])

    await bob.toggle("Water the plants")
    await alice.waitForDone("Water the plants", true)

    await alice.edit("Buy oat milk", "Buy oat milk and bread")
    await bob.waitForTexts(["Buy oat milk and bread", "Water the plants", "Call the plumber"])

    // Escape abandons an edit: nothing is sent.
    await alice.todo("Water the plants").getByTestId("todo-text").dblclick()
    await alice.page.getByLabel("Edit todo").fill("Never mind")
    await alice.page.getByLabel("Edit todo").press("Escape")
    await alice.waitForTexts(["Buy oat milk and bread", "Water the plants", "Call the plumber"])

    await bob.remove("Call the plumber")
    await alice.waitForTexts(["Buy oat milk and bread", "Water the plants"])
    await bob.waitForTexts(["Buy oat milk and bread", "Water the plants"])
    await alice.waitForConnection("live", 0)

    await alice.screenshot("live-alice")
    await bob.screenshot("live-bob")
    const rows = await hooks(app.url, room).rows()
    expect(rows.map((row) => [row[1], row[2], row[6] === null])).toEqual([
      ["Buy oat milk and bread", 0, true],
      ["Water the plants", 1, true],
      ["Call the plumber", 0, false]
    ])
  })

  it("gives a new todo the priority picked, changes it from its badge, lists high priority first on demand; the other user sees it", async () => {
    const room = freshRoom("e2e-priority")
    const alice = await open(room, "alice")
    const bob = await open(room, "bob")
    await alice.add("Sweep the porch", "Low")
    await alice.add("Pay the rent", "High")
    // the picker is back at normal after each add
    await alice.add("Read a book")
    await bob.waitForTexts(["Sweep the porch", "Pay the rent", "Read a book"])
    expect(await bob.priorities()).toEqual(["Low", "High", "Normal"])

    await bob.cyclePriority("Read a book")
    await alice.cyclePriority("Sweep the porch")
    await expect.poll(() => alice.priorities(), poll).toEqual(["Normal", "High", "High"])
    await expect.poll(() => bob.priorities(), poll).toEqual(["Normal", "High", "High"])

    await alice.page.getByRole("button", { name: "High first", exact: true }).click()
    await alice.waitForTexts(["Pay the rent", "Read a book", "Sweep the porch"])
    await alice.waitForConnection("live", 0)
    await alice.screenshot("priority-high-first")
    expect((await hooks(app.url, room).rows()).map((row) => [row[1], row[5]])).toEqual([
      ["Sweep the porch", 1],
      ["Pay the rent", 2],
      ["Read a book", 2]
    ])
  })

  it("applies changes made offline once, on reconnect, and they reach the other user", async () => {
    const room = freshRoom("e2e-offline")
    const alice = await open(room, "alice")
    const bob = await open(room, "bob")
    await alice.add("Pack the tent")
    await alice.add("Check the tyres")
    await bob.waitForTexts(["Pack the tent", "Check the tyres"])

    await alice.setOffline(true)
    await alice.waitForConnection("offline")
    await alice.add("Buy a map")
    await alice.toggle("Pack the tent")
    await alice.edit("Check the tyres", "Check the tyre pressure")
    await alice.waitForTexts(["Pack the tent", "Check the tyre pressure", "Buy a map"])
    await alice.waitForConnection("offline", 3)
    // Unconfirmed rows are dimmed.
    await alice.todo("Buy a map").and(alice.page.locator(".pending")).waitFor()
    await alice.screenshot("offline-alice-pending")

    // Nothing reached the server or bob while alice was offline.
    expect(await serverRows(room, "Buy a map")).toEqual([])
    expect(await bob.texts()).toEqual(["Pack the tent", "Check the tyres"])

    await alice.setOffline(false)
    await alice.waitForConnection("live", 0)
    await bob.waitForTexts(["Pack the tent", "Check the tyre pressure", "Buy a map"])
    await bob.waitForDone("Pack the tent", true)
    await expect.poll(() => serverRows(room, "Buy a map"), poll).toHaveLength(1)
    // Applied exactly once: one row per todo, each change in place.
    const rows = await hooks(app.url, room).rows()
    expect(rows.map((row) => [row[1], row[2], row[6]])).toEqual([
      ["Pack the tent", 1, null],
      ["Check the tyre pressure", 0, null],
      ["Buy a map", 0, null]
    ])
    // A re-applied create would have hit the primary key and shown an error.
    expect(await alice.error.count()).toBe(0)
    await alice.page.locator(".todo.pending").first().waitFor({ state: "detached" })
    await alice.screenshot("offline-alice-reconnected")
    await bob.screenshot("offline-bob-caught-up")
  })

  it("shows a delete made while the user was offline when they reconnect", async () => {
    const room = freshRoom("e2e-delete")
    const alice = await open(room, "alice")
    const bob = await open(room, "bob")
    await alice.add("Return library books")
    await alice.add("Book the dentist")
    await bob.waitForTexts(["Return library books", "Book the dentist"])

    await bob.setOffline(true)
    await bob.waitForConnection("offline")
    await alice.remove("Return library books")
    await alice.waitForTexts(["Book the dentist"])
    await expect.poll(async () => (await serverRows(room, "Return library books"))[0]?.[6] ?? null, poll).not.toBeNull()
    expect(await bob.texts()).toEqual(["Return library books", "Book the dentist"])

    await bob.setOffline(false)
    await bob.waitForConnection("live")
    await bob.waitForTexts(["Book the dentist"])
    await bob.screenshot("delete-bob-reconnected")
  })

  it("shows the cached todos after a reload before the socket syncs, then syncs", async () => {
    const room = freshRoom("e2e-reload")
    const alice = await open(room, "alice")
    const bob = await open(room, "bob")
    await alice.add("Renew passport")
    await alice.add("Plan the trip")
    await alice.waitForConnection("live", 0)
    await alice.waitForCached(["Renew passport", "Plan the trip"])

    // Hold alice's next socket: it opens, but nothing reaches the server or comes back from it until released.
    const held: Array<WebSocketRoute> = []
    let released = false
    await alice.page.routeWebSocket(/\/parties\/to-dos\//, (ws) => {
      if (released) ws.connectToServer()
      else held.push(ws)
    })

    await alice.page.reload()
    await expect.poll(() => held.length, poll).toBeGreaterThan(0)
    // bob's add reaches the server, not alice, whose socket is held: what her page shows came from its local cache
    await bob.add("Pack adapters")
    await bob.waitForConnection("live", 0)
    await alice.waitForTexts(["Renew passport", "Plan the trip"])
    expect(await alice.status.getAttribute("data-connection")).not.toBe("live")
    await alice.screenshot("reload-cached-before-sync")

    // Let it through: the held socket closes, the app reconnects, now to the server, and catches up.
    released = true
    await Promise.all(held.map((ws) => ws.close({ code: 4000, reason: "test releases the socket" })))
    await alice.waitForConnection("live")
    await alice.waitForTexts(["Renew passport", "Plan the trip", "Pack adapters"])
  })

  it("opens from its caches when reloaded offline, then syncs when back online", async () => {
    const room = freshRoom("e2e-offline-reload")
    const alice = await open(room, "alice")
    const bob = await open(room, "bob")
    await alice.add("Water the ferns")
    await alice.add("Recycle the bottles")
    await alice.waitForConnection("live", 0)
    await alice.waitForCached(["Water the ferns", "Recycle the bottles"])
    await alice.waitForOfflineReady()

    await alice.setOffline(true)
    await alice.waitForConnection("offline")
    await bob.add("Fix the bike light")
    await bob.waitForConnection("live", 0)

    // No network: the service worker serves the app, the local cache the todos.
    await alice.page.reload()
    await alice.waitForTexts(["Water the ferns", "Recycle the bottles"])
    await alice.waitForConnection("offline")
    await alice.screenshot("reload-offline-cached")

    await alice.setOffline(false)
    await alice.waitForConnection("live")
    await alice.waitForTexts(["Water the ferns", "Recycle the bottles", "Fix the bike light"])
  })

  it("shows the server's refusal of an add, an edit and a delete and rolls each back", async () => {
    const room = freshRoom("e2e-reject")
    const alice = await open(room, "alice")
    const bob = await open(room, "bob")
    await alice.add("Feed the cat")
    await bob.waitForTexts(["Feed the cat"])

    // Whitespace only: the optimistic row may flash, then the server refuses it.
    await alice.add("   ")
    await alice.error.waitFor()
    expect(await alice.error.innerText()).toContain("text must be 1 to 200 characters")
    await alice.waitForTexts(["Feed the cat"])
    await alice.waitForConnection("live", 0)
    await alice.error.getByRole("button", { name: "Dismiss" }).click()
    await alice.error.waitFor({ state: "detached" })

    // Too long, as an edit: the row goes back to its old text.
    await alice.edit("Feed the cat", "x".repeat(201))
    await alice.error.waitFor()
    expect(await alice.error.innerText()).toContain("text must be 1 to 200 characters")
    await alice.waitForTexts(["Feed the cat"])
    await alice.waitForConnection("live", 0)
    await alice.screenshot("reject-rolled-back")

    // A guest may not delete (the fixture's demo authorization): the row comes back.
    const guest = await open(room, "guest", "guest")
    await guest.waitForTexts(["Feed the cat"])
    await guest.remove("Feed the cat")
    await guest.error.waitFor()
    expect(await guest.error.innerText()).toContain("guests may not delete todos")
    await guest.waitForTexts(["Feed the cat"])
    await guest.waitForConnection("live", 0)
    await guest.screenshot("reject-guest-delete")

    const rows = await hooks(app.url, room).rows()
    expect(rows.map((row) => [row[1], row[6]])).toEqual([["Feed the cat", null]])
    expect(await bob.texts()).toEqual(["Feed the cat"])
  })

  it("tells a user whose token the server refuses why, and keeps their change queued", async () => {
    const room = freshRoom("e2e-refused")
    const eve = await open(room, "eve", "nope", "unauthorized")
    expect(await eve.status.locator(".badge").first().getAttribute("title")).toContain("unknown token")
    await eve.add("Let me in")
    await eve.waitForTexts(["Let me in"])
    await eve.waitForConnection("unauthorized", 1)
    await eve.screenshot("refused-token")
    expect(await serverRows(room, "Let me in")).toEqual([])
  })

  it("counts the todos left, filters by state, and clears local data without losing the list", async () => {
    const room = `weekend-${randomUUID().slice(0, 8)}`
    const alice = await open(room, "alice")
    for (const text of ["Try effect-partysync", "Open this room in a second window", "Go offline and keep editing", "Watch the changes sync"]) {
      await alice.add(text, text.startsWith("Open") ? "High" : undefined)
    }
    await alice.toggle("Try effect-partysync")
    await alice.waitForDone("Try effect-partysync", true)
    await alice.waitForConnection("live", 0)
    await alice.page.getByTestId("count").getByText("3 items left").waitFor()
    await alice.page.getByLabel("New todo").blur()
    await alice.page.mouse.move(0, 0)
    await alice.screenshot("app")
    // The README's screenshot: refreshed on demand, so that test runs leave the tree clean.
    if (process.env.UPDATE_SCREENSHOTS === "1") copyFileSync(join(SCREENSHOTS, "app.png"), join("docs", "todo-app.png"))

    await alice.page.getByRole("button", { name: "Active", exact: true }).click()
    await alice.waitForTexts(["Open this room in a second window", "Go offline and keep editing", "Watch the changes sync"])
    await alice.page.getByRole("button", { name: "Done", exact: true }).click()
    await alice.waitForTexts(["Try effect-partysync"])
    await alice.page.getByRole("button", { name: "Clear done", exact: true }).click()
    await alice.waitForTexts([])
    await alice.page.getByRole("button", { name: "All", exact: true }).click()
    await alice.waitForTexts(["Open this room in a second window", "Go offline and keep editing", "Watch the changes sync"])

    // Clearing local data forgets the cache and syncs the same list again from the server.
    await alice.page.getByTestId("clear-local").click()
    await alice.page.getByRole("status").getByText("Local data cleared").waitFor()
    await alice.waitForConnection("live", 0)
    await alice.waitForTexts(["Open this room in a second window", "Go offline and keep editing", "Watch the changes sync"])
  })
})
