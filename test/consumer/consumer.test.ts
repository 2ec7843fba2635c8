/**
 * The package as a user gets it: `npm pack` (which builds dist/), installed
 * into a fresh chat app outside the repository (test/consumer/template: a
 * worker with a SyncServer subclass, a React client and a shared module of
 * two channels), then each way an app uses it, with the app's own tools:
 * a Vite browser build, plain Node imports, tsc programs without
 * `allowImportingTsExtensions`, vitest, the worker in local workerd with two
 * clients, and the README's code blocks. The app is deleted afterwards.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ConsumerApp, makeConsumerApp, node, repoRoot, succeeded } from "./app.ts"
import { readmeProject } from "./readme.ts"

let app: ConsumerApp

beforeAll(() => {
  app = makeConsumerApp()
})

afterAll(() => {
  if (app === undefined) return
  console.log(`consumer app: ${JSON.stringify(app.timings)} ms; tarball ${app.tarballFiles.length} files, ${app.tarballBytes} bytes`)
  app.remove()
})

/** Source text without comments and string literals, where prose may say "as" or "any". */
const withoutCommentsAndStrings = (code: string): string =>
  code.replace(/\/\*[\s\S]*?\*\/|\/\/.*$|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`/gm, '""')

const tsc = (project: string, cwd = app.dir) => {
  const ran = node(cwd, [join(app.dir, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "-p", project])
  app.timings[`tsc ${join(relative(app.dir, cwd), project)}`] = ran.ms
  return succeeded(`tsc -p ${project}`, ran)
}

describe("the packed package in a fresh app", () => {
  it("npm pack: the tarball holds dist/ (JavaScript, declarations, source maps), README.md and package.json only", () => {
    const outside = app.tarballFiles.filter((f) => !f.startsWith("dist/") && !["README.md", "package.json", "LICENSE"].includes(f))
    expect(outside).toEqual([])
    const dist = app.tarballFiles.filter((f) => f.startsWith("dist/"))
    expect(dist.filter((f) => !/\.(js|js\.map|d\.ts)$/.test(f))).toEqual([])
    for (const entry of ["protocol/index", "server/index", "server/node", "client/index", "react/index", "testing/index"]) {
      expect(dist).toContain(`dist/${entry}.js`)
      expect(dist).toContain(`dist/${entry}.d.ts`)
      expect(dist).toContain(`dist/${entry}.js.map`)
    }
    const exported = JSON.parse(readFileSync(join(app.dir, "node_modules", "effect-partysync", "package.json"), "utf8"))
    expect(exported.peerDependencies).toMatchObject({ effect: expect.any(String), partysocket: expect.any(String) })
    expect(exported.dependencies).toBeUndefined()
    // one effect in the app: the package brought no nested copy
    expect(existsSync(join(app.dir, "node_modules", "effect-partysync", "node_modules"))).toBe(false)
  })

  it("vite build of the React client: the root entry and /react are bundled, partyserver, the server and cloudflare: modules are not", () => {
    app.timings["vite build"] = succeeded("vite build", node(app.dir, [join(app.dir, "node_modules", "vite", "bin", "vite.js"), "build"])).ms
    const assets = join(app.dir, "dist", "assets")
    const maps = readdirSync(assets).filter((f) => f.endsWith(".js.map"))
    const code = readdirSync(assets).filter((f) => f.endsWith(".js")).map((f) => readFileSync(join(assets, f), "utf8")).join("\n")
    const sources = maps.flatMap((f) => JSON.parse(readFileSync(join(assets, f), "utf8")).sources as Array<string>)
    const ours = sources.filter((s) => s.includes("node_modules/effect-partysync/"))
    expect(ours.some((s) => /effect-partysync\/(dist|src)\/react\//.test(s))).toBe(true)
    expect(ours.some((s) => /effect-partysync\/(dist|src)\/protocol\/Channel/.test(s))).toBe(true)
    expect(ours.filter((s) => /effect-partysync\/(dist|src)\/(server|services|layers|testing)\//.test(s))).toEqual([])
    expect(sources.filter((s) => s.includes("node_modules/partyserver/"))).toEqual([])
    expect(code).not.toContain("cloudflare:")
  })

  it("plain Node 24 imports: the root, /client, /react and /testing load; /server resolves to its Node variant", () => {
    const script = `
      const root = await import("effect-partysync")
      const client = await import("effect-partysync/client")
      const react = await import("effect-partysync/react")
      const testing = await import("effect-partysync/testing")
      const server = await import("effect-partysync/server")
      let refused = null
      try { new server.SyncServer() } catch (error) { refused = error.message }
      console.log(JSON.stringify({
        channel: typeof root.Channel.make, rejected: typeof root.ActionRejected,
        client: [typeof client.createSyncClient, typeof client.make, typeof client.makeMemoryStore],
        react: typeof react.useSync, testing: typeof testing.layerTest, storage: typeof server.Storage,
        server: import.meta.resolve("effect-partysync/server"), refused
      }))`
    const ran = succeeded("node -e", node(app.dir, ["--input-type=module", "-e", script]))
    const out = JSON.parse(ran.stdout.trim().split("\n").pop()!)
    expect(out).toMatchObject({
      channel: "function",
      rejected: "function",
      client: ["function", "function", "function"],
      react: "function",
      testing: "function",
      storage: "function"
    })
    expect(out.server).toMatch(/node_modules\/effect-partysync\/dist\/server\/node\.js$/)
    expect(out.refused).toMatch(/runs in workerd/)
  })

  it("tsc, browser program: strict, skipLibCheck false, no Node or workers types", () => {
    tsc("tsconfig.json")
  })

  it("tsc, worker program: strict, skipLibCheck false; a two-channel handler map and a typed principal without casts, and the mistakes of src/mistakes.ts refused", () => {
    const config = readFileSync(join(app.dir, "tsconfig.worker.json"), "utf8")
    expect(config).toMatch(/"skipLibCheck": false/)
    // the app's own code holds no cast (`x as T`, `as const` aside) and no `any`: the declarations type it
    for (const file of ["src/worker.ts", "src/handlers.ts", "test/handlers.test.ts", "test/worker.test.ts"]) {
      const code = withoutCommentsAndStrings(readFileSync(join(app.dir, file), "utf8"))
      expect(code.match(/(?<!\*\s*)\bas\s+(?!const\b)[\w{[(]|\bany\b/g), file).toBeNull()
    }
    tsc("tsconfig.worker.json")
  })

  it("tsc, test program: the unit tests and the worker test (startWorker) with Node types", () => {
    tsc("tsconfig.test.json")
  })

  it("tsc, the package's own server and testing declarations with skipLibCheck false", () => {
    tsc("tsconfig.decls.json")
  })

  it("vitest in the app, no special config: the handlers through TestServer, and the worker through startWorker (effect-partysync/testing)", () => {
    const ran = node(app.dir, [join(app.dir, "node_modules", "vitest", "vitest.mjs"), "run"], 180_000)
    app.timings.vitest = ran.ms
    succeeded("vitest run", ran)
    expect(ran.stdout).toMatch(/Tests\s+4 passed \(4\)/)
  })

  it("workerd: the app's worker (started by startWorker) with two users' clients (createSyncClient from /client, Node's WebSocket) converging on the same rows", () => {
    const ran = succeeded("scripts/converge.mjs", node(app.dir, ["scripts/converge.mjs"], 90_000))
    app.timings.workerd = ran.ms
    const result = JSON.parse(ran.stdout.trim().split("\n").pop()!)
    const expected = { messages: [["m2", "bob", "hi ada"]], members: ["ada", "bob"] }
    expect(result.a).toEqual(expected)
    expect(result.b).toEqual(expected)
    // the handler's ActionRejected reaches the sender as a refusal with its message
    expect(result.refused).toMatch(/: eve has not joined$/)
  })

  it("README code blocks compile against the package (browser blocks without, server blocks with workers types)", () => {
    const project = readmeProject(readFileSync(join(repoRoot, "README.md"), "utf8"))
    expect(project.files.some((f) => f.worker)).toBe(true)
    expect(project.files.some((f) => !f.worker)).toBe(true)
    const dir = join(app.dir, "readme")
    for (const file of project.files) {
      mkdirSync(dirname(join(dir, file.path)), { recursive: true })
      writeFileSync(join(dir, file.path), file.code)
    }
    tsc("tsconfig.json", dir)
    tsc("tsconfig.worker.json", dir)
  })
})
