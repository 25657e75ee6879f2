import { PgshovelError } from "../errors.js";
import { decodeFail } from "./checks.js";
import { decodeJson, encodeJson } from "./codec-json.js";
import { decodeProtobuf, encodeProtobuf } from "./codec-protobuf.js";
import type { Message } from "./types.js";

/** The names of the stream codecs. */
export type CodecName = "json" | "protobuf";

/** Every {@link CodecName}. */
export const CODEC_NAMES: readonly CodecName[] = ["json", "protobuf"];

/**
 * Turns messages into the bytes of one record and back. The JSON codec's bytes
 * are the UTF-8 line without its newline: framing is framing.ts's job.
 */
export interface Codec {
  /** Which codec this is. */
  readonly name: CodecName;
  /** The bytes of one message (one Kafka record, one line, one frame). */
  encode(message: Message): Uint8Array;
  /**
   * A textual codec's message as a string, before UTF-8: a sink that gathers many
   * messages converts them to bytes at once, which costs far less than once each.
   */
  encodeText?(message: Message): string;
  /** The message held by `bytes`; throws PgshovelError("DECODE_ERROR"). */
  decode(bytes: Uint8Array): Message;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The JSON-lines codec (one line of UTF-8, without newline). */
export const jsonCodec: Codec = {
  name: "json",
  encode: (message) => utf8Encoder.encode(encodeJson(message)),
  encodeText: encodeJson,
  decode: (bytes) => {
    let line: string;
    try {
      line = utf8Decoder.decode(bytes);
    } catch {
      return decodeFail("(message)", "not valid UTF-8");
    }
    return decodeJson(line);
  },
};

/** The protobuf codec (pgshovel.stream.v1.Message). */
export const protobufCodec: Codec = {
  name: "protobuf",
  encode: encodeProtobuf,
  decode: decodeProtobuf,
};

/** The codec called `name`; throws PgshovelError("INVALID_ARGUMENT") for an unknown name. */
export function codecByName(name: string): Codec {
  switch (name) {
    case "json":
      return jsonCodec;
    case "protobuf":
      return protobufCodec;
    default:
      throw new PgshovelError("INVALID_ARGUMENT", `unknown stream codec ${JSON.stringify(name)}`, {
        hint: `choose one of ${CODEC_NAMES.join(", ")}`,
      });
  }
}
