/** Small pure parsers and formatters for durations and sizes, shared by config, the API and gridctl. */

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/

/**
 * Parses "250ms", "1s", "1.5m", "2h", "7d" or compound "1m30s" into milliseconds.
 * Returns undefined when the text is not a duration; a bare number is refused because its unit would be a guess.
 */
export function parseDuration (text: string): number | undefined {
  const t = text.trim()
  if (t === '0') return 0
  const parts = t.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d)/g)
  if (parts === null || parts.join('') !== t) return undefined
  let total = 0
  for (const p of parts) {
    const m = DURATION_RE.exec(p)
    if (m === null) return undefined
    total += Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] as number)
  }
  return Math.round(total)
}

/**
 * A duration as a user writes it, exactly (what parseDuration reads back): 2000 is "2s", 90000 "1m30s", 1500 "1.5s",
 * 250 "250ms". For messages that echo a limit the user set, such as "timed out after 2s".
 */
export function formatDurationExact (ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-'
  if (ms === 0) return '0s'
  let rest = Math.round(ms)
  let out = ''
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) {
    if (rest >= size) { out += `${Math.floor(rest / size)}${unit}`; rest %= size }
  }
  if (rest === 0) return out
  if (rest % 1000 === 0) return `${out}${rest / 1000}s`
  if (rest > 1000 && rest % 100 === 0) return `${out}${rest / 1000}s`
  return `${out}${rest}ms`
}

/** A duration rounded for display (uptimes, ages): "2.0s", "1m30s", "3h5m". */
export function formatDuration (ms: number): string {
  if (!Number.isFinite(ms)) return '-'
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`
  return `${Math.floor(ms / 86_400_000)}d${Math.round((ms % 86_400_000) / 3_600_000)}h`
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4
}

/** Parses "512", "64M", "1.5GiB", "10GB" into bytes (K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024; KB/MB/GB/TB of 1000). */
export function parseSize (text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim())
  if (m === null) return undefined
  const unit = SIZE_UNITS[(m[2] as string).toLowerCase()]
  if (unit === undefined) return undefined
  return Math.round(Number(m[1]) * unit)
}

export function formatBytes (bytes: number): string {
  if (!Number.isFinite(bytes)) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)}${units[i]}`
}
