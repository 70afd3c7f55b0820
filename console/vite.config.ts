import { defineConfig } from "vite";

// The console is embedded in `weft` and served by `weft serve` at `/` (its
// files under `/assets/`), so nothing is loaded from anywhere else.
export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    // elkjs alone is ~1.5 MB; the console is one page served from loopback.
    chunkSizeWarningLimit: 3000,
    rollupOptions: {
      // @xyflow/react marks itself "use client" for React server frameworks;
      // meaningless in a page bundle.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
});
