/**
 * The floor of our storage design, by hand: a raw partyserver object that
 * does per push what SyncServer's SQL does (read the client's ledger row,
 * insert the row with the change-log trigger in a savepoint, read the
 * changes after the version before it, write the ledger row, all in one
 * `transactionSync`), with no Effect, no Schema and no services. Each frame
 * is a push of one action, as the raw baseline sends them. `bench/floor.ts` compares its server CPU per action
 * with raw's and ours: the gap to raw is what the design's SQL costs, the
 * gap to ours is what the library's code costs.
 *
 * Speaks the raw baseline's frames (`create` and `all`); its ack also
 * carries the changes, as our Ack does.
 */
import { type Connection, Server, type WSMessage } from "partyserver"
import { TODO_TABLE } from "../../fixtures/todo-sync/src/table.ts"
import * as ChangeLog from "../../src/services/ChangeLog.ts"
import * as Ledger from "../../src/services/ClientLedger.ts"
import type { SqlStorageLike } from "./worker.ts"

const CHANGES =
  `SELECT l.version, l.deleted, l.id, t.* FROM _psync_log l LEFT JOIN todos t ON t.id = l.id ` +
  `WHERE l.version > ? AND l.channel = 1 ORDER BY l.version`
const KEY = "bench-floor-key-0123456789"

export class RawLedger extends Server {
  static override options = { hibernate: true }

  #published = 0
  readonly #seqs = new WeakMap<Connection, number>()

  get #storage(): SqlStorageLike {
    return (this as unknown as { ctx: { storage: SqlStorageLike } }).ctx.storage
  }

  /** Rows read and written by this object's statements, as Cloudflare bills them (`GET .../usage`). */
  readonly #usage = { rowsRead: 0, rowsWritten: 0 }

  #exec(query: string, ...bindings: Array<unknown>): Array<Array<unknown>> {
    const cursor = this.#storage.sql.exec(query, ...bindings)
    const rows = [...cursor.raw()]
    this.#usage.rowsRead += cursor.rowsRead ?? 0
    this.#usage.rowsWritten += cursor.rowsWritten ?? 0
    return rows
  }

  override async onRequest(request: Request): Promise<Response> {
    const url = new URL(request.url)
    const path = url.pathname
    if (path.endsWith("/usage")) return Response.json(this.#usage)
    // could capture gather a transaction's changed ids somewhere that is not a written row? TEMP is the only such place in SQLite
    if (path.endsWith("/temp")) {
      try {
        this.#exec("CREATE TEMP TABLE IF NOT EXISTS _probe (id)")
        return Response.json({ temp: "allowed" })
      } catch (error) {
        return Response.json({ temp: String(error) })
      }
    }
    // what a return to the event loop costs right after an SQL write (a lane's turn does one): n rounds of a write
    // or none, each followed by a timer or a microtask; the caller times the request
    if (path.endsWith("/yields")) {
      const params = url.searchParams
      const write = params.get("write") === "1"
      const timer = params.get("timer") === "1"
      this.#exec("CREATE TABLE IF NOT EXISTS _probe_writes (id INTEGER PRIMARY KEY, v TEXT)")
      for (let i = 0; i < Number(params.get("n") ?? 200); i++) {
        if (write) this.#exec("INSERT INTO _probe_writes (v) VALUES (?)", "a row of the probe")
        await (timer ? new Promise((resolve) => setTimeout(resolve, 0)) : Promise.resolve())
      }
      return Response.json({ ok: true })
    }
    return new Response("not found", { status: 404 })
  }

  override onStart() {
    this.#exec(TODO_TABLE)
    for (const statement of [...ChangeLog.SCHEMA, ...Ledger.SCHEMA]) this.#exec(statement)
    for (const name of ChangeLog.triggerNames("todos")) this.#exec(`DROP TRIGGER IF EXISTS ${name}`)
    for (const statement of ChangeLog.triggerSql({ channel: { table: "todos" } as never, index: 1, id: "id", columns: [], view: false })) this.#exec(statement)
  }

  override onMessage(connection: Connection, message: WSMessage) {
    try {
      const frame = JSON.parse(message as string) as { t: string; r: string; id: string; text: string; completed: 0 | 1 }
      if (frame.t === "all") {
        connection.send(JSON.stringify({ t: "all", rows: this.#exec("SELECT * FROM todos WHERE deleted_at IS NULL ORDER BY rowid") }))
        return
      }
      if (frame.t !== "create") throw new Error(`floor: ${frame.t} is not implemented`)
      const now = Date.now()
      const seq = (this.#seqs.get(connection) ?? 0) + 1
      this.#seqs.set(connection, seq)
      const { row, changes } = this.#storage.transactionSync(() => {
        const client = this.#exec(Ledger.LOAD, connection.id)[0]
        if (client !== undefined && Number(client[1]) >= seq) throw new Error("floor: seq already decided")
        const { inserted, captured } = this.#storage.transactionSync(() => {
          const inserted = this.#exec(
            "INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
            frame.id, frame.text.trim(), frame.completed, now, now
          )
          return { inserted, captured: this.#exec(CHANGES, this.#published) }
        })
        const outcome = JSON.stringify([[seq, captured.map((c) => c.slice(3))]])
        this.#exec(Ledger.SAVE, connection.id, KEY, seq, null, now, null, outcome)
        return { row: inserted[0] ?? null, changes: captured }
      })
      this.#published = Number(changes[changes.length - 1]?.[0] ?? this.#published)
      const rows = changes.map((c) => c.slice(3))
      connection.send(JSON.stringify({ t: "ack", r: frame.r, row, changes: rows, version: this.#published }))
      this.broadcast(JSON.stringify({ t: "rows", rows, version: this.#published }), [connection.id])
    } catch (error) {
      connection.send(JSON.stringify({ t: "error", message: String(error) }))
    }
  }
}
