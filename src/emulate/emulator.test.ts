/** The emulator on a fake vCPU: system instructions, the page walk, iret, XSAVE. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { emulate, HANDLERS } from './index.js';
import { FakeMem, FakeVcpu, longSregs, zeroRegs, flatSeg } from './fake-vcpu.js';
import { AC } from './cpu.js';

function run(hex: string, setup: (v: FakeVcpu, m: FakeMem) => void = () => {}) {
  const v = new FakeVcpu();
  v.regs.rip = 0x100n;
  v.regs.rsp = 0x8000n;
  const m = new FakeMem();
  setup(v, m);
  const out = emulate({ vcpu: v, mem: m }, Buffer.from(hex.replace(/ /g, ''), 'hex'));
  return { v, m, out };
}

test('int3 and int n are delivered after the instruction, as trap and software interrupt', () => {
  const a = run('cc', (v, m) => m.bytes.set([0, 0, 0, 0, 0, 0xee], 0x2000 + 3 * 16));
  assert.equal(a.v.regs.rip, 0x101n);
  assert.deepEqual(a.v.injected, [3, undefined]);
  const b = run('cd 80', (v, m) => m.bytes.set([0, 0, 0, 0, 0, 0xee], 0x2000 + 0x80 * 16));
  assert.equal(b.v.regs.rip, 0x102n);
  assert.deepEqual([b.v.events[8], b.v.events[9], b.v.events[10]], [1, 0x80, 1]);
  // A gate of DPL 0 refuses int n from CPL 3: #GP(vector*8+2), RIP unchanged.
  const c = run('cd 80', (v, m) => {
    v.sregs = longSregs(3);
    m.bytes.set([0, 0, 0, 0, 0, 0x8e], 0x2000 + 0x80 * 16);
  });
  assert.equal(c.v.regs.rip, 0x100n);
  assert.deepEqual(c.v.injected, [13, 0x80 * 8 + 2]);
});

test('ud2 injects #UD; an unknown instruction stops with the bytes, RIP and mode', () => {
  assert.deepEqual(run('0f 0b').v.injected, [6, undefined]);
  const r = run('0f 3a 63 c1 08');
  assert.equal(r.out.ok, false);
  assert.match(r.out.ok ? '' : r.out.report, /\[0f 3a 63 c1 08\] at RIP 0x100, long64 mode, CPL 0/);
});

test('clac/stac change AC at CPL 0 only, with SMAP on', () => {
  assert.equal(run('0f 01 cb').v.regs.rflags & AC, AC);
  assert.equal(run('0f 01 ca', (v) => (v.regs.rflags |= AC)).v.regs.rflags & AC, 0n);
  assert.deepEqual(run('0f 01 cb', (v) => (v.sregs = longSregs(3))).v.injected, [13, 0]);
  assert.deepEqual(run('0f 01 cb', (v) => (v.sregs.cr4 &= ~0x200000n)).v.injected, [6, undefined]);
});

/** 4-level tables at 0x10000 mapping 0x400000 (4 KiB, flags `pte`) to physical 0x5000. */
function paging(v: FakeVcpu, m: FakeMem, pte: bigint): void {
  const dv = new DataView(m.bytes.buffer);
  dv.setBigUint64(0x10000, 0x11007n, true);
  dv.setBigUint64(0x11000, 0x12007n, true);
  dv.setBigUint64(0x12000 + 2 * 8, 0x13007n, true);
  dv.setBigUint64(0x13000, 0x5000n | pte, true);
  dv.setBigUint64(0x12000, 0x83n, true); // 0-2 MiB: supervisor 2 MiB page (code, stack)
  v.sregs.cr0 |= 0x80000000n;
  v.sregs.cr3 = 0x10000n;
}

test('memory operands go through the guest page tables, with A/D bits and #PF', () => {
  const ok = run('f3 48 0f b8 04 25 08 00 40 00', (v, m) => { paging(v, m, 3n); m.bytes[0x5008] = 0xff; });
  assert.equal(ok.v.regs.rax, 8n);
  assert.equal(ok.m.bytes[0x13000] & 0x60, 0x20); // accessed, not dirty
  const w = run('0f 38 f1 04 25 00 00 40 00', (v, m) => { paging(v, m, 3n); v.regs.rax = 0x11223344n; });
  assert.deepEqual([...w.m.bytes.subarray(0x5000, 0x5004)], [0x11, 0x22, 0x33, 0x44]);
  assert.equal(w.m.bytes[0x13000] & 0x60, 0x60);
  // not present: error code 0 (read), CR2 = the address
  const np = run('f3 0f b8 04 25 10 00 40 00', (v, m) => paging(v, m, 0n));
  assert.deepEqual(np.v.injected, [14, 0]);
  assert.equal(np.v.sregs.cr2, 0x400010n);
  // write to a read-only page with CR0.WP: protection violation, write
  const ro = run('0f 38 f1 04 25 00 00 40 00', (v, m) => paging(v, m, 1n));
  assert.deepEqual(ro.v.injected, [14, 3]);
  // SMAP: supervisor access to a user page without AC faults; with AC it works
  assert.deepEqual(run('f3 0f b8 04 25 00 00 40 00', (v, m) => paging(v, m, 7n)).v.injected, [14, 1]);
  assert.equal(run('f3 0f b8 04 25 00 00 40 00', (v, m) => { paging(v, m, 7n); v.regs.rflags |= AC; }).v.injected, undefined);
  // a non-canonical address is #GP(0)
  assert.deepEqual(run('f3 48 0f b8 03', (v) => (v.regs.rbx = 0x0000800000000000n)).v.injected, [13, 0]);
});

test('iretq: same level, to CPL 3 with SS, and the checks', () => {
  const gdt = (m: FakeMem) => {
    const dv = new DataView(m.bytes.buffer);
    dv.setBigUint64(0x810, 0x00af9b000000ffffn, true); // 0x10 kernel code
    dv.setBigUint64(0x818, 0x00cf93000000ffffn, true); // 0x18 kernel data
    dv.setBigUint64(0x828, 0x00cff3000000ffffn, true); // 0x28 user data
    dv.setBigUint64(0x830, 0x00affb000000ffffn, true); // 0x30 user code
  };
  const frame = (m: FakeMem, ...q: bigint[]) => q.forEach((x, i) => new DataView(m.bytes.buffer).setBigUint64(0x8000 + i * 8, x, true));
  const same = run('48 cf', (v, m) => { gdt(m); frame(m, 0x1234n, 0x10n, 0x246n, 0x9000n, 0x18n); });
  assert.equal(same.out.ok, true);
  assert.deepEqual([same.v.regs.rip, same.v.regs.rflags, same.v.regs.rsp], [0x1234n, 0x246n, 0x9000n]);
  const user = run('48 cf', (v, m) => { gdt(m); frame(m, 0x400000n, 0x33n, 0x202n, 0x7ff0n, 0x2bn); });
  assert.deepEqual([user.v.regs.rip, user.v.regs.rsp, user.v.sregs.seg.cs.selector, user.v.sregs.seg.cs.dpl, user.v.sregs.seg.ss.selector, user.v.sregs.seg.ss.dpl],
    [0x400000n, 0x7ff0n, 0x33, 3, 0x2b, 3]);
  // RPL below CPL, or a data segment as CS: #GP(selector); the frame is left alone
  const bad = run('48 cf', (v, m) => { v.sregs = longSregs(3); gdt(m); frame(m, 0x1234n, 0x10n, 0x2n, 0x9000n, 0x18n); });
  assert.deepEqual(bad.v.injected, [13, 0x10]);
  assert.equal(bad.v.regs.rsp, 0x8000n);
  assert.deepEqual(run('48 cf', (v, m) => { gdt(m); frame(m, 0x1234n, 0x18n, 0x2n, 0x9000n, 0x18n); }).v.injected, [13, 0x18]);
  // 32-bit protected mode, same level: pops EIP, CS, EFLAGS only
  const p32 = run('cf', (v, m) => {
    v.sregs = longSregs(0, { efer: 0n, cr0: 0x11n, cr4: 0n });
    v.sregs.seg.cs = { ...flatSeg(0x08, true, false) };
    v.sregs.seg.ss = { ...flatSeg(0x10, false, false) };
    const dv = new DataView(m.bytes.buffer);
    dv.setBigUint64(0x808, 0x00cf9b000000ffffn, true);
    dv.setUint32(0x8000, 0x5678, true); dv.setUint32(0x8004, 0x08, true); dv.setUint32(0x8008, 0x2, true);
  });
  assert.deepEqual([p32.v.regs.rip, p32.v.regs.rsp], [0x5678n, 0x800cn]);
  void zeroRegs;
});

test('xsave and xrstor, standard and compacted, through KVM\'s buffer', () => {
  const setup = (v: FakeVcpu) => {
    v.regs.rax = 7n; v.regs.rdx = 0n; v.regs.rbx = 0x3000n;
    v.xsave.fill(0xab, 160, 416); v.xsave.fill(0xcd, 576, 576 + 256);
    v.xsave.writeBigUInt64LE(7n, 512);
  };
  const std = run('48 0f ae 23', setup); // xsave64 [rbx]
  assert.equal(std.out.ok, true);
  const area = std.m.bytes.subarray(0x3000, 0x3000 + 832);
  assert.equal(area[160], 0xab);
  assert.equal(area[576], 0xcd);
  assert.equal(new DataView(area.buffer, area.byteOffset).getBigUint64(512, true), 7n);
  const cmp = run('48 0f c7 23', setup); // xsavec64 [rbx]
  const hdr = new DataView(cmp.m.bytes.buffer, 0x3000 + 512);
  assert.equal(hdr.getBigUint64(8, true), 7n | (1n << 63n));
  // restore: AVX state from memory, SSE initialised (XSTATE_BV bit 1 clear)
  const rs = run('48 0f ae 2b', (v, m) => {
    setup(v);
    m.bytes.fill(0x11, 0x3000 + 576, 0x3000 + 832);
    new DataView(m.bytes.buffer).setBigUint64(0x3000 + 512, 5n, true);
    new DataView(m.bytes.buffer).setUint32(0x3000 + 24, 0x1f80, true);
  });
  assert.equal(rs.out.ok, true);
  assert.deepEqual([rs.v.xsave[160], rs.v.xsave[576]], [0, 0x11]);
  // misaligned area: #GP(0)
  assert.deepEqual(run('48 0f ae 2b', (v) => { setup(v); v.regs.rbx = 0x3008n; }).v.injected, [13, 0]);
  // xgetbv: XCR0 in EDX:EAX
  const xg = run('0f 01 d0', (v) => (v.regs.rcx = 0n));
  assert.equal(xg.v.regs.rax, 7n);
});

test('fldcw, fninit and fwait work on the x87 state', () => {
  const f = run('d9 2b', (v, m) => { v.regs.rbx = 0x3000n; m.bytes.set([0x7f, 0x02], 0x3000); });
  assert.equal(f.v.xsave.readUInt16LE(0), 0x27f);
  const i = run('db e3', (v) => v.xsave.writeUInt16LE(0x1234, 0));
  assert.equal(i.v.xsave.readUInt16LE(0), 0x37f);
  assert.equal(run('9b').v.injected, undefined);
  assert.deepEqual(run('9b', (v) => v.xsave.writeUInt16LE(0x81, 2)).v.injected, [16, undefined]);
});

test('every mnemonic in the tables has a handler or is left to KVM on purpose', () => {
  for (const k of ['popcnt', 'movbe', 'cmpxchg8b', 'xrstor', 'xgetbv', 'rdrand', 'rdpru', 'clac', 'clwb', 'invpcid', 'fwait', 'x87', 'iret', 'int3', 'int', 'ud2']) {
    assert.ok(HANDLERS[k], k);
  }
});

test('sysretq and swapgs use the MSRs', () => {
  const s = run('48 0f 07', (v) => {
    v.msrs.set(0xc0000081, 0x0023001000000000n);
    v.regs.rcx = 0x401000n; v.regs.r11 = 0x246n;
  });
  assert.deepEqual([s.v.regs.rip, s.v.regs.rflags, s.v.sregs.seg.cs.selector, s.v.sregs.seg.cs.l, s.v.sregs.seg.ss.selector, s.v.sregs.seg.cs.dpl],
    [0x401000n, 0x246n, 0x33, 1, 0x2b, 3]);
  const g = run('0f 01 f8', (v) => { v.msrs.set(0xc0000102, 0xffff888000000000n); v.sregs.seg.gs.base = 0x1234n; });
  assert.equal(g.v.sregs.seg.gs.base, 0xffff888000000000n);
  assert.equal(g.v.msrs.get(0xc0000102), 0x1234n);
});

test("the VMM's own look (debug access) ignores SMAP and leaves the accessed bits alone", async () => {
  const { Mmu } = await import('./mmu.js');
  const { CpuState } = await import('./cpu.js');
  const v = new FakeVcpu();
  const m = new FakeMem();
  paging(v, m, 7n); // a user page; CR4.SMAP is on in longSregs
  m.bytes[0x5010] = 0x5a;
  const mmu = new Mmu(new CpuState(v), m);
  assert.throws(() => mmu.readLinear(0x400010n, 1, { implicit: true }), /page fault|#PF|PF/);
  assert.equal(mmu.readLinear(0x400010n, 1, { debug: true })[0], 0x5a);
  assert.equal(m.bytes[0x13000] & 0x60, 0, 'no accessed or dirty bit from a debug look');
});
