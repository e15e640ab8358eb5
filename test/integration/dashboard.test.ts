/**
 * The web dashboard (issue 20) as a user sees it: a coordinator started from the CLI with
 * `--dashboard`, an agent, and the page opened in real Chromium (Debian's, driven by
 * playwright-core). A job submitted on NATS moves through its states on the page, live; its
 * prediction and actuals appear; cancel needs the admin token; a screenshot is not blank.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser, Page } from 'playwright-core';
import type { AgentHandle } from '../../node-agent/index.js';
import { pkiDirOf } from '../../shared/index.js';
import { agent, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
import { spawnCoordinator, type CoordinatorProcess } from '../helpers/bench-cluster.js';

const CHROMIUM = process.env.PRESCIENT_CHROMIUM ?? '/usr/bin/chromium';
const unavailable = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (deploy/install.sh installs Debian's chromium; PRESCIENT_CHROMIUM overrides)`;
if (unavailable) console.log(`  skipped: the dashboard in a browser (${unavailable})`);
const it = unavailable ? test.skip : test;

let s: TestStack;
let c: CoordinatorProcess;
let a: AgentHandle;
let url: string;
let browser: Browser | undefined;
let page: Page;

test.before(async () => {
  if (unavailable) return;
  s = await startStack('dashboard');
  c = await spawnCoordinator(s, 'c1', ['--dashboard', '127.0.0.1:0']);
  // Logged URLs are cut to scheme and host (shared/redact.ts).
  url = `${await waitFor('the dashboard\'s address in the coordinator\'s log', () => /\[dashboard\] serving on (http:\/\/[\d.]+:\d+)/.exec(c.output())?.[1])}/`;
  a = await agent(s, 'node-d', '0', 2);
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(url);
});

test.after(async () => {
  await browser?.close();
  await a?.stop();
  await c?.stop();
  await s?.down();
});

/** Watches one job's row on the page, recording each state it shows, until `last`. */
async function statesShown(id: string, last: string, timeoutMs = 90_000): Promise<string[]> {
  const seen: string[] = [];
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const st = await page.getAttribute(`tr[data-job-id="${id}"]`, 'data-state', { timeout: 1000 }).catch(() => null);
    if (st && seen.at(-1) !== st) seen.push(st);
    if (st === last) return seen;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${id} showed ${seen.join(' → ') || 'nothing'}, never ${last}`);
}

it('the page shows the leader, the node and its cores, live', async () => {
  await page.waitForSelector('#live .dot.on', { timeout: 20_000 });
  await page.waitForSelector('tr[data-node="node-d"]', { timeout: 20_000 });
  assert.match(await page.textContent('#leader') ?? '', /leader c1/);
  assert.match(await page.textContent('tr[data-node="node-d"]') ?? '', /0 \/ 1/);
});

it('a submitted job moves through its states on the page, then shows its prediction against what it used', async () => {
  const id = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 6 }, output: { preset: 'medium' } }));
  const seen = await statesShown(id, 'succeeded');
  assert.ok(seen.includes('running'), `states shown: ${seen.join(' → ')}`);
  assert.ok(seen.indexOf('running') < seen.indexOf('succeeded'));
  const cells = await page.$$eval(`tr[data-job-id="${id}"] td`, (tds) => tds.map((t) => t.textContent ?? ''));
  assert.is(cells[2], 'node-d');
  assert.match(cells[4], /^\d+\.\d \(\d+\.\d\)$/, `predicted duration and its bound: ${cells[4]}`);
  assert.match(cells[5], /^\d+\.\d$/, `actual duration: ${cells[5]}`);
  assert.match(cells[7], /^\d+\.\d\d$/, `actual memory: ${cells[7]}`);
  // The accuracy chart draws the ended job (uPlot's canvas, sized).
  const canvas = await page.$eval('#chart-accuracy canvas', (el) => ({ w: (el as HTMLCanvasElement).width, h: (el as HTMLCanvasElement).height }));
  assert.ok(canvas.w > 200 && canvas.h > 100, JSON.stringify(canvas));
});

it('without the admin token the page offers no cancel and the API refuses one; with it a running job is cancelled from the page', async () => {
  const id = await submit(s, smallJob({ input: { resolution: '1920x1080', duration_s: 30 }, output: { preset: 'slow' } }));
  await statesShown(id, 'running');
  assert.is(await page.$(`tr[data-job-id="${id}"] button[data-action="cancel"]`), null);
  const refused = await fetch(`${url}api/jobs/${id}/cancel`, { method: 'POST' });
  assert.is(refused.status, 401);
  const wrong = await fetch(`${url}api/jobs/${id}/cancel`, { method: 'POST', headers: { authorization: 'Bearer not-the-token' } });
  assert.is(wrong.status, 401);
  const token = readFileSync(path.join(pkiDirOf(s.endpoints), 'secrets', 'dashboard'), 'utf8').trim();
  await page.fill('form.token input', token);
  await page.click('form.token button');
  await page.waitForSelector('#admin', { timeout: 10_000 });
  await page.click(`tr[data-job-id="${id}"] button[data-action="cancel"]`);
  const seen = await statesShown(id, 'cancelled', 60_000);
  assert.is(seen.at(-1), 'cancelled');
});

it('a screenshot of the page is not blank', async () => {
  const png = await page.screenshot({ fullPage: true });
  // PRESCIENT_DASHBOARD_SCREENSHOT=FILE keeps it, to look at.
  if (process.env.PRESCIENT_DASHBOARD_SCREENSHOT) writeFileSync(process.env.PRESCIENT_DASHBOARD_SCREENSHOT, png);
  assert.ok(png.length > 40_000, `screenshot of ${png.length} bytes`);
});

test.run();
