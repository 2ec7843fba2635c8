/**
 * A test-only worker that runs the Storage contract cases
 * (test/services/StorageContract.ts) inside workerd, with `Storage.layer`
 * over a real SQLite-backed Durable Object's `ctx.storage`. Each case runs in
 * its own object (the request names it), and the answer is JSON:
 * `{ ok: true }` or `{ ok: false, error }`. `GET /cases` lists the case names.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { DurableObjectStorage, type DurableObjectSql, Storage } from "../../src/services/Storage.ts"
import { cases } from "../services/StorageContract.ts"

interface Namespace {
  idFromName(name: string): unknown
  get(id: unknown): { fetch(request: Request): Promise<Response> }
}

interface Env {
  readonly CONTRACT: Namespace
}

/** Runs one contract case per request against its own storage. */
export class ContractObject {
  readonly ctx: { readonly storage: DurableObjectSql }
  readonly env: Env
  constructor(ctx: { readonly storage: DurableObjectSql }, env: Env) {
    this.ctx = ctx
    this.env = env
  }

  async fetch(request: Request): Promise<Response> {
    const name = new URL(request.url).searchParams.get("case")
    const found = cases.find((c) => c.name === name)
    if (found === undefined) return Response.json({ ok: false, error: `no case ${JSON.stringify(name)}` }, { status: 404 })
    const layer = Storage.layer.pipe(Layer.provide(Layer.succeed(DurableObjectStorage, this.ctx.storage)))
    const exit = await Effect.runPromiseExit(found.run.pipe(Effect.provide(layer)))
    return Response.json(Exit.isSuccess(exit) ? { ok: true } : { ok: false, error: Cause.pretty(exit.cause) })
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url)
    if (url.pathname === "/cases") return Response.json(cases.map((c) => c.name))
    if (url.pathname === "/run") {
      const room = url.searchParams.get("room") ?? "default"
      return env.CONTRACT.get(env.CONTRACT.idFromName(room)).fetch(request)
    }
    return new Response("contract worker", { status: 200 })
  }
}
