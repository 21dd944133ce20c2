/** Output formats: every list prints as a table, JSON (exactly one document) or Markdown. */

export type Format = 'table' | 'json' | 'markdown'
export const FORMATS: readonly Format[] = ['table', 'json', 'markdown']

export interface Column<T> {
  header: string
  value: (row: T) => unknown
  /** Right-align (numbers). */
  right?: boolean
}

export interface Out {
  write(text: string | Uint8Array): void
}

/** Prints rows; JSON prints `json` (the API's own objects) rather than the formatted columns. */
export function printList<T> (out: Out, format: Format, rows: T[], columns: Array<Column<T>>, json: unknown = rows): void {
  if (format === 'json') { out.write(JSON.stringify(json, null, 2) + '\n'); return }
  const cells = rows.map(r => columns.map(c => cell(c.value(r))))
  if (format === 'markdown') {
    const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
    out.write(`| ${columns.map(c => esc(c.header)).join(' | ')} |\n`)
    out.write(`| ${columns.map(c => (c.right === true ? '---:' : '---')).join(' | ')} |\n`)
    for (const r of cells) out.write(`| ${r.map(esc).join(' | ')} |\n`)
    return
  }
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map(r => (r[i] as string).length)))
  const line = (vals: string[]): string => vals.map((v, i) => {
    const w = widths[i] as number
    const last = i === vals.length - 1
    return columns[i]?.right === true ? v.padStart(w) : (last ? v : v.padEnd(w))
  }).join('  ').trimEnd()
  out.write(line(columns.map(c => c.header.toUpperCase())) + '\n')
  for (const r of cells) out.write(line(r) + '\n')
}

/** Prints one object as key/value lines (table), a two-column Markdown table, or JSON. */
export function printObject (out: Out, format: Format, fields: Array<[string, unknown]>, json: unknown): void {
  if (format === 'json') { out.write(JSON.stringify(json, null, 2) + '\n'); return }
  if (format === 'markdown') {
    out.write('| field | value |\n| --- | --- |\n')
    for (const [k, v] of fields) out.write(`| ${k} | ${cell(v).replace(/\|/g, '\\|')} |\n`)
    return
  }
  const w = Math.max(...fields.map(([k]) => k.length))
  for (const [k, v] of fields) out.write(`${(k + ':').padEnd(w + 1)}  ${cell(v)}\n`)
}

function cell (v: unknown): string {
  if (v === null || v === undefined || v === '') return '-'
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map(x => cell(x)).join(', ')
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
    return entries.length === 0 ? '-' : entries.map(([k, x]) => `${k}=${cell(x)}`).join(',')
  }
  return String(v)
}

/** A load bar such as [#####-----] for a fraction 0..1. */
export function bar (fraction: number, width = 10): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0))
  const n = Math.round(f * width)
  return '[' + '#'.repeat(n) + '-'.repeat(width - n) + ']'
}

export function ago (ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-'
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m`
  return `${Math.floor(ms / 3_600_000)}h`
}
