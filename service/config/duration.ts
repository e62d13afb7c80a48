// Durations in the config are short strings ("90s", "15m", "1h", "1h30m"): hours, minutes and
// seconds, in that order, each at most once. Zero is refused: a zero TTL or skew is always a mistake.

const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** Milliseconds for a duration like "90s", "15m", "1h", "1h30m"; null when malformed or zero. */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text);
  if (!match || text.length === 0) return null;
  const [, hours, minutes, seconds] = match;
  const ms = (Number(hours ?? 0) * 3600 + Number(minutes ?? 0) * 60 + Number(seconds ?? 0)) * 1000;
  if (!Number.isSafeInteger(ms) || ms <= 0) return null;
  return ms;
}

/** The shortest config-style text for a duration: 5_400_000 -> "1h30m", 90_000 -> "1m30s", 0 -> "0s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0s';
  const whole = Math.floor(ms);
  const hours = Math.floor(whole / 3_600_000);
  const minutes = Math.floor((whole % 3_600_000) / 60_000);
  const seconds = Math.floor((whole % 60_000) / 1000);
  const millis = whole % 1000;
  let text = '';
  if (hours > 0) text += `${hours}h`;
  if (minutes > 0) text += `${minutes}m`;
  if (seconds > 0) text += `${seconds}s`;
  if (millis > 0) text += `${millis}ms`;
  return text;
}
