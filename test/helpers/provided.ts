/** Types of the values the global setup provides to tests (vitest `provide`/`inject`). */
declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the Todo fixture worker, with `TEST_HOOKS` enabled. */
    workerUrl: string
  }
}
export {}
