/**
 * Public API of `node-agent/enforce/`: holding each encode to what was reserved for it.
 *
 *   agent start   detectEnforcement(opts) → EnforcementPlan ─describeEnforcement→ NodeCapacity.enforcement
 *   each encode   confineTask(plan, reservation) → Confinement    (worker thread, before pass 1)
 *                   runFfmpeg(…, { confinement })  spawn into the task's cgroups, prlimit, GPU env
 *                   confinement.breach(exit)       an OOM kill → ReservationExceededError
 *                   confinement.release()          after the last pass, failure or cancellation
 *   agent stop    releaseEnforcement(plan)       the node's cgroup directories and qdiscs
 *   agent killed  removeNodeLeftovers(node id)   the same, for an agent that will not start again
 */
export { detectEnforcement, describeEnforcement, releaseEnforcement, removeNodeLeftovers, type DetectOptions } from './detect.js';
export { NET_PRIO_MOUNT } from './network.js';
export { qdiscHandle } from './shaping.js';
export { confineTask } from './confine.js';
export { ReservationExceededError } from './errors.js';
export {
  memoryLimitBytes, dataLimitBytes, throttleBytesPerSecond, gpuView, ffmpegGpuIds, parseResourceList,
  MEMORY_HEADROOM_BYTES, DATA_LIMIT_PER_RESERVED,
} from './limits.js';
export { NODE_CGROUP_PREFIX, TASK_CGROUP_PREFIX } from './cgroup.js';
export {
  RESERVED_RESOURCES,
  type Confinement, type Enforcement, type EnforcementOptions, type EnforcementPlan, type ReservedResource, type TaskReservation,
  type CpuMechanism, type MemoryMechanism, type GpuMechanism, type BandwidthMechanism, type NetworkMechanism, type ShapedInterface, type NodeCgroup, type ProcessExit,
} from './types.js';
