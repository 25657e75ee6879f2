/** The public API of the pgshovel stream: types, codecs, framing, readers and the consumer side. */

export {
  BatchAssembler,
  type BatchAssemblerOptions,
  type BatchAssemblerStats,
  type CommittedBatch,
} from "./assembler.js";
export {
  CODEC_NAMES,
  type Codec,
  type CodecName,
  codecByName,
  jsonCodec,
  protobufCodec,
} from "./codec.js";
export { decodeJson, encodeJson } from "./codec-json.js";
export { decodeProtobuf, encodeProtobuf } from "./codec-protobuf.js";
export {
  type ByteSource,
  type Frame,
  type FrameSplitter,
  type Framing,
  type FramingName,
  frameDelimited,
  framingOf,
  jsonLines,
  MAX_FRAME_BYTES,
  sizeDelimited,
  splitDelimited,
  type TornFrame,
} from "./framing.js";
export { MessageSchema as ProtobufMessageSchema } from "./gen/pgshovel/stream/v1/stream_pb.js";
export {
  type ByteChunks,
  messagesOf,
  type ReadStreamBytesOptions,
  type ReadStreamFileOptions,
  readStreamBytes,
  readStreamFile,
  type TornTail,
} from "./reader.js";
export {
  type BatchDecision,
  type BatchDiscardReason,
  type BatchHandler,
  type OpenedBatch,
  StreamingAssembler,
  type StreamingAssemblerStats,
} from "./streaming-assembler.js";
export {
  timestampFromDate,
  timestampFromParts,
  timestampProblem,
  timestampToParts,
} from "./timestamp.js";
export * from "./types.js";
export {
  StreamValidator,
  type StreamValidatorOptions,
  type StreamViolation,
  type StreamViolationKind,
} from "./validator.js";
