/**
 * Test projects:
 * - `unit`: Node only, no worker (services against node:sqlite and in-memory connections).
 * - `integration`: the real worker in local workerd, started once by test/setup/worker.ts;
 *   files under test/server/ and any `*.integration.test.ts` elsewhere under test/.
 * - `e2e`: browser tests under test/e2e/ (they start what they need themselves).
 * - `reliability`: fuzzing, authorization, limits, convergence under faults, load soak and
 *   multi-tab, under test/reliability/ (the shared worker plus their own where they kill it).
 * - `consumer`: test/consumer/consumer.test.ts packs the package and installs it into a
 *   fresh app outside the repository (built from test/consumer/template/, whose own test is
 *   that app's and never runs here).
 */
import { defineConfig } from "vitest/config"

const integration = ["test/server/**/*.test.ts", "test/**/*.integration.test.ts"]
const e2e = ["test/e2e/**/*.test.ts"]
const reliability = ["test/reliability/**/*.test.ts"]
const consumer = ["test/consumer/consumer.test.ts"]
const consumerTemplate = "test/consumer/template/**"

export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          environment: "node",
          include: ["test/**/*.test.ts"],
          exclude: [...integration, ...e2e, ...reliability, ...consumer, consumerTemplate, "**/node_modules/**"],
          testTimeout: 30_000
        }
      },
      {
        extends: true,
        test: {
          name: "integration",
          environment: "node",
          include: integration,
          globalSetup: ["test/setup/worker.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000
        }
      },
      {
        extends: true,
        test: {
          name: "e2e",
          environment: "node",
          include: e2e,
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // one browser at a time on a small machine
          fileParallelism: false
        }
      },
      {
        extends: true,
        test: {
          name: "reliability",
          environment: "node",
          include: reliability,
          globalSetup: ["test/setup/worker.ts"],
          testTimeout: 240_000,
          hookTimeout: 120_000,
          // the soak and the convergence test each load both cores
          fileParallelism: false
        }
      },
      {
        extends: true,
        test: {
          name: "consumer",
          environment: "node",
          include: consumer,
          // npm pack + npm install from the cache take most of it
          testTimeout: 180_000,
          hookTimeout: 420_000
        }
      }
    ]
  }
})
