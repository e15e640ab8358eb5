/**
 * Secrets out of logs, errors and `--json`: URLs are shown as their scheme and host only, since
 * a webhook's userinfo, path (Slack's and Discord's carry the token there) and query can all hold
 * a credential. Every log line of the coordinator and the agent passes through `redactText`.
 */

/** What is kept of a URL: its scheme and host, and a mark that the rest was left out. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const hidden = u.username || u.password || u.pathname.length > 1 || u.search || u.hash;
    return `${u.protocol}//${u.host}${hidden ? '/…' : ''}`;
  } catch {
    return '(a URL that does not parse)';
  }
}

// scheme://anything up to a space, quote or bracket; the scheme is at least two letters, so a Windows drive is not one.
const URLS = /\b[a-z][a-z0-9+.-]+:\/\/[^\s"'<>`]+/gi;

/** `text` with every URL in it redacted (redactUrl). */
export function redactText(text: string): string {
  return text.includes('://') ? text.replace(URLS, (u) => redactUrl(u)) : text;
}

/**
 * A URL split for a request: where to send it, without credentials, and the Authorization
 * header its userinfo stood for (fetch refuses a URL with credentials in it).
 */
export function requestTarget(url: string): { url: string; headers: Record<string, string> } {
  const u = new URL(url);
  if (!u.username && !u.password) return { url: u.toString(), headers: {} };
  const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  u.username = '';
  u.password = '';
  return { url: u.toString(), headers: { authorization: `Basic ${basic}` } };
}
