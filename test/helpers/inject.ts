/**
 * The shared worker that the `integration` project's global setup starts
 * once (test/setup/worker.ts), as tests see it.
 */
import { inject } from "vitest"
import "./provided.ts"

/** Base URL of the shared Todo fixture worker (only in projects that use test/setup/worker.ts). */
export const workerUrl = (): string => {
  const url = inject("workerUrl")
  if (typeof url !== "string") throw new Error("workerUrl not provided: run this file in a project whose globalSetup is test/setup/worker.ts")
  return url
}
