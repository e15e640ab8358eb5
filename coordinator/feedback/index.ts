/**
 * Public API of `coordinator/feedback/`: the model's error signal turned into rolling figures,
 * drift and error alerts, an online correction of the leader's predictions per node, and memory
 * margins per codec. Pure parts (window, drift, correction, alerts, loop, predictor) apart from
 * the NATS wiring (service).
 */
export { errorEntry, pushWindow, rollingFigures, type RollingFigures, type WindowEntry } from './window.js';
export { pageHinkley, freshPageHinkley, DEFAULT_PAGE_HINKLEY, type PageHinkleyOptions, type PageHinkleyState, type PageHinkleyStep } from './drift.js';
export {
  updateCorrection, applyMemoryRatio, DEFAULT_CORRECTION, DEFAULT_MARGIN,
  type CorrectionOptions, type MarginOptions, type MarginState, type MarginStep,
} from './correction.js';
export { judgeError, driftDue, DEFAULT_ALERTS, type AlertOptions } from './alerts.js';
export {
  applyReport, pooledFigures, emptyFeedbackState, feedbackSettings, groupKey, invalidFeedbackRecord, marginKey, DEFAULT_FEEDBACK,
  type ErrorGroup, type MarginRecord, type FeedbackSettings, type FeedbackOverrides, type FeedbackState, type ReportContext, type ReportOutcome,
} from './loop.js';
export { CorrectedPredictor, correctPrediction, tableSource, type CorrectionSource, type CorrectionTable, type PlacementContext } from './predictor.js';
export {
  FeedbackService, JetStreamFeedbackStore, ensureFeedbackStream, postAlert, readFeedback,
  type FeedbackStore, type FeedbackServiceOptions,
} from './service.js';
