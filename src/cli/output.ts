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
    const esc = (s: string): string => s.replace(/\|/g, '\\|')
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
    for (const [k, v] of fields) out.write(`| ${k} | ${(v instanceof Lines ? v.lines.map(x => cell(x)).join('<br>') : cell(v)).replace(/\|/g, '\\|')} |\n`)
    return
  }
  const w = Math.max(...fields.map(([k]) => k.length))
  // a value of several lines continues under its first line, in the value column
  const indent = '\n' + ' '.repeat(w + 3)
  for (const [k, v] of fields) out.write(`${(k + ':').padEnd(w + 1)}  ${v instanceof Lines ? (v.lines.length === 0 ? '-' : v.lines.map(x => cell(x)).join(indent)) : cell(v)}\n`)
}

/** A printObject value shown one item a line (a node's addresses), in the value column. */
export class Lines {
  constructor (readonly lines: readonly unknown[]) {}
}

/**
 * Text from the cluster (node names, task commands, labels) made safe for a terminal and a Markdown table: control
 * characters (escape sequences that could move the cursor, retitle the window or hide text), C1 controls and Unicode
 * direction overrides print as visible escapes (\n, \t, \x1b, \u202e) instead of acting. JSON needs none of this.
 */
export function safeText (text: string): string {
  return text.replace(UNSAFE_RE, c => {
    if (c === '\n') return '\\n'
    if (c === '\t') return '\\t'
    if (c === '\r') return '\\r'
    const code = c.codePointAt(0) as number
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}
// C0 controls, DEL, C1 controls, and the bidirectional overrides and isolates (U+202A-202E, U+2066-2069)
const UNSAFE_RE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g

function cell (v: unknown): string {
  if (v === null || v === undefined || v === '') return '-'
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map(x => cell(x)).join(', ')
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
    return entries.length === 0 ? '-' : entries.map(([k, x]) => `${safeText(k)}=${cell(x)}`).join(',')
  }
  return safeText(String(v))
}

/**
 * A node's CPU figure (its load average per CPU) as a percentage of the machine, at most 100 %; a load beyond the
 * CPUs says how far beyond ("100% (load 1.8/CPU)"), so no bar claims more than a full machine.
 */
export function cpuText (fraction: number): string {
  const f = Number.isFinite(fraction) ? Math.max(0, fraction) : 0
  const pct = `${String(Math.round(Math.min(f, 1) * 100)).padStart(3)}%`
  return f > 1 ? `${pct} (load ${f.toFixed(1)}/CPU)` : pct
}

/** Cuts a line to `width` columns (a terminal that would wrap it), marking the cut with "…". */
export function clip (line: string, width: number | undefined): string {
  if (width === undefined || width <= 0 || line.length <= width) return line
  return width === 1 ? '…' : line.slice(0, width - 1) + '…'
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
