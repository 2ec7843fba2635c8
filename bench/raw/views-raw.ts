/**
 * The raw baseline of the view sync benchmark: a hibernating partyserver
 * object with our bench server's `items_board` table and its index on
 * `board`, answering `{t:"board",board}` with one indexed
 * `SELECT ... WHERE board = ?` sent as `{t:"all",rows}` in one frame. HTTP
 * `POST .../seed` `{table, from, count}` fills it as our side's hook does;
 * `.../usage` says the rows read and written so far.
 */
import { type Connection, Server, type WSMessage } from "partyserver"
import { ITEM_COLUMNS, itemTable, seedItems } from "./views.ts"
import type { SqlStorageLike } from "./worker.ts"


export class RawViews extends Server {
  static override options = { hibernate: true }

  readonly #usage = { rowsRead: 0, rowsWritten: 0 }

  get #storage(): SqlStorageLike {
    return (this as unknown as { ctx: { storage: SqlStorageLike } }).ctx.storage
  }

  #exec(query: string, ...bindings: Array<unknown>): Array<Array<unknown>> {
    const cursor = this.#storage.sql.exec(query, ...bindings)
    const rows = [...cursor.raw()]
    this.#usage.rowsRead += cursor.rowsRead ?? 0
    this.#usage.rowsWritten += cursor.rowsWritten ?? 0
    return rows
  }

  override onStart() {
    for (const statement of itemTable("items_board")) this.#exec(statement)
  }

  override onMessage(connection: Connection, message: WSMessage) {
    try {
      const frame = JSON.parse(message as string) as { t: "board"; board: string }
      const rows = this.#exec(`SELECT ${ITEM_COLUMNS} FROM items_board WHERE board = ? AND deleted_at IS NULL ORDER BY rowid`, frame.board)
      connection.send(JSON.stringify({ t: "all", rows }))
    } catch (error) {
      connection.send(JSON.stringify({ t: "error", message: String(error) }))
    }
  }

  override async onRequest(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname
    if (path.endsWith("/usage")) return Response.json(this.#usage)
    if (!path.endsWith("/seed")) return new Response("not found", { status: 404 })
    const { table, from, count } = (await request.json()) as { table: string; from: number; count: number }
    if (table !== "items_board") return new Response("only items_board", { status: 400 })
    seedItems(this.#storage, table, from, count)
    return Response.json({ ok: true })
  }
}
