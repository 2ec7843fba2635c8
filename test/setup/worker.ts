/**
 * Global setup of the integration projects: starts the Todo fixture's worker
 * once in local workerd (fresh temp persist dir, test hooks on) and hands its
 * URL to tests through `provide`/`inject` (see test/helpers/inject.ts).
 */
import type { TestProject } from "vitest/node"
import "../helpers/provided.ts"
import { removeDir, startWorker } from "../helpers/worker.ts"

export default async function setup(project: TestProject) {
  const worker = await startWorker({ persist: true, hooks: true })
  project.provide("workerUrl", worker.url)
  return async () => {
    await worker.dispose()
    if (typeof worker.persist === "string") removeDir(worker.persist)
  }
}
