import { run } from "./program.js";

// bin/pgshovel passes the program name first: pgshovel, pgshovel-stream-relay or pgshovel-kafka-relay.
const [entry = "pgshovel", ...argv] = process.argv.slice(2);
process.exitCode = await run(entry, argv);
