import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, ConfigTree, parseSize } from './tree.js';
import { validate } from './schema.js';

test('set/get/dump keep dotted keys', () => {
  const t = new ConfigTree();
  t.set('memory.size', '1G');
  t.set('lpc.com1.path', 'stdio');
  assert.equal(t.get('memory.size'), '1G');
  assert.equal(t.get('lpc.com1.path'), 'stdio');
  assert.equal(t.get('lpc.com1'), undefined);
  assert.equal(t.dump(), 'memory.size=1G\nlpc.com1.path=stdio\n');
});

test('a value cannot become a node', () => {
  const t = new ConfigTree();
  t.set('a', '1');
  assert.throws(() => t.set('a.b', '2'), ConfigError);
  assert.throws(() => t.set('bad..key', '2'), /bad config key/);
});

test('typed readers name the key', () => {
  const t = new ConfigTree();
  t.set('x86.mptable', 'maybe');
  assert.throws(() => t.bool('x86.mptable', true), /x86.mptable: 'maybe' is not a boolean/);
  t.set('cpus', 'two');
  assert.throws(() => t.int('cpus', 1), /cpus: 'two' is not a number/);
});

test('sizes follow expand_number, bare numbers in MiB for -m', () => {
  assert.equal(parseSize('m', '512', 2 ** 20), 512 * 2 ** 20);
  assert.equal(parseSize('m', '1G', 2 ** 20), 2 ** 30);
  assert.equal(parseSize('m', '24g', 2 ** 20), 24 * 2 ** 30);
  assert.equal(parseSize('m', '64k', 2 ** 20), 65536);
  assert.throws(() => parseSize('memory.size', '1X'), /memory.size: '1X' is not a size/);
});

test('validate rejects unknown keys and bad values', () => {
  const t = new ConfigTree();
  t.set('memory.size', '1G');
  t.set('name', 'vm');
  validate(t);
  t.set('memroy.size', '1G');
  assert.throws(() => validate(t), /unknown config key 'memroy.size'/);
  const u = new ConfigTree();
  u.set('acpi_tables', 'sometimes');
  assert.throws(() => validate(u), /acpi_tables: 'sometimes' is not a boolean/);
  const v = new ConfigTree();
  v.set('uuid', 'not-a-uuid');
  assert.throws(() => validate(v), /uuid: 'not-a-uuid' is not a UUID/);
  for (const ok of ['auto', 'true', 'off']) {
    const w = new ConfigTree();
    w.set('boot.unpack', ok);
    validate(w);
  }
  const w = new ConfigTree();
  w.set('boot.unpack', 'sometimes');
  assert.throws(() => validate(w), /boot.unpack: 'sometimes' is not auto, true or false/);
});
