/**
 * The README block rules of test/consumer/readme.ts (the consumer test
 * type-checks the blocks themselves): named blocks become files, marked
 * fragments are skipped, an unmarked fragment or a repeated name fails.
 */
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { readmeBlocks, readmeProject } from "./readme.ts"

const fence = "```"

describe("README blocks", () => {
  it("a first-line file-name comment names the file; server and worker files go to the worker program", () => {
    const md = [`${fence}ts`, "// shared.ts", "export const a = 1", fence, "", `${fence}tsx`, "// ported/server.tsx", "x", fence, `${fence}sh`, "npm i", fence].join("\n")
    expect(readmeProject(md).files).toEqual([
      { path: "shared.ts", code: "// shared.ts\nexport const a = 1\n", worker: false },
      { path: "ported/server.tsx", code: "// ported/server.tsx\nx\n", worker: true }
    ])
  })

  it("a block marked <!-- fragment --> is skipped, an unmarked one fails with its line", () => {
    const marked = ["<!-- fragment -->", "", `${fence}ts`, "foo()", fence].join("\n")
    expect(readmeProject(marked)).toEqual({ files: [], fragments: 1 })
    const unmarked = ["text", `${fence}ts`, "foo()", fence].join("\n")
    expect(() => readmeBlocks(unmarked)).toThrow(/README line 2: a TypeScript block needs a file-name comment/)
  })

  it("a file named twice fails", () => {
    const md = [`${fence}ts`, "// a.ts", fence, `${fence}ts`, "// a.ts", fence].join("\n")
    expect(() => readmeProject(md)).toThrow(/a.ts is named twice/)
  })

  it("the repository's README follows the rules", () => {
    const project = readmeProject(readFileSync(new URL("../../README.md", import.meta.url), "utf8"))
    expect(project.files.length).toBeGreaterThan(0)
  })
})

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  readonly files: ReadonlyArray<string>
  readonly peerDependencies: Readonly<Record<string, string>>
  readonly peerDependenciesMeta: Readonly<Record<string, { readonly optional?: boolean }>>
}

/** The anchor GitHub and npm give a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string): string => heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-")

describe("the README as the npm page shows it", () => {
  it("every link works from the tarball: a web address, a heading of the README, or a file the package ships", () => {
    const prose = readme.replace(/^```[\s\S]*?^```/gm, "")
    const anchors = new Set(prose.split("\n").filter((l) => /^#{1,6} /.test(l)).map((l) => slug(l.replace(/^#+ /, ""))))
    const targets = [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!)
    expect(targets.length).toBeGreaterThan(0)
    const broken = targets.filter((target) => {
      if (/^https?:\/\//.test(target)) return false
      if (target.startsWith("#")) return !anchors.has(target.slice(1))
      return !manifest.files.some((shipped) => target === shipped || target.startsWith(`${shipped}/`))
    })
    expect(broken).toEqual([])
  })

  it("the app's install line names every peer dependency with the package's range, and the worker's tools", () => {
    const install = readme.split("\n").filter((l) => l.startsWith("npm install "))
    const app = install.find((l) => l.startsWith("npm install effect-partysync "))!
    const tools = install.find((l) => l.startsWith("npm install --save-dev "))!
    for (const [name, range] of Object.entries(manifest.peerDependencies)) {
      const optional = manifest.peerDependenciesMeta[name]?.optional === true
      // required peers and the worker's partyserver go on the app's line; react (the hooks) in its comment; wrangler with the tools
      const line = name === "wrangler" ? tools : app
      expect(line, name).toContain(`${name}@${range}`)
      if (optional && name === "react") expect(app.indexOf(`${name}@`)).toBeGreaterThan(app.indexOf("#"))
    }
    expect(tools).toContain("@cloudflare/workers-types")
  })

  it("its first screen gives a newcomer to the repository npm start and npm test, labelled as the repository's commands", () => {
    const firstScreen = readme.slice(0, readme.indexOf("## Contents"))
    const label = firstScreen.indexOf("In a clone of this repository")
    expect(label).toBeGreaterThan(-1)
    expect(firstScreen.indexOf("npm install && npm start")).toBeGreaterThan(label)
    expect(firstScreen.indexOf("\nnpm test ")).toBeGreaterThan(label)
    // and no repository command comes before that label
    expect(firstScreen.slice(0, label)).not.toMatch(/npm (start|test)\b/)
  })
})
