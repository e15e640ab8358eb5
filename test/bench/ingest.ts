/**
 * Ingest benchmark: synthetic encode samples from this one process into a fresh local QuestDB,
 * once through QuestDbTelemetrySink (spooled and synced to disk first: the real path) and once
 * through @questdb/nodejs-client's Sender with its defaults and no spool. Each sample is
 * `cores + 1` rows (encode_samples plus one encode_core_samples row per core).
 *
 * A path runs until `rows` rows or `seconds` have passed. `*_rows_per_s` counts until QuestDB
 * acknowledged every row; `*_apply_s` is the wait after that until `count()` shows them all
 * (WAL apply); `*_cpu_us_per_row` is this process's CPU time per row. QuestDB runs on the same
 * machine, so on 2 cores the two share them. Run alone: `node dist/test/bench/ingest.js`
 * prints the figures as JSON.
 */
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Sender } from '@questdb/nodejs-client';
import type { EncodeSample } from '../../shared/index.js';
import { CORE_SAMPLES, ensureTables, QuestDbTelemetrySink, questdbQuery, SAMPLES, sampleRows, TABLES, type SampleContext, type SinkOptions, type TableRow } from '../../node-agent/telemetry/index.js';
import { startStack, waitFor } from '../helpers/cluster.js';
import { syntheticSample } from '../helpers/telemetry.js';

export interface IngestBenchOptions {
  /** Rows per path at most (default 2,000,000 spooled, 600,000 through the Sender). */
  rows?: number;
  senderRows?: number;
  /** Time per path at most (default 20 s). */
  seconds?: number;
  /** Reserved cores per sample (default 2). */
  cores?: number;
  /** Samples per recordSamples call, and how many calls may be in flight (defaults 1000 and 4). */
  batch?: number;
  inFlight?: number;
  /** Spool and delivery settings of the sink under test. */
  sink?: SinkOptions;
}

type Writer = (samples: EncodeSample[], ctx: SampleContext) => Promise<void>;

const columnsOf = new Map(TABLES.map((t) => [t.name, Object.entries(t.columns)]));

/** Sender calls for one row, driven by the table's declared column types. */
async function senderRow(sender: Sender, { table, row }: TableRow): Promise<void> {
  const r = row as unknown as Record<string, unknown>, columns = columnsOf.get(table.name)!;
  sender.table(table.name);
  for (const [name, type] of columns) if (type === 'symbol' && r[name] !== undefined) sender.symbol(name, r[name]);
  for (const [name, type] of columns) {
    const v = r[name];
    if (v === undefined || type === 'symbol') continue;
    if (type === 'long') sender.intColumn(name, v as number);
    else if (type === 'double') sender.floatColumn(name, v as number);
    else if (type === 'boolean') sender.booleanColumn(name, v as boolean);
    else sender.stringColumn(name, v as string);
  }
  await sender.at(row.ts, 'ms');
}

export async function benchIngest(o: IngestBenchOptions = {}): Promise<Record<string, number | string>> {
  const cores = o.cores ?? 2, batch = o.batch ?? 1000, inFlight = o.inFlight ?? 4, seconds = o.seconds ?? 20;
  const s = await startStack('bench-ingest');
  const http = s.endpoints.questdb_http;
  // Machines here are shared: the load at the start says how much of the 2 cores others used.
  const out: Record<string, number | string> = {
    machine: `${os.availableParallelism()} cores, ${os.cpus()[0]?.model.trim() ?? '?'}`, load_avg_1m: +os.loadavg()[0].toFixed(2),
    rows_per_sample: cores + 1, batch_samples: batch, in_flight: inFlight,
  };
  try {
    await ensureTables(http);
    const counts = async (node: string) => {
      const [a, b] = await Promise.all([SAMPLES, CORE_SAMPLES].map((t) => questdbQuery(http, `SELECT count() n FROM ${t.name} WHERE node = '${node}'`)));
      return Number(a[0].n) + Number(b[0].n);
    };
    /** Writes samples as node `name` until `maxRows` or the time is up; waits until QuestDB shows them all, so the next run starts on an idle QuestDB. */
    const run = async (name: string, maxRows: number, write: Writer, finish: () => Promise<void>) => {
      const t0 = performance.now(), cpu0 = process.cpuUsage(), deadline = t0 + seconds * 1000, job = `${name}-job`, base = Date.now();
      const inflight = new Set<Promise<void>>();
      let samples = 0;
      while (samples * (cores + 1) < maxRows && performance.now() < deadline) {
        const p = write(Array.from({ length: batch }, (_, k) => syntheticSample(job, base, samples + k, cores)), { node: name, codec: 'hevc' })
          .finally(() => inflight.delete(p));
        samples += batch;
        inflight.add(p);
        if (inflight.size >= inFlight) await Promise.race(inflight);
      }
      await Promise.all(inflight);
      await finish();
      const acked = (performance.now() - t0) / 1000, cpu = process.cpuUsage(cpu0);
      const rows = samples * (cores + 1);
      await waitFor(`${rows} ${name} rows visible`, async () => (await counts(name)) === rows, 300_000, 50);
      return {
        [`${name}_rows`]: rows,
        [`${name}_rows_per_s`]: Math.round(rows / acked),
        [`${name}_samples_per_s`]: Math.round(samples / acked),
        // This process's CPU (user + system) per row: what the rate would be with a core to itself.
        [`${name}_cpu_us_per_row`]: +((cpu.user + cpu.system) / rows).toFixed(2),
        [`${name}_apply_s`]: +((performance.now() - t0) / 1000 - acked).toFixed(2),
      };
    };

    const sink = new QuestDbTelemetrySink(http, path.join(s.dir, 'spool'), s.log, o.sink);
    const viaSink: Writer = (samples, ctx) => sink.recordSamples(samples, ctx);
    // Both JITs (this process's and QuestDB's) warm up first; its figures are not reported.
    await run('warmup', 300_000, viaSink, () => sink.flush());
    Object.assign(out, await run('spooled', o.rows ?? 2_000_000, viaSink, () => sink.flush()));
    await sink.close();

    const sender = await Sender.fromConfig(`http::addr=${http.replace(/^https?:\/\//, '')}`);
    // The Sender is not safe for concurrent use: batches are chained.
    let chain = Promise.resolve();
    const viaSender: Writer = (samples, ctx) => (chain = chain.then(async () => {
      for (const smp of samples) for (const r of sampleRows(smp, ctx)) await senderRow(sender, r);
    }));
    Object.assign(out, await run('sender', o.senderRows ?? 600_000, viaSender, () => sender.flush().then(() => undefined)));
    await sender.close();
    out.spooled_vs_sender = +(Number(out.spooled_rows_per_s) / Number(out.sender_rows_per_s)).toFixed(2);
    return out;
  } finally {
    await s.down();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) console.log(JSON.stringify(await benchIngest(), null, 2));
