/**
 * Leader election through a Consul session and KV lock (Consul's documented leader-election
 * recipe). A session's TTL cannot be under 10 s, and Consul may reap an expired one up to 2×TTL
 * late: a takeover after `kill -9` took 18.5–19.6 s that way. So the session is also tied to a
 * TTL health check of a few seconds that the coordinator passes every second: once it stops,
 * the check goes critical, Consul invalidates the session at once and the lock is released;
 * then the session's lock-delay applies, which we set short on purpose (Consul's default is 15 s).
 */
import type Consul from 'consul';
import { LEADER_KEY, TERM_KEY, consulClient, describeValue, type KvItem, type LeaderInfo } from '../../shared/index.js';
import type { ElectionEvents, LeaderElection } from './index.js';
import type { Log, LineLevel } from '../../shared/log.js';

export interface ConsulElectionOptions {
  /** host:port of Consul's HTTP API. */
  consulHttp: string;
  /** The coordinators' ACL token (shared/pki secret `consul-coordinator`): taking the lock and writing the term need it. */
  consulToken?: string;
  candidateId: string;
  /** host:port this candidate serves gRPC on, published when it leads. */
  advertise: string;
  ttlSeconds?: number;
  lockDelaySeconds?: number;
  /** The health check the session is tied to goes critical this long after its last pass (default 3). */
  healthTtlSeconds?: number;
  /** How often a standby tries to take the lock and a leader checks it still holds it. */
  pollMs?: number;
  /**
   * A second record of the highest term issued, outside Consul. A Consul dev agent keeps its KV
   * in memory, so after a restart its counter starts again at 0; terms must never go back, or
   * agents that saw a higher one would refuse every new leader.
   */
  termRecord?: TermRecord;
  log?: Log;
}

/** Durable highest-term record, consulted and advanced alongside Consul's counter. */
export interface TermRecord {
  highest(): Promise<number>;
  advance(term: number): Promise<void>;
}

export class ConsulLeaderElection implements LeaderElection {
  private readonly consul: Consul;
  private readonly ttl: number;
  private readonly lockDelay: number;
  private readonly pollMs: number;
  private session?: string;
  private leading = false;
  private term = 0;
  private timer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
  private stopped = false;
  private events?: ElectionEvents;
  private busy = false;
  private readonly checkId: string;
  private checkTimer?: NodeJS.Timeout;
  /** No campaigning before this (epoch ms): set by resign(). */
  private sitOutUntil = 0;

  constructor(private readonly opts: ConsulElectionOptions) {
    this.consul = consulClient(opts.consulHttp, opts.consulToken);
    this.ttl = opts.ttlSeconds ?? 10;
    this.lockDelay = opts.lockDelaySeconds ?? 1;
    this.pollMs = opts.pollMs ?? 1000;
    this.checkId = `prescient-coordinator-${opts.candidateId.replace(/[^\w.-]/g, '_')}`;
  }

  isLeader(): boolean { return this.leading; }

  async start(events: ElectionEvents): Promise<void> {
    this.events = events;
    const ttl = this.opts.healthTtlSeconds ?? 3;
    // `id` is what Consul's /agent/check/register reads (the client's types name only service checks' `checkid`).
    const check = { id: this.checkId, name: `prescient coordinator ${this.opts.candidateId} is alive`, ttl: `${ttl}s` };
    await this.consul.agent.check.register(check as unknown as Parameters<Consul['agent']['check']['register']>[0]);
    await this.passCheck();
    this.checkTimer = setInterval(() => void this.passCheck(), Math.min(1000, (ttl * 1000) / 3));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.pollMs);
    this.renewTimer = setInterval(() => void this.renew(), (this.ttl * 1000) / 3);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.renewTimer);
    clearInterval(this.checkTimer);
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    const session = this.session;
    this.session = undefined;
    if (this.leading) this.demote('stopped');
    if (session) {
      // Releasing before destroying lets a standby acquire at once, without the lock-delay.
      await this.consul.kv.set({ key: LEADER_KEY, value: '', release: session }).catch(() => undefined);
      await this.consul.session.destroy(session).catch(() => undefined);
    }
    await this.consul.agent.check.deregister(this.checkId).catch(() => undefined);
  }

  private async passCheck(): Promise<void> {
    await this.consul.agent.check.pass(this.checkId).catch((e: Error) => this.log(`could not pass the health check: ${e.message}`, 'warn'));
  }

  async resign(reason: string, sitOutMs = 3 * this.pollMs): Promise<void> {
    this.sitOutUntil = Date.now() + sitOutMs;
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    const session = this.session;
    this.session = undefined;
    this.demote(`resigned: ${reason}`);
    if (!session) return;
    await this.consul.kv.set({ key: LEADER_KEY, value: '', release: session }).catch(() => undefined);
    await this.consul.session.destroy(session).catch(() => undefined);
  }

  private log(msg: string, level?: LineLevel) { this.opts.log?.(`[election ${this.opts.candidateId}] ${msg}`, level); }

  private demote(reason: string) {
    if (!this.leading) return;
    this.leading = false;
    this.log(`lost leadership of term ${this.term}: ${reason}`, 'warn');
    this.events?.demoted(reason);
  }

  private async renew(): Promise<void> {
    if (!this.session || this.stopped) return;
    try {
      const res = await this.consul.session.renew(this.session);
      if (!res || (Array.isArray(res) && res.length === 0)) throw new Error('session not found');
    } catch (e) {
      this.log(`session renew failed: ${(e as Error).message}`, 'warn');
      this.session = undefined;
      this.demote('session lost');
    }
  }

  /** One step of the campaign: make sure we have a session, then take or check the lock. */
  private async tick(): Promise<void> {
    if (this.busy || this.stopped || Date.now() < this.sitOutUntil) return;
    this.busy = true;
    try {
      if (!this.session) {
        const s = await this.consul.session.create({
          name: `prescient-coordinator-${this.opts.candidateId}`,
          ttl: `${this.ttl}s`, lockdelay: `${this.lockDelay}s`, behavior: 'release', checks: ['serfHealth', this.checkId],
        });
        this.session = s.ID;
      }
      const item = (await this.consul.kv.get(LEADER_KEY)) as KvItem | null;
      if (this.leading) {
        if (item?.Session !== this.session) this.demote('lock is no longer held by this session');
        return;
      }
      // Someone else leads. Our own session on the lock while not leading is an election that
      // failed after taking it (the durable term record unreachable while NATS restarts): it goes
      // on from there. Taken for someone else's, the lock stayed ours at term 0 and nobody led.
      if (item?.Session && item.Session !== this.session) return;
      const acquired = await this.consul.kv.set({ key: LEADER_KEY, value: this.describe(0), acquire: this.session });
      if (!acquired || this.stopped) return;
      this.term = await this.nextTerm();
      // Re-acquiring a lock this session holds just updates its value.
      await this.consul.kv.set({ key: LEADER_KEY, value: this.describe(this.term), acquire: this.session });
      this.leading = true;
      this.log(`elected, term ${this.term}`);
      this.events?.elected(this.term);
    } catch (e) {
      this.log(`campaign step failed: ${(e as Error).message}`, 'warn');
      if (this.leading) this.demote(`consul unreachable: ${(e as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private describe(term: number): string {
    const info: LeaderInfo = { id: this.opts.candidateId, address: this.opts.advertise, term };
    return JSON.stringify(info);
  }

  /** Increments the term counter with check-and-set, so two leaders can never share a term. */
  private async nextTerm(): Promise<number> {
    const floor = (await this.opts.termRecord?.highest()) ?? 0;
    for (;;) {
      const item = (await this.consul.kv.get(TERM_KEY)) as KvItem | null;
      // Read from a store others can write: anything but a whole number is refused, never used
      // (`abc` there once made the next term NaN, and no agent could register).
      const stored = item?.Value ? parseTerm(item.Value) : 0;
      if (stored === undefined) this.log(`${TERM_KEY} holds ${describeValue(item?.Value)}, not a term: ignored, counting from the durable record (${floor})`, 'warn');
      const next = Math.max(stored ?? 0, floor) + 1;
      if (await this.consul.kv.set({ key: TERM_KEY, value: String(next), cas: item?.ModifyIndex ?? 0 })) {
        await this.opts.termRecord?.advance(next);
        return next;
      }
    }
  }
}

/** A term as stored in Consul: a whole number from 0 up, written as digits; undefined otherwise. */
export function parseTerm(v: string): number | undefined {
  if (!/^\d{1,15}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}
