/**
 * Azure Virtual Machines behind `CloudProvider`, through @azure/arm-compute and DefaultAzureCredential
 * (environment, workload identity, managed identity, Azure CLI…): credentials never reach a log or
 * an error.
 *
 * One resource group and location per provider (`region` is the location, e.g. `westeurope`).
 *
 * Networking: no NIC is created beforehand and @azure/arm-network is not needed. Each VM is created
 * with an inline `networkInterfaceConfigurations` entry (`networkApiVersion` 2020-11-01), so Compute
 * creates the VM's NIC in the operator's subnet and deletes it with the VM (`deleteOption: Delete`,
 * likewise the OS disk). What an operator must create beforehand:
 *   - the resource group (`resource_group`) in `location`;
 *   - a virtual network and subnet (`subnet_id`) from which the VMs can reach the coordinator's
 *     gRPC port (a NAT gateway or peering; no public IP is given to the VMs);
 *   - the image (`image`): a marketplace reference or a custom/gallery image id, with cloud-init;
 *   - an SSH public key for the admin user (password logins are disabled);
 *   - a role assignment allowing the credential to create/delete VMs and NICs in the group and to
 *     join the subnet (e.g. Virtual Machine Contributor + Network Contributor on the subnet).
 * The VM's private IP is not reported (it lives on the NIC, a Network API resource): burst nodes
 * announce their own address when they register over gRPC.
 *
 * Names and idempotency: VM names are `<prefix>-<token hash>-<i>`. Azure's PUT is idempotent by name,
 * so a retried launch with the same token updates the same VMs instead of launching twice.
 */
import { createHash } from 'node:crypto';
import { ComputeManagementClient } from '@azure/arm-compute';
import type { ComputeManagementClientOptionalParams, VirtualMachine } from '@azure/arm-compute';
import { DefaultAzureCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import { CLUSTER_TAG, ProviderError, shapeMismatch } from './types.js';
import type { CloudInstance, CloudProvider, InstanceState, InstanceType, LaunchResult, LaunchSpec, ProviderErrorKind } from './types.js';

/** The VM's image: a marketplace image, or the id of a custom or gallery image. */
export type AzureImage = { publisher: string; offer: string; sku: string; version: string } | { id: string };

export interface AzureProviderOptions {
  subscription_id: string;
  resource_group: string;
  /** Azure location, e.g. `westeurope`. */
  location: string;
  /** `/subscriptions/…/resourceGroups/…/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>`. */
  subnet_id: string;
  image: AzureImage;
  admin_username: string;
  /** OpenSSH public key for `admin_username` (a public key: not a secret). */
  ssh_public_key: string;
  /** OS disk SKU, default `Premium_LRS`. */
  os_disk_type?: string;
  /** VM name prefix, default `prescient`. */
  name_prefix?: string;
  /** Long-running operation poll interval in ms (default: the service's Retry-After, else 2 s). */
  poll_interval_ms?: number;
  /** Credential; production leaves it out (DefaultAzureCredential). Tests pass a fixed-token credential. */
  credential?: TokenCredential;
  /** Passed to ComputeManagementClient; tests point `endpoint` (and a TLS `agent`) at a loopback fixture server. */
  client_options?: ComputeManagementClientOptionalParams;
}

const NAME = 'azure';

export class AzureProvider implements CloudProvider {
  readonly name = NAME;
  readonly region: string;
  private readonly client: ComputeManagementClient;

  constructor(private readonly options: AzureProviderOptions) {
    this.region = options.location;
    this.client = new ComputeManagementClient(options.credential ?? new DefaultAzureCredential(), options.subscription_id, options.client_options ?? {});
  }

  async verify(types: readonly InstanceType[] = []): Promise<void> {
    const { location, resource_group } = this.options;
    try {
      // The location: the compute usage of an unknown location is refused.
      for await (const _ of this.client.usage.list(location)) break;
    } catch (e) {
      throw toProviderError('verify', e, `location ${location}`);
    }
    try {
      // The resource group: listing its VMs fails with ResourceGroupNotFound when it does not exist.
      for await (const _ of this.client.virtualMachines.list(resource_group)) break;
    } catch (e) {
      throw toProviderError('verify', e, `resource group ${resource_group}`);
    }
    if (!types.length) return;
    // The sizes offered in the location, with their cores and memory (this API does not give GPUs:
    // a GPU size's count is taken as listed).
    const sizes = new Map<string, { cores: number; memory_mb: number }>();
    try {
      for await (const z of this.client.virtualMachineSizes.list(location)) {
        if (z.name) sizes.set(z.name.toLowerCase(), { cores: z.numberOfCores ?? 0, memory_mb: z.memoryInMB ?? 0 });
      }
    } catch (e) {
      throw toProviderError('verify', e, `VM sizes in ${location}`);
    }
    for (const t of types) {
      const z = sizes.get(t.name.toLowerCase());
      if (!z) throw new ProviderError(NAME, 'verify', 'invalid', `VM size ${t.name} is not offered in ${location}`);
      const wrong = shapeMismatch(t, { vcpus: z.cores, memory_gb: z.memory_mb / 1024 });
      if (wrong) throw new ProviderError(NAME, 'verify', 'invalid', `VM size ${t.name}: ${wrong}`);
    }
  }

  async launch(spec: LaunchSpec): Promise<LaunchResult> {
    const { resource_group, location } = this.options;
    const names = Array.from({ length: spec.count }, (_, i) => vmName(this.options.name_prefix ?? 'prescient', spec.client_token, i));
    const lro = this.options.poll_interval_ms !== undefined ? { updateIntervalInMs: this.options.poll_interval_ms } : {};
    // Start the creations one by one and stop at the first refusal; then wait on them together.
    const started: Array<{ name: string; done: Promise<VirtualMachine> }> = [];
    let refusal: unknown;
    for (const name of names) {
      try {
        const poller = await this.client.virtualMachines.beginCreateOrUpdate(resource_group, name, this.vm(name, spec), lro);
        started.push({ name, done: poller.pollUntilDone() });
      } catch (e) {
        refusal = e;
        break;
      }
    }
    const done = await Promise.allSettled(started.map((s) => s.done));
    const launched = done.flatMap((d) => (d.status === 'fulfilled' ? [toCloudInstance(d.value)] : []));
    const failure = refusal ?? done.find((d): d is PromiseRejectedResult => d.status === 'rejected')?.reason;
    // Partial success returns what the cloud accepted and why the rest was refused; nothing accepted throws.
    if (launched.length === 0) throw toProviderError('launch', failure, `${spec.count} × ${spec.instance_type} in ${location}`);
    return launched.length < spec.count
      ? { instances: launched, refused: toProviderError('launch', failure, `${spec.count - launched.length} of ${spec.count} × ${spec.instance_type} in ${location}`) }
      : { instances: launched };
  }

  async describe(ids: readonly string[]): Promise<CloudInstance[]> {
    const { resource_group } = this.options;
    return Promise.all(ids.map(async (id) => {
      try {
        return toCloudInstance(await this.client.virtualMachines.get(resource_group, id, { expand: 'instanceView' }));
      } catch (e) {
        if (statusOf(e) === 404) return gone(id);
        throw toProviderError('describe', e, `VM ${id}`);
      }
    }));
  }

  async list(cluster: string): Promise<CloudInstance[]> {
    const out: CloudInstance[] = [];
    try {
      // The VM list API cannot filter by tag: list the group's VMs and keep this cluster's.
      for await (const vm of this.client.virtualMachines.list(this.options.resource_group)) {
        if (vm.tags?.[CLUSTER_TAG] !== cluster) continue;
        const instance = toCloudInstance(vm);
        if (instance.state !== 'terminated') out.push(instance);
      }
    } catch (e) {
      throw toProviderError('list', e, `VMs of cluster ${cluster}`);
    }
    return out;
  }

  async terminate(ids: readonly string[]): Promise<void> {
    const { resource_group } = this.options;
    const lro = this.options.poll_interval_ms !== undefined ? { updateIntervalInMs: this.options.poll_interval_ms } : {};
    await Promise.all(ids.map(async (id) => {
      try {
        await this.client.virtualMachines.beginDeleteAndWait(resource_group, id, lro);
      } catch (e) {
        if (statusOf(e) === 404) return;
        throw toProviderError('terminate', e, `VM ${id}`);
      }
    }));
  }

  private vm(name: string, spec: LaunchSpec): VirtualMachine {
    const o = this.options;
    return {
      location: o.location,
      tags: { ...spec.tags },
      hardwareProfile: { vmSize: spec.instance_type },
      storageProfile: {
        imageReference: o.image,
        osDisk: { createOption: 'FromImage', deleteOption: 'Delete', managedDisk: { storageAccountType: o.os_disk_type ?? 'Premium_LRS' } },
      },
      osProfile: {
        computerName: name,
        adminUsername: o.admin_username,
        customData: Buffer.from(spec.user_data, 'utf8').toString('base64'),
        linuxConfiguration: {
          disablePasswordAuthentication: true,
          ssh: { publicKeys: [{ path: `/home/${o.admin_username}/.ssh/authorized_keys`, keyData: o.ssh_public_key }] },
        },
      },
      networkProfile: {
        networkApiVersion: '2020-11-01',
        networkInterfaceConfigurations: [{
          name: `${name}-nic`,
          primary: true,
          deleteOption: 'Delete',
          ipConfigurations: [{ name: 'ipconfig1', primary: true, subnet: { id: o.subnet_id } }],
        }],
      },
      ...(spec.spot ? { priority: 'Spot', evictionPolicy: 'Delete', billingProfile: { maxPrice: -1 } } : {}),
    };
  }
}

function vmName(prefix: string, token: string, i: number): string {
  return `${prefix}-${createHash('sha256').update(token).digest('hex').slice(0, 10)}-${i}`;
}

function stateOf(vm: VirtualMachine): InstanceState {
  const codes = (vm.instanceView?.statuses ?? []).map((s) => s.code ?? '');
  const power = codes.find((c) => c.startsWith('PowerState/'))?.slice('PowerState/'.length);
  const provisioning = (vm.provisioningState ?? codes.find((c) => c.startsWith('ProvisioningState/'))?.slice('ProvisioningState/'.length) ?? '').toLowerCase();
  if (provisioning === 'deleting') return 'stopping';
  if (power === 'running') return 'running';
  if (power === 'starting') return 'pending';
  // Stopped or deallocated: the VM and its disk stay (billed) until deleted.
  if (power && ['stopping', 'stopped', 'deallocating', 'deallocated'].includes(power)) return 'stopped';
  if (provisioning === 'creating' || provisioning === 'updating') return 'pending';
  if (provisioning === 'succeeded') return 'running';
  return 'unknown';
}

function toCloudInstance(vm: VirtualMachine): CloudInstance {
  return {
    id: vm.name ?? '',
    instance_type: vm.hardwareProfile?.vmSize ?? '',
    state: stateOf(vm),
    spot: vm.priority === 'Spot',
    launched_at: vm.timeCreated ? new Date(vm.timeCreated).getTime() : 0,
    tags: { ...(vm.tags ?? {}) },
  };
}

function gone(id: string): CloudInstance {
  return { id, instance_type: '', state: 'terminated', spot: false, launched_at: 0, tags: {} };
}

interface AzureLikeError {
  name?: string;
  code?: string;
  statusCode?: number;
  message?: string;
  details?: unknown;
}

function statusOf(e: unknown): number | undefined {
  return (e as AzureLikeError)?.statusCode;
}

/** Classifies an Azure failure (HTTP error, failed long-running operation, or credential error). */
export function classifyAzureError(e: unknown): ProviderErrorKind {
  const err = (e ?? {}) as AzureLikeError;
  if (['CredentialUnavailableError', 'AuthenticationRequiredError', 'ClientAuthenticationError', 'AggregateAuthenticationError'].includes(err.name ?? '')) return 'auth';
  const text = `${err.code ?? ''} ${err.message ?? ''}`;
  if (/QuotaExceeded|SkuNotAvailable|AllocationFailed|OverconstrainedAllocationRequest|ZonalAllocationFailed|OverconstrainedZonalAllocationRequest|exceeding approved .* quota/i.test(text)) return 'capacity';
  if (/AuthenticationFailed|AuthorizationFailed|InvalidAuthenticationToken|ExpiredAuthenticationToken|LinkedAuthorizationFailed/i.test(text)) return 'auth';
  if (/InvalidParameter|LocationNotAvailableForResourceType|NoRegisteredProviderFound|InvalidResourceLocation|ResourceGroupNotFound|NotFound|ImageNotFound|InvalidSubnet/i.test(text)) return 'invalid';
  const status = err.statusCode;
  if (status === 401 || status === 403) return 'auth';
  if (status === 400 || status === 404 || status === 409) return 'invalid';
  return 'transient'; // 429, 5xx, timeouts, network errors
}

function toProviderError(operation: string, e: unknown, what: string): ProviderError {
  if (e instanceof ProviderError) return e;
  const message = (e instanceof Error ? e.message : String(e)).replace(/Bearer\s+[A-Za-z0-9._~+/=-]+/gi, 'Bearer [redacted]').slice(0, 500);
  return new ProviderError(NAME, operation, classifyAzureError(e), `${what}: ${message}`);
}
