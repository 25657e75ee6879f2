/**
 * Removes secrets from what leaves the process for an error tracker: passwords in
 * connection URIs (`scheme://user:password@host`) and in key/value DSNs
 * (`password=…`), and any literal secret the caller knows (a SASL password, say).
 */

const URI_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@/]*@/gi;
const KEY_VALUE_PASSWORD = /(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;,]+)/gi;
const CENSORED = "***";
/** Keys whose values are secret whatever they hold. */
const SECRET_KEY = /password|passwd|secret|token|api[-_]?key/i;

/** `text` with every password it holds replaced by `***`. */
export function scrubText(text: string, secrets: readonly string[] = []): string {
  let result = text
    .replace(URI_PASSWORD, `$1:${CENSORED}@`)
    .replace(KEY_VALUE_PASSWORD, `$1${CENSORED}`);
  for (const secret of secrets) {
    if (secret.length >= 4) result = result.split(secret).join(CENSORED);
  }
  return result;
}

/** A copy of `value` with every string scrubbed and the values of secret-looking keys censored. */
export function scrubValue<T>(value: T, secrets: readonly string[] = []): T {
  const seen = new WeakSet<object>();
  const walk = (item: unknown, key: string | undefined): unknown => {
    if (typeof item === "string") {
      return key !== undefined && SECRET_KEY.test(key) ? CENSORED : scrubText(item, secrets);
    }
    if (typeof item !== "object" || item === null) return item;
    if (seen.has(item)) return item;
    seen.add(item);
    if (Array.isArray(item)) return item.map((each) => walk(each, undefined));
    const copy: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(item)) copy[k] = walk(v, k);
    return copy;
  };
  return walk(value, undefined) as T;
}
