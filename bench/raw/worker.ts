/**
 * The raw baseline of the benchmarks: a hibernating partyserver Server that
 * does the Todo app's SQL by hand with no sync layer. It is the transport and
 * storage limit our SyncServer is measured against.
 *
 * Frames (JSON): `{t:"create",r,id,text,completed}` inserts with RETURNING,
 * replies `{t:"ack",r,row}` and sends `{t:"row",row}` to every other
 * connection; `{t:"update",r,id,text}` likewise; `{t:"all"}` answers
 * `{t:"all",rows}` with the whole table in one frame. HTTP `POST .../seed`
 * `{from,count}` inserts rows in one transaction (bench setup only).
 */
import { type Connection, routePartykitRequest, Server, type WSMessage } from "partyserver"
import { TODO_TABLE } from "../../fixtures/todo-sync/src/table.ts"

export { RawLedger } from "./ledger.ts"
export { RawViews } from "./views-raw.ts"

interface Env {
  readonly Raw: unknown
}

/** The slice of Durable Object storage the raw objects use; typed locally because tsconfig.json (DOM types) also checks these files. */
export interface SqlStorageLike {
  transactionSync<T>(f: () => T): T
  sql: {
    exec(query: string, ...bindings: Array<unknown>): {
      raw(): IterableIterator<Array<unknown>>
      readonly rowsRead?: number
      readonly rowsWritten?: number
    }
  }
}

type Frame =
  | { t: "create"; r: string; id: string; text: string; completed: 0 | 1 }
  | { t: "update"; r: string; id: string; text: string }
  | { t: "all" }

export class Raw extends Server<Env> {
  static override options = { hibernate: true }

  /** Rows read and written by this object's statements, as Cloudflare bills them (bench hook `usage`). */
  readonly #usage = { rowsRead: 0, rowsWritten: 0 }

  #exec(query: string, ...bindings: Array<unknown>): Array<Array<unknown>> {
    const cursor = this.#storage.sql.exec(query, ...bindings)
    const rows = [...cursor.raw()]
    this.#usage.rowsRead += cursor.rowsRead ?? 0
    this.#usage.rowsWritten += cursor.rowsWritten ?? 0
    return rows
  }

  get #storage(): SqlStorageLike {
    return (this as unknown as { ctx: { storage: SqlStorageLike } }).ctx.storage
  }

  override onStart() {
    this.#storage.sql.exec(TODO_TABLE)
  }

  override onMessage(connection: Connection, message: WSMessage) {
    try {
      const frame = JSON.parse(message as string) as Frame
      const now = Date.now()
      if (frame.t === "all") {
        const rows = this.#exec("SELECT * FROM todos WHERE deleted_at IS NULL ORDER BY rowid")
        connection.send(JSON.stringify({ t: "all", rows }))
        return
      }
      const rows = frame.t === "create"
        ? this.#exec(
          "INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
          frame.id, frame.text.trim(), frame.completed, now, now
        )
        : this.#exec(
          "UPDATE todos SET text = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING *",
          frame.text.trim(), now, frame.id
        )
      const row = rows[0] ?? null
      connection.send(JSON.stringify({ t: "ack", r: frame.r, row }))
      this.broadcast(JSON.stringify({ t: "row", row }), [connection.id])
    } catch (error) {
      connection.send(JSON.stringify({ t: "error", message: String(error) }))
    }
  }

  override async onRequest(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname
    if (path.endsWith("/usage")) return Response.json(this.#usage)
    const write = path.endsWith("/seed") ? seedRows : path.endsWith("/bulk") ? bulkInsert : undefined
    if (write === undefined) return new Response("not found", { status: 404 })
    const { from, count } = (await request.json()) as { from: number; count: number }
    write(this.#storage, from, count)
    return Response.json({ ok: true })
  }
}

/** Inserts `count` todos `t<from>`.. in one transaction; shared with our bench worker so both hold identical rows. */
export const seedRows = (
  storage: SqlStorageLike,
  from: number,
  count: number
) => {
  const now = Date.now()
  storage.transactionSync(() => {
    for (let i = from; i < from + count; i++) {
      storage.sql.exec(
        "INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        `t${i}`, `seeded todo number ${i}`, i % 2, now, now
      )
    }
  })
}

/** Inserts `count` todos `b<from>`.. in one statement, as an app's bulk `INSERT ... SELECT` would (bench scenario 9). */
export const bulkInsert = (storage: SqlStorageLike, from: number, count: number) => {
  const now = Date.now()
  for (const _ of storage.sql.exec(
    `WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
     INSERT INTO todos (id, text, completed, created_at, updated_at) SELECT 'b' || i, 'bulk todo number ' || i, i % 2, ?, ? FROM n`,
    from, from + count, now, now
  ).raw()) {
    // a write cursor is read to its end
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return (await routePartykitRequest(request, env as unknown as Record<string, unknown>)) ?? new Response("Not found", { status: 404 })
  }
}
