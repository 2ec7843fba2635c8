/**
 * The Todo app's notes in a real browser: a view, read through the server's
 * read rule (shared notes, and one's own). Two users (`?user=`, one Chromium
 * context each) on the built app and its worker in local workerd see
 * different notes; a note made private leaves the other user's open page and
 * comes back when shared again; a user who was offline while they lost
 * access to a note has it removed when they reconnect, and never receives
 * what it became. Every frame each page received is checked for what must
 * not have reached it. Screenshots go to test-results/e2e.
 */
import type { Browser } from "playwright-core"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { hooks } from "../helpers/hooks.ts"
import { freshRoom } from "../helpers/protocol.ts"
import { launchBrowser, serveApp, type ServedApp, User, WAIT_MS } from "./harness.ts"

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

const open = async (room: string, name: string) => {
  const user = await User.open(browser, app, room, name, { user: name })
  users.push(user)
  await user.waitForNotesConnection("live")
  return user
}

/** Whether any frame the user's page received carries `text`. */
const reached = (user: User, text: string) => user.received.some((frame) => frame.includes(text))

const poll = { timeout: WAIT_MS, interval: 100 }

describe("notes: private to their author, or shared with the room", () => {
  it("shows each user the shared notes and their own private ones, never another user's private one", async () => {
    const room = freshRoom("e2e-notes")
    const ann = await open(room, "ann")
    const bob = await open(room, "bob")
    expect(await ann.page.getByTestId("whoami").innerText()).toBe("ann")

    await ann.addNote("Team lunch on Friday")
    await ann.addNote("Dentist at 3pm", { private: true })
    await bob.waitForNotes(["Team lunch on Friday"])
    await bob.addNote("Gift idea for Ann: a teapot", { private: true })
    await bob.addNote("The car park is full today")
    await ann.waitForNotes(["Team lunch on Friday", "Dentist at 3pm", "The car park is full today"])
    await bob.waitForNotes(["Team lunch on Friday", "Gift idea for Ann: a teapot", "The car park is full today"])
    await ann.waitForNotesConnection("live", 0)
    await bob.waitForNotesConnection("live", 0)

    // the other user's shared note names its author and has no controls; one's own has its lock
    expect(await bob.note("Team lunch on Friday").getByTestId("note-owner").innerText()).toBe("ann")
    expect(await bob.note("Team lunch on Friday").getByTestId("note-lock").count()).toBe(0)
    expect(await ann.note("Dentist at 3pm").getByTestId("note-lock").innerText()).toBe("Private")
    await ann.screenshot("notes-ann")
    await bob.screenshot("notes-bob")

    // the server holds all four, each owned by the user who made it
    expect((await hooks(app.url, room).noteRows()).map((row) => [row[1], row[2], row[3]])).toEqual([
      ["ann", "Team lunch on Friday", 0],
      ["ann", "Dentist at 3pm", 1],
      ["bob", "Gift idea for Ann: a teapot", 1],
      ["bob", "The car park is full today", 0]
    ])
    // neither private note ever reached the other user's page
    expect(reached(bob, "Dentist at 3pm")).toBe(false)
    expect(reached(ann, "Gift idea for Ann")).toBe(false)
    // the todos are still everyone's
    await ann.add("Book the meeting room")
    await bob.waitForTexts(["Book the meeting room"])
  })

  it("removes a note made private from the other user's open page, and shows it again once shared", async () => {
    const room = freshRoom("e2e-notes-live")
    const ann = await open(room, "ann")
    const bob = await open(room, "bob")
    await ann.addNote("Spare keys under the mat")
    await ann.addNote("Wifi password on the fridge")
    await bob.waitForNotes(["Spare keys under the mat", "Wifi password on the fridge"])

    await ann.toggleNotePrivate("Spare keys under the mat")
    await bob.waitForNotes(["Wifi password on the fridge"])
    await expect.poll(() => ann.note("Spare keys under the mat").getAttribute("data-private"), poll).toBe("1")
    await ann.waitForNotes(["Spare keys under the mat", "Wifi password on the fridge"])
    await ann.waitForNotesConnection("live", 0)
    await ann.screenshot("notes-private-ann")
    await bob.screenshot("notes-private-bob")

    await ann.toggleNotePrivate("Spare keys under the mat")
    // back at the end of bob's list: his page received it as a new row
    await bob.waitForNotes(["Wifi password on the fridge", "Spare keys under the mat"])
    expect(await bob.note("Spare keys under the mat").getAttribute("data-private")).toBe("0")
    await bob.screenshot("notes-shared-again-bob")
  })

  it("removes a note that became private while the user was offline when they reconnect; its new text never reaches them", async () => {
    const room = freshRoom("e2e-notes-offline")
    const ann = await open(room, "ann")
    const bob = await open(room, "bob")
    await ann.addNote("Party at 8, bring snacks")
    await ann.addNote("Recycling goes out on Tuesday")
    await bob.waitForNotes(["Party at 8, bring snacks", "Recycling goes out on Tuesday"])

    await bob.setOffline(true)
    await bob.waitForNotesConnection("offline")
    await ann.toggleNotePrivate("Party at 8, bring snacks")
    await ann.editNote("Party at 8, bring snacks", "Surprise party for Bob at 8")
    await ann.waitForNotes(["Surprise party for Bob at 8", "Recycling goes out on Tuesday"])
    await ann.waitForNotesConnection("live", 0)
    await expect.poll(async () => (await hooks(app.url, room).noteRows()).map((row) => [row[2], row[3]]), poll).toEqual([
      ["Surprise party for Bob at 8", 1],
      ["Recycling goes out on Tuesday", 0]
    ])
    // offline, bob's page still shows what it last received
    expect(await bob.noteTexts()).toEqual(["Party at 8, bring snacks", "Recycling goes out on Tuesday"])
    await bob.screenshot("notes-offline-bob-before")

    await bob.setOffline(false)
    await bob.waitForNotesConnection("live")
    await bob.waitForNotes(["Recycling goes out on Tuesday"])
    await bob.screenshot("notes-offline-bob-reconnected")
    await ann.screenshot("notes-offline-ann")
    expect(reached(bob, "Surprise party")).toBe(false)
    // the shared note is still bob's to read, and still live for both
    await ann.editNote("Recycling goes out on Tuesday", "Recycling goes out on Wednesday")
    await bob.waitForNotes(["Recycling goes out on Wednesday"])
    expect(reached(bob, "Surprise party")).toBe(false)
  })
})

