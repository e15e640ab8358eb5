/**
 * `prescient plan --charts` (issue 19) run as a user runs it, and its HTML report opened in real
 * Chromium (Debian's, installed by deploy/install.sh, driven by playwright-core): every chart is
 * drawn (Vega-Lite's SVG marks laid out with a size), the table lists every policy, and a
 * screenshot of the page is not blank.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI } from '../helpers/cluster.js';

const CHROMIUM = process.env.PRESCIENT_CHROMIUM ?? '/usr/bin/chromium';
const unavailable = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (deploy/install.sh installs Debian's chromium; PRESCIENT_CHROMIUM overrides)`;
if (unavailable) console.log(`  skipped: the browser check of the plan report (${unavailable})`);
const it = unavailable ? test.skip : test;
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const out = mkdtempSync(path.join(os.tmpdir(), 'prescient-plan-report-'));
test.after(() => rmSync(out, { recursive: true, force: true }));

it('the plan report opens in Chromium with its four charts drawn and every policy in its table', async () => {
  const r = spawnSync(process.execPath, [CLI, 'plan', '--workload', path.join(repo, 'deploy/plan/workload.yaml'), '--fleet', path.join(repo, 'deploy/plan/fleet.yaml'),
    '--policies', 'predictive,fixed-slots:2,oracle', '--charts', out, '--json'], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { charts: string[]; recommendation: { sentence: string } };
  assert.equal(report.charts.map((f) => path.basename(f)), ['utilisation.svg', 'queue.svg', 'waits.svg', 'policies.svg', 'report.html']);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`file://${path.join(out, 'report.html')}`);
    const charts = await page.$$eval('figure.chart', (figs) => figs.map((f) => {
      const svg = f.querySelector('svg');
      const box = svg?.getBoundingClientRect();
      // Marks Vega drew with a size: lines and areas (paths with a d), bars (rects).
      const marks = svg ? [...svg.querySelectorAll('g.mark-line path, g.mark-area path, g.mark-rect path, g.mark-rect rect, path.mark-line, g[class*="mark-"] path')]
        .filter((m) => { const b = (m as SVGGraphicsElement).getBBox(); return b.width > 0 || b.height > 0; }).length : 0;
      return { id: f.id, width: box?.width ?? 0, height: box?.height ?? 0, marks };
    }));
    assert.equal(charts.map((c) => c.id), ['chart-utilisation', 'chart-queue', 'chart-waits', 'chart-policies']);
    for (const c of charts) assert.ok(c.width > 300 && c.height > 150 && c.marks > 0, JSON.stringify(c));
    const rows = await page.$$eval('#policies tbody th', (ths) => ths.map((t) => t.textContent));
    assert.equal(rows, ['predictive', 'fixed-slots:2', 'oracle']);
    assert.is(await page.textContent('#recommendation'), report.recommendation.sentence);
    // The screenshot: a page with its charts drawn has many colours, a blank one a few.
    const png = await page.screenshot({ fullPage: true });
    assert.ok(png.length > 50_000, `screenshot of ${png.length} bytes`);
    assert.ok(readFileSync(path.join(out, 'utilisation.svg'), 'utf8').startsWith('<svg'));
  } finally {
    await browser.close();
  }
});

test.run();
