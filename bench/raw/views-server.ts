/**
 * Our side of the view benchmarks: a SyncServer with the channels of
 * views.ts, their read rules, and bench-only HTTP hooks: `seed`
 * (`{table, from, count}`, rows in one transaction), `usage` (rows read and
 * written so far) and `access` (`{user, buckets}`: the user's `mine` view
 * becomes those buckets, then `refreshAccess` for that user alone).
 *
 * The principal is the socket's `?user=` (anonymous without one).
 *
 * Workers-typed: tsconfig.worker.json checks it; tsconfig.json (DOM types)
 * leaves it out.
 */
import * as Effect from "effect/Effect"
import { SqlClient } from "effect/sql"
import { type Grant, type NotAuthorized, type ReadRules, Rule, Storage, SyncServer } from "../../src/server/index.ts"
import { ITEM_COLUMNS, ITEM_TABLES, itemTable, type ItemAction, seedItems, VIEW_CHANNELS, type ViewChannel } from "./views.ts"

interface Env extends Cloudflare.Env {
  readonly TEST_HOOKS?: string
}

const tableOf: Record<ViewChannel["name"], string> = { everything: "items_all", byBucket: "items_bucket", byBoard: "items_board", mine: "items_mine" }

const createTables = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.forEach(ITEM_TABLES.flatMap(itemTable), (statement) => sql.unsafe(statement), { discard: true })
)

export class BenchViews extends SyncServer<Env, ViewChannel, never, string> {
  readonly channels: ReadonlyArray<ViewChannel> = VIEW_CHANNELS
  override readonly migrations = { "1_create_items": createTables }
  override readonly syncOptions = { synchronousHandlers: true }
  /** The buckets a hook granted a user in `mine` (none: the user sees its own rows). */
  readonly #grants = new Map<string, ReadonlyArray<number>>()

  override readonly views: ReadRules<ViewChannel, string> = {
    byBucket: { read: (_user, { buckets }) => Rule.isIn("bucket", buckets) },
    byBoard: { read: (_user, { board }) => Rule.eq("board", board) },
    mine: {
      read: (user) => {
        const granted = this.#grants.get(user)
        return granted === undefined ? Rule.eq("owner", user) : Rule.isIn("bucket", granted)
      }
    }
  }

  override authorizeConnection(request: Request): Effect.Effect<Grant<string>, NotAuthorized> {
    return Effect.succeed({ principal: new URL(request.url).searchParams.get("user") ?? "anonymous" })
  }

  onAction(channel: ViewChannel["name"], action: ItemAction, caller: { readonly principal: string }) {
    return Effect.flatMap(Storage, (storage) =>
      storage.raw(
        `INSERT INTO ${tableOf[channel]} (id, board, bucket, owner, text) VALUES (?, ?, ?, ?, ?) RETURNING ${ITEM_COLUMNS}`,
        action.id, action.board, action.bucket, caller.principal, "an item written by the benchmark"
      ))
  }

  override async onRequest(request: Request): Promise<Response> {
    if (this.env.TEST_HOOKS !== "1") return new Response("not found", { status: 404 })
    const hook = new URL(request.url).pathname.split("/").pop()
    switch (hook) {
      case "seed": {
        const { table, from, count } = (await request.json()) as { table: string; from: number; count: number }
        seedItems(this.ctx.storage, table, from, count)
        return Response.json({ ok: true })
      }
      case "usage":
        return Response.json(this.storageUsage() ?? null)
      case "access": {
        const { user, buckets } = (await request.json()) as { user: string; buckets: ReadonlyArray<number> }
        this.#grants.set(user, buckets)
        return Response.json({ refreshed: await this.refreshAccess((principal) => principal === user) })
      }
    }
    return new Response("unknown hook", { status: 404 })
  }
}
