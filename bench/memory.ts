/**
 * 8. Server memory: the RSS of the workerd process running a side with
 * `n` idle connected clients (ours subscribed to the channel), against the
 * same process before they connected. Both servers hibernate.
 */
import { connectMany, freshRoom } from "./network.ts"
import { sleep } from "./stats.ts"
import type { Contender } from "./clients.ts"
import { rssBytes } from "./workers.ts"

/** One memory measurement. */
export interface MemoryRound {
  /** RSS before the clients connected. */
  readonly before: number
  /** RSS with the clients connected and idle. */
  readonly idle: number
  readonly clients: number
}

/** Connects `n` clients, lets them idle for `settleMs`, reads RSS, then disconnects them. */
export const memoryRound = async (who: Contender, n: number, settleMs: number): Promise<MemoryRound> => {
  const room = freshRoom(`mem-${who.label}`)
  const before = rssBytes(who.side.pid)
  const clients = await connectMany(who, room, n)
  await sleep(settleMs)
  const idle = rssBytes(who.side.pid)
  for (const c of clients) c.close()
  await sleep(200)
  return { before, idle, clients: clients.length }
}
