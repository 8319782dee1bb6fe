import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigTree } from '../../config/tree.js';
import { findPci } from '../registry.js';
import { lpcLegacyConfig, LPC_DEVICE_NAMES } from './lpc.js';
import './uart-pci.js';

function parse(...args: string[]): ConfigTree {
  const c = new ConfigTree();
  for (const a of args) lpcLegacyConfig(c, a);
  return c;
}

test('-l comN,BACKEND sets lpc.comN.path (names are case-insensitive)', () => {
  const c = parse('com1,stdio', 'COM2,/dev/nmdm0A', 'com4,/dev/pts/3');
  assert.equal(c.get('lpc.com1.path'), 'stdio');
  assert.equal(c.get('lpc.com2.path'), '/dev/nmdm0A');
  assert.equal(c.get('lpc.com4.path'), '/dev/pts/3');
  assert.throws(() => parse('com3'), { name: 'ConfigError', message: /com3: missing back-end/ });
});

test('-l bootrom,ROM[,VARS][,key=value]', () => {
  assert.equal(parse('bootrom,/usr/share/uefi/BHYVE.fd').get('lpc.bootrom'), '/usr/share/uefi/BHYVE.fd');
  const c = parse('bootrom,rom.fd,vars.fd');
  assert.equal(c.get('lpc.bootrom'), 'rom.fd');
  assert.equal(c.get('lpc.bootvars'), 'vars.fd');
  const d = parse('bootrom,rom.fd,fwcfg=qemu');
  assert.equal(d.get('lpc.bootvars'), undefined);
  assert.equal(d.get('lpc.fwcfg'), 'qemu');
  assert.throws(() => parse('bootrom'), { name: 'ConfigError', message: /invalid bootrom option 'bootrom'/ });
});

test('-l fwcfg=qemu|bhyve', () => {
  assert.equal(parse('fwcfg=qemu').get('lpc.fwcfg'), 'qemu');
  assert.equal(parse('fwcfg,bhyve').get('lpc.fwcfg'), 'bhyve');
  assert.throws(() => parse('fwcfg=seabios'), { name: 'ConfigError', message: /'seabios' is not one of bhyve, qemu/ });
});

test('-l help lists the devices; unknown names are one-line errors naming them', () => {
  const c = new ConfigTree();
  assert.deepEqual(lpcLegacyConfig(c, 'help'), LPC_DEVICE_NAMES);
  assert.ok(LPC_DEVICE_NAMES.includes('com1') && LPC_DEVICE_NAMES.includes('bootrom'));
  assert.equal(lpcLegacyConfig(c, 'com1,stdio'), undefined);
  assert.throws(() => parse('com9,stdio'), { name: 'ConfigError', message: "unknown lpc device 'com9' (see -l help)" });
  assert.throws(() => parse('com1=stdio'), /unknown lpc device 'com1=stdio'/);
});

test('-s N,uart,PATH sets the path key', () => {
  const c = new ConfigTree();
  findPci('uart')!.legacyConfig!(c, 'pci.0.3.0', '/dev/ttyS1');
  assert.equal(c.get('pci.0.3.0.path'), '/dev/ttyS1');
});
