/**
 * The Grafana dashboard in grafana/ as tests read it: its model, its panels and variables, every PromQL expression
 * and the metric names those read.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './paths.ts'

export const DASHBOARD = join(ROOT, 'grafana/grid-dashboard.json')
export const PROVIDER = join(ROOT, 'grafana/provisioning/dashboards/grid.yaml')
export const DATASOURCE = join(ROOT, 'grafana/provisioning/datasources/prometheus.yaml')
export const README = join(ROOT, 'grafana/README.md')
export const DS_REF = { type: 'prometheus', uid: '${datasource}' }

export interface DatasourceRef { type?: string, uid?: string }
export interface Target { refId: string, expr?: string, legendFormat?: string, datasource?: DatasourceRef }
export interface Panel {
  id: number
  type: string
  title: string
  description?: string
  datasource?: DatasourceRef
  gridPos: { x: number, y: number, w: number, h: number }
  targets?: Target[]
  panels?: Panel[]
  fieldConfig?: { defaults?: { unit?: string, thresholds?: { steps?: unknown[] } } }
  options?: { legend?: { showLegend?: boolean } }
}
export interface Variable {
  type: string
  name: string
  query?: string | { query?: string }
  definition?: string
  datasource?: DatasourceRef
  multi?: boolean
  includeAll?: boolean
}
export interface Dashboard {
  id: number | null
  uid: string
  title: string
  schemaVersion: number
  __inputs?: unknown
  panels: Panel[]
  templating: { list: Variable[] }
}

export const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard

/** Every panel, those inside collapsed rows included, in order. */
export function allPanels (): Panel[] {
  return dashboard.panels.flatMap(p => [p, ...(p.panels ?? [])])
}

export const graphPanels = (): Panel[] => allPanels().filter(p => p.type !== 'row')

export function variable (name: string): Variable {
  const v = dashboard.templating.list.find(x => x.name === name)
  if (v === undefined) throw new Error(`the dashboard has no variable ${name}`)
  return v
}

export function variableQuery (v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query?.query ?? ''
}

export interface Expression {
  /** for people: panel "Throughput" query B */
  where: string
  /** the same as a metric name, for promtool's messages: grafana:throughput:B */
  key: string
  expr: string
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '')

/** Every PromQL expression of the dashboard, with where it is; a label_values() variable gives its metric selector. */
export function expressions (): Expression[] {
  const out: Expression[] = []
  for (const p of graphPanels()) {
    for (const t of p.targets ?? []) {
      if (t.expr !== undefined) out.push({ where: `panel "${p.title}" query ${t.refId}`, key: `grafana:${slug(p.title)}:${t.refId}`, expr: t.expr })
    }
  }
  for (const v of dashboard.templating.list.filter(x => x.type === 'query')) {
    const q = variableQuery(v)
    const lv = /^\s*label_values\(\s*(?:(.+?)\s*,\s*)?[A-Za-z_]\w*\s*\)\s*$/.exec(q)
    const qr = /^\s*query_result\((.*)\)\s*$/.exec(q)
    const expr = lv !== null ? lv[1] : qr !== null ? qr[1] : q
    if (expr !== undefined && expr !== '') out.push({ where: `variable ${v.name}`, key: `grafana:variable:${slug(v.name)}`, expr })
  }
  return out
}

// PromQL's functions and aggregation operators, and the words that are neither metrics nor functions
const PROMQL_FUNCTIONS = new Set([
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'avg_over_time', 'ceil',
  'changes', 'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh', 'count_over_time', 'day_of_month', 'day_of_week',
  'day_of_year', 'days_in_month', 'deg', 'delta', 'deriv', 'double_exponential_smoothing', 'exp', 'floor',
  'histogram_avg', 'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_stddev', 'histogram_stdvar',
  'histogram_sum', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace',
  'last_over_time', 'ln', 'log10', 'log2', 'mad_over_time', 'max_over_time', 'min_over_time', 'minute', 'month', 'pi',
  'predict_linear', 'present_over_time', 'quantile_over_time', 'rad', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sin',
  'sinh', 'sort', 'sort_by_label', 'sort_by_label_desc', 'sort_desc', 'sqrt', 'stddev_over_time', 'stdvar_over_time',
  'sum_over_time', 'tan', 'tanh', 'time', 'timestamp', 'vector', 'year',
  'avg', 'bottomk', 'count', 'count_values', 'group', 'limit_ratio', 'limitk', 'max', 'min', 'quantile', 'stddev',
  'stdvar', 'sum', 'topk', 'start', 'end'
])
const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan'])

/**
 * The metric names a PromQL expression reads. Strings, label matchers, ranges and the label lists of by, without,
 * on, ignoring, group_left and group_right go first; what is left is functions, keywords, numbers and metric names.
 * A word called like a function that PromQL does not know throws, so a typo cannot hide as "not a metric".
 */
export function metricNames (expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\b(?:group_left|group_right)\b/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
  const names = new Set<string>()
  for (const m of bare.matchAll(/(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const word = m[1] as string
    if (m[2] !== undefined) {
      if (!PROMQL_FUNCTIONS.has(word)) throw new Error(`"${word}(" is no PromQL function, in ${expr}`)
      continue
    }
    if (PROMQL_KEYWORDS.has(word.toLowerCase())) continue
    names.add(word)
  }
  return [...names]
}

/** Metric name → where the dashboard uses it. */
export function dashboardMetrics (): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const { where, expr } of expressions()) {
    for (const name of metricNames(expr)) out.set(name, [...(out.get(name) ?? []), where])
  }
  return out
}

/** A family from a `# TYPE` line, or a histogram's (summary's) _bucket, _sum or _count series. */
export function isExported (name: string, families: Map<string, string>): boolean {
  if (families.has(name)) return true
  const m = /^(.+)_(bucket|sum|count)$/.exec(name)
  if (m === null) return false
  const type = families.get(m[1] as string)
  return type === 'histogram' || (type === 'summary' && m[2] !== 'bucket')
}

/** Grafana's variables as a query would see them with every node selected. */
export function grafanaExpanded (expr: string): string {
  return expr
    .replace(/\$__rate_interval\b/g, '1m')
    .replace(/\$__interval\b/g, '1m')
    .replace(/\$__range\b/g, '1h')
    .replace(/\$\{node\}|\$node\b/g, '.*')
}
