import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { close, read } from '../kvm/libc.js';
import { ioeventfd, Kvm, Vm } from '../kvm/vm.js';
import { AsyncIo, newEventFd, signalEventFd } from './aio.js';
import { Arena } from './shared.js';

const haveKvm = (() => { try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); return true; } catch { return false; } })();

function vm(): Vm {
  const v = Vm.create(new Kvm());
  v.createIrqchip();
  v.setPcRouting();
  return v;
}

test('doorbells: one eventfd published by the main thread, found by the others; ring() signals it', () => {
  const arena = new Arena(undefined, 1 << 16);
  const resources = new Map<string, unknown>();
  const main = new AsyncIo(arena, 'main', resources, -1);
  const d = main.doorbell('dev.q0', () => {});
  assert.equal(resources.get('doorbell:dev.q0'), d.fd);
  const other = new AsyncIo(new Arena(arena.sab), 'io', resources, -1);
  assert.equal(other.doorbell('dev.q0', () => {}).fd, d.fd);
  assert.equal(other.sources.length, 1);
  assert.ok(main.needed);
  d.ring(); d.ring();
  const buf = new BigUint64Array(1);
  assert.equal(read(d.fd, buf, 8), 8);
  assert.equal(buf[0], 2n, 'an eventfd counts rings');
  assert.throws(() => main.doorbell('dev.q0', () => {}), /registered twice|created twice/);
  assert.throws(() => new AsyncIo(new Arena(arena.sab), 'vcpu', new Map(), -1).doorbell('x', () => {}), /missing on this thread/);
  close(d.fd);
});

test('KVM_IOEVENTFD: bind, rebind, clash, unbind (pio with datamatch, mmio any length)', { skip: !haveKvm && 'no /dev/kvm' }, () => {
  const v = vm();
  const io = new AsyncIo(new Arena(undefined, 1 << 16), 'main', new Map(), v.fd);
  const a = io.doorbell('a', () => {}), b = io.doorbell('b', () => {});
  assert.ok(a.bind({ pio: true, addr: 0xc010, len: 2, datamatch: 0 }, 0));
  assert.ok(a.bind({ pio: false, addr: 0xc0003000, len: 0 }, 1));
  assert.ok(b.bind({ pio: true, addr: 0xc010, len: 2, datamatch: 1 }, 0), 'another value on the same port');
  assert.ok(!b.bind({ pio: false, addr: 0xc0003000, len: 0 }, 1), 'the same match twice is refused');
  assert.ok(a.bind({ pio: false, addr: 0xc0013000, len: 0 }, 1), 'moved');
  assert.ok(b.bind({ pio: false, addr: 0xc0003000, len: 0 }, 1), 'the old address is free again');
  assert.ok(a.bind(undefined, 0));
  assert.equal(ioeventfd(v.fd, a.fd, { pio: true, addr: 0xc010, len: 2, datamatch: 0 }, true), 2, 'already deassigned (ENOENT)');
  assert.throws(() => a.bind(undefined, 5), /no binding slot/);
});

test('irqfd: a GSI per sender from 24 up; the route is set on first use and the eventfd signalled', { skip: !haveKvm && 'no /dev/kvm' }, () => {
  const v = vm();
  const io = new AsyncIo(new Arena(undefined, 1 << 16), 'main', new Map(), v.fd);
  const x = io.irqfd('x'), y = io.irqfd('y');
  assert.deepEqual([x.gsi, y.gsi], [24, 25]);
  x.msi(0xfee00000n, 0x41);
  y.msi(0xfee00000n, 0x42);
  x.msi(0xfee00000n, 0x43);
  assert.deepEqual(io.routes.routes().map((r) => r.data), [0x43, 0x42]);
  const efd = newEventFd('t');
  signalEventFd(efd);
  close(efd);
});
