// Kafka readiness probe for scripts/services.sh: exits 0 when the broker answers a Metadata
// request listing at least one broker (a broker is listed once it is unfenced, i.e. ready
// for clients) and its transaction coordinator gives a transactional producer an id, 1
// otherwise. Usage: node kafka-ready.mjs HOST:PORT
//
// The coordinator check matters on a fresh broker: its first transactional producer creates
// the transaction state topic, and until that topic's partitions are loaded InitProducerId
// fails (COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR); a test
// opening a transactional sink at that moment would fail for the stack's sake.
//
// Only node: built-ins, so that `make services` works before `npm ci` ever ran. It speaks
// the two requests it needs on the wire: ApiVersions v0 (which every broker answers) to
// learn the Metadata versions the broker accepts, then Metadata at one of versions 1-8
// (their request and response layouts are fixed-width up to the broker list).
import net from "node:net";

const [host, port] = (process.argv[2] ?? "127.0.0.1:29092").split(":");
const API_VERSIONS = 18;
const METADATA = 3;
const FIND_COORDINATOR = 10;
const INIT_PRODUCER_ID = 22;
/** The transactional id the probe asks an id for (it holds no transaction). */
const PROBE_TRANSACTIONAL_ID = Buffer.from("pgshovel-stack-ready");

/** A STRING: int16 length, then the bytes. */
function string(bytes) {
  const length = Buffer.alloc(2);
  length.writeInt16BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * Throws unless the transaction coordinator is ready: FindCoordinator v1 (key type 1, a
 * transaction) and InitProducerId v0 both answer error code 0. Both start with
 * throttle_time_ms, then error_code.
 */
async function checkTransactions(connection) {
  const found = await connection.send(
    FIND_COORDINATOR,
    1,
    3,
    Buffer.concat([string(PROBE_TRANSACTIONAL_ID), Buffer.from([1])]),
  );
  const findError = found.readInt16BE(4);
  if (findError !== 0) throw new Error(`no transaction coordinator yet (error code ${findError})`);
  const timeout = Buffer.alloc(4);
  timeout.writeInt32BE(60_000);
  const init = await connection.send(
    INIT_PRODUCER_ID,
    0,
    4,
    Buffer.concat([string(PROBE_TRANSACTIONAL_ID), timeout]),
  );
  const initError = init.readInt16BE(4);
  if (initError !== 0) throw new Error(`transaction coordinator not ready (error code ${initError})`);
}

/** A request frame: size, header v1 (api key, version, correlation id, client id), body. */
function frame(apiKey, version, correlationId, body) {
  const clientId = Buffer.from("pgshovel-stack-ready");
  const header = Buffer.alloc(10);
  header.writeInt16BE(apiKey, 0);
  header.writeInt16BE(version, 2);
  header.writeInt32BE(correlationId, 4);
  header.writeInt16BE(clientId.length, 8);
  const size = Buffer.alloc(4);
  size.writeInt32BE(header.length + clientId.length + body.length);
  return Buffer.concat([size, header, clientId, body]);
}

/** Sends requests one at a time over one connection; each resolves with its response body. */
function connect() {
  const socket = net.connect(Number(port), host);
  let pending = Buffer.alloc(0);
  let waiting;
  socket.on("data", (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    if (waiting && pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
      const size = pending.readInt32BE(0);
      const response = pending.subarray(4, 4 + size);
      pending = pending.subarray(4 + size);
      const { resolve, reject, correlationId } = waiting;
      waiting = undefined;
      if (response.readInt32BE(0) !== correlationId) reject(new Error("unexpected correlation id"));
      else resolve(response.subarray(4));
    }
  });
  const failed = new Promise((_, reject) => {
    socket.once("error", reject);
    socket.once("close", () => reject(new Error("connection closed")));
  });
  failed.catch(() => {});
  return {
    send(apiKey, version, correlationId, body) {
      const answered = new Promise((resolve, reject) => {
        waiting = { resolve, reject, correlationId };
      });
      socket.write(frame(apiKey, version, correlationId, body));
      return Promise.race([answered, failed]);
    },
    close: () => socket.destroy(),
  };
}

/** The [min, max] Metadata versions from an ApiVersions v0 response body. */
function metadataVersions(body) {
  const error = body.readInt16BE(0);
  if (error !== 0) throw new Error(`ApiVersions error code ${error}`);
  const count = body.readInt32BE(2);
  for (let i = 0; i < count; i++) {
    const at = 6 + i * 6;
    if (body.readInt16BE(at) === METADATA)
      return [body.readInt16BE(at + 2), body.readInt16BE(at + 4)];
  }
  throw new Error("the broker lists no Metadata API");
}

/** A Metadata request body of `version` (1-8) asking for no topic. */
function metadataRequest(version) {
  const body = Buffer.alloc(4 + (version >= 4 ? 1 : 0) + (version >= 8 ? 2 : 0));
  body.writeInt32BE(0, 0); // an empty topic array: brokers only
  return body;
}

const timer = setTimeout(() => {
  console.error(`kafka-ready: no answer from ${host}:${port}`);
  process.exit(1);
}, 8000);
const connection = connect();
try {
  const [min, max] = metadataVersions(await connection.send(API_VERSIONS, 0, 1, Buffer.alloc(0)));
  const version = Math.max(min, 1);
  if (version > Math.min(max, 8)) throw new Error(`no Metadata version in 1-8 (${min}-${max})`);
  const body = await connection.send(METADATA, version, 2, metadataRequest(version));
  // From version 3 on, the response starts with throttle_time_ms.
  const brokers = body.readInt32BE(version >= 3 ? 4 : 0);
  if (brokers <= 0) throw new Error("no broker in metadata yet");
  await checkTransactions(connection);
  console.log(
    `kafka-ready: ${host}:${port} answers (${brokers} broker(s), Metadata v${version}), transactions ready`,
  );
  process.exitCode = 0;
} catch (error) {
  console.error(`kafka-ready: ${host}:${port}: ${error?.message ?? error}`);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  connection.close();
}
