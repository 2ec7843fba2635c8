/**
 * Frames: chunking of `SyncRows` and `Change` frames. Every frame decodes
 * with the Protocol's `ServerMessageJson`, stays below the limit, carries
 * every row exactly once, and a live `Change` chunk never splits a version.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Exit from "effect/Exit"
import fc from "fast-check"
import { changeFrames, type ChannelChanges, syncFrames, utf8Length } from "../../src/services/Frames.ts"
import { decodeServerMessage, type ServerMessage } from "../../src/protocol/Protocol.ts"

const decode = (frame: string): ServerMessage => {
  const exit = decodeServerMessage(frame)
  if (Exit.isFailure(exit)) throw new Error(`frame does not decode: ${frame.slice(0, 200)}`)
  return exit.value
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8")

/** Changes with `n` rows of ~`size` bytes, `perVersion` entries sharing each version, every 5th one a hard delete. */
const makeChanges = (n: number, size: number, perVersion = 1, text = "x"): ChannelChanges => {
  const rows: Array<Array<unknown>> = []
  const rowVersions: Array<number> = []
  const deleted: Array<string> = []
  const deletedVersions: Array<number> = []
  for (let i = 0; i < n; i++) {
    const version = Math.floor(i / perVersion) + 1
    if (i % 5 === 4) {
      deleted.push(`gone-${i}`)
      deletedVersions.push(version)
    } else {
      rows.push([`row-${i}`, text.repeat(size), 0, i, i, null])
      rowVersions.push(version)
    }
  }
  const version = Math.floor((n - 1) / perVersion) + 1
  return { channel: "todos", rows, rowVersions, deleted, deletedVersions, version }
}

describe("utf8Length", () => {
  it("equals the UTF-8 byte length for any string, including emoji and lone surrogates", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (s) => utf8Length(s) === bytes(s)))
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (s) => utf8Length(s) === bytes(s)))
    for (const s of ["", "a", "é", "✓", "😀", "a😀b", "\ud800", "\udc00x", "😀".repeat(1000)]) {
      expect(utf8Length(s), JSON.stringify(s)).toBe(bytes(s))
    }
  })
})

describe("changeFrames", () => {
  it("splits live changes into frames below the limit that decode as Change and carry every entry once", () => {
    const changes = makeChanges(500, 300, 1)
    const limit = 10_000
    const frames = changeFrames(changes, limit)
    expect(frames.length).toBeGreaterThan(10)
    const decoded = frames.map(decode)
    for (const frame of frames) expect(bytes(frame)).toBeLessThanOrEqual(limit)
    for (const m of decoded) expect(m._tag).toBe("Change")
    const changesOnly = decoded.filter((m) => m._tag === "Change")
    expect(changesOnly.flatMap((m) => m.rows.map((r) => r[0]))).toEqual(changes.rows.map((r) => r[0]))
    expect(changesOnly.flatMap((m) => m.deleted)).toEqual(changes.deleted)
    // frame versions increase and the last one is the changes' version
    const versions = changesOnly.map((m) => m.version)
    expect(versions).toEqual([...versions].sort((a, b) => a - b))
    expect(versions[versions.length - 1]).toBe(changes.version)
  })

  it("never splits one version across two Change frames", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 120 }),
      fc.integer({ min: 1, max: 400 }),
      fc.integer({ min: 1, max: 4 }),
      (n, size, perVersion) => {
        const changes = makeChanges(n, size, perVersion)
        const frames = changeFrames(changes, 4_000).map(decode)
        const versionsByFrame = frames.map((m) => {
          if (m._tag !== "Change") throw new Error("not a Change")
          const ids = new Set([...m.rows.map((r) => String(r[0])), ...m.deleted.map(String)])
          const vs = new Set<number>()
          changes.rows.forEach((r, i) => ids.has(String(r[0])) && vs.add(changes.rowVersions[i]!))
          changes.deleted.forEach((d, i) => ids.has(String(d)) && vs.add(changes.deletedVersions[i]!))
          return vs
        })
        for (let i = 0; i < versionsByFrame.length; i++) {
          for (let j = i + 1; j < versionsByFrame.length; j++) {
            for (const v of versionsByFrame[i]!) if (versionsByFrame[j]!.has(v)) return false
          }
        }
        // and each frame's version is the highest version it carries
        return frames.every((m, i) => m._tag === "Change" && m.version === Math.max(...versionsByFrame[i]!))
      }
    ))
  })

  it("measures multi-byte text in bytes: frames of emoji rows stay below the limit", () => {
    const changes = makeChanges(200, 100, 1, "😀")
    const limit = 20_000
    const frames = changeFrames(changes, limit)
    for (const frame of frames) expect(bytes(frame)).toBeLessThanOrEqual(limit)
  })
})

describe("syncFrames", () => {
  it("splits a sync answer into SyncRows frames below the limit with the reset flag and every entry", () => {
    const changes = makeChanges(300, 1_000, 3)
    const limit = 50_000
    for (const reset of [true, false]) {
      const frames = syncFrames(changes, reset, limit)
      expect(frames.length).toBeGreaterThan(3)
      for (const frame of frames) expect(bytes(frame)).toBeLessThanOrEqual(limit)
      const decoded = frames.map(decode)
      for (const m of decoded) expect(m).toMatchObject({ _tag: "SyncRows", channel: "todos", reset })
      const chunks = decoded.filter((m) => m._tag === "SyncRows")
      expect(chunks.flatMap((m) => m.rows)).toEqual(changes.rows)
      expect(chunks.flatMap((m) => m.deleted)).toEqual(changes.deleted)
    }
  })

  it("an empty answer is one empty frame", () => {
    const frames = syncFrames({ channel: "todos", rows: [], rowVersions: [], deleted: [], deletedVersions: [], version: 0 }, true, 1_000)
    expect(frames.map(decode)).toEqual([{ _tag: "SyncRows", channel: "todos", reset: true, rows: [], deleted: [] }])
  })

  it("keeps the default 900 KB limit for a large answer", () => {
    const changes = makeChanges(3_000, 1_000, 1, "é")
    const frames = syncFrames(changes, true, 900_000)
    expect(frames.length).toBeGreaterThan(5)
    for (const frame of frames) expect(bytes(frame)).toBeLessThanOrEqual(900_000)
  })
})
