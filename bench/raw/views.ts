/**
 * What the view scenarios of the benchmarks share between our bench server
 * (views-server.ts), the raw baseline (views-raw.ts) and the Node side: four
 * channels over tables of one shape, and the seed that fills a table.
 *
 * - `everything`: no read rule, every subscriber sees every row (the
 *   fan-out baseline);
 * - `byBucket`: params `{buckets}`, the rule `Rule.isIn("bucket", buckets)`;
 * - `byBoard`: params `{board}`, the rule `Rule.eq("board", board)`, its
 *   table indexed on `board` (the initial sync of a view);
 * - `mine`: no params, the rule of the connection's principal: its own rows,
 *   or the buckets a bench hook granted it (the access that changes).
 *
 * Typed without Workers types: tsconfig.json (DOM types) checks it too.
 */
import * as Schema from "effect/Schema"
import * as Channel from "../../src/protocol/Channel.ts"
import type { SqlStorageLike } from "./worker.ts"

/** [id, board, bucket, owner, text, deleted_at] */
export const Item = Schema.Tuple([Schema.String, Schema.String, Schema.Number, Schema.String, Schema.String, Schema.NullOr(Schema.Number)])

/** The one action: a new row (its owner is the sender's principal). */
export const ItemAction = Schema.Struct({
  type: Schema.Literal("put"),
  id: Schema.String,
  board: Schema.String,
  bucket: Schema.Number
})
export type ItemAction = typeof ItemAction.Type

export const everything = Channel.make("everything", { record: Item, action: ItemAction, table: "items_all" })
export const byBucket = Channel.make("byBucket", {
  record: Item,
  action: ItemAction,
  table: "items_bucket",
  params: Schema.Struct({ buckets: Schema.Array(Schema.Number) })
})
export const byBoard = Channel.make("byBoard", {
  record: Item,
  action: ItemAction,
  table: "items_board",
  params: Schema.Struct({ board: Schema.String })
})
export const mine = Channel.make("mine", { record: Item, action: ItemAction, table: "items_mine" })

/** The channels of the view bench server. */
export type ViewChannel = typeof everything | typeof byBucket | typeof byBoard | typeof mine
export const VIEW_CHANNELS = [everything, byBucket, byBoard, mine] as const

/** The wire columns, in record order. */
export const ITEM_COLUMNS = "id, board, bucket, owner, text, deleted_at"

/** The table of the given name, with the indexes the scenarios read by. */
export const itemTable = (table: string): ReadonlyArray<string> => [
  `CREATE TABLE IF NOT EXISTS ${table} (id TEXT PRIMARY KEY NOT NULL, board TEXT NOT NULL, bucket INTEGER NOT NULL, owner TEXT NOT NULL, text TEXT NOT NULL, deleted_at INTEGER)`,
  `CREATE INDEX IF NOT EXISTS ${table}_board ON ${table} (board)`,
  `CREATE INDEX IF NOT EXISTS ${table}_bucket ON ${table} (bucket)`,
  `CREATE INDEX IF NOT EXISTS ${table}_owner ON ${table} (owner)`
]

/** The tables a view bench object holds (the raw baseline has the same `items_board`). */
export const ITEM_TABLES = ["items_all", "items_bucket", "items_board", "items_mine"] as const

/** The number of boards the seed spreads rows over, and of buckets. */
export const BOARDS = 100
export const BUCKETS = 10


/** Inserts rows `s<from>`.. in one transaction: row i on board `b<i mod 100>`, bucket i mod 10, owner "seed". */
export const seedItems = (storage: SqlStorageLike, table: string, from: number, count: number) => {
  if (!(ITEM_TABLES as ReadonlyArray<string>).includes(table)) throw new Error(`bench: no table ${table}`)
  storage.transactionSync(() => {
    for (let i = from; i < from + count; i++) {
      storage.sql.exec(
        `INSERT INTO ${table} (id, board, bucket, owner, text) VALUES (?, ?, ?, 'seed', ?)`,
        `s${i}`, `b${i % BOARDS}`, i % BUCKETS, `seeded item number ${i}`
      )
    }
  })
}
