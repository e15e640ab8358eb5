/** The training export's SQL (only validated literals) and its CSV. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { QueryParamError, TRAINING_COLUMNS, trainingRunsCsv, trainingRunsSql, type TrainingRun } from '../../models/data/index.js';

test('filters become quoted literals: a time window in ISO UTC, node, codec and status', () => {
  const sql = trainingRunsSql({ from: '2026-01-01T00:00:00+01:00', to: new Date(Date.UTC(2026, 0, 2)), node: 'enc-1', codec: 'hevc', status: 'succeeded' });
  assert.match(sql, /^SELECT ts, node, job_id, .* FROM encode_runs WHERE /);
  assert.match(sql, /WHERE ts >= '2025-12-31T23:00:00.000Z' AND ts < '2026-01-02T00:00:00.000Z' AND node = 'enc-1' AND codec = 'hevc' AND status = 'succeeded' ORDER BY ts, job_id$/);
  assert.not.match(trainingRunsSql({}), /WHERE/);
});

test('a filter value that is not a plain symbol, time or status is refused before any SQL is built', () => {
  const refused = (q: Parameters<typeof trainingRunsSql>[0], field: string) =>
    assert.throws(() => trainingRunsSql(q), (e: Error) => e instanceof QueryParamError && e.field === field);
  refused({ node: "x' OR '1'='1" }, 'node');
  refused({ codec: 'h264; DROP TABLE encode_runs' }, 'codec');
  refused({ node: '' }, 'node');
  refused({ from: 'yesterday' }, 'from');
  refused({ to: '2026-01-01T00:00:00' }, 'to'); // no zone: ambiguous
  refused({ to: Number.NaN }, 'to');
  refused({ status: 'running' as 'failed' }, 'status');
});

test('CSV has a header of every training column, quotes what needs it and leaves nulls empty', () => {
  const run = Object.fromEntries(TRAINING_COLUMNS.map((c) => [c, null])) as unknown as TrainingRun;
  Object.assign(run, { ts: '2026-01-01T00:00:00.000000Z', node: 'enc-1', job_id: 'j1', codec: 'h264', status: 'failed', pinned: false, cpu_cores: 1.5, error: 'bad "input", line\n2', schema_json: '{"a":1,"b":2}' });
  const csv = trainingRunsCsv([run]);
  const [header, row, end] = csv.split('\r\n');
  assert.is(header, TRAINING_COLUMNS.join(','));
  assert.is(end, '');
  assert.ok(row.startsWith('2026-01-01T00:00:00.000000Z,enc-1,j1,h264,,,failed,,,,,,"{""a"":1,""b"":2}",'), row);
  assert.ok(row.endsWith(',"bad ""input"", line\n2"'), row);
  assert.match(row, /,1\.5,/);
  assert.match(row, /,false,/);
});

test.run();
