/**
 * What the hook tests share: a cleanup list run after each test, and a React
 * root mounted in a fresh container that the cleanup unmounts and removes.
 */
import { createRoot, type Root } from "react-dom/client"
import { afterEach } from "vitest"

/** Registers an after-each hook in the calling test file; returns the list it empties, last added first. */
export const cleanupAfterEach = (): Array<() => unknown> => {
  const cleanup: Array<() => unknown> = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
  })
  return cleanup
}

/** Mounts a React root in a new container; `cleanup` unmounts it and removes the container. */
export const mount = (cleanup: Array<() => unknown>): { container: HTMLElement; root: Root } => {
  const container = document.createElement("div")
  document.body.appendChild(container)
  const root = createRoot(container)
  cleanup.push(() => {
    root.unmount()
    container.remove()
  })
  return { container, root }
}
