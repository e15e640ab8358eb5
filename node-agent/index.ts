/** Public API of `node-agent/`. */
export { startAgent, type AgentHandle, type AgentOptions } from './agent.js';
export { detectHardware, parseCpuList, type Hardware, type GrantOptions } from './hardware.js';
export { QuestDbTelemetrySink, questdbQuery, questdbExec, RUNS_TABLE, SpoolLockedError, type TelemetrySink, type RunRecord, type SampleContext } from './telemetry/index.js';
export { RunRecorder, type RecordRequest, type RecordedRun } from './recorder.js';
export { runCalibration, calibrationMatrix, parseCalibrationPlan, designCalibration, type CalibrationReport, type CalibrateOptions } from './calibrate/index.js';
export { probeInput, ProbeCache, measureComplexity, measurePilot } from './ffmpeg/probe.js';
export { nodeIdentity } from './enrol.js';
