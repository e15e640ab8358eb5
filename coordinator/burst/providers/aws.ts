/**
 * AWS EC2 behind the CloudProvider interface, with @aws-sdk/client-ec2.
 *
 *   launch     RunInstances (an image or a launch template), tagged on the instance and its volumes;
 *              all or nothing (MinCount = MaxCount); fewer instances back is reported as a refusal
 *   describe   DescribeInstances filtered by `instance-id`: ids EC2 does not know are `terminated`
 *   list       DescribeInstances filtered by `tag:prescient-cluster`, terminated ones left out
 *   terminate  TerminateInstances of the ids EC2 still knows
 *   verify     DescribeRegions (the region must be one EC2 lists, asked of the partition's home
 *              region when the configured one cannot answer; it also proves the credentials),
 *              then the image or launch template must exist, then DescribeInstanceTypes: each
 *              catalogue type must exist with at least the vCPUs, memory and GPUs it is listed with
 *
 * Credentials come only from the SDK's default provider chain (environment, shared config and
 * credentials files, SSO, web identity, container and instance metadata). They never reach a log
 * or an error: errors carry EC2's code and message, with anything shaped like a key redacted.
 */
import {
  DescribeImagesCommand,
  DescribeInstanceTypesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeRegionsCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  paginateDescribeInstances,
  type Filter,
  type Instance,
  type Region,
  type RunInstancesCommandInput,
  type Tag,
} from '@aws-sdk/client-ec2';
import {
  CLUSTER_TAG, ProviderError, shapeMismatch,
  type CloudInstance, type CloudProvider, type InstanceState, type InstanceType, type LaunchResult, type LaunchSpec, type ProviderErrorKind,
} from './types.js';

/** Where and how to launch on EC2. Either `image_id` or `launch_template` (or both: the image overrides the template's). */
export interface AwsProviderOptions {
  /** e.g. `eu-west-1`. */
  region: string;
  /** AMI to boot, e.g. `ami-0abc…`. */
  image_id?: string;
  /** A launch template by id or name; `version` defaults to `$Default`. */
  launch_template?: { id?: string; name?: string; version?: string };
  subnet_id?: string;
  security_group_ids?: string[];
  key_name?: string;
  /** Instance profile name, or its ARN (`arn:aws:iam::…`). */
  iam_instance_profile?: string;
  /** An EC2-compatible endpoint instead of AWS's (moto on loopback in the tests). */
  endpoint?: string;
  /** Attempts per call, including the first (the SDK retries throttling, 5xx and network errors). Default 3. */
  max_attempts?: number;
}

/** EC2 takes at most this many bytes of user data, before base64. */
export const AWS_USER_DATA_MAX_BYTES = 16 * 1024;
/** Values per DescribeInstances filter. */
const FILTER_VALUES_MAX = 200;

export class AwsProvider implements CloudProvider {
  readonly name = 'aws';
  readonly region: string;
  private readonly client: EC2Client;

  constructor(private readonly options: AwsProviderOptions) {
    this.region = options.region;
    if (!options.region) throw new ProviderError('aws', 'configure', 'invalid', 'no region configured');
    if (!options.image_id && !options.launch_template) throw new ProviderError('aws', 'configure', 'invalid', 'neither image_id nor launch_template is configured');
    const lt = options.launch_template;
    if (lt && !lt.id === !lt.name) throw new ProviderError('aws', 'configure', 'invalid', 'launch_template needs exactly one of id or name');
    this.client = new EC2Client({
      region: options.region,
      endpoint: options.endpoint,
      maxAttempts: options.max_attempts ?? 3,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
    });
  }

  async verify(types: readonly InstanceType[] = []): Promise<void> {
    const regions = await this.regions();
    const region = regions.find((r) => r.RegionName === this.region);
    if (!region) throw new ProviderError('aws', 'verify', 'invalid', `region ${this.region} is not one EC2 knows`);
    if (region.OptInStatus === 'not-opted-in') throw new ProviderError('aws', 'verify', 'invalid', `region ${this.region} is not enabled for this account`);
    if (this.options.image_id) {
      const images = await this.call('verify', () => this.client.send(new DescribeImagesCommand({ ImageIds: [this.options.image_id!] })));
      if (!images.Images?.length) throw new ProviderError('aws', 'verify', 'invalid', `image ${this.options.image_id} does not exist in ${this.region}`);
    }
    const lt = this.options.launch_template;
    if (lt) {
      const found = await this.call('verify', () => this.client.send(new DescribeLaunchTemplatesCommand(lt.id ? { LaunchTemplateIds: [lt.id] } : { LaunchTemplateNames: [lt.name!] })));
      if (!found.LaunchTemplates?.length) throw new ProviderError('aws', 'verify', 'invalid', `launch template ${lt.id ?? lt.name} does not exist in ${this.region}`);
    }
    if (types.length) await this.verifyTypes(types);
  }

  /** Each catalogue type exists in the region with at least what the catalogue says it has. */
  private async verifyTypes(types: readonly InstanceType[]): Promise<void> {
    // One unknown name fails the whole call (InvalidInstanceType): ask one by one to name it.
    for (const t of types) {
      let info;
      try {
        info = (await this.client.send(new DescribeInstanceTypesCommand({ InstanceTypes: [t.name as never] }))).InstanceTypes?.[0];
      } catch (e) {
        const err = toProviderError('verify', e);
        if (err.kind === 'invalid') throw new ProviderError('aws', 'verify', 'invalid', `instance type ${t.name} is not one EC2 offers in ${this.region} (${err.message})`);
        throw err;
      }
      if (!info) throw new ProviderError('aws', 'verify', 'invalid', `instance type ${t.name} is not one EC2 offers in ${this.region}`);
      const wrong = shapeMismatch(t, {
        vcpus: info.VCpuInfo?.DefaultVCpus ?? 0,
        memory_gb: (info.MemoryInfo?.SizeInMiB ?? 0) / 1024,
        gpus: (info.GpuInfo?.Gpus ?? []).reduce((a, g) => a + (g.Count ?? 0), 0),
      });
      if (wrong) throw new ProviderError('aws', 'verify', 'invalid', `instance type ${t.name}: ${wrong}`);
    }
  }

  async launch(spec: LaunchSpec): Promise<LaunchResult> {
    const input = this.runInstancesInput(spec);
    const out = await this.call('launch', () => this.client.send(new RunInstancesCommand(input)));
    return launchResult(spec, (out.Instances ?? []).map((i) => toCloudInstance({ ...i, Tags: i.Tags?.length ? i.Tags : input.TagSpecifications![0].Tags })));
  }

  /** The RunInstances request for a launch (exported through the class for the tests that check it). */
  runInstancesInput(spec: LaunchSpec): RunInstancesCommandInput {
    if (!spec.tags[CLUSTER_TAG]) throw new ProviderError('aws', 'launch', 'invalid', `the launch is not tagged ${CLUSTER_TAG}: its instances could never be listed or given back`);
    if (!Number.isInteger(spec.count) || spec.count < 1) throw new ProviderError('aws', 'launch', 'invalid', `count must be a positive integer, not ${spec.count}`);
    const userData = Buffer.from(spec.user_data, 'utf8');
    if (userData.length > AWS_USER_DATA_MAX_BYTES) throw new ProviderError('aws', 'launch', 'invalid', `user data is ${userData.length} bytes; EC2 takes at most ${AWS_USER_DATA_MAX_BYTES}`);
    const o = this.options;
    const tags: Tag[] = Object.entries(spec.tags).map(([Key, Value]) => ({ Key, Value }));
    const lt = o.launch_template;
    return {
      ...(o.image_id ? { ImageId: o.image_id } : {}),
      ...(lt ? { LaunchTemplate: { ...(lt.id ? { LaunchTemplateId: lt.id } : { LaunchTemplateName: lt.name }), Version: lt.version ?? '$Default' } } : {}),
      InstanceType: spec.instance_type as RunInstancesCommandInput['InstanceType'],
      // All or nothing: a capacity refusal refuses the whole launch, and the controller asks again
      // at once (on-demand, or the next type). MinCount 1 would take what EC2 has, but moto, which
      // the tests run against, launches MinCount instances, so that path could not be tested.
      MinCount: spec.count,
      MaxCount: spec.count,
      UserData: userData.toString('base64'),
      ClientToken: spec.client_token,
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }, { ResourceType: 'volume', Tags: tags }],
      ...(spec.spot ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } } : {}),
      ...(o.subnet_id ? { SubnetId: o.subnet_id } : {}),
      ...(o.security_group_ids?.length ? { SecurityGroupIds: o.security_group_ids } : {}),
      ...(o.key_name ? { KeyName: o.key_name } : {}),
      ...(o.iam_instance_profile ? { IamInstanceProfile: o.iam_instance_profile.startsWith('arn:') ? { Arn: o.iam_instance_profile } : { Name: o.iam_instance_profile } } : {}),
    };
  }

  async describe(ids: readonly string[]): Promise<CloudInstance[]> {
    const wanted = [...new Set(ids)];
    const known = new Map<string, CloudInstance>();
    // A filter, not InstanceIds: an id EC2 does not know (or one too old to be listed) is simply
    // absent instead of failing the whole call with InvalidInstanceID.NotFound / .Malformed.
    for (let i = 0; i < wanted.length; i += FILTER_VALUES_MAX) {
      const chunk = wanted.slice(i, i + FILTER_VALUES_MAX);
      for (const inst of await this.instances('describe', [{ Name: 'instance-id', Values: chunk }])) known.set(inst.id, inst);
    }
    return wanted.map((id) => known.get(id) ?? { id, instance_type: 'unknown', state: 'terminated', spot: false, launched_at: 0, tags: {} });
  }

  async list(cluster: string): Promise<CloudInstance[]> {
    const all = await this.instances('list', [{ Name: `tag:${CLUSTER_TAG}`, Values: [cluster] }]);
    return all.filter((i) => i.state !== 'terminated');
  }

  async terminate(ids: readonly string[]): Promise<void> {
    const live = (await this.describe(ids)).filter((i) => i.state !== 'terminated').map((i) => i.id);
    let left = live;
    for (let attempt = 0; left.length > 0 && attempt < 3; attempt++) {
      try {
        for (let i = 0; i < left.length; i += 1000) {
          const chunk = left.slice(i, i + 1000);
          await this.client.send(new TerminateInstancesCommand({ InstanceIds: chunk }));
        }
        return;
      } catch (e) {
        // One unknown id fails the whole call: drop the ids EC2 names and terminate the rest.
        if (errorCode(e) !== 'InvalidInstanceID.NotFound') throw toProviderError('terminate', e);
        const gone = new Set(String((e as Error).message).match(/i-[0-9a-zA-Z]+/g) ?? []);
        const next = left.filter((id) => !gone.has(id));
        if (next.length === left.length) throw toProviderError('terminate', e);
        left = next;
      }
    }
  }

  /** Releases the SDK's sockets. */
  close(): void {
    this.client.destroy();
  }

  private async instances(operation: string, filters: Filter[]): Promise<CloudInstance[]> {
    return this.call(operation, async () => {
      const out: CloudInstance[] = [];
      for await (const page of paginateDescribeInstances({ client: this.client, pageSize: 1000 }, { Filters: filters })) {
        for (const r of page.Reservations ?? []) for (const i of r.Instances ?? []) out.push(toCloudInstance(i));
      }
      return out;
    });
  }

  /**
   * EC2's regions, asked of the configured region. When that fails for any reason but credentials
   * (a region that does not exist has no endpoint to answer), the partition's home region is asked
   * instead: if it does not list the configured region, the region is unknown (`invalid`);
   * otherwise the first failure stands (an outage is still `transient`).
   */
  private async regions(): Promise<Region[]> {
    const list = (client: EC2Client) => client.send(new DescribeRegionsCommand({ AllRegions: true })).then((r) => r.Regions ?? []);
    try {
      return await list(this.client);
    } catch (e) {
      const first = toProviderError('verify', e);
      const home = partitionHomeRegion(this.region);
      if (first.kind === 'auth' || home === this.region) throw first;
      const homeClient = new EC2Client({ region: home, endpoint: this.options.endpoint, maxAttempts: 1, requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 } });
      try {
        const regions = await list(homeClient);
        if (!regions.some((r) => r.RegionName === this.region)) return regions;
      } catch { /* the home region cannot tell either: the first failure stands */ } finally {
        homeClient.destroy();
      }
      throw first;
    }
  }

  private async call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw toProviderError(operation, e);
    }
  }
}

/** What a RunInstances got: fewer than asked (not expected with MinCount = count) is a capacity refusal of the rest. */
export function launchResult(spec: LaunchSpec, instances: CloudInstance[]): LaunchResult {
  if (instances.length >= spec.count) return { instances };
  return {
    instances,
    refused: new ProviderError('aws', 'launch', 'capacity', `EC2 launched ${instances.length} of ${spec.count} × ${spec.instance_type}${spec.spot ? ' (spot)' : ''}: no capacity for the rest`),
  };
}

/** One EC2 instance as the CloudProvider contract describes it. */
export function toCloudInstance(i: Instance): CloudInstance {
  return {
    id: i.InstanceId ?? '',
    instance_type: i.InstanceType ?? 'unknown',
    state: awsState(i.State?.Name),
    spot: i.InstanceLifecycle === 'spot',
    ...(i.PrivateIpAddress ? { private_ip: i.PrivateIpAddress } : {}),
    launched_at: i.LaunchTime ? new Date(i.LaunchTime).getTime() : 0,
    tags: Object.fromEntries((i.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? ''])),
  };
}

/**
 * EC2's instance states in the contract's terms: `shutting-down` is on its way to terminated
 * (`stopping`); `stopping` and `stopped` end in an instance that exists, runs nothing and is still
 * billed for its volumes (`stopped`: the controller terminates it).
 */
export function awsState(name: string | undefined): InstanceState {
  switch (name) {
    case 'pending': return 'pending';
    case 'running': return 'running';
    case 'shutting-down': return 'stopping';
    case 'stopping': case 'stopped': return 'stopped';
    case 'terminated': return 'terminated';
    default: return 'unknown';
  }
}

const CAPACITY_CODES = new Set([
  'InsufficientInstanceCapacity', 'InsufficientHostCapacity', 'InsufficientReservedInstanceCapacity', 'InsufficientCapacity',
  'InsufficientFreeAddressesInSubnet', 'InsufficientAddressCapacity', 'InstanceLimitExceeded', 'MaxSpotInstanceCountExceeded',
  'SpotMaxPriceTooLow', 'VcpuLimitExceeded', 'Unsupported', 'InstanceCreditSpecification.NotSupported',
]);
const AUTH_CODES = new Set([
  'AuthFailure', 'UnauthorizedOperation', 'CredentialsProviderError', 'InvalidClientTokenId', 'SignatureDoesNotMatch',
  'ExpiredToken', 'ExpiredTokenException', 'InvalidToken', 'Blocked', 'MissingAuthenticationToken', 'AccessDenied', 'AccessDeniedException',
  'TokenProviderError', 'UnrecognizedClientException',
]);
const TRANSIENT_CODES = new Set([
  'RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottled', 'RequestThrottledException',
  'TooManyRequestsException', 'ServiceUnavailable', 'Unavailable', 'InternalError', 'InternalFailure', 'RequestTimeout',
  'RequestTimeoutException', 'TimeoutError', 'RequestExpired',
]);
const INVALID_CODES = new Set([
  'MissingParameter', 'UnknownParameter', 'OptInRequired', 'UnsupportedOperation', 'EndpointError', 'UnknownEndpoint', 'ValidationError',
  'IdempotentParameterMismatch',
]);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** The error's code: EC2's (`name` on SDK exceptions), else a Node network code. */
export function errorCode(e: unknown): string {
  const err = e as { name?: unknown; code?: unknown; Code?: unknown } | null;
  if (err && typeof err === 'object') {
    for (const k of [err.code, err.Code, err.name]) if (typeof k === 'string' && k && k !== 'Error') return k;
  }
  return 'Error';
}

/**
 * How the controller should read an SDK error. Pure: from the error's code, fault and HTTP status.
 * Codes EC2 documents for each case first; then `Invalid*` codes are configuration; then a 5xx or
 * server fault is transient, any other 4xx is invalid; an error with no service response at all
 * (network, DNS, timeouts) is transient.
 */
export function classifyAwsError(e: unknown): ProviderErrorKind {
  const code = errorCode(e);
  if (CAPACITY_CODES.has(code)) return 'capacity';
  if (AUTH_CODES.has(code) || /CredentialsProvider|Credentials?Error/.test(code)) return 'auth';
  if (TRANSIENT_CODES.has(code) || NETWORK_CODES.has(code)) return 'transient';
  if (INVALID_CODES.has(code) || code.startsWith('Invalid')) return 'invalid';
  const err = (e ?? {}) as { $metadata?: { httpStatusCode?: number }; $fault?: string; $retryable?: unknown; cause?: unknown };
  const status = err.$metadata?.httpStatusCode;
  if (err.$fault === 'server' || (status !== undefined && status >= 500) || err.$retryable) return 'transient';
  if (err.$fault === 'client' || (status !== undefined && status >= 400)) return status === 429 ? 'transient' : 'invalid';
  if (err.cause && err.cause !== e) return classifyAwsError(err.cause);
  return 'transient';
}

/** Removes anything that looks like an AWS key or token (and the live ones, if set) from text bound for a log or an error. */
export function redactAws(text: string): string {
  let out = text.replace(/\b(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b/g, '[redacted key id]');
  for (const v of ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_ACCESS_KEY_ID']) {
    const secret = process.env[v];
    if (secret && secret.length >= 4) out = out.split(secret).join('[redacted]');
  }
  return out;
}

/** A ProviderError for an SDK failure: EC2's code and message (redacted), or the HTTP status when the body was not EC2's. */
export function toProviderError(operation: string, e: unknown): ProviderError {
  if (e instanceof ProviderError) return e;
  const code = errorCode(e);
  const status = (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  const message = redactAws(String((e as Error)?.message ?? e)).replace(/\s+/g, ' ').trim().slice(0, 500);
  return new ProviderError('aws', operation, classifyAwsError(e), `${code}${status ? ` (HTTP ${status})` : ''}: ${message}`);
}

/** The region every region of `region`'s partition can be listed from (aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b). */
export function partitionHomeRegion(region: string): string {
  if (region.startsWith('cn-')) return 'cn-north-1';
  if (region.startsWith('us-gov-')) return 'us-gov-west-1';
  if (region.startsWith('us-isob-')) return 'us-isob-east-1';
  if (region.startsWith('us-iso-')) return 'us-iso-east-1';
  return 'us-east-1';
}
