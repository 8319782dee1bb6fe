// Bundle the command into dist/bundle/ (CommonJS: dist/bundle/package.json
// says so) and make the V8 code caches its threads start from:
//   bhyve.js, vcpu-worker.js, iothread.js   small entry stubs (src/cli/launch.ts,
//                                            src/cli/thread-launch.ts)
//   code/{bhyve-main,vcpu-worker,iothread}.js the command and its threads, one
//                                            file each, with NAME.js.cache
// The stubs run a bundle through vm.Script with its cache (src/cli/code-cache.ts).
// The caches come from a training run of a tiny guest when /dev/kvm is usable,
// else from compiling each bundle once (top-level code only).
// koffi is loaded from its native module directly, node:crypto and node:tty
// only when first used: they cost several ms per thread at start-up.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OUT = 'dist/bundle';
const CODE = join(OUT, 'code');
const THREADS = { 'vcpu-worker': 'dist/src/vmm/vcpu-worker.js', iothread: 'dist/src/vmm/iothread.js' };

// koffi's own entry finds the native module after reading node's ELF headers
// to tell glibc from musl; load the glibc build directly, the package otherwise.
const KOFFI_NATIVE = `
let native;
try {
  native = require(\`@koromix/koffi-\${process.platform}-\${process.arch}/\${process.platform}_\${process.arch}/koffi.node\`);
} catch {
  native = require('koffi');
}
module.exports = native;
`;
// node:crypto loads a dozen internal modules; only MD5 names and random bytes need it.
const LAZY_CRYPTO = `
let crypto;
const real = () => (crypto ??= require('node:crypto'));
export const createHash = (...a) => real().createHash(...a);
export const randomBytes = (...a) => real().randomBytes(...a);
export const randomFillSync = (...a) => real().randomFillSync(...a);
`;
// node:tty (and with it node:net) only on the thread that opens a terminal;
// getters, so that instanceof tty.ReadStream still sees the real class.
const LAZY_TTY = `
let tty;
for (const name of ['isatty', 'ReadStream', 'WriteStream']) {
  Object.defineProperty(exports, name, { enumerable: true, get: () => (tty ??= require('node:tty'))[name] });
}
`;
const SHIMS = { koffi: KOFFI_NATIVE, crypto: LAZY_CRYPTO, tty: LAZY_TTY };
const shims = {
  name: 'start-up-shims',
  setup(b) {
    // The shims' own imports are the real modules.
    b.onResolve({ filter: /^(koffi|(node:)?(crypto|tty))$/ }, (a) => {
      const name = a.path.replace(/^node:/, '');
      if (a.namespace !== 'shim') return { path: name, namespace: 'shim' };
      return { path: name === 'koffi' ? name : `node:${name}`, external: true };
    });
    b.onLoad({ filter: /.*/, namespace: 'shim' }, (a) => ({ contents: SHIMS[a.path], loader: 'js' }));
  },
};

// Only vCPU threads run the instruction emulator (src/emulate/); the command
// (which runs the vCPU loop without it at first: src/vmm/head-start.ts) and
// the I/O thread take the loop and a few constants from those modules
// (pvm-syscall's and pvm-fault-log's sizes of the shared control block).
// Declared free of side effects there, the rest is left out: less to load,
// and no opcode tables built for nothing.
const VCPU_ONLY = /dist\/src\/(emulate\/[^/]+|vmm\/vcpu-loop)\.js$/;
const vcpuOnly = {
  name: 'vcpu-only',
  setup(b) {
    b.onResolve({ filter: /^\./ }, async (a) => {
      if (a.pluginData === 'vcpu-only') return undefined;
      const r = await b.resolve(a.path, { kind: a.kind, resolveDir: a.resolveDir, importer: a.importer, pluginData: 'vcpu-only' });
      return VCPU_ONLY.test(r.path) ? { ...r, sideEffects: false } : r;
    });
  },
};

const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', sourcemap: true, logLevel: 'warning' };
mkdirSync(CODE, { recursive: true });
// The ES-module layout this replaced kept the command in bhyve-main.js here.
for (const f of ['bhyve-main.js', 'bhyve-main.js.map']) rmSync(join(OUT, f), { force: true });
writeFileSync(join(OUT, 'package.json'), '{ "type": "commonjs" }\n');
const code = { ...common, outdir: CODE, define: { 'import.meta.url': '__bundleUrl' } };
await build({ ...code, entryPoints: { 'vcpu-worker': THREADS['vcpu-worker'] }, plugins: [shims] });
const rest = { 'bhyve-main': 'dist/src/cli/bhyve.js', iothread: THREADS.iothread };
const lean = await build({ ...code, entryPoints: rest, plugins: [shims, vcpuOnly], metafile: true });
// Emulator code that still made it in is used there after all: its modules
// register handlers as they load, so build those bundles whole instead.
const leaked = Object.values(lean.metafile.outputs).flatMap((o) => Object.entries(o.inputs))
  .filter(([path, i]) => VCPU_ONLY.test(path) && i.bytesInOutput > 0 && !/(vcpu-loop|pvm-syscall|pvm-fault-log)\.js$/.test(path));
if (leaked.length) {
  console.warn(`bundle: ${leaked.map(([p]) => p).join(', ')} used outside vCPU threads; bundling the emulator whole`);
  await build({ ...code, entryPoints: rest, plugins: [shims] });
}
await build({
  ...common,
  outdir: OUT,
  entryPoints: { bhyve: 'dist/src/cli/launch.js', 'vcpu-worker': 'dist/src/cli/thread-launch.js', iothread: 'dist/src/cli/thread-launch.js' },
});

const { compileCache, TRAIN_ENV } = await import('../dist/src/cli/code-cache.js');
for (const n of ['bhyve-main', ...Object.keys(THREADS)]) compileCache(join(CODE, `${n}.js`));
train();

/**
 * Run a tiny guest with the threads saving their code caches at the end: a
 * boot ROM that writes one byte to COM1 and powers off through the ACPI PM
 * block, on the smallest machine (the command's cache, then the vCPU thread's),
 * then with virtio-rnd, which brings up the I/O thread (its cache).
 */
function train() {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'bhyve-train-'));
  try {
    const rom = Buffer.alloc(0x10000);
    // mov dx,0x3f8; mov al,'.'; out dx,al; mov dx,0x404; mov ax,0x3400; out dx,ax; cli; hlt
    Buffer.from([0xba, 0xf8, 0x03, 0xb0, 0x2e, 0xee, 0xba, 0x04, 0x04, 0xb8, 0x00, 0x34, 0xef, 0xfa, 0xf4]).copy(rom, 0);
    Buffer.from([0xea, 0x00, 0x00, 0x00, 0xf0]).copy(rom, 0xfff0); // jmp 0xf000:0
    writeFileSync(join(tmp, 'rom.bin'), rom);
    const machine = ['-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-l', `bootrom,${join(tmp, 'rom.bin')}`];
    // The vCPU runs on the main thread first (src/vmm/head-start.ts) except in the vCPU thread's own run.
    run(['bhyve-main'], [...machine, 'train']);
    run(['vcpu-worker'], [...machine, 'train']);
    run(['iothread'], ['-s', '3,virtio-rnd', ...machine, 'train']);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  function run(bundles, args) {
    const r = spawnSync(process.execPath, [join(OUT, 'bhyve.js'), ...args], {
      env: { ...process.env, [TRAIN_ENV]: bundles.join(',') }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000,
    });
    if (r.status !== 1) console.warn(`bundle: code cache training (${bundles.join(', ')}) ended with ${r.status ?? r.signal}: ${r.stderr}`);
  }
}
