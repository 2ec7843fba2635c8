/**
 * The Storage contract (test/services/StorageContract.ts) against the
 * node:sqlite test Layer. test/server/storage-contract.test.ts runs the same
 * cases against the Durable Object Layer inside workerd.
 */
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import { Storage } from "../../src/services/Storage.ts"
import { layerNodeSqlite } from "../../src/testing/StorageSqlite.ts"
import { cases } from "./StorageContract.ts"

/** Registers every contract case against a Storage Layer (built fresh per case). */
export const suite = (name: string, layer: () => Layer.Layer<Storage, unknown>) =>
  describe(name, () => {
    for (const c of cases) {
      it.effect(c.name, () => c.run.pipe(Effect.provide(layer())))
    }
  })

suite("Storage contract: layerNodeSqlite", () => layerNodeSqlite())
