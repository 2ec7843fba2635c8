/**
 * What the Todo app's browser tests run on: the app built with Vite (client
 * bundle + worker) and served by the built worker in wrangler's local workerd
 * (either schema version, and on a given port and state, so that a test can
 * deploy one version over another), Debian's Chromium driven by
 * playwright-core, one browser context per user, and a small page object for
 * the app (its todos and its notes).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { existsSync } from "node:fs"
import type { Browser, BrowserContext, Locator, Page } from "playwright-core"
import { appRoot, todoViteConfig } from "../../fixtures/todo-sync/vite.config.ts"
import type { SyncStatus } from "../../src/client/index.ts"
import { startWorker, type StartedWorker } from "../helpers/worker.ts"

/** Generous waits: the machine may be a loaded 2-core box. */
export const WAIT_MS = 20_000
/** Where screenshots go (gitignored). */
export const SCREENSHOTS = "test-results/e2e"

/** The built app served by its worker. */
export interface ServedApp {
  readonly url: string
  readonly stop: () => Promise<void>
}

/** Options of `serveApp`: one deploy of the app. */
export interface ServeOptions {
  /** The Todo schema version of the build (app and worker); default 2. */
  readonly schema?: 1 | 2
  /** A directory for Durable Object state (reuse it to deploy over the same data); default in memory. */
  readonly persist?: string
  /** A port (default any free one); a later deploy on the same port keeps the origin, so the browser's caches. */
  readonly port?: number
}

/** Builds the app into a temp folder and serves it (assets + worker, test hooks on). */
export const serveApp = async (options: ServeOptions = {}): Promise<ServedApp> => {
  const outDir = mkdtempSync(join(tmpdir(), "todo-e2e-"))
  const { createBuilder } = await import("vite")
  // vitest sets NODE_ENV=test, which would make Vite build React's development bundle: test what users get.
  const nodeEnv = process.env.NODE_ENV
  process.env.NODE_ENV = "production"
  try {
    await (await createBuilder(todoViteConfig({ outDir, persist: false, schema: options.schema ?? 2 }))).buildApp()
  } finally {
    process.env.NODE_ENV = nodeEnv
  }
  // The build leaves a redirect for wrangler commands run in the app folder; it would point at our temp folder.
  rmSync(join(appRoot, ".wrangler", "deploy"), { recursive: true, force: true })
  let worker: StartedWorker
  try {
    worker = await startWorker({
      config: join(outDir, "todo_sync", "wrangler.json"),
      persist: options.persist ?? false,
      hooks: true,
      ...(options.port === undefined ? {} : { port: options.port })
    })
  } catch (error) {
    rmSync(outDir, { recursive: true, force: true })
    throw error
  }
  return {
    url: worker.url,
    stop: async () => {
      await worker.dispose()
      rmSync(outDir, { recursive: true, force: true })
    }
  }
}

/** Launches Debian's Chromium headless. */
export const launchBrowser = async (): Promise<Browser> => {
  const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath}: install it with \`apt-get install -y chromium\` (or set CHROMIUM_PATH)`)
  }
  const { chromium } = await import("playwright-core")
  return chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
}

/** Every value in every IndexedDB object store of the page, as JSON text (runs in the page). */
const dumpIndexedDb = async (): Promise<string> => {
  const dump: Array<string> = []
  for (const info of await indexedDB.databases()) {
    if (info.name === undefined || info.version === undefined) continue
    // open at the existing version: opening a missing database would create it
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const open = indexedDB.open(info.name!, info.version)
      open.onsuccess = () => resolve(open.result)
      open.onerror = () => reject(open.error)
    })
    for (const store of db.objectStoreNames) {
      const values = await new Promise<Array<unknown>>((resolve, reject) => {
        const request = db.transaction(store, "readonly").objectStore(store).getAll()
        request.onsuccess = () => resolve(request.result)
        request.onerror = () => reject(request.error)
      })
      dump.push(JSON.stringify(values))
    }
    db.close()
  }
  return dump.join("\n")
}

/** What the status badge can show. */
type Connection = SyncStatus["connection"]

/** Who a page connects as: a demo `?token=` (a string), or a demo `?user=` name. */
export type Auth = string | { readonly user: string }

const authQuery = (auth: Auth | undefined): string =>
  auth === undefined ? "" : typeof auth === "string" ? `&token=${encodeURIComponent(auth)}` : `&user=${encodeURIComponent(auth.user)}`

/** One simulated user: their own browser context (storage, network) and page. */
export class User {
  readonly name: string
  readonly context: BrowserContext
  readonly page: Page
  /** Every WebSocket frame the page received, as text, in order (to check what never reached this user). */
  readonly received: Array<string> = []

  private constructor(name: string, context: BrowserContext, page: Page) {
    this.name = name
    this.context = context
    this.page = page
    page.on("websocket", (socket) => socket.on("framereceived", (frame) => this.received.push(String(frame.payload))))
  }

  /** Opens the app in a new context, in `room`, and waits until the badge shows `connection` (default live). */
  static async open(
    browser: Browser,
    app: ServedApp,
    room: string,
    name: string,
    auth?: Auth,
    connection: Connection = "live"
  ): Promise<User> {
    const context = await browser.newContext({ viewport: { width: 760, height: 640 }, deviceScaleFactor: 1 })
    context.setDefaultTimeout(WAIT_MS)
    const page = await context.newPage()
    const user = new User(name, context, page)
    await page.goto(`${app.url}/?room=${encodeURIComponent(room)}${authQuery(auth)}`)
    await user.waitForConnection(connection)
    return user
  }

  /** The status badge. */
  get status(): Locator {
    return this.page.getByTestId("status")
  }

  /** The row showing `text` (exact match). */
  todo(text: string): Locator {
    return this.page.getByTestId("todo").filter({ has: this.page.getByTestId("todo-text").getByText(text, { exact: true }) })
  }

  /** The error banner. */
  get error(): Locator {
    return this.page.getByTestId("error")
  }

  /** Waits until the badge shows `connection` (and, if given, that many pending changes). */
  async waitForConnection(connection: Connection, pending?: number): Promise<void> {
    const selector = `[data-testid=status][data-connection=${connection}]${pending === undefined ? "" : `[data-pending="${pending}"]`}`
    await this.page.locator(selector).waitFor({ state: "visible", timeout: WAIT_MS })
  }

  /** The texts of the visible todos, in list order. */
  async texts(): Promise<Array<string>> {
    return this.page.getByTestId("todo-text").allInnerTexts()
  }

  /** Waits until the list shows exactly `texts`, in order. */
  async waitForTexts(texts: ReadonlyArray<string>): Promise<void> {
    await this.page.waitForFunction(
      (expected) => {
        const shown = [...document.querySelectorAll("[data-testid=todo-text]")].map((el) => el.textContent)
        return JSON.stringify(shown) === JSON.stringify(expected)
      },
      texts,
      { timeout: WAIT_MS, polling: 50 }
    ).catch(async (error: unknown) => {
      throw new Error(`${this.name} expected todos ${JSON.stringify(texts)} but saw ${JSON.stringify(await this.texts())}: ${String(error)}`)
    })
  }

  /**
   * Waits until the page's local cache (IndexedDB, whatever its layout) mentions every one of `texts`:
   * records are written there shortly after they change, not at once.
   */
  async waitForCached(texts: ReadonlyArray<string>): Promise<void> {
    const deadline = Date.now() + WAIT_MS
    for (;;) {
      const dump = await this.page.evaluate(dumpIndexedDb)
      if (texts.every((text) => dump.includes(JSON.stringify(text).slice(1, -1)))) return
      if (Date.now() > deadline) throw new Error(`${this.name}'s local cache never held ${JSON.stringify(texts)}: ${dump.slice(0, 500)}`)
      await this.page.waitForTimeout(100)
    }
  }

  /** Waits until the service worker controls the page and has cached the page and everything it loaded. */
  async waitForOfflineReady(): Promise<void> {
    await this.page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: WAIT_MS })
    const deadline = Date.now() + WAIT_MS
    for (;;) {
      const missing = await this.page.evaluate(async () => {
        const urls = [location.href, ...performance.getEntriesByType("resource").map((entry) => entry.name)]
          .map((url) => new URL(url, location.href))
          .filter((url) => url.origin === location.origin && !url.pathname.startsWith("/parties/"))
        const absent: Array<string> = []
        for (const url of urls) {
          const key = url.pathname === "/" ? "/" : url.href
          if ((await caches.match(key)) === undefined) absent.push(key)
        }
        return absent
      })
      if (missing.length === 0) return
      if (Date.now() > deadline) throw new Error(`${this.name}'s offline cache still lacks ${missing.join(", ")}`)
      await this.page.waitForTimeout(100)
    }
  }

  /** Waits until the todo `text` is shown done (or not). */
  async waitForDone(text: string, done: boolean): Promise<void> {
    await this.todo(text).and(this.page.locator(done ? ".done" : ":not(.done)")).waitFor({ timeout: WAIT_MS })
  }

  /** Types a new todo (with a priority, if given, picked first) and presses Enter. */
  async add(text: string, priority?: "Low" | "Normal" | "High"): Promise<void> {
    if (priority !== undefined) await this.page.getByLabel("Priority", { exact: true }).selectOption({ label: priority })
    const input = this.page.getByLabel("New todo")
    await input.fill(text)
    await input.press("Enter")
  }

  /** The priorities shown by the visible todos' badges, in list order (none in a schema 1 build). */
  async priorities(): Promise<Array<string>> {
    return this.page.getByTestId("priority").allInnerTexts()
  }

  /** Clicks the priority badge of `text` (low, normal, high, low...). */
  async cyclePriority(text: string): Promise<void> {
    await this.todo(text).getByTestId("priority").click()
  }

  /** The schema version of the app build the page runs. */
  async schema(): Promise<string | null> {
    return this.page.locator(".app").getAttribute("data-schema")
  }

  /** Clicks the checkbox of `text`. */
  async toggle(text: string): Promise<void> {
    await this.todo(text).locator(".toggle").click()
  }

  /** Double-clicks `text`, replaces it with `next` and presses Enter. */
  async edit(text: string, next: string): Promise<void> {
    await this.todo(text).getByTestId("todo-text").dblclick()
    const input = this.page.getByLabel("Edit todo")
    await input.fill(next)
    await input.press("Enter")
  }

  /** Clicks the delete button of `text`. */
  async remove(text: string): Promise<void> {
    const row = this.todo(text)
    await row.hover()
    await row.locator(".delete").click()
  }

  /** The note showing `text` (exact match). */
  note(text: string): Locator {
    return this.page.getByTestId("note").filter({ has: this.page.getByTestId("note-text").getByText(text, { exact: true }) })
  }

  /** The texts of the visible notes, in list order. */
  async noteTexts(): Promise<Array<string>> {
    return this.page.getByTestId("note-text").allInnerTexts()
  }

  /** Waits until the notes list shows exactly `texts`, in order. */
  async waitForNotes(texts: ReadonlyArray<string>): Promise<void> {
    await this.page.waitForFunction(
      (expected) => {
        const shown = [...document.querySelectorAll("[data-testid=note-text]")].map((el) => el.textContent)
        return JSON.stringify(shown) === JSON.stringify(expected)
      },
      texts,
      { timeout: WAIT_MS, polling: 50 }
    ).catch(async (error: unknown) => {
      throw new Error(`${this.name} expected notes ${JSON.stringify(texts)} but saw ${JSON.stringify(await this.noteTexts())}: ${String(error)}`)
    })
  }

  /** Waits until the notes status shows `connection` (and, if given, that many pending changes). */
  async waitForNotesConnection(connection: Connection, pending?: number): Promise<void> {
    const selector = `[data-testid=notes-status][data-connection=${connection}]${pending === undefined ? "" : `[data-pending="${pending}"]`}`
    await this.page.locator(selector).waitFor({ state: "visible", timeout: WAIT_MS })
  }

  /** Types a new note, ticks "Private" if asked (and unticks it otherwise), and presses Enter. */
  async addNote(text: string, options: { readonly private?: boolean } = {}): Promise<void> {
    await this.page.getByLabel("Private", { exact: true }).setChecked(options.private === true)
    const input = this.page.getByLabel("New note")
    await input.fill(text)
    await input.press("Enter")
  }

  /** Clicks the lock of the user's own note `text` (private to shared, or shared to private). */
  async toggleNotePrivate(text: string): Promise<void> {
    await this.note(text).getByTestId("note-lock").click()
  }

  /** Double-clicks the user's own note `text`, replaces it with `next` and presses Enter. */
  async editNote(text: string, next: string): Promise<void> {
    await this.note(text).getByTestId("note-text").dblclick()
    const input = this.page.getByLabel("Edit note")
    await input.fill(next)
    await input.press("Enter")
  }

  /** Clicks the delete button of the user's own note `text`. */
  async removeNote(text: string): Promise<void> {
    const row = this.note(text)
    await row.hover()
    await row.locator(".delete").click()
  }

  /** Cuts or restores this user's network (the app closes its socket on `offline`). */
  async setOffline(offline: boolean): Promise<void> {
    await this.context.setOffline(offline)
  }

  /** Saves a screenshot under test-results/e2e. */
  async screenshot(name: string): Promise<void> {
    mkdirSync(SCREENSHOTS, { recursive: true })
    await this.page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true, animations: "disabled" })
  }

  /** Closes this user's context. */
  async close(): Promise<void> {
    await this.context.close()
  }
}
