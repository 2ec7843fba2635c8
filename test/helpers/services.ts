/**
 * The server's services wired for unit tests in Node: node:sqlite Storage,
 * in-memory connections, the Todo channel and a real Todo action handler
 * (the same rules as the fixture's server), with change capture installed.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { layerTest } from "../../src/testing.ts"
import { ActionHandler, Authorizer } from "../../src/services/ActionHandler.ts"
import type * as Channel from "../../src/services/Channel.ts"
import type { SyncConnection } from "../../src/services/Connections.ts"
import { ActionRejected } from "../../src/services/Errors.ts"
import { Storage } from "../../src/services/Storage.ts"
import type { SyncOptions } from "../../src/services/SyncConfig.ts"
import { MAX_TEXT, type TodoAction, todos } from "../../fixtures/todo-sync/src/shared.ts"

/** The Todo table, as the fixture's server creates it. */
export const TODO_TABLE = `CREATE TABLE IF NOT EXISTS todos (
  id TEXT PRIMARY KEY NOT NULL,
  text TEXT NOT NULL,
  completed INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  deleted_at INTEGER DEFAULT NULL
)`

/** Text that makes the test handler fail after it has inserted its row. */
export const FAIL_AFTER_WRITE = "fail after write"

/** The Todo handler: the fixture server's rules, plus `FAIL_AFTER_WRITE` to fail after writing. */
export const todoHandlerLayer = Layer.effect(
  ActionHandler,
  Effect.gen(function*() {
    const sql = yield* Storage
    let now = 1_000
    const checkText = (text: string) => {
      const trimmed = text.trim()
      return trimmed.length >= 1 && trimmed.length <= MAX_TEXT
        ? Effect.succeed(trimmed)
        : Effect.fail(new ActionRejected({ message: `text must be 1 to ${MAX_TEXT} characters` }))
    }
    return ActionHandler.of({
      run: (_channel, input) =>
        Effect.gen(function*() {
          const action = input as TodoAction
          const at = ++now
          switch (action.type) {
            case "create": {
              const text = yield* checkText(action.payload.text)
              const rows = yield* sql.raw(
                "INSERT INTO todos (id, text, completed, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
                action.payload.id, text, action.payload.completed, at, at
              )
              if (text === FAIL_AFTER_WRITE) return yield* new ActionRejected({ message: "failed after writing" })
              return rows
            }
            case "update": {
              const text = action.payload.text === undefined ? null : yield* checkText(action.payload.text)
              return yield* sql.raw(
                "UPDATE todos SET text = coalesce(?, text), completed = coalesce(?, completed), updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING *",
                text, action.payload.completed ?? null, at, action.payload.id
              )
            }
            case "delete":
              return yield* sql.raw(
                "UPDATE todos SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL RETURNING *",
                at, at, action.payload.id
              )
          }
        })
    })
  })
)

/** Options for `servicesLayer`. */
export interface ServicesOptions {
  readonly connections: Array<SyncConnection>
  readonly options?: Partial<SyncOptions>
  readonly channels?: ReadonlyArray<Channel.Any>
  /** Statements run before install (table creation). Default: the Todo table. */
  readonly setup?: ReadonlyArray<string>
  readonly handler?: Layer.Layer<ActionHandler, never, Storage>
  readonly authorizer?: Layer.Layer<Authorizer>
  /** A database file to reuse across layers (a restart); default: a fresh in-memory database. */
  readonly path?: string
}

/** ActionDispatch, Reconciliation, Broadcast and Storage over a fresh in-memory database, installed. */
export const servicesLayer = (options: ServicesOptions) =>
  layerTest({
    channels: options.channels ?? [todos],
    handler: options.handler ?? todoHandlerLayer,
    setup: options.setup ?? [TODO_TABLE],
    connections: options.connections,
    authorizer: options.authorizer,
    options: options.options,
    path: options.path
  })
