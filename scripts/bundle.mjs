// Bundle the command and its thread entry points into one file each
// (dist/bundle/): Node loads one module instead of ~100, which is most of
// the start-up time the VMM adds to node's own. koffi stays external.
// bhyve.js is a small first module (src/cli/launch.ts) that starts the first
// vCPU thread, then imports the command itself, bhyve-main.js.
import { build } from 'esbuild';

const common = { outdir: 'dist/bundle', bundle: true, platform: 'node', format: 'esm', target: 'node20', sourcemap: true, logLevel: 'warning' };
await build({
  ...common,
  entryPoints: {
    'bhyve-main': 'dist/src/cli/bhyve.js',
    'vcpu-worker': 'dist/src/vmm/vcpu-worker.js',
    iothread: 'dist/src/vmm/iothread.js',
  },
  external: ['koffi'],
});
await build({ ...common, entryPoints: { bhyve: 'dist/src/cli/launch.js' }, external: ['koffi', './bhyve-main.js'] });
