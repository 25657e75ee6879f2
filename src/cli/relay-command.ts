import { Command } from "commander";

/** The root command of a relay-only program (pgshovel-stream-relay, pgshovel-kafka-relay). */
export function relayProgram(entry: string, _sink: "stdout" | "kafka"): Command {
  return new Command(entry);
}

/** Adds `relay SET` to the program. */
export function addRelayCommand(_program: Command): void {}
