/**
 * Entry of a thread of the command (dist/bundle/vcpu-worker.js and
 * dist/bundle/iothread.js are this stub, bundled twice): runs the bundle of
 * the same name with its code cache (see code-cache.ts).
 */
import { parentPort } from 'node:worker_threads';
import { basename } from 'node:path';
import { runBundle, trainingRun } from './code-cache.js';

// Only ever run as a CommonJS bundle, where __dirname, __filename and require are the stub's.
const name = basename(__filename, '.js');
// A vCPU thread's work is in its first message's handler (registered by the
// bundle, so it runs before ours); the I/O thread's runs inside the bundle.
const loaded = runBundle(__dirname, name, require);
if (trainingRun()?.includes(name)) {
  if (name === 'vcpu-worker') parentPort?.once('message', () => setImmediate(() => loaded.save()));
  else loaded.save();
}
