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

export type InstanceState = 'pending' | 'running' | 'stopping' | 'terminated' | 'unknown';

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
  /** Checks configuration and credentials once at start (a dry-run call where the API has one). Throws ProviderError. */
  verify(): Promise<void>;
  /** Launches and returns the instances the cloud accepted (GCP: after its zone operation is done). */
  launch(spec: LaunchSpec): Promise<CloudInstance[]>;
  /** The given instances as they are now; ids the cloud does not know come back as `terminated`. */
  describe(ids: readonly string[]): Promise<CloudInstance[]>;
  /** Every instance carrying CLUSTER_TAG = `cluster`, in any state but terminated. */
  list(cluster: string): Promise<CloudInstance[]>;
  /** Terminates (deletes) the given instances; unknown ids are not an error. */
  terminate(ids: readonly string[]): Promise<void>;
}
