import { PgshovelError } from "../errors.js";

/** Where an HTTP endpoint listens. */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (every interface). Port 0 picks a free
 * port (the relay logs the one it got).
 */
export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65_535) {
    throw new PgshovelError(
      "INVALID_ARGUMENT",
      `${JSON.stringify(text)} is not a listen address: use HOST:PORT, [IPv6]:PORT or :PORT`,
    );
  }
  const host = match[1] ?? (match[2] === "" ? "0.0.0.0" : match[2]!);
  return { host, port };
}
