/** The low limits of the test worker in test/server/limits-worker.js, shared with its tests. */
export const LIMITS = {
  maxConnectionsPerPrincipal: 3,
  maxConnectionsPerRoom: 6,
  maxInvalidFrames: 5,
  invalidFramesWindowMs: 60_000,
  maxInboundBytesPerSecond: 16 * 1024,
  maxInboundBurstBytes: 64 * 1024,
  actionsPerTurn: 1,
  syncRowsPerTurn: 50,
  maxFullSyncsPerRoom: 1,
  maxFullSyncsPerConnection: 1,
  abuseCloseDelayMs: 300
} as const
