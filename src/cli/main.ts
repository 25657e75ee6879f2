import { run } from "./program.js";

// bin/pgshovel passes the program name first: pgshovel, pgshovel-stream-relay or pgshovel-kafka-relay.
const [entry = "pgshovel", ...argv] = process.argv.slice(2);
const code = await run(entry, argv);
process.exitCode = code;
// A finished program exits even if a client library left something running (a socket to a
// server that stopped answering, say): everything worth waiting for was awaited by run().
setTimeout(() => process.exit(code), 2000).unref();
