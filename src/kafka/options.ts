/**
 * The one shape of Kafka options: how to reach the brokers, shared by the sink and
 * the readers, each of which extends it with its own fields. Validated once, where
 * the options enter (a constructor or a reader's first call), with errors that name
 * the bad path.
 *
 * Nothing here loads the Kafka client at run time (type imports only): the CLI uses
 * these schemas in every relay, and a file or stdout relay should not pay for it.
 */
import type { ConnectionOptions as TlsOptions } from "node:tls";
import type { SASLOptions } from "@platformatic/kafka";
import { z } from "zod";
import { PgshovelError } from "../errors.js";
import { CODEC_NAMES, type Codec, type CodecName } from "../stream/codec.js";

/** The SASL mechanisms the Kafka client implements. */
export const SASL_MECHANISMS = [
  "PLAIN",
  "SCRAM-SHA-256",
  "SCRAM-SHA-512",
  "OAUTHBEARER",
  "GSSAPI",
] as const satisfies readonly SASLOptions["mechanism"][];

/** The mechanisms that authenticate with a user name and a password (the CLI's choices). */
export const PASSWORD_SASL_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] as const;

/** One of {@link PASSWORD_SASL_MECHANISMS}. */
export type PasswordSaslMechanism = (typeof PASSWORD_SASL_MECHANISMS)[number];

const brokerAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, "must be host:port");

/** A Kafka topic name as the broker accepts it. */
export const topicNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9._-]{1,249}$/, "must be 1 to 249 of the characters a-z A-Z 0-9 . _ -");

/** A codec given by name. */
export const codecNameSchema = z.custom<CodecName>(
  (value) => CODEC_NAMES.some((name) => name === value),
  `must be one of ${CODEC_NAMES.join(", ")}`,
);

/** A codec given by name or as a codec object. */
export const codecSchema = z.union([
  codecNameSchema,
  z.custom<Codec>(
    (value) =>
      typeof value === "object" &&
      value !== null &&
      "decode" in value &&
      typeof value.decode === "function",
    `must be one of ${CODEC_NAMES.join(", ")} or a codec object`,
  ),
]);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null;

const saslSchema = z
  .custom<SASLOptions>(
    (value) => isObject(value) && SASL_MECHANISMS.some((m) => m === value.mechanism),
    `must have a mechanism among ${SASL_MECHANISMS.join(", ")}`,
  )
  .superRefine((sasl, context) => {
    if (!PASSWORD_SASL_MECHANISMS.some((m) => m === sasl.mechanism)) return;
    for (const field of ["username", "password"] as const) {
      if (sasl[field] === undefined || sasl[field] === "") {
        context.addIssue({
          code: "custom",
          path: [field],
          message: `required with mechanism ${sasl.mechanism}`,
        });
      }
    }
  });

/** The fields every Kafka client of pgshovel takes: how to reach the brokers. */
export const kafkaConnectionFields = {
  /** Bootstrap brokers, "host:port". */
  brokers: z.array(brokerAddress).min(1, "must list at least one broker"),
  /** The client id the brokers log; absent, a default names the role. */
  clientId: z.string().min(1).optional(),
  /** TLS options of node:tls, e.g. `{ ca, cert, key }`; absent: plaintext. */
  tls: z.custom<TlsOptions>((value) => isObject(value), "must be node:tls options").optional(),
  /** SASL mechanism and credentials, handed to the client untouched. */
  sasl: saslSchema.optional(),
};

/** The schema of {@link KafkaConnectionOptions}. */
export const kafkaConnectionSchema = z.object(kafkaConnectionFields).strict();

/** How to reach a Kafka cluster; tls and sasl go to the client untouched. */
export type KafkaConnectionOptions = z.output<typeof kafkaConnectionSchema>;

/**
 * Validates `input` against `schema`; throws PgshovelError("INVALID_ARGUMENT")
 * naming every bad path, e.g. "invalid Kafka sink options: brokers.0: must be host:port".
 */
export function parseKafkaOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.length === 0 ? "(options)" : issue.path.map(String).join(".");
    return `${path}: ${issue.message}`;
  });
  throw new PgshovelError("INVALID_ARGUMENT", `invalid ${what}: ${problems.join("; ")}`);
}

/** The options every @platformatic/kafka client takes, from {@link KafkaConnectionOptions}. */
export function clientOptions(connection: KafkaConnectionOptions, defaultClientId: string) {
  return {
    clientId: connection.clientId ?? defaultClientId,
    bootstrapBrokers: connection.brokers,
    ...(connection.tls === undefined ? {} : { tls: connection.tls }),
    ...(connection.sasl === undefined ? {} : { sasl: connection.sasl }),
    connectTimeout: 5_000,
    // A few quick retries inside the client; longer outages are the caller's
    // withRetry's business, driven by the retryable flag.
    retries: 3,
    retryDelay: 250,
  };
}
