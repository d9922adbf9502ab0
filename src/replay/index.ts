export {
  replay,
  replayDevice,
  formatReplayReport,
  type ChecksumMode,
  type ReplayOptions,
  type ReplayProgress,
  type ReplayReport,
  type TcpFlowReport,
  type UdpFlowReport,
} from './replay.js';
export { analyzeCapture, CapturedTcpFlow, type CaptureAnalysis, type CaptureSource, type Turn } from './analyze.js';
export { StackTarget, TunTarget, type ReplayTarget, type StackTargetOptions } from './target.js';
export { buildFlow, renderLadder, renderSvg, type FlowDiagram, type FlowEvent, type FlowOptions, type LadderOptions } from './flow.js';
export { decodeFrame, tcpFlagNames, type FrameSummary, type TcpSummary } from './decode.js';
export { fixChecksums } from './checksums.js';
export {
  LinkTypes,
  LinkInfo,
  decapsulate,
  encapsulate,
  linkTypeName,
  isSupportedLinkType,
  outputLinkType,
  type EncapsulateOptions,
} from './linktype.js';
export { StreamAssembly } from './stream.js';
