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
