import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Screen } from './console.js';

test('Screen: cursor addressing, erase, wrap and escapes split across chunks', () => {
  const s = new Screen(10, 3);
  s.feed('\x1b[2J\x1b[?25l\x1b[1;1H\x1b[7mTitle\x1b[0m');
  s.feed('\x1b[2;4Habc\x1b[');
  s.feed('3;1Hxy');
  assert.equal(s.line(0), 'Title');
  assert.equal(s.line(1), '   abc');
  assert.equal(s.line(2), 'xy');
  s.feed('\x1b[1;3H\x1b[1m\x1b[33m!!\x1b[=3h');
  assert.equal(s.line(0), 'Ti!!e');
  s.feed('\r\n\r\n0123456789AB');
  assert.deepEqual(s.text().split('\n'), ['   abc', '0123456789', 'AB'], 'wrapped and scrolled');
});
