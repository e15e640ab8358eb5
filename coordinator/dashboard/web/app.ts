/**
 * The dashboard page: Preact (with htm, so no JSX step) and uPlot, bundled by esbuild
 * (deploy/scripts/build-web.mjs). It takes a snapshot from /api/snapshot, then follows
 * /api/events (server-sent events): a snapshot every couple of seconds, each job event at once.
 */
import { h, render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';

const html = htm.bind(h);

interface Usage { cpu_cores: number; memory_gb: number; duration_s: number; bandwidth_mbps: number; gpu_percent: number }
interface Job {
  id: string; owner: string; state: string; node: string | null; first_at: number; updated_at: number; reason: string;
  predicted: { expected: Usage; upper: Usage; model_version: string } | null; actual: Usage | null; cores: number | null; output_path: string | null;
  states: Array<{ state: string; at: number }>;
}
interface NodeRow {
  node_id: string; cpu_model: string; last_seen: number; cores: { total: number; free: number }; memory_gb: { total: number; free: number };
  bandwidth_mbps: { total: number; free: number }; gpus: Array<{ id: number; model: string; sessions: number; free_sessions: number }>; reservations: string[];
}
interface QueueRow { position: number; job_id: string; class: string; waiting_s: number; estimated_start: string | null; estimate: string; reason: string }
interface Models { in_service: string | null; versions: Array<{ version: string; created_at: string; current: boolean }>; targets: Array<{ target: string; mape: number; coverage: number; runs: number }>; alerts: Array<{ at: number; kind: string; message: string }> }
interface Burst { configured: boolean; provider?: string; region?: string; instances: Array<{ id: string; instance_type: string; state: string; spot: boolean; joined: boolean }>; decisions: Array<{ at: number; action?: string; reason?: string; summary?: string }> }
interface Snapshot { at: number; leader: { id: string; address: string } | null; nodes: NodeRow[]; queue: QueueRow[]; jobs: Job[]; models: Models; burst: Burst }

const ACTIVE = new Set(['queued', 'placed', 'running']);
const fmt = (x: number | undefined | null, d = 1) => (x === undefined || x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));
const time = (t: number) => new Date(t).toLocaleTimeString();

function Bar({ used, total }: { used: number; total: number }) {
  const pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
  return html`<span class="bar"><span style=${`width:${pct}%`}></span></span>`;
}

/** A uPlot chart kept across renders; `data` replaces its series each time. */
function Chart({ id, opts, data }: { id: string; opts: Omit<uPlot.Options, 'width' | 'height'>; data: uPlot.AlignedData }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!el.current) return;
    plot.current = new uPlot({ ...opts, width: el.current.clientWidth || 600, height: 200 } as uPlot.Options, data, el.current);
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => { plot.current?.setData(data); }, [data]);
  return html`<div class="chart" id=${id} ref=${el}></div>`;
}

function Nodes({ nodes, history }: { nodes: NodeRow[]; history: uPlot.AlignedData }) {
  return html`<section id="nodes"><h2>Nodes</h2>
    ${nodes.length ? html`<table><thead><tr><th>node</th><th>cores reserved</th><th>memory reserved (GB)</th><th>GPU sessions</th><th class="num">tasks</th><th>last seen</th></tr></thead><tbody>
      ${nodes.map((n) => html`<tr data-node=${n.node_id}>
        <td>${n.node_id}</td>
        <td><${Bar} used=${n.cores.total - n.cores.free} total=${n.cores.total} />${n.cores.total - n.cores.free} / ${n.cores.total}</td>
        <td><${Bar} used=${n.memory_gb.total - n.memory_gb.free} total=${n.memory_gb.total} />${fmt(n.memory_gb.total - n.memory_gb.free, 2)} / ${fmt(n.memory_gb.total, 1)}</td>
        <td>${n.gpus.length ? n.gpus.map((g) => `${g.id}: ${g.sessions - g.free_sessions}/${g.sessions}`).join(' ') : '–'}</td>
        <td class="num">${n.reservations.length}</td><td class="muted">${time(n.last_seen)}</td></tr>`)}
    </tbody></table>` : html`<p class="empty">No node has registered with a leader yet.</p>`}
    <${Chart} id="chart-cores" data=${history} opts=${{
      title: 'Cores: reserved against capacity', scales: { x: { time: true } },
      series: [{}, { label: 'capacity', stroke: '#94a3b8', width: 1 }, { label: 'reserved', stroke: '#2f6fed', fill: 'rgba(47,111,237,0.15)', width: 2 }],
    }} />
  </section>`;
}

function Queue({ queue }: { queue: QueueRow[] }) {
  const byClass = ['premium', 'standard', 'batch'].map((c) => [c, queue.filter((q) => q.class === c).length] as const);
  return html`<section id="queue"><h2>Queue <span class="muted">${byClass.map(([c, n]) => `${c} ${n}`).join(' · ')}</span></h2>
    ${queue.length ? html`<table><thead><tr><th class="num">#</th><th>job</th><th>class</th><th class="num">waiting</th><th>estimated start</th><th>why</th></tr></thead><tbody>
      ${queue.map((q) => html`<tr data-queued=${q.job_id}><td class="num">${q.position}</td><td>${q.job_id}</td><td>${q.class}</td><td class="num">${q.waiting_s} s</td>
        <td>${q.estimated_start ? new Date(q.estimated_start).toLocaleTimeString() : q.estimate}</td><td class="muted">${q.reason}</td></tr>`)}
    </tbody></table>` : html`<p class="empty">Nothing is waiting.</p>`}
  </section>`;
}

function Jobs({ jobs, admin, act }: { jobs: Job[]; admin: boolean; act: (j: Job) => void }) {
  const ended = jobs.filter((j) => j.actual && j.predicted).slice(0, 30).reverse();
  const chart: uPlot.AlignedData = [ended.map((_, i) => i), ended.map((j) => j.predicted!.expected.duration_s), ended.map((j) => j.predicted!.upper.duration_s), ended.map((j) => j.actual!.duration_s)];
  return html`<section id="jobs" class="wide"><h2>Jobs <span class="muted">predicted against actual, with the upper bound reserved for</span></h2>
    ${jobs.length ? html`<table><thead><tr><th>job</th><th>state</th><th>node</th><th class="num">cores</th>
      <th class="num">duration s: predicted (bound)</th><th class="num">actual</th><th class="num">memory GB: predicted (bound)</th><th class="num">actual</th><th>updated</th><th></th></tr></thead><tbody>
      ${jobs.map((j) => {
        const p = j.predicted, a = j.actual;
        const overD = p && a && a.duration_s > p.upper.duration_s, overM = p && a && a.memory_gb > p.upper.memory_gb;
        return html`<tr data-job-id=${j.id} data-state=${j.state}>
          <td title=${j.states.map((s) => `${s.state} ${time(s.at)}`).join(' → ')}>${j.id}</td>
          <td><span class=${`state ${j.state}`}>${j.state}</span>${j.reason && j.state !== 'succeeded' ? html` <span class="muted">${j.reason.slice(0, 80)}</span>` : ''}</td>
          <td>${j.node ?? '–'}</td><td class="num">${j.cores ?? '–'}</td>
          <td class="num">${p ? `${fmt(p.expected.duration_s)} (${fmt(p.upper.duration_s)})` : '–'}</td><td class=${`num ${overD ? 'over' : ''}`}>${a ? fmt(a.duration_s) : '–'}</td>
          <td class="num">${p ? `${fmt(p.expected.memory_gb, 2)} (${fmt(p.upper.memory_gb, 2)})` : '–'}</td><td class=${`num ${overM ? 'over' : ''}`}>${a ? fmt(a.memory_gb, 2) : '–'}</td>
          <td class="muted">${time(j.updated_at)}</td>
          <td>${admin && ACTIVE.has(j.state) ? html`<button data-action="cancel" onClick=${() => act(j)}>cancel</button>` : ''}</td></tr>`;
      })}
    </tbody></table>` : html`<p class="empty">No job in the last hour.</p>`}
    <${Chart} id="chart-accuracy" data=${chart} opts=${{
      title: 'Duration of the last ended jobs: predicted, its bound, actual (s)', scales: { x: { time: false, range: (_u: uPlot, min: number, max: number) => [min - 0.5, max + 0.5] as uPlot.Range.MinMax } }, axes: [{ label: 'job (oldest left)' }, {}],
      series: [{}, { label: 'predicted', stroke: '#2f6fed', width: 2 }, { label: 'bound', stroke: '#94a3b8', dash: [4, 4] }, { label: 'actual', stroke: '#c11f3a', width: 2, points: { show: true } }],
    }} />
  </section>`;
}

function ModelsView({ m }: { m: Models }) {
  return html`<section id="models"><h2>Model <span class="muted">${m.in_service ?? 'none in service'}</span></h2>
    ${m.targets.length ? html`<table><thead><tr><th>target</th><th class="num">rolling MAPE</th><th class="num">under bound</th><th class="num">runs</th></tr></thead><tbody>
      ${m.targets.map((t) => html`<tr><td>${t.target}</td><td class="num">${fmt(t.mape)} %</td><td class="num">${Number.isFinite(t.coverage) ? `${fmt(100 * t.coverage, 0)} %` : '–'}</td><td class="num">${t.runs}</td></tr>`)}
    </tbody></table>` : html`<p class="empty">No feedback yet: the rolling error appears once encodes have run.</p>`}
    <h2>Versions</h2>
    <table><tbody>${m.versions.slice(0, 6).map((v) => html`<tr><td>${v.current ? '● ' : ''}${v.version}</td><td class="muted">${v.created_at.slice(0, 19).replace('T', ' ')}</td></tr>`)}</tbody></table>
    <h2>Alerts</h2>
    ${m.alerts.length ? html`<table><tbody>${m.alerts.map((a) => html`<tr><td class="muted">${time(a.at)}</td><td>${a.kind}</td><td>${a.message}</td></tr>`)}</tbody></table>` : html`<p class="empty">None.</p>`}
  </section>`;
}

function BurstView({ b }: { b: Burst }) {
  return html`<section id="burst"><h2>Cloud burst ${b.configured ? html`<span class="muted">${b.provider} ${b.region}</span>` : ''}</h2>
    ${!b.configured ? html`<p class="empty">Not configured (coordinator --burst).</p>` : html`
      ${b.instances.length ? html`<table><thead><tr><th>instance</th><th>type</th><th>state</th><th>spot</th><th>joined</th></tr></thead><tbody>
        ${b.instances.map((x) => html`<tr><td>${x.id}</td><td>${x.instance_type}</td><td>${x.state}</td><td>${x.spot ? 'spot' : 'on-demand'}</td><td>${x.joined ? 'yes' : 'no'}</td></tr>`)}</tbody></table>` : html`<p class="empty">No instances.</p>`}
      <h2>Decisions</h2>
      <table><tbody>${b.decisions.slice(-8).reverse().map((d) => html`<tr><td class="muted">${time(d.at)}</td><td>${d.action ?? ''}</td><td>${d.summary ?? d.reason ?? ''}</td></tr>`)}</tbody></table>`}
  </section>`;
}

function App() {
  const [snap, setSnap] = useState<Snapshot | null>(null);
  const [jobs, setJobs] = useState<Map<string, Job>>(new Map());
  const [live, setLive] = useState(false);
  const [history, setHistory] = useState<uPlot.AlignedData>([[], [], []]);
  const [token, setToken] = useState(sessionStorage.getItem('prescient-admin-token') ?? '');
  const [admin, setAdmin] = useState(false);
  const [notice, setNotice] = useState('');

  useEffect(() => {
    const es = new EventSource('/api/events');
    es.onopen = () => setLive(true);
    es.onerror = () => setLive(false);
    es.addEventListener('snapshot', (ev) => {
      const s = JSON.parse((ev as MessageEvent).data) as Snapshot;
      setSnap(s);
      setJobs((old) => { const m = new Map(old); for (const j of s.jobs) { const o = m.get(j.id); if (!o || o.updated_at <= j.updated_at) m.set(j.id, j); } return m; });
      const cap = s.nodes.reduce((a, n) => a + n.cores.total, 0), res = s.nodes.reduce((a, n) => a + n.cores.total - n.cores.free, 0);
      setHistory((h) => { const keep = (xs: number[], x: number) => [...xs, x].slice(-300); return [keep(h[0] as number[], s.at / 1000), keep(h[1] as number[], cap), keep(h[2] as number[], res)]; });
    });
    es.addEventListener('job', (ev) => {
      const j = JSON.parse((ev as MessageEvent).data) as Job;
      setJobs((old) => new Map(old).set(j.id, j));
    });
    return () => es.close();
  }, []);

  useEffect(() => {
    fetch('/api/whoami', { headers: token ? { authorization: `Bearer ${token}` } : {} }).then((r) => r.json()).then((w: { admin: boolean }) => setAdmin(w.admin), () => setAdmin(false));
  }, [token]);

  const act = (j: Job) => {
    fetch(`/api/jobs/${encodeURIComponent(j.id)}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
      .then((r) => r.json()).then((r: { message?: string; error?: string }) => setNotice(r.message ?? r.error ?? ''), (e: Error) => setNotice(e.message));
  };
  const list = [...jobs.values()].sort((a, b) => b.updated_at - a.updated_at).slice(0, 200);

  if (!snap) return html`<p class="loading">Connecting to the cluster…</p>`;
  return html`<div>
    <header><h1>Prescient</h1>
      <span class="meta" id="leader">${snap.leader ? `leader ${snap.leader.id}` : 'no leader: jobs wait in JetStream'}</span>
      <span class="meta">${snap.nodes.length} node(s) · ${snap.queue.length} queued</span>
      <span class="live" id="live"><span class=${`dot ${live ? 'on' : ''}`}></span>${live ? 'live' : 'reconnecting…'}</span>
      ${admin ? html`<span id="admin">admin</span>` : html`<form class="token" onSubmit=${(e: Event) => { e.preventDefault(); const v = ((e.target as HTMLFormElement).elements.namedItem('token') as HTMLInputElement).value.trim(); sessionStorage.setItem('prescient-admin-token', v); setToken(v); }}>
        <input name="token" type="password" placeholder="admin token (read-only without)" autocomplete="off" /><button type="submit">unlock</button></form>`}
    </header>
    ${notice ? html`<p class="loading" id="notice">${notice}</p>` : ''}
    <main>
      <${Nodes} nodes=${snap.nodes} history=${history} />
      <${Queue} queue=${snap.queue} />
      <${Jobs} jobs=${list} admin=${admin} act=${act} />
      <${ModelsView} m=${snap.models} />
      <${BurstView} b=${snap.burst} />
    </main></div>`;
}

render(html`<${App} />`, document.getElementById('app')!);
