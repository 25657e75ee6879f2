import { frameDelimited, jsonCodec, protobufCodec } from "../../../src/stream/index.js";
import { SAMPLE_STREAM } from "./sample.js";

/** Where the golden files live, seen from dist/test/unit/stream/. */
export const FIXTURES = new URL("../../../../test/fixtures/stream/", import.meta.url);

/** JSON lines: one message per line, each line ended by "\n" (the sink's framing). */
export function sampleJsonLines(): Uint8Array {
  const lines = SAMPLE_STREAM.map((m) => Buffer.from(jsonCodec.encode(m)).toString("utf8"));
  return Buffer.from(`${lines.join("\n")}\n`, "utf8");
}

/** Protobuf: size-delimited frames (varint length, then the message). */
export function sampleProtobufFrames(): Uint8Array {
  return Buffer.concat(SAMPLE_STREAM.map((m) => frameDelimited(protobufCodec.encode(m))));
}
