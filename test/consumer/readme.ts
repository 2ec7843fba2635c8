/**
 * README code blocks as files of a project, so the consumer test can
 * type-check them against the packed package and a README example that
 * stops compiling fails CI.
 *
 * Rules for the README's ```ts / ```tsx blocks:
 * - A block whose first line is a file-name comment (`// shared.ts`,
 *   `// server.ts`, `// app.tsx`, `// ported/server.ts`) becomes that file,
 *   relative to one folder shared by the whole README, so `./shared`
 *   imports resolve between blocks. A name used twice is an error.
 * - Files whose base name starts with `server` or `worker` are the worker
 *   program (workers types, no DOM); all others are the browser program.
 * - A block without a file-name comment is a fragment. It is skipped only
 *   when the line before its fence is `<!-- fragment -->` (invisible on
 *   GitHub and npm); an unmarked fragment is an error, so an example is
 *   never left unchecked by accident.
 */

/** One README code block. */
export interface ReadmeBlock {
  /** The file it becomes (undefined for a marked fragment). */
  readonly file: string | undefined
  readonly code: string
  /** 1-based line of the opening fence. */
  readonly line: number
}

/** The README's files, split by program. */
export interface ReadmeProject {
  readonly files: ReadonlyArray<{ readonly path: string; readonly code: string; readonly worker: boolean }>
  readonly fragments: number
}

const FENCE = /^```(\w+)?.*$/
const FILE_COMMENT = /^\/\/\s*((?:[\w-]+\/)*[\w.-]+\.tsx?)\s*$/
const FRAGMENT_MARK = "<!-- fragment -->"

/** The TypeScript blocks of a Markdown text, in order. */
export const readmeBlocks = (markdown: string): ReadonlyArray<ReadmeBlock> => {
  const lines = markdown.split("\n")
  const blocks: Array<ReadmeBlock> = []
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!)
    if (open === null) continue
    const start = i
    let end = i + 1
    while (end < lines.length && !lines[end]!.startsWith("```")) end++
    i = end
    if (!["ts", "tsx", "typescript"].includes(open[1] ?? "")) continue
    const body = lines.slice(start + 1, end)
    const named = FILE_COMMENT.exec(body[0] ?? "")
    const code = body.join("\n") + "\n"
    if (named !== null) {
      blocks.push({ file: named[1]!, code, line: start + 1 })
      continue
    }
    let previous = start - 1
    while (previous >= 0 && lines[previous]!.trim() === "") previous--
    if (lines[previous]?.trim() !== FRAGMENT_MARK) {
      throw new Error(
        `README line ${start + 1}: a TypeScript block needs a file-name comment as its first line (// app.tsx) or ${FRAGMENT_MARK} on the line before it`
      )
    }
    blocks.push({ file: undefined, code, line: start + 1 })
  }
  return blocks
}

/** The README's named blocks as files; fails on a name used twice. */
export const readmeProject = (markdown: string): ReadmeProject => {
  const files: Array<ReadmeProject["files"][number]> = []
  let fragments = 0
  for (const block of readmeBlocks(markdown)) {
    if (block.file === undefined) {
      fragments++
      continue
    }
    if (files.some((f) => f.path === block.file)) throw new Error(`README line ${block.line}: ${block.file} is named twice`)
    const base = block.file.split("/").pop()!
    files.push({ path: block.file, code: block.code, worker: /^(server|worker)/.test(base) })
  }
  return { files, fragments }
}
