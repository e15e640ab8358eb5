/**
 * Google Compute Engine behind `CloudProvider`, through @google-cloud/compute's REST transport.
 *
 * One zone per provider (`region` is the zone, e.g. `europe-west1-b`). A launch is one
 * instances.insert per instance, each waited on through its zone operation; an instance counts as
 * launched only when its operation is DONE without error. Credentials come only from Application
 * Default Credentials (google-auth-library's chain) and never reach a log or an error.
 *
 * Labels: GCE label keys and values must be lowercase `[a-z0-9_-]`, at most 63 characters, and a
 * key must start with a letter. `gcpLabel` lowercases, replaces every other character with `_`,
 * cuts to 63 characters and prefixes a key that does not start with a letter with `x`. Tags come
 * back from describe/list as the sanitised labels; the cluster filter sanitises the cluster name the
 * same way, so a launch and a list always agree.
 *
 * Boot: GCE images run the `startup-script` metadata key (most have no cloud-init), so a
 * cloud-config launch is turned into the equivalent bash script (userdata.ts toStartupScript); a
 * launch whose user data is already a script passes it as it is.
 *
 * Names and idempotency: instance names are `<prefix>-<token hash>-<i>`, and each insert carries a
 * requestId (a UUID derived from the client token and the index), so a retried launch with the same
 * token neither launches twice nor fails (GCE answers the retry with the first operation).
 */
import { createHash } from 'node:crypto';
import { InstancesClient, MachineTypesClient, ZoneOperationsClient, ZonesClient } from '@google-cloud/compute';
import type { protos } from '@google-cloud/compute';
import { CLUSTER_TAG, ProviderError, shapeMismatch } from './types.js';
import type { CloudInstance, CloudProvider, InstanceState, InstanceType, LaunchResult, LaunchSpec, ProviderErrorKind } from './types.js';
import { toStartupScript } from '../userdata.js';

type IInstance = protos.google.cloud.compute.v1.IInstance;
type IOperation = protos.google.cloud.compute.v1.IOperation;
type GcpClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>;

export interface GcpProviderOptions {
  project: string;
  /** The zone instances launch in, e.g. `europe-west1-b`. */
  zone: string;
  /** Boot disk image: `projects/<p>/global/images/<name>` or `.../images/family/<family>` (the agent's image). */
  source_image: string;
  /** VPC network, default `global/networks/default`. */
  network?: string;
  /** Subnetwork, e.g. `regions/europe-west1/subnetworks/encode` (needed on custom-mode networks). */
  subnetwork?: string;
  /** Boot disk size in GB, default 20. */
  disk_size_gb?: number;
  /** Instance name prefix (lowercase letters, digits, `-`), default `prescient`. */
  name_prefix?: string;
  /** Give instances an ephemeral external IP (needed without Cloud NAT to reach the coordinator); default false. */
  external_ip?: boolean;
  /**
   * Passed to every @google-cloud/compute client. Production leaves it out (ADC, compute.googleapis.com);
   * tests point it at a loopback fixture server (`apiEndpoint`, `port`, `protocol`, `authClient`).
   */
  client_options?: GcpClientOptions;
}

const NAME = 'gcp';

export class GcpProvider implements CloudProvider {
  readonly name = NAME;
  readonly region: string;
  private readonly instances: InstancesClient;
  private readonly operations: ZoneOperationsClient;
  private readonly zones: ZonesClient;
  private readonly machineTypes: MachineTypesClient;

  constructor(private readonly options: GcpProviderOptions) {
    this.region = options.zone;
    const client = { fallback: true, ...options.client_options };
    this.instances = new InstancesClient({ ...client });
    this.operations = new ZoneOperationsClient({ ...client });
    this.zones = new ZonesClient({ ...client });
    this.machineTypes = new MachineTypesClient({ ...client });
  }

  async verify(types: readonly InstanceType[] = []): Promise<void> {
    const { project, zone } = this.options;
    try {
      const [z] = await this.zones.get({ project, zone });
      if (z.status && z.status !== 'UP') throw new ProviderError(NAME, 'verify', 'invalid', `zone ${zone} is ${z.status}`);
    } catch (e) {
      throw toProviderError('verify', e, `zone ${zone} in project ${project}`);
    }
    // Each catalogue type is offered in the zone with at least the vCPUs, memory and GPUs listed.
    for (const t of types) {
      let m: protos.google.cloud.compute.v1.IMachineType;
      try {
        [m] = await this.machineTypes.get({ project, zone, machineType: t.name });
      } catch (e) {
        if (isNotFound(e)) throw new ProviderError(NAME, 'verify', 'invalid', `machine type ${t.name} is not offered in zone ${zone}`);
        throw toProviderError('verify', e, `machine type ${t.name} in zone ${zone}`);
      }
      const wrong = shapeMismatch(t, {
        vcpus: Number(m.guestCpus ?? 0), memory_gb: Number(m.memoryMb ?? 0) / 1024,
        gpus: (m.accelerators ?? []).reduce((a, x) => a + Number(x.guestAcceleratorCount ?? 0), 0),
      });
      if (wrong) throw new ProviderError(NAME, 'verify', 'invalid', `machine type ${t.name}: ${wrong}`);
    }
  }

  async launch(spec: LaunchSpec): Promise<LaunchResult> {
    const { project, zone } = this.options;
    const names = Array.from({ length: spec.count }, (_, i) => instanceName(this.options.name_prefix ?? 'prescient', spec.client_token, i));
    // Insert one by one and stop at the first refusal (a quota refusal would refuse the rest too);
    // then wait on the accepted operations together.
    const accepted: Array<{ name: string; operation: IOperation }> = [];
    let refusal: unknown;
    for (const [i, name] of names.entries()) {
      try {
        const [op] = await this.instances.insert({ project, zone, requestId: requestId(spec.client_token, i), instanceResource: this.instanceResource(name, spec) });
        accepted.push({ name, operation: op.latestResponse as IOperation });
      } catch (e) {
        refusal = e;
        break;
      }
    }
    const done = await Promise.allSettled(accepted.map((a) => this.waitFor(a.operation)));
    const launched = accepted.filter((_, i) => done[i].status === 'fulfilled').map((a) => a.name);
    const failure = refusal ?? done.find((d): d is PromiseRejectedResult => d.status === 'rejected')?.reason;
    // Partial success returns what the cloud accepted and why the rest was refused; nothing accepted throws.
    if (launched.length === 0) throw toProviderError('launch', failure, `${spec.count} × ${spec.instance_type} in ${zone}`);
    const instances = await this.describe(launched);
    return launched.length < spec.count
      ? { instances, refused: toProviderError('launch', failure, `${spec.count - launched.length} of ${spec.count} × ${spec.instance_type} in ${zone}`) }
      : { instances };
  }

  async describe(ids: readonly string[]): Promise<CloudInstance[]> {
    const { project, zone } = this.options;
    return Promise.all(ids.map(async (id) => {
      try {
        const [instance] = await this.instances.get({ project, zone, instance: id });
        return toCloudInstance(instance);
      } catch (e) {
        if (isNotFound(e)) return gone(id);
        throw toProviderError('describe', e, `instance ${id}`);
      }
    }));
  }

  async list(cluster: string): Promise<CloudInstance[]> {
    const { project, zone } = this.options;
    try {
      const [items] = await this.instances.list({ project, zone, filter: `labels.${CLUSTER_TAG} = ${gcpLabel(cluster, 'value')}` });
      return items.map(toCloudInstance).filter((i) => i.state !== 'terminated');
    } catch (e) {
      throw toProviderError('list', e, `instances of cluster ${cluster}`);
    }
  }

  async terminate(ids: readonly string[]): Promise<void> {
    const { project, zone } = this.options;
    await Promise.all(ids.map(async (id) => {
      try {
        const [op] = await this.instances.delete({ project, zone, instance: id });
        await this.waitFor(op.latestResponse as IOperation);
      } catch (e) {
        if (isNotFound(e)) return;
        throw toProviderError('terminate', e, `instance ${id}`);
      }
    }));
  }

  private instanceResource(name: string, spec: LaunchSpec): IInstance {
    const { zone, source_image, network, subnetwork, disk_size_gb, external_ip } = this.options;
    return {
      name,
      machineType: `zones/${zone}/machineTypes/${spec.instance_type}`,
      disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: source_image, diskSizeGb: String(disk_size_gb ?? 20) } }],
      networkInterfaces: [{
        network: network ?? 'global/networks/default',
        ...(subnetwork ? { subnetwork } : {}),
        ...(external_ip ? { accessConfigs: [{ name: 'External NAT', type: 'ONE_TO_ONE_NAT' }] } : {}),
      }],
      labels: gcpLabels(spec.tags),
      metadata: { items: [{ key: 'startup-script', value: spec.user_data.startsWith('#cloud-config') ? toStartupScript(spec.user_data) : spec.user_data }] },
      ...(spec.spot ? { scheduling: { provisioningModel: 'SPOT', instanceTerminationAction: 'DELETE' } } : {}),
    };
  }

  /** Waits until the zone operation is DONE (operations.wait returns after at most ~2 min; loop). */
  private async waitFor(operation: IOperation): Promise<void> {
    const { project, zone } = this.options;
    let op = operation;
    while (op.status !== 'DONE') {
      [op] = await this.operations.wait({ project, zone, operation: op.name ?? '' });
    }
    if (op.error?.errors?.length) throw new OperationFailed(op);
  }
}

/** A zone operation that finished with errors (the insert itself was accepted). */
class OperationFailed extends Error {
  constructor(readonly operation: IOperation) {
    super((operation.error?.errors ?? []).map((e) => `${e.code}: ${e.message}`).join('; '));
  }
}

/** Sanitises one label key or value to GCE's rules (see the file comment). */
export function gcpLabel(s: string, part: 'key' | 'value'): string {
  let out = s.toLowerCase().replace(/[^a-z0-9_-]/g, '_').slice(0, 63);
  if (part === 'key' && !/^[a-z]/.test(out)) out = `x${out}`.slice(0, 63);
  return out;
}

export function gcpLabels(tags: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tags).map(([k, v]) => [gcpLabel(k, 'key'), gcpLabel(v, 'value')]));
}

function instanceName(prefix: string, token: string, i: number): string {
  const hash = createHash('sha256').update(token).digest('hex').slice(0, 10);
  return `${prefix}-${hash}-${i}`;
}

/** GCE wants requestId as a UUID; derive one from the token so a retry reuses it. */
function requestId(token: string, i: number): string {
  const h = createHash('sha256').update(`${token}/${i}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const STATES: Record<string, InstanceState> = {
  PROVISIONING: 'pending', STAGING: 'pending', RUNNING: 'running',
  // GCE's TERMINATED is "stopped": the instance and its disk still exist (billed) until deleted.
  // A spot VM preempted with instanceTerminationAction STOP ends there too.
  STOPPING: 'stopped', TERMINATED: 'stopped', SUSPENDING: 'stopped', SUSPENDED: 'stopped',
  // Host maintenance: it comes back RUNNING by itself.
  REPAIRING: 'unknown',
};

function toCloudInstance(i: IInstance): CloudInstance {
  return {
    id: i.name ?? '',
    instance_type: (i.machineType ?? '').split('/').pop() ?? '',
    state: STATES[i.status ?? ''] ?? 'unknown',
    spot: i.scheduling?.provisioningModel === 'SPOT',
    ...(i.networkInterfaces?.[0]?.networkIP ? { private_ip: i.networkInterfaces[0].networkIP } : {}),
    launched_at: i.creationTimestamp ? Date.parse(i.creationTimestamp) : 0,
    tags: { ...(i.labels ?? {}) },
  };
}

function gone(id: string): CloudInstance {
  return { id, instance_type: '', state: 'terminated', spot: false, launched_at: 0, tags: {} };
}

interface GoogleLikeError {
  code?: number | string;
  message?: string;
  reason?: string;
  name?: string;
}

// gRPC status codes google-gax maps HTTP statuses onto.
const GRPC = { INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 };

function isNotFound(e: unknown): boolean {
  const err = e as GoogleLikeError;
  return err?.code === GRPC.NOT_FOUND || err?.code === 404;
}

/** Classifies a Compute Engine failure (HTTP error or failed operation) into a ProviderError. */
export function classifyGcpError(e: unknown): ProviderErrorKind {
  if (e instanceof OperationFailed) {
    const codes = (e.operation.error?.errors ?? []).map((x) => `${x.code} ${x.message}`).join(' ');
    if (/QUOTA_EXCEEDED|ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough resources|UNSUPPORTED_OPERATION.*spot/i.test(codes)) return 'capacity';
    if (/PERMISSION|UNAUTHORIZED|FORBIDDEN/i.test(codes)) return 'auth';
    if (/NOT_FOUND|INVALID|BAD_REQUEST/i.test(codes)) return 'invalid';
    return 'transient';
  }
  const err = (e ?? {}) as GoogleLikeError;
  const text = `${err.reason ?? ''} ${err.message ?? ''}`;
  if (/QUOTA_EXCEEDED|quotaExceeded|ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough resources/i.test(text)) return 'capacity';
  if (/rateLimitExceeded|RATE_LIMIT_EXCEEDED/i.test(text)) return 'transient';
  if (/could not load the default credentials|invalid_grant|unauthenticated|Request had invalid authentication credentials/i.test(text)) return 'auth';
  switch (err.code) {
    case GRPC.UNAUTHENTICATED: case GRPC.PERMISSION_DENIED: case 401: case 403: return 'auth';
    case GRPC.INVALID_ARGUMENT: case GRPC.NOT_FOUND: case GRPC.FAILED_PRECONDITION: case GRPC.OUT_OF_RANGE: case GRPC.ALREADY_EXISTS:
    case GRPC.UNIMPLEMENTED: case 400: case 404: case 409: return 'invalid';
    case GRPC.RESOURCE_EXHAUSTED: case 429: return 'transient';
    default: return 'transient'; // 5xx, timeouts, network errors
  }
}

function toProviderError(operation: string, e: unknown, what: string): ProviderError {
  if (e instanceof ProviderError) return e;
  const message = scrub(e instanceof Error ? e.message : String(e));
  return new ProviderError(NAME, operation, classifyGcpError(e), `${what}: ${message}`);
}

/** Defence in depth: nothing that looks like a bearer token or OAuth token leaves in an error. */
export function scrub(message: string): string {
  return message.replace(/Bearer\s+[A-Za-z0-9._~+/=-]+/gi, 'Bearer [redacted]').replace(/ya29\.[A-Za-z0-9._-]+/g, '[redacted]').slice(0, 500);
}
