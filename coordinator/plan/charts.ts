/**
 * The plan's charts (issue 19), drawn by Vega-Lite (compiled to Vega and rendered to SVG
 * headless: no browser, no canvas), written to a folder as SVG files beside one
 * self-contained HTML report that carries them inline with the figures and the recommendation:
 *   utilisation.svg  cores reserved against used over time, per policy
 *   queue.svg        jobs waiting for their first placement, by SLA class, per policy
 *   waits.svg        the CDF of waits, policy against policy
 *   policies.svg     throughput and p95 wait per class, policy against policy
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SLA_CLASSES } from '../../shared/index.js';
import type { PlanReport } from './index.js';
import type { SimResult } from './simulate.js';

/** At most this many points per policy and series: a chart of a day-long run stays small. */
const MAX_POINTS = 300;

type Row = Record<string, string | number>;

/** Every k-th sample, so that at most MAX_POINTS are left (the last one kept). */
function thin<T>(xs: readonly T[]): T[] {
  if (xs.length <= MAX_POINTS) return [...xs];
  const k = Math.ceil(xs.length / MAX_POINTS);
  const out = xs.filter((_, i) => i % k === 0);
  if (out.at(-1) !== xs.at(-1)) out.push(xs.at(-1)!);
  return out;
}

/** The four charts' Vega-Lite specifications, from the runs' samples and the report. */
export function chartSpecs(report: PlanReport, runs: readonly SimResult[]): Record<string, object> {
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: { font: 'sans-serif', view: { stroke: null } } };
  const utilisation: Row[] = [], queue: Row[] = [], waits: Row[] = [];
  for (const r of runs) {
    for (const s of thin(r.samples)) {
      const h = s[0] / 3_600_000;
      utilisation.push({ policy: r.policy, hours: h, series: 'reserved', cores: s[1] }, { policy: r.policy, hours: h, series: 'used', cores: s[2] });
      SLA_CLASSES.forEach((c, i) => queue.push({ policy: r.policy, hours: h, class: c, jobs: s[3 + i] ?? 0 }));
    }
    const w = r.jobs.filter((j) => j.placed_ms !== undefined).map((j) => (j.placed_ms! - j.arrival_ms) / 1000).sort((a, b) => a - b);
    thin(w.map((x, i) => [x, (i + 1) / w.length] as const)).forEach(([x, f]) => waits.push({ policy: r.policy, wait_s: x, share: f }));
  }
  const compare: Row[] = report.policies.flatMap((p) => [
    { policy: p.policy, measure: 'jobs per hour', value: p.throughput_per_hour },
    ...Object.entries(p.classes).map(([c, f]) => ({ policy: p.policy, measure: `${c} p95 wait (s)`, value: Number.isFinite(f!.wait_p95_s) ? f!.wait_p95_s : 0 })),
  ]);
  const policies = report.policies.map((p) => p.policy);
  const color = { field: 'policy', type: 'nominal', scale: { domain: policies }, title: 'policy' };
  return {
    utilisation: {
      ...base, title: 'Cores reserved and used over time', width: 640, height: 240, data: { values: utilisation },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x: { field: 'hours', type: 'quantitative', title: 'hours since the first arrival' },
        y: { field: 'cores', type: 'quantitative', title: 'cores' },
        color, strokeDash: { field: 'series', type: 'nominal', title: 'cores' },
      },
    },
    queue: {
      ...base, title: 'Jobs waiting for their first placement, by SLA class', data: { values: queue },
      facet: { column: { field: 'policy', type: 'nominal', sort: policies, title: null } },
      spec: {
        width: 200, height: 160, mark: { type: 'area', interpolate: 'step-after' },
        encoding: {
          x: { field: 'hours', type: 'quantitative', title: 'hours' },
          y: { field: 'jobs', type: 'quantitative', stack: true, title: 'jobs waiting' },
          color: { field: 'class', type: 'nominal', scale: { domain: [...SLA_CLASSES] }, title: 'class' },
        },
      },
    },
    waits: {
      ...base, title: 'Waits for a first placement (CDF)', width: 640, height: 240, data: { values: waits },
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x: { field: 'wait_s', type: 'quantitative', title: 'wait (s)', scale: { type: 'symlog' } },
        y: { field: 'share', type: 'quantitative', title: 'share of jobs', axis: { format: '%' } },
        color,
      },
    },
    policies: {
      ...base, title: 'Policy against policy', data: { values: compare },
      facet: { column: { field: 'measure', type: 'nominal', title: null } },
      spec: { width: 140, height: 180, mark: 'bar', encoding: { x: { field: 'policy', type: 'nominal', sort: policies, title: null }, y: { field: 'value', type: 'quantitative', title: null }, color } },
      resolve: { scale: { y: 'independent' } },
    },
  };
}

/** Renders a Vega-Lite specification to SVG (headless). */
async function svgOf(spec: object): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec as Parameters<typeof compile>[0]).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Writes the four SVG charts and report.html into `dir`; returns the files written. */
export async function writeCharts(dir: string, report: PlanReport, runs: readonly SimResult[]): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const specs = chartSpecs(report, runs);
  const svgs: Record<string, string> = {};
  const files: string[] = [];
  for (const [name, spec] of Object.entries(specs)) {
    svgs[name] = await svgOf(spec);
    const file = path.join(dir, `${name}.svg`);
    writeFileSync(file, svgs[name]);
    files.push(file);
  }
  const classes = [...new Set(report.policies.flatMap((p) => Object.keys(p.classes)))];
  const rows = report.policies.map((p) => `<tr><th>${escape(p.policy)}</th><td>${p.succeeded}/${p.jobs}</td><td>${(p.makespan_s / 3600).toFixed(2)} h</td><td>${p.throughput_per_hour.toFixed(0)}</td><td>${Number.isFinite(p.sustained_per_hour) ? p.sustained_per_hour.toFixed(0) : '–'}</td>${
    classes.map((c) => `<td>${p.classes[c] && Number.isFinite(p.classes[c]!.wait_p95_s) ? `${p.classes[c]!.wait_p95_s.toFixed(0)} s` : '–'}</td>`).join('')
  }<td>${Object.values(p.classes).reduce((s, f) => s + (f?.missed_deadlines ?? 0), 0)}</td><td>${p.memory_kills}</td><td>${Number.isFinite(p.reserved_vs_used.cores_used_share) ? `${(p.reserved_vs_used.cores_used_share * 100).toFixed(0)} %` : '–'}</td><td>${p.node_hours.toFixed(1)}</td><td>${p.cost.toFixed(2)}</td></tr>`).join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Prescient capacity plan</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th:first-child{text-align:left}figure{margin:1.5em 0}</style></head>
<body>
<h1>Capacity plan</h1>
<p id="recommendation">${escape(report.recommendation.sentence)}</p>
<p>Seed ${report.seed}, model ${escape(report.model_version)}${report.error_scale !== 1 ? `, its spread ×${report.error_scale}` : ''}.</p>
<table id="policies"><thead><tr><th>policy</th><th>done</th><th>makespan</th><th>jobs/h</th><th>sustained jobs/h</th>${classes.map((c) => `<th>${escape(c)} p95 wait</th>`).join('')}<th>missed deadlines</th><th>memory kills</th><th>cores used / reserved</th><th>node-hours</th><th>cost</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${Object.entries(svgs).map(([name, svg]) => `<figure class="chart" id="chart-${name}">${svg}</figure>`).join('\n')}
</body></html>
`;
  const file = path.join(dir, 'report.html');
  writeFileSync(file, html);
  files.push(file);
  return files;
}
