/**
 * THE FAKE CLOUD, at the outermost boundary: a CloudProvider that records every call and keeps
 * its instances in memory, for controller tests that must not depend on a cloud API this
 * machine cannot reach. Everything else in those tests is real (NATS, Consul, the leader, the
 * agents). The EC2 end to end against moto is test/integration/burst-aws.test.ts.
 */
import { CLUSTER_TAG, ProviderError, type CloudInstance, type CloudProvider, type InstanceType, type LaunchResult, type LaunchSpec } from '../../coordinator/burst/index.js';

export type FakeCall = { op: 'verify'; types: string[] } | { op: 'launch'; spec: LaunchSpec } | { op: 'describe'; ids: string[] } | { op: 'list'; cluster: string } | { op: 'terminate'; ids: string[] };

export class FakeCloud implements CloudProvider {
  readonly name = 'fake';
  readonly region = 'fake-region-1';
  readonly calls: FakeCall[] = [];
  readonly instances = new Map<string, CloudInstance>();
  /** Make the next calls of an operation throw this (until cleared). */
  failing: Partial<Record<FakeCall['op'], ProviderError>> = {};
  /** Capacity left per type (on-demand and spot alike): a launch past it gets what is left, the rest refused. */
  capacity: Record<string, number> = {};
  private seq = 0;

  async verify(types: readonly InstanceType[] = []): Promise<void> { this.record({ op: 'verify', types: types.map((t) => t.name) }); }

  async launch(spec: LaunchSpec): Promise<LaunchResult> {
    this.record({ op: 'launch', spec });
    if (!spec.tags[CLUSTER_TAG]) throw new ProviderError(this.name, 'launch', 'invalid', 'no cluster tag');
    const left = this.capacity[spec.instance_type] ?? Infinity;
    const n = Math.min(spec.count, left);
    if (n === 0) throw new ProviderError(this.name, 'launch', 'capacity', `no ${spec.instance_type} capacity`);
    if (left !== Infinity) this.capacity[spec.instance_type] = left - n;
    const instances = Array.from({ length: n }, () => {
      const x: CloudInstance = { id: `i-fake${String(++this.seq).padStart(4, '0')}`, instance_type: spec.instance_type, state: 'pending', spot: spec.spot, launched_at: Date.now(), tags: { ...spec.tags } };
      this.instances.set(x.id, x);
      return { ...x };
    });
    return n < spec.count ? { instances, refused: new ProviderError(this.name, 'launch', 'capacity', `${spec.count - n} of ${spec.count} × ${spec.instance_type}: no capacity`) } : { instances };
  }

  async describe(ids: readonly string[]): Promise<CloudInstance[]> {
    this.record({ op: 'describe', ids: [...ids] });
    return ids.map((id) => {
      const x = this.instances.get(id);
      if (!x) return { id, instance_type: '', state: 'terminated', spot: false, launched_at: 0, tags: {} };
      if (x.state === 'pending') x.state = 'running';
      return { ...x };
    });
  }

  async list(cluster: string): Promise<CloudInstance[]> {
    this.record({ op: 'list', cluster });
    return [...this.instances.values()].filter((x) => x.tags[CLUSTER_TAG] === cluster && x.state !== 'terminated').map((x) => ({ ...x }));
  }

  async terminate(ids: readonly string[]): Promise<void> {
    this.record({ op: 'terminate', ids: [...ids] });
    for (const id of ids) { const x = this.instances.get(id); if (x) x.state = 'terminated'; }
  }

  launches(): LaunchSpec[] { return this.calls.flatMap((c) => (c.op === 'launch' ? [c.spec] : [])); }
  terminated(): string[] { return this.calls.flatMap((c) => (c.op === 'terminate' ? c.ids : [])); }

  private record(c: FakeCall): void {
    this.calls.push(c);
    const err = this.failing[c.op];
    if (err) throw err;
  }
}
