import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FaultLog, FAULT_LOG_WORDS } from './pvm-fault-log.js';
import type { CpuState } from './cpu.js';

const at = (cr3: bigint, cr2: bigint) => ({ sregs: { cr3, cr2 } }) as unknown as CpuState;

test('fault log: two vCPU threads share one log; a page\'s faults in order, of the same process only', () => {
  const words = new Int32Array(new SharedArrayBuffer(4 * FAULT_LOG_WORDS));
  const vcpu0 = new FaultLog(words), vcpu1 = new FaultLog(words);
  vcpu0.onFault(at(0x4904000n, 0x3d2ce330n), 0, 6n, 0x401234n, 3);
  vcpu1.onFault(at(0x5000000n, 0x3d2ce000n), 1, 6n, 0x401000n, 3); // another process, same address
  vcpu1.onFault(at(0x4904000n, 0x3d2ce3c0n), 1, 7n, 0x405678n, 3);
  vcpu1.onFault(at(0x4904000n, 0x7fff0000n), 1, 6n, 0x401111n, 3);
  assert.equal(vcpu0.faultsOn(at(0x4904000n, 0n), 0x3d2ce340n),
    '#0 vCPU 0 err 0x6 rip 0x401234 cpl 3; #2 vCPU 1 err 0x7 rip 0x405678 cpl 3 (of 3 faults of this process in the log; the next is #4)');
  assert.match(vcpu1.faultsOn(at(0x4904000n, 0n), 0x1000n), /^none seen \(of 3 faults/);
});

test('fault log: the ring keeps the last 1024 faults', () => {
  const log = new FaultLog(new Int32Array(new SharedArrayBuffer(4 * FAULT_LOG_WORDS)));
  for (let i = 0; i < 1500; i++) log.onFault(at(0x1000n, BigInt(i) << 12n), 0, 4n, 0n, 3);
  assert.match(log.faultsOn(at(0x1000n, 0n), 0n), /^none seen \(of 1024 faults/);
  assert.match(log.faultsOn(at(0x1000n, 0n), 1499n << 12n), /^#1499 vCPU 0/);
  assert.throws(() => new FaultLog(new Int32Array(8)), RangeError);
});
