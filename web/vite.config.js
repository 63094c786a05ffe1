import { defineConfig } from 'vite';

// React's automatic JSX runtime, without a framework plugin: the console needs no fast refresh
// to be built, and fewer packages install faster and more reliably.
export default defineConfig({
  esbuild: { jsx: 'automatic' },
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
});
