/**
 * Profiles the server inside workerd, where its cost per action is larger
 * than in Node: starts our bench worker (or raw, `SIDE=raw`) with the V8
 * inspector on, drives round trips and pipelined actions over the protocol
 * client, records a CPU profile through the Chrome DevTools protocol and
 * prints the functions with the most self time. A development tool, not part
 * of `npm run bench`. `N` (default 3000) actions are profiled after a warm-up;
 * `SIDE=raw PARTY=parties/raw-ledger` profiles the hand-written floor of our
 * storage design (bench/raw/ledger.ts). `DRIVE=view-sync` profiles `N`
 * initial syncs of a 1,000-row view out of 100,000 rows instead (raw: the
 * same rows by its indexed query, bench/raw/views-raw.ts); `DRIVE=rt` the
 * round trips alone.
 */
import { writeFileSync } from "node:fs"
import { type Contender, connect } from "./clients.ts"
import { roundTrip, throughput } from "./network.ts"
import { connectRawBoard, connectView, VIEW_PARTY } from "./view-client.ts"
import { SIDES, start } from "./workers.ts"

const N = Number(process.env.N ?? 3000)
const SIDE = process.env.SIDE === "raw" ? "raw" : "ours"
const INSPECTOR_PORT = Number(process.env.INSPECTOR_PORT ?? 9331)

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number; readonly columnNumber: number; readonly scriptId: string }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const side = await start(SIDE, SIDES[SIDE].config, process.env.PARTY ?? SIDES[SIDE].party, { inspectorPort: INSPECTOR_PORT })

// wrangler's inspector proxy wants an Origin from a local host
const inspector = new (WebSocket as unknown as new(url: string, init: { headers: Record<string, string> }) => WebSocket)(
  `ws://127.0.0.1:${INSPECTOR_PORT}/ws`,
  { headers: { Origin: "http://localhost" } }
)
await new Promise((resolve, reject) => {
  inspector.addEventListener("open", resolve, { once: true })
  inspector.addEventListener("error", () => reject(new Error("bench: the inspector refused the connection")), { once: true })
})
let nextId = 0
const pending = new Map<number, (result: unknown) => void>()
inspector.addEventListener("message", (event) => {
  const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown }
  if (message.id !== undefined) pending.get(message.id)?.(message.result)
})
const call = <A>(method: string, params: Record<string, unknown> = {}) =>
  new Promise<A>((resolve) => {
    const id = ++nextId
    pending.set(id, resolve as (result: unknown) => void)
    inspector.send(JSON.stringify({ id, method, params }))
  })

const who: Contender = { label: SIDE, side, connect }
// DRIVE=view-sync profiles initial syncs of a 1,000-row view out of 100,000 rows (raw: its indexed board query)
const views = process.env.DRIVE === "view-sync"
const viewRoom = "profile-views"
const viewSyncs = async (count: number) => {
  for (let i = 0; i < count; i++) {
    const board = `b${i % 100}`
    if (SIDE === "raw") {
      const client = await connectRawBoard(side, viewRoom)
      await client.query(board)
      client.close()
    } else {
      const client = await connectView(side, viewRoom, "byBoard", { user: `p${i}`, params: { board } })
      await client.sync()
      client.close()
    }
  }
}
// DRIVE=rt profiles round trips alone (one action at a time), where the library's fixed cost per frame shows most
const rtOnly = process.env.DRIVE === "rt"
const actions = views || rtOnly ? N : 2 * N
try {
  if (views) {
    const seed = `${side.url}${VIEW_PARTY[SIDE]}/${viewRoom}/${SIDE === "ours" ? "hooks/seed" : "seed"}`
    for (let i = -1; i < 100_000; i += 10_000) {
      // the first, empty, wakes the object
      await (await fetch(seed, { method: "POST", body: JSON.stringify({ table: "items_board", from: Math.max(0, i), count: i < 0 ? 0 : 10_000 }) })).text()
    }
    await viewSyncs(50)
  } else await roundTrip(who, 500, 60_000)
  await call("Profiler.enable")
  await call("Profiler.setSamplingInterval", { interval: 50 })
  await call("Profiler.start")
  const t0 = performance.now()
  if (views) await viewSyncs(N)
  else {
    await roundTrip(who, N, 120_000)
    if (!rtOnly) await throughput(who, 1, N, 32, 120_000)
  }
  const ms = performance.now() - t0
  const { profile } = await call<{ profile: Profile }>("Profiler.stop")
  // PROFILE_OUT=file.cpuprofile keeps the raw profile (for Chrome DevTools or an inclusive-time pass)
  if (process.env.PROFILE_OUT !== undefined) writeFileSync(process.env.PROFILE_OUT, JSON.stringify(profile))
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<string, number>()
  // anonymous functions are named by the start of their source line
  await call("Debugger.enable")
  const sources = new Map<string, Array<string>>()
  const sourceOf = async (scriptId: string) => {
    if (!sources.has(scriptId)) {
      const { scriptSource } = await call<{ scriptSource: string }>("Debugger.getScriptSource", { scriptId })
      sources.set(scriptId, (scriptSource ?? "").split("\n"))
    }
    return sources.get(scriptId)!
  }
  const names = new Map<number, string>()
  for (const n of profile.nodes) {
    const f = n.callFrame
    if (f.functionName !== "" || f.scriptId === "0" || f.url === "") continue
    const line = (await sourceOf(f.scriptId))[f.lineNumber] ?? ""
    names.set(n.id, line.slice(Math.max(0, f.columnNumber - 30), f.columnNumber + 50).trim())
  }
  if (process.env.PROFILE_OUT !== undefined) {
    const [largest] = [...sources.values()].sort((a, b) => b.length - a.length)
    writeFileSync(`${process.env.PROFILE_OUT}.js`, (largest ?? []).join("\n"))
  }
  let total = 0
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!
    const frame = node.callFrame
    const key = `${frame.functionName || `(anon: ${names.get(id) ?? ""})`} ${frame.url.split("/").slice(-2).join("/")}:${frame.lineNumber + 1}`
    const dt = profile.timeDeltas[i] ?? 0
    self.set(key, (self.get(key) ?? 0) + dt)
    total += dt
  })
  const idle = (self.get("(idle) :0") ?? 0)
  const what = views ? "view syncs" : "actions"
  console.log(`${SIDE}: ${actions} ${what} in ${Math.round(ms)} ms; profiled ${Math.round(total / 1000)} ms, idle ${Math.round(idle / 1000)} ms`)
  console.log(`busy per ${what === "actions" ? "action" : "view sync"}: ${Math.round((total - idle) / actions)} us`)
  for (const [key, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / (total - idle)).toFixed(1).padStart(5)}%  ${key}`)
  }
  // self time by source module: the bundle marks each module's start with a `// path` comment
  const moduleOf = (scriptId: string, line: number): string => {
    const lines = sources.get(scriptId)
    if (lines === undefined) return "(native)"
    for (let l = line; l >= 0; l--) {
      const text = lines[l]!
      if (text.startsWith("// ") && /\.(m?js|ts)$/.test(text.trim())) return text.slice(3).replace(/^.*node_modules\//, "").replace(/^\.\.\/\.\.\//, "")
    }
    return "(bundle)"
  }
  for (const n of profile.nodes) if (n.callFrame.scriptId !== "0" && n.callFrame.url !== "") await sourceOf(n.callFrame.scriptId)
  const byModule = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame
    const key = f.url === "" ? `(native) ${f.functionName}` : moduleOf(f.scriptId, f.lineNumber)
    byModule.set(key, (byModule.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  console.log("\nby module (self time):")
  for (const [key, us] of [...byModule.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / (total - idle)).toFixed(1).padStart(5)}%  ${key}`)
  }
  // CALLERS=name prints the call paths (up to 6 frames) that spent the most self time in that function
  const focus = process.env.CALLERS
  if (focus !== undefined) {
    const parent = new Map<number, number>()
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
    const paths = new Map<string, number>()
    profile.samples.forEach((id, i) => {
      if (byId.get(id)!.callFrame.functionName !== focus) return
      const frames: Array<string> = []
      for (let at = parent.get(id); at !== undefined && frames.length < 6; at = parent.get(at)) {
        const f = byId.get(at)!.callFrame
        frames.push(`${f.functionName || "(anon)"}:${f.lineNumber + 1}`)
      }
      const key = frames.join(" < ")
      paths.set(key, (paths.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
    })
    for (const [path, us] of [...paths.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`${(us / 1000).toFixed(1).padStart(8)} ms  ${path}`)
  }
} finally {
  inspector.close()
  await side.dispose()
}
