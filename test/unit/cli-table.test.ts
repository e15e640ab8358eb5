/**
 * The CLI's tables fit the terminal (issue 20: `prescient nodes` printed rows 700 characters
 * wide): long cells are cut with an ellipsis, or wrapped in the columns that wrap, and the id
 * columns a user copies are never cut.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { coreRanges, cut, fitColumns, table, terminalWidth, wrapText } from '../../coordinator/cli/format.js';

const widest = (text: string) => Math.max(...text.split('\n').map((l) => l.length));

test('a table with a 700-character cell fits 100 columns, the cell cut with an ellipsis', () => {
  const detail = 'x'.repeat(700);
  const t = table(['node', 'detail'], [['enc-1', detail], ['enc-2', 'short']], { width: 100 });
  assert.ok(widest(t) <= 100, `widest line ${widest(t)}`);
  assert.match(t, /enc-1 {2}x+…/);
  assert.match(t, /enc-2 {2}short/);
});

test('a wrapping column keeps every word of a long cell on further lines, each within the width', () => {
  const reason = 'no node has room now: every node with a free core lacks the memory the job reserves, and the GPU nodes are busy';
  const t = table(['job', 'reason'], [['j-1', reason]], { width: 40, wrap: [1] });
  assert.ok(widest(t) <= 40, t);
  const lines = t.split('\n').slice(2);
  assert.ok(lines.length > 1, 'wrapped onto more than one line');
  assert.is(lines.map((l) => l.slice(5).trim()).join(' '), reason);
  assert.ok(lines.slice(1).every((l) => l.startsWith('     ')), 'continuation lines leave the job column empty');
});

test('the columns kept whole are never cut, however narrow the terminal', () => {
  const id = 'j-20240601-0123456789abcdef';
  const t = table(['#', 'job', 'reason'], [['1', id, 'r'.repeat(200)]], { width: 40, keep: [1] });
  assert.ok(t.includes(id), t);
  assert.ok(widest(t) <= 40, t);
});

test('columns are narrowed widest first, and none below its header', () => {
  const w = fitColumns(['node', 'cores free', 'detail'], [['enc-1', '4/8 [0-3]', 'd'.repeat(90)]], 40);
  assert.equal(w, [5, 10, 40 - 5 - 10 - 4]);
  const tight = fitColumns(['node', 'cores free', 'memory GB free'], [['enc-1', 'c'.repeat(50), 'm'.repeat(50)]], 10);
  assert.equal(tight, [5, 10, 14], 'no column under its header, even past the width');
});

test('a table narrower than the terminal is left as it is', () => {
  assert.is(table(['a', 'b'], [['1', '2']], { width: 100 }), 'a  b\n-  -\n1  2');
});

test('wrapping breaks after commas and at spaces, and inside a word only when it must', () => {
  assert.equal(wrapText('0,1,2,3,4,5,6,7', 6), ['0,1,2,', '3,4,5,', '6,7']);
  assert.equal(wrapText('one two three', 8), ['one two', 'three']);
  assert.equal(wrapText('abcdefghij', 4), ['abcd', 'efgh', 'ij']);
  assert.equal(wrapText('', 4), ['']);
  assert.is(cut('abcdef', 4), 'abc…');
  assert.is(cut('abc', 4), 'abc');
});

test('core lists read as ranges', () => {
  assert.is(coreRanges([6, 0, 1, 2, 3, 9, 10]), '0-3,6,9-10');
  assert.is(coreRanges([]), '');
  assert.is(coreRanges(Array.from({ length: 128 }, (_, i) => i)), '0-127');
});

test('the width is the terminal\'s, else $COLUMNS, else 100 when stdout is no terminal', () => {
  assert.is(terminalWidth({ isTTY: true, columns: 132 }, {}), 132);
  assert.is(terminalWidth({ isTTY: false }, { COLUMNS: '200' }), 200);
  assert.is(terminalWidth({ isTTY: false }, {}), 100);
  assert.is(terminalWidth({ isTTY: false }, { COLUMNS: 'wide' }), 100);
});

test.run();
