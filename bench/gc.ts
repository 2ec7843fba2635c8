/**
 * A full garbage collection on demand (V8's `gc`, exposed at run time), for
 * measurements that must not pay for the garbage of what ran before them,
 * and for heap sizes read after a collection.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

setFlagsFromString("--expose-gc")

/** Collects all garbage now. */
export const collectGarbage = runInNewContext("gc") as () => void
