/**
 * Small numeric helpers for the benchmarks: percentiles, timing, formatting.
 */

/** The q-quantile (0..1) of the samples, nearest-rank. */
export const quantile = (samples: ReadonlyArray<number>, q: number): number => {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]!
}

/** Median: the mean of the two middle samples when their count is even (nearest-rank would take the lower one). */
export const median = (samples: ReadonlyArray<number>): number => {
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** A duration or count summary. */
export interface Summary {
  readonly n: number
  readonly p50: number
  readonly p99: number
  readonly min: number
  readonly max: number
}

/** Summarises samples. */
export const summarize = (samples: ReadonlyArray<number>): Summary => ({
  n: samples.length,
  p50: round(quantile(samples, 0.5)),
  p99: round(quantile(samples, 0.99)),
  min: round(Math.min(...samples)),
  max: round(Math.max(...samples))
})

/** Rounds to 3 significant decimals for reports. */
export const round = (x: number, digits = 3): number => {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Milliseconds since an arbitrary origin, sub-millisecond. */
export const now = (): number => performance.now()

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it holds or `timeoutMs` passes. */
export const until = async (check: () => boolean, timeoutMs: number, what: string): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** UTF-8 byte length of a frame. */
export const bytesOf = (frame: string): number => Buffer.byteLength(frame, "utf8")

/** Formats bytes for the table. */
export const fmtBytes = (b: number): string =>
  b >= 1e6 ? `${round(b / 1e6, 2)} MB` : b >= 1e3 ? `${round(b / 1e3, 1)} KB` : `${b} B`

/** A row of the bench report ("raw" holds each scenario's baseline). */
export interface ReportRow {
  readonly scenario: string
  readonly metric: string
  readonly unit: string
  readonly ours: number | null
  readonly raw: number | null
  readonly target?: string
  /** The target met with our client. */
  readonly pass?: boolean | null
  /** The median of the rounds' own ratios to raw (ours, ours-wire), where the sides alternated over rounds. */
  readonly roundRatios?: { readonly ours: number; readonly wire: number | null }
  readonly note?: string
}
