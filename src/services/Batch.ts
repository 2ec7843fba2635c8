/**
 * Deciding one pushed batch: the client ledger's row is read once, each
 * action the ledger has not decided runs in a savepoint of the batch's
 * transaction (a failing action rolls back only its own writes), the change
 * capture's rows of each action are read inside its savepoint and checked
 * against their record Schema, and the ledger's row is written once with the
 * outcomes. A re-sent action gets its first outcome; an action past the one
 * the ledger expects is left for the client to send again.
 *
 * The handler's return value is never the reply: an action's rows are what
 * the change capture saw it write in its channel.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Channel from "../protocol/Channel.ts"
import { ActionRejected, NotAuthorized } from "../protocol/Errors.ts"
import type { Applied, ErrorReason, Refused, WireRow } from "../protocol/Protocol.ts"
import * as Capture from "./Capture.ts"
import * as Ledger from "./ClientLedger.ts"
import * as Legacy from "./LedgerLegacy.ts"
import * as Outcomes from "./Outcomes.ts"
import { StorageError, SyncFailure } from "./Errors.ts"
import type { ChannelChanges } from "./Frames.ts"
import type { StorageShape } from "./Storage.ts"

/** An action as dispatch prepared it: refused already, or a handler to run. */
export type PreparedAction<R> =
  | { readonly seq: number; readonly refused: { readonly reason: ErrorReason; readonly message: string } }
  | { readonly seq: number; readonly run: Effect.Effect<unknown, unknown, R> }

/** A push as dispatch prepared it. */
export interface PreparedPush<R> {
  readonly channel: Channel.Any
  readonly clientId: string
  readonly clientKey: string
  readonly principal: unknown
  readonly confirmed: number | undefined
  readonly skip: number | undefined
  readonly actions: ReadonlyArray<PreparedAction<R>>
}

/** A decided batch: the reply's content. */
export type Decided =
  | {
    readonly _tag: "Decided"
    readonly results: ReadonlyArray<Applied | Refused>
    readonly next: number
    readonly version: number
    /** The sender's `Change` frames, for its reply. */
    readonly withheld: ReadonlyArray<string>
  }
  | { readonly _tag: "Refused"; readonly failure: SyncFailure }

/** What a batch's transaction produced, before publishing. */
export type Run =
  | {
    readonly _tag: "Run"
    readonly results: Array<Applied | Refused>
    readonly next: number
    readonly changes: Array<ChannelChanges>
    readonly version: number
    /** Whether the published mark was stored. */
    readonly stored: boolean
    /** The log entries its captures read (for compaction). */
    readonly entries: Capture.Entries
  }
  | { readonly _tag: "Refused"; readonly failure: SyncFailure }

/** The most seqs one `skip` may declare lost. */
export const MAX_SKIP = 256

/** How a failed handler is reported: business refusals and denials are expected, the rest is logged with its cause. */
export const classify = (cause: Cause.Cause<unknown>): { readonly reason: ErrorReason; readonly message: string; readonly expected: boolean } => {
  const found = Cause.findErrorOption(cause)
  const error = found._tag === "Some" ? found.value : Cause.squash(cause)
  if (error instanceof ActionRejected) return { reason: "ActionRejected", message: error.message, expected: true }
  if (error instanceof NotAuthorized) return { reason: "NotAuthorized", message: error.message, expected: true }
  if (error instanceof SyncFailure) return { reason: error.reason, message: error.message, expected: false }
  return { reason: "HandlerFailed", message: messageOf(error), expected: false }
}

/** A failure's message for the client: a failed statement gives the engine's reason, never the statement. */
export const messageOf = (error: unknown): string => {
  if (error instanceof StorageError) return `storage error: ${error.cause instanceof Error ? error.cause.message : "the statement failed"}`
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" && error.message !== "") {
    return error.message
  }
  return String(error)
}

/** The ledger's memory: client ids per principal (for the cap) and confirms not written yet. */
export const makeLedgerState = () => {
  let counts: Map<string | null, number> | undefined
  const confirms = new Map<string, number>()
  return {
    reset: () => {
      counts = undefined
      confirms.clear()
    },
    /** Client ids a principal holds; counted once per wake. */
    count: (storage: StorageShape, principal: string | null): number => {
      if (counts === undefined) {
        counts = new Map()
        for (const [p, n] of storage.rawUnsafe(Ledger.COUNT_BY_PRINCIPAL)) counts.set(p === null ? null : String(p), Number(n))
      }
      return counts.get(principal) ?? 0
    },
    added: (principal: string | null, n: number) => {
      if (counts !== undefined) counts.set(principal, (counts.get(principal) ?? 0) + n)
    },
    /** A confirm that came without anything to write: kept until the client's next write or the GC. */
    confirm: (clientId: string, confirmed: number) => {
      confirms.set(clientId, Math.max(confirms.get(clientId) ?? 0, confirmed))
    },
    takeConfirm: (clientId: string): number | undefined => {
      const c = confirms.get(clientId)
      confirms.delete(clientId)
      return c
    },
    /** Writes the confirms that waited (the GC does, in its transaction). */
    writeConfirms: (storage: StorageShape) => {
      for (const [clientId, confirmed] of confirms) {
        const row = storage.rawUnsafe(Ledger.LOAD, clientId)[0]
        if (row === undefined) continue
        const client = Ledger.parse(row)
        const outcomes = new Map([...client.outcomes].filter(([seq]) => seq > confirmed))
        if (outcomes.size !== client.outcomes.size) storage.rawUnsafe(Ledger.CONFIRM, Outcomes.serialize(outcomes), clientId)
      }
      confirms.clear()
    },
    /** After the GC forgot clients: the counts are read again. */
    forget: (pruned: boolean) => {
      if (pruned) counts = undefined
    }
  }
}

/** The ledger's memory. */
export type LedgerState = ReturnType<typeof makeLedgerState>

/** The answer to a re-sent action: its kept outcome, a legacy refusal, or (confirmed before) applied. */
const firstAnswer = (
  storage: StorageShape,
  clientId: string,
  outcomes: ReadonlyMap<number, Outcomes.Outcome>,
  seq: number
): Applied | Refused => {
  const kept = outcomes.get(seq)
  if (kept !== undefined) {
    return kept._tag === "Applied"
      ? { seq, rows: kept.rows, duplicate: true }
      : { seq, reason: kept.reason, message: kept.message, duplicate: true }
  }
  const legacy = Legacy.exists(storage, Legacy.REFUSALS) ? storage.rawUnsafe(Legacy.REFUSAL_OF, clientId, seq)[0] : undefined
  if (legacy !== undefined) return { seq, reason: String(legacy[0]) as ErrorReason, message: String(legacy[1]), duplicate: true }
  return { seq, rows: [], duplicate: true }
}

/** What a batch needs from Reconciliation. */
export interface BatchContext {
  readonly storage: StorageShape
  readonly logs: Iterable<Capture.ChannelLog>
  readonly ledger: LedgerState
  readonly published: number
  readonly maxClientsPerPrincipal: number
  /** Moves the published mark; true when it was stored. */
  readonly advance: (version: number) => boolean
}

/** Decides a batch; run it inside a transaction, holding the write lock. */
export const decide = <R>(push: PreparedPush<R>, ctx: BatchContext): Effect.Effect<Run, unknown, R> =>
  Effect.suspend(() => {
    const { storage, ledger } = ctx
    const logs = [...ctx.logs]
    const stored = storage.rawUnsafe(Ledger.LOAD, push.clientId)[0]
    let client = stored === undefined ? undefined : Ledger.parse(stored)
    const channel = push.channel.name
    const refuse = (reason: "ClientMismatch" | "TooManyClients", message: string): Effect.Effect<Run> =>
      Effect.succeed({ _tag: "Refused", failure: new SyncFailure({ reason, message, requestId: null, channel, clientId: push.clientId }) })
    if (client !== undefined && client.key !== push.clientKey) {
      return refuse("ClientMismatch", `client id ${JSON.stringify(push.clientId)} belongs to another client (its key differs)`)
    }
    const principal = Ledger.principalKey(push.principal)
    let wrote = false
    if (client === undefined) {
      if (push.actions.length === 0) return Effect.succeed(emptyRun(ctx.published))
      if (ledger.count(storage, principal) >= ctx.maxClientsPerPrincipal) {
        if (storage.rawUnsafe(Ledger.EVICT_CONFIRMED, principal).length === 0) {
          return refuse("TooManyClients", `this principal already has ${ctx.maxClientsPerPrincipal} client ids with unconfirmed outcomes`)
        }
        ledger.added(principal, -1)
      }
      ledger.added(principal, 1)
      // a client the ledger does not know has settled everything before its first push (or never pushed)
      client = { key: push.clientKey, seq: push.actions[0]!.seq - 1, holes: new Set(), outcomes: new Map() }
      wrote = true
    }
    const confirmed = Math.max(push.confirmed ?? 0, ledger.takeConfirm(push.clientId) ?? 0)
    const outcomes = new Map(client.outcomes)
    for (const seq of client.outcomes.keys()) {
      if (seq <= confirmed) {
        outcomes.delete(seq)
        wrote = true
      }
    }
    const holes = new Set(client.holes)
    let last = client.seq
    const results: Array<Applied | Refused> = []
    const steps: Array<ReadonlyArray<ChannelChanges>> = []
    let entries = Capture.NO_ENTRIES
    let decided = false

    // seqs the client says it no longer holds: decided as never applied
    const first = push.actions[0]?.seq
    if (push.skip !== undefined && push.skip === last + 1 && first !== undefined && first > push.skip && first - push.skip <= MAX_SKIP) {
      for (let seq = push.skip; seq < first; seq++) {
        outcomes.set(seq, { _tag: "Refused", seq, reason: "Skipped", message: "its client no longer held this action; it was never applied" })
      }
      last = first - 1
      decided = true
    }

    // rows written outside a push since the last publish go out with this batch
    const top = Capture.head(storage)
    const outside = top > ctx.published ? Capture.read(storage, logs, ctx.published) : undefined
    if (outside !== undefined) {
      steps.push(outside.changes)
      entries = outside.entries
    }
    let before = Math.max(ctx.published, top)

    const record = (outcome: Outcomes.Outcome) => {
      outcomes.set(outcome.seq, outcome)
      if (!holes.delete(outcome.seq)) last = outcome.seq
      decided = true
      results.push(outcome._tag === "Applied" ? { seq: outcome.seq, rows: outcome.rows } : { seq: outcome.seq, reason: outcome.reason, message: outcome.message })
    }

    const loop = (i: number): Effect.Effect<void, unknown, R> => {
      for (; i < push.actions.length; i++) {
        const action = push.actions[i]!
        const seq = action.seq
        if (seq <= last && !holes.has(seq)) {
          results.push(firstAnswer(storage, push.clientId, outcomes, seq))
          continue
        }
        if (seq !== last + 1 && !holes.has(seq)) return Effect.void // past the one expected: the client sends it again
        if ("refused" in action) {
          record({ _tag: "Refused", seq, ...action.refused })
          continue
        }
        const at = i
        return Effect.flatMap(Effect.exit(storage.savepoint(runAction(action.run, storage, logs, before, channel))), (exit) => {
          if (Exit.isSuccess(exit)) {
            const captured = exit.value
            steps.push(captured.changes)
            entries = Capture.addEntries(entries, captured.entries)
            before = Math.max(before, captured.version)
            record({ _tag: "Applied", seq, rows: captured.rows })
            return loop(at + 1)
          }
          const outcome = classify(exit.cause)
          record({ _tag: "Refused", seq, reason: outcome.reason, message: outcome.message })
          // business refusals are part of the app: no stack trace for them
          return outcome.expected
            ? loop(at + 1)
            : Effect.andThen(Effect.logWarning(`effect-partysync: action ${push.clientId}:${seq} failed`, exit.cause), loop(at + 1))
        })
      }
      return Effect.void
    }

    return Effect.map(loop(0), (): Run => {
      const c = client!
      if (decided || wrote) {
        storage.rawUnsafe(
          Ledger.SAVE,
          push.clientId,
          c.key,
          last,
          Ledger.serializeHoles(holes),
          Date.now(),
          principal,
          Outcomes.serialize(outcomes)
        )
      } else if (confirmed > 0) ledger.confirm(push.clientId, confirmed)
      const changes = Capture.merge(steps)
      const version = Math.max(before, ctx.published)
      return { _tag: "Run", results, next: holes.size > 0 ? Math.min(...holes) : last + 1, changes, version, stored: ctx.advance(version), entries }
    })
  })

/** Reads a returned SQL cursor to its end (its rows are not the reply: the capture's are). */
const drain = (result: unknown) => {
  if (typeof result !== "object" || result === null || Array.isArray(result)) return
  const cursor = result as { raw?: () => Iterable<unknown>; toArray?: () => unknown }
  if (typeof cursor.raw === "function") for (const _ of cursor.raw()) continue
  else if (typeof cursor.toArray === "function") cursor.toArray()
}

const emptyRun = (published: number): Run => ({
  _tag: "Run",
  results: [],
  next: 1,
  changes: [],
  version: published,
  stored: false,
  entries: Capture.NO_ENTRIES
})

/**
 * Runs one action's handler, then reads what the change capture saw it
 * write: its channel's rows are the action's rows; a row that does not match
 * its record fails the action (its savepoint rolls back).
 */
const runAction = <R>(
  run: Effect.Effect<unknown, unknown, R>,
  storage: StorageShape,
  logs: ReadonlyArray<Capture.ChannelLog>,
  before: number,
  channel: string
): Effect.Effect<Capture.Captured & { readonly rows: ReadonlyArray<WireRow> }, unknown, R> =>
  Effect.flatMap(run, (result) => {
    // partysync-style handlers return a cursor: read to its end, or the savepoint cannot be released
    drain(result)
    const captured = Capture.read(storage, logs, before)
    if (captured.invalid.length > 0) {
      // a view's row is described in the server's log only: its writer may not be allowed to read it
      const failure = new SyncFailure({ reason: "InvalidRecord", message: captured.invalidPublic.join("; "), requestId: null, channel })
      return captured.invalidPublic.join() === captured.invalid.join()
        ? Effect.fail(failure)
        : Effect.andThen(Effect.logWarning(`effect-partysync: ${captured.invalid.join("; ")}`), Effect.fail(failure))
    }
    const own = captured.changes.find((c) => c.channel === channel)
    return Effect.succeed({ ...captured, rows: own?.rows ?? [] })
  })
