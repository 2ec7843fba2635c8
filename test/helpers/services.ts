/**
 * The server's services wired for unit tests in Node: node:sqlite Storage,
 * in-memory connections, the Todo channel and a real Todo action handler
 * (the same rules as the fixture's server), the table made by the fixture's
 * own migrations, with change capture installed.
 */
import type { ReadRule } from "../../src/services/Views.ts"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { layerTest } from "../../src/testing/index.ts"
import { ActionHandler, Authorizer } from "../../src/services/ActionHandler.ts"
import type * as Channel from "../../src/protocol/Channel.ts"
import type { SyncConnection } from "../../src/services/Connections.ts"
import { ActionRejected } from "../../src/services/Errors.ts"
import { Storage } from "../../src/services/Storage.ts"
import type { SyncOptions } from "../../src/services/SyncConfig.ts"
import { runTodoAction } from "../../fixtures/todo-sync/src/actions.ts"
import { todoMigrations } from "../../fixtures/todo-sync/src/migrations.ts"
import { type TodoAction, todos } from "../../fixtures/todo-sync/src/shared.ts"

export { TODO_TABLE } from "../../fixtures/todo-sync/src/table.ts"

/** Text that makes the test handler fail after it has inserted its row. */
export const FAIL_AFTER_WRITE = "fail after write"

/** The Todo handler: the fixture server's actions on a deterministic clock, plus `FAIL_AFTER_WRITE` to fail after writing. */
export const todoHandlerLayer = Layer.effect(
  ActionHandler,
  Effect.gen(function*() {
    const storage = yield* Storage
    let now = 1_000
    return ActionHandler.of({
      run: (_channel, input) => {
        const action = input as TodoAction
        return runTodoAction(action, ++now).pipe(
          Effect.flatMap((rows) =>
            action.type === "create" && action.payload.text.trim() === FAIL_AFTER_WRITE
              ? Effect.fail(new ActionRejected({ message: "failed after writing" }))
              : Effect.succeed(rows)
          ),
          Effect.provideService(Storage, storage)
        )
      }
    })
  })
)

/** Options for `servicesLayer`. */
export interface ServicesOptions {
  readonly connections: Array<SyncConnection>
  readonly options?: Partial<SyncOptions>
  readonly channels?: ReadonlyArray<Channel.Any>
  /** Statements run before install (table creation) instead of the fixture's migrations. Default: the migrations. */
  readonly setup?: ReadonlyArray<string>
  readonly handler?: Layer.Layer<ActionHandler, never, Storage>
  readonly authorizer?: Layer.Layer<Authorizer>
  /** A database file to reuse across layers (a restart); default: a fresh in-memory database. */
  readonly path?: string
  /** The channels' read rules. */
  readonly views?: Readonly<Record<string, ReadRule | undefined>>
}

/** ActionDispatch, Reconciliation, Broadcast and Storage over a fresh in-memory database, installed. */
export const servicesLayer = (options: ServicesOptions) =>
  layerTest({
    channels: options.channels ?? [todos],
    handler: options.handler ?? todoHandlerLayer,
    setup: options.setup,
    migrations: options.setup === undefined ? todoMigrations(2) : undefined,
    connections: options.connections,
    authorizer: options.authorizer,
    options: options.options,
    path: options.path,
    views: options.views
  })
