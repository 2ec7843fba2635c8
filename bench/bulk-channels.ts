/**
 * Does our own client trip the server's byte-rate limit? One socket carries
 * the Todo fixture's two channels (todos and notes); each client queues N
 * creates of SIZE-character text while the socket is closed (the handlers
 * refuse text over 200 characters, which costs the wire the same), then the
 * socket opens. Prints the time until every action is settled, the socket's
 * closes and the Failure frames it got. Not part of `npm run bench`.
 *
 *   N=6000 SIZE=9900 npx node bench/bulk-channels.ts
 */
import { notes, todos } from "../fixtures/todo-sync/src/shared.ts"
import { createSyncClient } from "../src/client/index.ts"
import { freshRoom } from "./network.ts"
import { closedParty } from "./real.ts"
import { now } from "./stats.ts"
import { SIDES, start } from "./workers.ts"

const N = Number(process.env.N ?? 6000)
const SIZE = Number(process.env.SIZE ?? 9900)
const side = await start("ours", SIDES.ours.config, SIDES.ours.party)
const party = closedParty(side, freshRoom("bulk-channels"))
const closes: Array<string> = []
const failures: Array<string> = []
party.addEventListener("close", (event: { code: number; reason: string }) => closes.push(`${event.code} ${event.reason}`))
party.addEventListener("message", (event: { data: unknown }) => {
  const frame = String(event.data)
  if (frame.startsWith(`{"_tag":"Failure"`)) failures.push(frame.slice(0, 200))
})
const todoClient = createSyncClient({ channel: todos, socket: party })
const noteClient = createSyncClient({ channel: notes, socket: party })
await Promise.all([todoClient.ready, noteClient.ready])
const text = "x".repeat(SIZE)
// refused by the handlers (text too long): settled all the same
const sends = [
  ...Array.from({ length: N }, (_, i) => todoClient.send({ type: "create", payload: { id: `t-${i}`, text, completed: 0, priority: 1 } }).catch(() => undefined)),
  ...Array.from({ length: N }, (_, i) => noteClient.send({ type: "create", payload: { id: `n-${i}`, text, private: 0 } }).catch(() => undefined))
]
const t0 = now()
party.reconnect()
const outcome = await Promise.race([Promise.all(sends).then(() => "settled"), new Promise((r) => setTimeout(() => r("timed out"), 120_000))])
console.log(`${outcome} in ${Math.round(now() - t0)} ms (${Math.round((2 * N * SIZE) / 1e6)} MB of text); closes ${JSON.stringify(closes)}; Failure frames ${failures.length} ${JSON.stringify(failures.slice(0, 3))}`)
await Promise.all([todoClient.close(), noteClient.close()])
party.close()
await side.dispose()
process.exit(0)
