/**
 * Table migrations of one object, on effect/sql's `Migrator`: numbered
 * Effects keyed `"<n>_<name>"` (`Migrator.fromRecord`), run on wake before
 * change capture is installed, all pending ones in one transaction, recorded
 * in the object's own `effect_sql_migrations` table. A migration that fails
 * rolls back with the others (nothing is half-migrated) and fails the start:
 * the object answers `Unavailable` with the reason and tries again on its
 * next event.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Migrator, type SqlClient } from "effect/sql"

/** A server's migrations: `{ "1_create_todos": effect, "2_add_priority": effect }`. */
export type MigrationRecord = Readonly<Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>>>

/** A migration failed; nothing of the pending ones was kept. */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>()("MigrationFailed", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

const KEY = /^(\d+)_(.+)$/

/** Runs the pending migrations; returns the `[id, name]` of those it ran. */
export const run = (migrations: MigrationRecord) =>
  Effect.gen(function*() {
    const bad = Object.keys(migrations).filter((key) => !KEY.test(key))
    if (bad.length > 0) {
      return yield* new MigrationFailed({ message: `migration keys must look like "1_create_todos": ${bad.join(", ")}`, cause: null })
    }
    return yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations) })
  }).pipe(
    Effect.mapError((error) =>
      error instanceof MigrationFailed ? error : new MigrationFailed({
        message: `${error.message}${error.cause === undefined ? "" : `: ${describe(error.cause)}`}`,
        cause: error
      })
    ),
    Effect.withSpan("Migrations.run")
  )

const describe = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null) {
    const reason = (cause as { reason?: { cause?: unknown; message?: unknown } }).reason
    if (reason?.cause instanceof Error) return reason.cause.message
    if (typeof reason?.message === "string") return reason.message
    if (cause instanceof Error) return cause.message
  }
  return String(cause)
}
