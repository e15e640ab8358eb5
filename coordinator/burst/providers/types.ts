/**
 * The one interface every cloud provider sits behind (launch, describe, list, terminate), as
 * Nomad's autoscaler target plugins and Ray's NodeProvider do: the burst controller decides what
 * to launch; a provider only speaks its cloud's API. Providers never log or put credentials in
 * errors: they come from each SDK's standard credential chain only.
 */

/** A machine shape a provider can launch, with what the decision engine needs to choose one. */
export interface InstanceType {
  /** The provider's own name: `c6i.2xlarge`, `n2-standard-8`, `Standard_F8s_v2`. */
  name: string;
  vcpus: number;
  memory_gb: number;
  gpus: number;
  /** GPU model when gpus > 0 (its encoder sessions follow from it). */
  gpu_model?: string;
  /** On-demand price in USD per hour, from configuration (clouds' price APIs are not reached from here). */
  price_per_hour: number;
  /** Spot/preemptible price in USD per hour, where the type is offered that way. */
  spot_price_per_hour?: number;
  /** Network bandwidth in Mbit/s, what the ledger will see as the node's bandwidth. */
  bandwidth_mbps: number;
}

/** What to launch: `count` instances of one type, tagged as this cluster's, booting `user_data`. */
export interface LaunchSpec {
  instance_type: string;
  count: number;
  /** Spot/preemptible capacity; the controller falls back to on-demand on a capacity refusal. */
  spot: boolean;
  /** cloud-init user data (AWS, Azure custom data) or startup script (GCP): installs and starts the agent. */
  user_data: string;
  /** Tags/labels marking the instances as this cluster's; always includes CLUSTER_TAG. */
  tags: Record<string, string>;
  /** Idempotency token: a retried launch with the same token does not launch twice (where the API allows). */
  client_token: string;
}

/**
 * An instance's life in the contract's terms:
 *   pending → running → stopping → terminated   (on its way out: shutting down, being deleted)
 *                     ↘ stopped                 (halted but still there, disks billed: stopped by
 *                                                hand, or a spot/preemptible stop; Prescient deletes it)
 * `unknown` is anything else the cloud says (repairing, a state added later): alive, not dropped.
 */
export type InstanceState = 'pending' | 'running' | 'stopping' | 'stopped' | 'terminated' | 'unknown';

/** One instance as the provider describes it. */
export interface CloudInstance {
  /** Provider's id: `i-0abc…`, the GCE instance name, the Azure VM name. */
  id: string;
  instance_type: string;
  state: InstanceState;
  spot: boolean;
  private_ip?: string;
  /** Epoch ms. */
  launched_at: number;
  tags: Record<string, string>;
}

/** What a launch got: the accepted instances and, when fewer than asked, why the rest were refused. */
export interface LaunchResult {
  instances: CloudInstance[];
  /** Set when `instances.length < spec.count`: the cloud's refusal of the rest (often `capacity`). */
  refused?: ProviderError;
}

/** The tag (label) key every instance Prescient launches carries; its value is the cluster name. */
export const CLUSTER_TAG = 'prescient-cluster';

/** Why a provider call failed, classified so the controller can react without parsing messages. */
export type ProviderErrorKind =
  /** Quota, instance limit or no capacity for this type/spot: try another type, on-demand, or later. */
  | 'capacity'
  /** Credentials missing, expired or refused. */
  | 'auth'
  /** Bad request: unknown type, image, region or zone (configuration). */
  | 'invalid'
  /** Throttled, timed out, 5xx: retry later. */
  | 'transient';

/**
 * Why a catalogue type overstates what the cloud says the type has (undefined when it does not).
 * A catalogue may list less than the cloud gives (cores kept for the system), never more.
 */
export function shapeMismatch(t: InstanceType, actual: { vcpus: number; memory_gb: number; gpus?: number }): string | undefined {
  const wrong: string[] = [];
  if (t.vcpus > actual.vcpus) wrong.push(`the catalogue lists ${t.vcpus} vCPUs, the cloud has ${actual.vcpus}`);
  // 2 % for GB against GiB and the clouds' rounding.
  if (t.memory_gb > actual.memory_gb * 1.02) wrong.push(`the catalogue lists ${t.memory_gb} GB of memory, the cloud has ${+actual.memory_gb.toFixed(2)}`);
  if (actual.gpus !== undefined && t.gpus > actual.gpus) wrong.push(`the catalogue lists ${t.gpus} GPU(s), the cloud has ${actual.gpus}`);
  return wrong.length ? wrong.join('; ') : undefined;
}

export class ProviderError extends Error {
  constructor(readonly provider: string, readonly operation: string, readonly kind: ProviderErrorKind, detail: string) {
    super(`${provider} ${operation} failed (${kind}): ${detail}`);
    this.name = 'ProviderError';
  }
}

export interface CloudProvider {
  /** `aws`, `gcp`, `azure`. */
  readonly name: string;
  /** Where it launches, e.g. `eu-west-1`, `europe-west1-b`, `westeurope`. */
  readonly region: string;
  /**
   * Checks configuration and credentials once at start, and that each of `types` is a type this
   * cloud offers where it launches with the vCPUs, memory and GPUs the catalogue says (a catalogue
   * that overstates a type would have the decision engine place work that cannot fit). Throws
   * ProviderError: `invalid` names the type or setting that is wrong.
   */
  verify(types?: readonly InstanceType[]): Promise<void>;
  /**
   * Launches and returns the instances the cloud accepted (GCP: after its zone operation is done),
   * with the refusal of the rest when it accepted only some. Throws when it accepted none.
   */
  launch(spec: LaunchSpec): Promise<LaunchResult>;
  /** The given instances as they are now; ids the cloud does not know come back as `terminated`. */
  describe(ids: readonly string[]): Promise<CloudInstance[]>;
  /** Every instance carrying CLUSTER_TAG = `cluster`, in any state but terminated. */
  list(cluster: string): Promise<CloudInstance[]>;
  /** Terminates (deletes) the given instances; unknown ids are not an error. */
  terminate(ids: readonly string[]): Promise<void>;
}
