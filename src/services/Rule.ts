/**
 * Read rules: which rows of a channel a subscription may see, declared once
 * and run two ways. The same rule compiles to a SQL condition over the
 * channel's table (an initial sync or a reset reads only the rows it admits,
 * through the table's indexes) and to a test on a row in memory (a live
 * change is checked per subscription group, never by a query per
 * connection). Columns are the table's own names, checked when the rule is
 * compiled; values are bound, never spliced into SQL.
 *
 * A comparison admits a row only when the column holds a value of the same
 * kind, compared exactly (no type conversion, no collation): give a number
 * for an INTEGER column, a string for a TEXT one.
 *
 * @since 0.3.0
 */
import type { RowId, WireRow } from "../protocol/Protocol.ts"
import type { SqlValue } from "./Storage.ts"

/** A value a rule compares a column with. */
export type Value = string | number | null

/** A read rule. */
export type Rule =
  | { readonly _tag: "All" }
  | { readonly _tag: "None" }
  | { readonly _tag: "Eq"; readonly column: string; readonly value: Value }
  | { readonly _tag: "In"; readonly column: string; readonly values: ReadonlyArray<Value> }
  | { readonly _tag: "And"; readonly rules: ReadonlyArray<Rule> }
  | { readonly _tag: "Or"; readonly rules: ReadonlyArray<Rule> }
  | { readonly _tag: "Not"; readonly rule: Rule }

/** Every row. */
export const all: Rule = { _tag: "All" }
/** No row. */
export const none: Rule = { _tag: "None" }
/** Rows whose `column` equals `value` (`null`: IS NULL). */
export const eq = (column: string, value: Value): Rule => ({ _tag: "Eq", column, value })
/** Rows whose `column` is one of `values`. */
export const isIn = (column: string, values: ReadonlyArray<Value>): Rule => ({ _tag: "In", column, values })
/** Rows every rule admits. */
export const and = (...rules: ReadonlyArray<Rule>): Rule => ({ _tag: "And", rules })
/** Rows some rule admits. */
export const or = (...rules: ReadonlyArray<Rule>): Rule => ({ _tag: "Or", rules })
/** Rows the rule does not admit. */
export const not = (rule: Rule): Rule => ({ _tag: "Not", rule })

/** A rule compiled against a table's columns. */
export interface Compiled {
  /** Identifies the rule: subscriptions whose rules have the same key see the same rows and share the work. */
  readonly key: string
  /** A SQL condition over the table aliased `t`, and its bindings. */
  readonly where: string
  readonly params: ReadonlyArray<SqlValue>
  /** The rule on a wire row (columns in the channel's wire order). */
  readonly test: (row: WireRow) => boolean
  /** True for `all`: the subscription sees the whole channel. */
  readonly everything: boolean
}

/** A rule that cannot be compiled: a column the table lacks, or a value SQLite and JSON would not agree on. */
export class InvalidRule extends Error {}

const q = (identifier: string) => `"${identifier.replaceAll(`"`, `""`)}"`

// A comparison admits a row only when the column holds a value of the rule value's kind, compared byte for byte:
// SQLite would otherwise convert by the column's affinity ('5' = 5 on a TEXT column) or collation, and the SQL
// condition and the in-memory test would disagree about a row. A string is compared twice (bound twice): under the
// column's own collation, which its index serves and which admits every byte-equal value, then as bytes. Not with
// COLLATE BINARY: a COLLATE anywhere in a branch of an OR keeps SQLite from using an index for any branch, so a rule
// like "shared or mine" would scan the whole table.
const kindOf = (column: string, value: string | number) =>
  typeof value === "string"
    ? { sql: (op: string, bytes: string) => `${column} ${op} AND CAST(${column} AS BLOB) ${bytes}`, binds: 2, guard: `typeof(${column}) = 'text'` }
    : { sql: (op: string) => `${column} ${op}`, binds: 1, guard: `typeof(${column}) IN ('integer', 'real')` }

/** Compiles a rule against a table whose wire columns are `columns` (the names, in wire order). */
export const compile = (rule: Rule, columns: ReadonlyArray<string>): Compiled => {
  const index = new Map(columns.map((c, i) => [c, i]))
  const at = (column: string) => {
    const i = index.get(column)
    if (i === undefined) throw new InvalidRule(`a read rule names column ${JSON.stringify(column)}, which the table does not have`)
    return i
  }
  const checked = (value: Value): Value => {
    if (value === null || typeof value === "string" || (typeof value === "number" && Number.isFinite(value))) return value
    throw new InvalidRule(`a read rule compares with ${String(value)}: use a string, a finite number or null`)
  }
  const params: Array<SqlValue> = []
  // never NULL: a comparison with a NULL column is false, so NOT is the test's negation in SQL too
  const go = (r: Rule): { readonly sql: string; readonly test: (row: WireRow) => boolean } => {
    switch (r._tag) {
      case "All":
        return { sql: "1", test: () => true }
      case "None":
        return { sql: "0", test: () => false }
      case "Eq": {
        const i = at(r.column)
        const value = checked(r.value)
        const column = `t.${q(r.column)}`
        if (value === null) return { sql: `${column} IS NULL`, test: (row) => row[i] === null }
        const kind = kindOf(column, value)
        for (let k = 0; k < kind.binds; k++) params.push(value)
        return { sql: `(${kind.sql("= ?", "= CAST(? AS BLOB)")} AND ${kind.guard})`, test: (row) => row[i] === value }
      }
      case "In": {
        const i = at(r.column)
        const column = `t.${q(r.column)}`
        const values = r.values.map(checked)
        const parts: Array<string> = []
        for (const sample of ["", 0]) {
          const same = values.filter((v) => v !== null && typeof v === typeof sample) as Array<string | number>
          if (same.length === 0) continue
          const kind = kindOf(column, sample)
          for (let k = 0; k < kind.binds; k++) params.push(...same)
          parts.push(`(${kind.sql(`IN (${same.map(() => "?").join(", ")})`, `IN (${same.map(() => "CAST(? AS BLOB)").join(", ")})`)} AND ${kind.guard})`)
        }
        const nulls = values.includes(null)
        if (nulls) parts.push(`${column} IS NULL`)
        const set = new Set<unknown>(values)
        if (parts.length === 0) return { sql: "0", test: () => false }
        return { sql: parts.length === 1 ? parts[0]! : `(${parts.join(" OR ")})`, test: (row) => set.has(row[i]) }
      }
      case "And": {
        if (r.rules.length === 0) return go(all)
        const parts = r.rules.map(go)
        return { sql: `(${parts.map((p) => p.sql).join(" AND ")})`, test: (row) => parts.every((p) => p.test(row)) }
      }
      case "Or": {
        if (r.rules.length === 0) return go(none)
        const parts = r.rules.map(go)
        return { sql: `(${parts.map((p) => p.sql).join(" OR ")})`, test: (row) => parts.some((p) => p.test(row)) }
      }
      case "Not": {
        const inner = go(r.rule)
        return { sql: `NOT ${inner.sql}`, test: (row) => !inner.test(row) }
      }
    }
  }
  const compiled = go(rule)
  return { key: JSON.stringify(rule), where: compiled.sql, params, test: compiled.test, everything: rule._tag === "All" }
}

/** The ids among `rows` a compiled rule admits. */
export const visibleIds = (compiled: Compiled, rows: ReadonlyArray<WireRow>): Set<RowId> => {
  const out = new Set<RowId>()
  for (const row of rows) if (compiled.test(row)) out.add(row[0] as RowId)
  return out
}
