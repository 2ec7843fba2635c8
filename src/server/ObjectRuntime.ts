/**
 * The runtime of one SyncServer object's services and its start guard,
 * apart from the class users extend: the services start once per object
 * lifetime (migrations, then the subclass's `onStart`, then capture) before
 * any event reaches them. A failed start is not kept: its runtime is
 * disposed, each entry point answers with the reason, and the next event
 * tries again, so the object is never left stuck on one failure.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import type * as ManagedRuntime from "effect/ManagedRuntime"
import type { SqlClient } from "effect/sql"
import type { Connection } from "partyserver"
import { ActionDispatch } from "../services/ActionDispatch.ts"
import type { Limits } from "../services/Limits.ts"
import { type MigrationRecord, run as runMigrations } from "../services/Migrations.ts"
import { type InstallReport, Reconciliation } from "../services/Reconciliation.ts"
import type { Storage } from "../services/Storage.ts"
import { describeError } from "./Sockets.ts"

/** What a start did: install's report, and the migrations it ran. */
export type Installation = InstallReport & { readonly migrated: ReadonlyArray<readonly [number, string]> }

/** A runtime of the services; `R` is what the app's layer adds. */
export type Services<R> = ManagedRuntime.ManagedRuntime<ActionDispatch | Reconciliation | Limits | SqlClient.SqlClient | Storage | R, unknown>

/** What a start needs from the server. */
export interface StartHooks<R> {
  /** A new runtime, from the server's members as they are now. */
  readonly build: () => Services<R>
  readonly migrations: () => MigrationRecord | undefined
  /** partyserver's start (the subclass's `onStart`). */
  readonly initialize: () => Promise<void>
  /** The open sockets. */
  readonly sockets: () => Iterable<Connection>
  /** Runs at the end of each start; its failure fails the start. */
  readonly started: () => Promise<void>
}

/** The services of one object, started behind the guard. */
export class ObjectRuntime<R> {
  readonly #hooks: StartHooks<R>
  #runtime: Services<R> | undefined
  #ready: Promise<void> | undefined
  /** The dispatch of the running services, looked up once rather than per frame. */
  #dispatch: ActionDispatch["Service"] | undefined
  #installation: Installation | undefined

  constructor(hooks: StartHooks<R>) {
    this.#hooks = hooks
  }

  /** The last runtime built, whether it started, is starting, or failed to start (then it is disposed). */
  get runtime(): Services<R> | undefined {
    return this.#runtime
  }

  /** The runtime of services started or starting; undefined before the first start and after a failed one. */
  get active(): Services<R> | undefined {
    return this.#ready === undefined ? undefined : this.#runtime
  }

  /** Set once the services started; cleared when they stop or fail to start. */
  get dispatch(): ActionDispatch["Service"] | undefined {
    return this.#dispatch
  }

  /** What the last start did; undefined before the first. */
  get installation(): Installation | undefined {
    return this.#installation
  }

  /**
   * Builds the services, runs the migrations, then partyserver's start (your
   * `onStart`), then installs change capture: once per object lifetime,
   * retried on the next event after a failure.
   */
  ready(): Promise<void> {
    if (this.#ready === undefined) {
      const runtime = this.#hooks.build()
      this.#runtime = runtime
      const migrations = this.#hooks.migrations()
      const before = this.#installation?.history
      this.#ready = runtime.runPromise(migrations === undefined ? Effect.succeed([]) : runMigrations(migrations))
        .then(async (migrated) => {
          // tables your onStart creates exist before capture is installed on them
          await this.#hooks.initialize()
          return runtime.runPromise(Effect.gen(function*() {
            const report = yield* Reconciliation.use((r) => r.install)
            const dispatch = yield* ActionDispatch
            return { report: { ...report, migrated }, dispatch }
          }))
        })
        .then(({ report, dispatch }) => {
          this.#installation = report
          this.#dispatch = dispatch
          // Sockets still open (hibernated through a deploy that rebuilt capture, or open across restartSync) hold
          // cursors of the old history, and Change frames carry none: the client would skip the new history's lower
          // versions and keep rows that are gone. Closed, they reconnect and their cursor's history gets them a reset.
          if (report.replaced || (before !== undefined && report.history !== before)) {
            for (const connection of this.#hooks.sockets()) connection.close(1012, "the sync history restarted")
          }
          return this.#hooks.started()
        })
      this.#ready.catch(() => {
        this.#ready = undefined
        this.#dispatch = undefined
        void runtime.dispose()
      })
    }
    return this.#ready
  }

  /**
   * The start guard of every entry point: the migrations, your `onStart` and
   * capture. Returns why they could not start, if they could not.
   */
  async start(): Promise<string | undefined> {
    try {
      await this.ready()
      return undefined
    } catch (error) {
      console.error("effect-partysync: the sync server could not start", error)
      return `the sync server could not start: ${describeError(error)}`
    }
  }

  /** Closes the services (layer finalizers run); the next event starts them again. */
  async dispose(): Promise<void> {
    this.#dispatch = undefined
    await this.#runtime?.dispose()
    this.#runtime = undefined
    this.#ready = undefined
  }
}
