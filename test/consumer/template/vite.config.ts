// The browser app's build: React only. The worker is bundled by wrangler, not here.
import react from "@vitejs/plugin-react"
import { defineConfig } from "vite"

export default defineConfig({
  plugins: [react()],
  // source maps list every module in the bundle: the consumer test reads them
  build: { sourcemap: true }
})
