import { defineConfig } from 'vite';

// Preact without its Vite plugin: esbuild compiles the JSX to Preact's
// automatic runtime, which is all the app needs (no Babel, no HMR plugin).
export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    target: 'es2020',
    outDir: 'dist',
    assetsDir: 'assets',
    // The server embeds dist/; source maps would only make the binary bigger.
    sourcemap: false,
    // hls.js (light build, ~120 KB gzipped) is imported only on fallback.
    chunkSizeWarningLimit: 600,
  },
});
