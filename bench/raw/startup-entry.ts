/**
 * The raw baseline of scenario 13's startup rows (`bench/startup.ts`): the
 * raw partyserver object alone. `worker.ts` also exports the bench's other
 * raw objects (the design's SQL by hand, the views baseline), which bundle
 * parts of effect and of this library.
 */
export { default, Raw } from "./worker.ts"
