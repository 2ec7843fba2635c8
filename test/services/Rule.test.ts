/**
 * Read rules compile two ways, and the two must agree on every row: the SQL
 * condition (sync answers) and the in-memory test (live changes). Random
 * rules over random rows in real SQLite, values of the column's kind and of
 * the other kind (SQLite would convert them by affinity), NULLs, NOT.
 */
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Rule from "../../src/services/Rule.ts"

const columns = ["id", "grp", "n", "x", "deleted_at"]
const create = `CREATE TABLE t (id INTEGER PRIMARY KEY, grp TEXT COLLATE NOCASE, n INTEGER, x REAL, deleted_at INTEGER)`

const value = fc.oneof(
  fc.constantFrom("a", "b", "A", "1", "2", ""),
  fc.constantFrom(1, 2, 0, -1, 1.5),
  fc.constant(null)
)
const column = fc.constantFrom("grp", "n", "x")

const rule: fc.Arbitrary<Rule.Rule> = fc.letrec<{ rule: Rule.Rule }>((tie) => ({
  rule: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(Rule.all),
    fc.constant(Rule.none),
    fc.tuple(column, value).map(([c, v]) => Rule.eq(c, v)),
    fc.tuple(column, fc.array(value, { maxLength: 4 })).map(([c, vs]) => Rule.isIn(c, vs)),
    fc.array(tie("rule"), { maxLength: 3 }).map((rs) => Rule.and(...rs)),
    fc.array(tie("rule"), { maxLength: 3 }).map((rs) => Rule.or(...rs)),
    tie("rule").map(Rule.not)
  )
})).rule

const row = fc.tuple(
  fc.oneof(fc.constantFrom("a", "b", "A", "1", ""), fc.constantFrom(1, 2), fc.constant(null)),
  fc.oneof(fc.constantFrom(1, 2, 0, -1), fc.constantFrom("1", "a"), fc.constant(null)),
  fc.oneof(fc.constantFrom(1, 1.5, 2), fc.constant("1.5"), fc.constant(null))
)

describe("Rule", () => {
  it("the SQL condition and the in-memory test admit the same rows", () => {
    fc.assert(
      fc.property(rule, fc.array(row, { minLength: 1, maxLength: 12 }), (r, rows) => {
        const db = new DatabaseSync(":memory:")
        db.exec(create)
        const insert = db.prepare(`INSERT INTO t (id, grp, n, x) VALUES (?, ?, ?, ?)`)
        rows.forEach(([grp, n, x], i) => insert.run(i + 1, grp, n, x))
        const compiled = Rule.compile(r, columns)
        const bySql = db.prepare(`SELECT t.id FROM t t WHERE ${compiled.where} ORDER BY t.id`).all(...(compiled.params as Array<string | number | null>)).map((o) => Number(o.id))
        // rows as SQLite gives them back (affinity applied), as the wire carries them
        const stored = db.prepare(`SELECT id, grp, n, x, deleted_at FROM t ORDER BY id`).all().map((o) => [Number(o.id), o.grp, o.n, o.x, o.deleted_at])
        const byTest = stored.filter((w) => compiled.test(w as never)).map((w) => w[0])
        db.close()
        assert.deepStrictEqual(bySql, byTest, compiled.where)
      }),
      { numRuns: 400 }
    )
  })

  it("a comparison runs through the column's index", () => {
    const db = new DatabaseSync(":memory:")
    db.exec(`CREATE TABLE cards (id TEXT PRIMARY KEY, board TEXT NOT NULL, owner TEXT, deleted_at INTEGER)`)
    db.exec(`CREATE INDEX cards_board ON cards (board)`)
    for (const r of [Rule.eq("board", "b1"), Rule.isIn("board", ["b1", "b2"]), Rule.and(Rule.eq("board", "b1"), Rule.or(Rule.eq("owner", "ann"), Rule.not(Rule.eq("owner", "bob"))))]) {
      const compiled = Rule.compile(r, ["id", "board", "owner", "deleted_at"])
      const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT * FROM cards t WHERE ${compiled.where}`).all(...(compiled.params as Array<string | number | null>)).map((o) => String(o.detail))
      assert.isTrue(plan.some((d) => d.includes("USING INDEX cards_board")), plan.join("; "))
    }
    db.close()
  })

  it("an OR of comparisons (shared or mine) runs through an index per branch, not a scan of the table", () => {
    const db = new DatabaseSync(":memory:")
    db.exec(`CREATE TABLE notes (id TEXT PRIMARY KEY, owner TEXT NOT NULL, private INTEGER NOT NULL, deleted_at INTEGER)`)
    db.exec(`CREATE INDEX notes_owner ON notes (owner)`)
    db.exec(`CREATE INDEX notes_private ON notes (private)`)
    const rules = [
      Rule.or(Rule.eq("private", 0), Rule.eq("owner", "ann")),
      Rule.or(Rule.eq("owner", "ann"), Rule.isIn("owner", ["bob", "cyd"]), Rule.isIn("id", ["n1", "n2"]))
    ]
    for (const r of rules) {
      const compiled = Rule.compile(r, ["id", "owner", "private", "deleted_at"])
      const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT * FROM notes t WHERE t.deleted_at IS NULL AND ${compiled.where}`)
        .all(...(compiled.params as Array<string | number | null>)).map((o) => String(o.detail))
      assert.isFalse(plan.some((d) => d.startsWith("SCAN")), plan.join("; "))
      assert.isTrue(plan.some((d) => d.includes("MULTI-INDEX OR")), plan.join("; "))
    }
    db.close()
  })

  it("a column the table lacks or a value SQL and JSON disagree on is refused when compiled", () => {
    assert.throws(() => Rule.compile(Rule.eq("nope", 1), columns), /column "nope"/)
    assert.throws(() => Rule.compile(Rule.eq("n", Number.NaN), columns), /finite number/)
    assert.throws(() => Rule.compile(Rule.isIn("n", [1, Infinity]), columns), /finite number/)
  })
})
