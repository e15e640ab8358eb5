/**
 * The AWS provider's pure parts: how SDK errors map to ProviderError kinds, what reaches an error
 * message, EC2's states in the contract's terms, and the RunInstances request a launch sends.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EC2ServiceException } from '@aws-sdk/client-ec2';
import { CLUSTER_TAG, ProviderError, type LaunchSpec } from '../../coordinator/burst/index.js';
import { AwsProvider, AWS_USER_DATA_MAX_BYTES, awsState, launchResult, classifyAwsError, partitionHomeRegion, toProviderError } from '../../coordinator/burst/providers/aws.js';

/** An error shaped as the SDK throws it for an EC2 error response. */
const ec2Error = (name: string, status: number, fault: 'client' | 'server' = status >= 500 ? 'server' : 'client') =>
  new EC2ServiceException({ name, $fault: fault, $metadata: { httpStatusCode: status }, message: `${name} happened` });
/** A Node network error (no response from EC2 at all). */
const netError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });

test('capacity refusals are capacity: another type, on-demand, or later', () => {
  for (const code of ['InsufficientInstanceCapacity', 'InstanceLimitExceeded', 'MaxSpotInstanceCountExceeded', 'SpotMaxPriceTooLow', 'VcpuLimitExceeded', 'Unsupported']) {
    assert.is(classifyAwsError(ec2Error(code, 400)), 'capacity', code);
  }
  assert.is(classifyAwsError(ec2Error('InsufficientInstanceCapacity', 500)), 'capacity', 'EC2 sends this one as a 500');
});

test('refused or missing credentials are auth', () => {
  for (const code of ['AuthFailure', 'UnauthorizedOperation', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'ExpiredToken']) {
    assert.is(classifyAwsError(ec2Error(code, 403)), 'auth', code);
  }
  const missing = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
  assert.is(classifyAwsError(missing), 'auth');
});

test('bad configuration is invalid: parameters, images, types, regions, subnets', () => {
  for (const code of ['InvalidParameterValue', 'InvalidAMIID.NotFound', 'InvalidAMIID.Malformed', 'InvalidInstanceType', 'InvalidRegion', 'InvalidSubnetID.NotFound', 'InvalidLaunchTemplateName.NotFoundException', 'MissingParameter', 'OptInRequired']) {
    assert.is(classifyAwsError(ec2Error(code, 400)), 'invalid', code);
  }
  assert.is(classifyAwsError(ec2Error('SomethingNewAndRefused', 400)), 'invalid', 'an unknown 4xx is the request, not the moment');
  assert.is(classifyAwsError(Object.assign(new Error('Invalid region in client config'), { name: 'EndpointError' })), 'invalid');
});

test('throttling, 5xx and network failures are transient', () => {
  for (const code of ['RequestLimitExceeded', 'Throttling', 'ThrottlingException']) assert.is(classifyAwsError(ec2Error(code, 503)), 'transient', code);
  assert.is(classifyAwsError(ec2Error('RequestLimitExceeded', 400)), 'transient', 'EC2 throttles with a 400');
  assert.is(classifyAwsError(ec2Error('InternalError', 500)), 'transient');
  assert.is(classifyAwsError(ec2Error('Unknown', 502)), 'transient');
  assert.is(classifyAwsError(ec2Error('Unknown', 429)), 'transient');
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']) assert.is(classifyAwsError(netError(code)), 'transient', code);
  assert.is(classifyAwsError(Object.assign(new Error('timed out'), { name: 'TimeoutError' })), 'transient');
  assert.is(classifyAwsError(new Error('something odd')), 'transient', 'no response at all: try again later');
});

test('an error message keeps EC2 code and status and loses anything shaped like a key', () => {
  const saved = process.env.AWS_SECRET_ACCESS_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  try {
    const e = toProviderError('launch', new EC2ServiceException({
      name: 'AuthFailure', $fault: 'client', $metadata: { httpStatusCode: 401 },
      message: 'key AKIAIOSFODNN7EXAMPLE with secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY was refused',
    }));
    assert.instance(e, ProviderError);
    assert.is(e.kind, 'auth');
    assert.is(e.operation, 'launch');
    assert.match(e.message, /^aws launch failed \(auth\): AuthFailure \(HTTP 401\): /);
    assert.not.match(e.message, /AKIAIOSFODNN7EXAMPLE|wJalrXUtnFEMI/);
  } finally {
    if (saved === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved;
  }
});

test("EC2's instance states map onto the contract's", () => {
  assert.equal(['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated', undefined, 'weird'].map(awsState),
    ['pending', 'running', 'stopped', 'stopped', 'stopping', 'terminated', 'unknown', 'unknown']);
});

test('fewer instances than asked is a partial launch: the accepted ones and a capacity refusal of the rest', () => {
  const inst = (id: string) => ({ id, instance_type: 'c6i.2xlarge', state: 'pending' as const, spot: false, launched_at: 1, tags: {} });
  assert.equal(launchResult(spec(), [inst('i-1'), inst('i-2'), inst('i-3')]), { instances: [inst('i-1'), inst('i-2'), inst('i-3')] });
  const partial = launchResult(spec({ spot: true }), [inst('i-1')]);
  assert.equal(partial.instances.map((i) => i.id), ['i-1']);
  assert.is(partial.refused?.kind, 'capacity');
  assert.match(partial.refused!.message, /EC2 launched 1 of 3 × c6i\.2xlarge \(spot\): no capacity for the rest/);
});

test('each partition lists its regions from its own home region', () => {
  assert.is(partitionHomeRegion('eu-west-1'), 'us-east-1');
  assert.is(partitionHomeRegion('cn-northwest-1'), 'cn-north-1');
  assert.is(partitionHomeRegion('us-gov-east-1'), 'us-gov-west-1');
});

const spec = (over: Partial<LaunchSpec> = {}): LaunchSpec => ({
  instance_type: 'c6i.2xlarge', count: 3, spot: false, user_data: '#!/bin/sh\necho hi\n', tags: { [CLUSTER_TAG]: 'prod', team: 'video' }, client_token: 'burst-42', ...over,
});

test('a launch from an image asks for exactly count instances, tagged, with base64 user data and the token', () => {
  const p = new AwsProvider({ region: 'eu-west-1', image_id: 'ami-0abc', subnet_id: 'subnet-1', security_group_ids: ['sg-1'], key_name: 'ops', iam_instance_profile: 'prescient-agent' });
  const tags = [{ Key: CLUSTER_TAG, Value: 'prod' }, { Key: 'team', Value: 'video' }];
  assert.equal(p.runInstancesInput(spec()), {
    ImageId: 'ami-0abc', InstanceType: 'c6i.2xlarge', MinCount: 3, MaxCount: 3, UserData: Buffer.from('#!/bin/sh\necho hi\n').toString('base64'),
    ClientToken: 'burst-42', TagSpecifications: [{ ResourceType: 'instance', Tags: tags }, { ResourceType: 'volume', Tags: tags }],
    SubnetId: 'subnet-1', SecurityGroupIds: ['sg-1'], KeyName: 'ops', IamInstanceProfile: { Name: 'prescient-agent' },
  });
  p.close();
});

test('a launch from a template names it and its version, and spot asks for one-time spot capacity', () => {
  const p = new AwsProvider({ region: 'eu-west-1', launch_template: { id: 'lt-0abc', version: '4' }, iam_instance_profile: 'arn:aws:iam::123456789012:instance-profile/x' });
  const input = p.runInstancesInput(spec({ spot: true }));
  assert.is(input.ImageId, undefined);
  assert.equal(input.LaunchTemplate, { LaunchTemplateId: 'lt-0abc', Version: '4' });
  assert.equal(input.IamInstanceProfile, { Arn: 'arn:aws:iam::123456789012:instance-profile/x' });
  assert.equal(input.InstanceMarketOptions, { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } });
  p.close();
});

test('a launch that could never be listed, is empty, or carries too much user data is refused as invalid', () => {
  const p = new AwsProvider({ region: 'eu-west-1', image_id: 'ami-0abc' });
  for (const bad of [spec({ tags: { team: 'video' } }), spec({ count: 0 }), spec({ count: 1.5 }), spec({ user_data: 'x'.repeat(AWS_USER_DATA_MAX_BYTES + 1) })]) {
    try {
      p.runInstancesInput(bad);
      assert.unreachable('refused');
    } catch (e) {
      assert.instance(e, ProviderError);
      assert.is((e as ProviderError).kind, 'invalid');
    }
  }
  p.close();
});

test('a configuration with no image and no template, or a template named twice, is refused at construction', () => {
  assert.throws(() => new AwsProvider({ region: 'eu-west-1' }), (e: unknown) => e instanceof ProviderError && e.kind === 'invalid');
  assert.throws(() => new AwsProvider({ region: 'eu-west-1', launch_template: { id: 'lt-1', name: 'x' } }), (e: unknown) => e instanceof ProviderError && e.kind === 'invalid');
  assert.throws(() => new AwsProvider({ region: '', image_id: 'ami-1' }), (e: unknown) => e instanceof ProviderError && e.kind === 'invalid');
});

test.run();
