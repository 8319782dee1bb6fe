import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MsiRoute } from '../kvm/vm.js';
import { MsiRoutes } from './msi-routes.js';
import { Arena } from './shared.js';

test('GSIs are handed out in order from 24; a changed route submits the whole MSI table', () => {
  const tables: MsiRoute[][] = [];
  const arena = new Arena(undefined, 1 << 16);
  const r = new MsiRoutes(arena, (t) => tables.push(t), 4);
  assert.deepEqual([r.alloc(), r.alloc(), r.alloc()], [24, 25, 26]);
  r.set(25, 0xfee00000n, 0x41);
  r.set(25, 0xfee00000n, 0x41);
  assert.equal(tables.length, 1, 'unchanged: not resubmitted');
  r.set(24, 0x1_fee01000n, 0x4042);
  assert.deepEqual(tables[1], [
    { gsi: 24, address: 0x1_fee01000n, data: 0x4042 },
    { gsi: 25, address: 0xfee00000n, data: 0x41 },
  ]);
  assert.throws(() => r.set(40, 0n, 0), /not an MSI route/);
  r.alloc();
  assert.throws(() => r.alloc(), /out of MSI routes/);
});

test('another thread sees the same routes through the arena', () => {
  const arena = new Arena(undefined, 1 << 16);
  const a = new MsiRoutes(arena, () => {}, 8);
  const b = new MsiRoutes(new Arena(arena.sab), () => {}, 8);
  a.set(a.alloc(), 0xfee00000n, 0x30);
  assert.deepEqual(b.routes(), [{ gsi: 24, address: 0xfee00000n, data: 0x30 }]);
});

test('a route KVM refuses is dropped and reported, the others stay', () => {
  const tables: MsiRoute[][] = [];
  const r = new MsiRoutes(new Arena(undefined, 1 << 16), (t) => {
    if (t.some((e) => e.address === 0xdeadn)) throw new Error('EINVAL');
    tables.push(t);
  }, 4);
  const a = r.alloc(), b = r.alloc();
  assert.equal(r.set(a, 0xfee00000n, 0x41), true);
  assert.equal(r.set(b, 0xdeadn, 0), false);
  assert.deepEqual(r.routes(), [{ gsi: a, address: 0xfee00000n, data: 0x41 }]);
  assert.equal(r.set(b, 0xfee00000n, 0x42), true);
});
