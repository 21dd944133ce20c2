/**
 * The Grafana dashboard in grafana/: its variables, panels and provisioning files; that promtool parses every query;
 * and that every metric a query names is one a running gridd exports (so a renamed metric breaks this test, not a
 * user's dashboard).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { isAbsolute, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { Cluster, tempDir, waitFor, type Gridd } from '../helpers/cluster.ts'
import { FAKE_NVIDIA_SMI, ROOT } from '../helpers/paths.ts'

const DASHBOARD = join(ROOT, 'grafana/grid-dashboard.json')
const PROVIDER = join(ROOT, 'grafana/provisioning/dashboards/grid.yaml')
const DATASOURCE = join(ROOT, 'grafana/provisioning/datasources/prometheus.yaml')
const README = join(ROOT, 'grafana/README.md')
const DS_REF = { type: 'prometheus', uid: '${datasource}' }

interface DatasourceRef { type?: string, uid?: string }
interface Target { refId: string, expr?: string, legendFormat?: string, datasource?: DatasourceRef }
interface Panel {
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
interface Variable {
  type: string
  name: string
  query?: string | { query?: string }
  definition?: string
  datasource?: DatasourceRef
  multi?: boolean
  includeAll?: boolean
}
interface Dashboard {
  id: number | null
  uid: string
  title: string
  schemaVersion: number
  __inputs?: unknown
  panels: Panel[]
  templating: { list: Variable[] }
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard

/** Every panel, those inside collapsed rows included, in order. */
function allPanels (): Panel[] {
  return dashboard.panels.flatMap(p => [p, ...(p.panels ?? [])])
}

const graphPanels = (): Panel[] => allPanels().filter(p => p.type !== 'row')

function variable (name: string): Variable {
  const v = dashboard.templating.list.find(x => x.name === name)
  if (v === undefined) throw new Error(`the dashboard has no variable ${name}`)
  return v
}

function variableQuery (v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query?.query ?? ''
}

interface Expression {
  /** for people: panel "Throughput" query B */
  where: string
  /** the same as a metric name, for promtool's messages: grafana:throughput:B */
  key: string
  expr: string
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '')

/** Every PromQL expression of the dashboard, with where it is; a label_values() variable gives its metric selector. */
function expressions (): Expression[] {
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
function metricNames (expr: string): string[] {
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
function dashboardMetrics (): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const { where, expr } of expressions()) {
    for (const name of metricNames(expr)) out.set(name, [...(out.get(name) ?? []), where])
  }
  return out
}

/** A family from a `# TYPE` line, or a histogram's (summary's) _bucket, _sum or _count series. */
function isExported (name: string, families: Map<string, string>): boolean {
  if (families.has(name)) return true
  const m = /^(.+)_(bucket|sum|count)$/.exec(name)
  if (m === null) return false
  const type = families.get(m[1] as string)
  return type === 'histogram' || (type === 'summary' && m[2] !== 'bucket')
}

/** promtool from PATH, GRID_PROMTOOL, or where .ci/run unpacks it. */
function promtool (): string | undefined {
  for (const p of [process.env.GRID_PROMTOOL, '/opt/grid-ci/prometheus/usr/bin/promtool', '/usr/bin/promtool']) if (p !== undefined && existsSync(p)) return p
  return undefined
}

/** Grafana's variables as a query would see them with every node selected. */
function grafanaExpanded (expr: string): string {
  return expr
    .replace(/\$__rate_interval\b/g, '1m')
    .replace(/\$__interval\b/g, '1m')
    .replace(/\$__range\b/g, '1h')
    .replace(/\$\{node\}|\$node\b/g, '.*')
}

async function fetchMetrics (socket: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    request({ socketPath: socket, path: '/v1/metrics' }, res => {
      let body = ''
      res.on('data', d => { body += String(d) })
      res.on('end', () => { res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /v1/metrics: ${res.statusCode ?? '?'} ${body}`)) })
    }).on('error', reject).end()
  })
}

describe('grafana - the dashboard', () => {
  it('is a Grafana 10/11 dashboard model with the uid grid-overview that imports without inputs', () => {
    expect(dashboard.uid).toBe('grid-overview')
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(38)
    expect(dashboard.id).toBeNull()
    expect(dashboard.title).not.toBe('')
    expect(dashboard.__inputs).toBeUndefined()
    const ids = allPanels().map(p => p.id)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('lays its panels out on the 24-column grid without overlaps', () => {
    const taken = new Map<string, string>()
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos
      expect(x >= 0 && w > 0 && h > 0 && x + w <= 24, `"${p.title}" at ${JSON.stringify(p.gridPos)}`).toBe(true)
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(taken.get(`${i},${j}`), `"${p.title}" overlaps`).toBeUndefined()
          taken.set(`${i},${j}`, p.title)
        }
      }
    }
  })

  it('offers a Prometheus data source variable, and every panel and query uses it', () => {
    const ds = variable('datasource')
    expect(ds.type).toBe('datasource')
    expect(ds.query).toBe('prometheus')
    const panels = graphPanels()
    expect(panels.length).toBeGreaterThan(20)
    for (const p of panels) {
      expect(p.datasource, `panel "${p.title}"`).toEqual(DS_REF)
      expect(p.targets?.length, `panel "${p.title}" has queries`).toBeGreaterThan(0)
      for (const t of p.targets ?? []) expect(t.datasource ?? DS_REF, `panel "${p.title}" query ${t.refId}`).toEqual(DS_REF)
    }
    for (const v of dashboard.templating.list.filter(x => x.type === 'query')) expect(v.datasource, `variable ${v.name}`).toEqual(DS_REF)
  })

  it('filters by node with a multi-value node variable from label_values(grid_node_slots, node)', () => {
    const node = variable('node')
    expect(node.type).toBe('query')
    expect(variableQuery(node)).toBe('label_values(grid_node_slots, node)')
    expect(node.multi).toBe(true)
    expect(node.includeAll).toBe(true)
    const uses = expressions().filter(e => e.expr.includes('$node'))
    expect(uses.length).toBeGreaterThan(20)
    // several nodes selected make a regex alternation, which only =~ matches
    for (const { where, expr } of uses) expect(expr, where).not.toMatch(/[^=!]=\s*"[^"]*\$node/)
  })

  it('has a panel for every topic of the issue', () => {
    const topics: Array<[string, RegExp, string?]> = [
      ['cluster overview: nodes by state', /^nodes by state$/i],
      ['workers', /workers/i],
      ['slots', /slots/i],
      ['task execution: completed and failed per node', /completed and failed per node/i],
      ['success rate gauge', /success rate/i, 'gauge'],
      ['node health table', /^node health$/i, 'table'],
      ['tasks by node', /^tasks by node$/i],
      ['tasks by type', /^tasks by type$/i],
      ['throughput', /throughput/i],
      ['utilisation heatmap', /utili[sz]ation heatmap/i, 'heatmap'],
      ['latency p50/p95/p99', /latency p50\/p95\/p99/i],
      ['error rate by node', /error rate by node/i],
      ['memory by node', /^memory by node$/i],
      ['routing strategy use', /routing strategy/i],
      ['membership events', /membership events/i],
      ['queue size', /queue size/i],
      ['GPU utilisation', /^gpu utili[sz]ation$/i]
    ]
    const panels = graphPanels()
    const missing = topics.filter(([, title, type]) => !panels.some(p => title.test(p.title) && (type === undefined || p.type === type)))
    expect(missing.map(([topic, , type]) => type === undefined ? topic : `${topic} (a ${type} panel)`)).toEqual([])
  })

  it('groups its panels in rows, and describes every panel', () => {
    expect(dashboard.panels[0]?.type).toBe('row')
    const rows = dashboard.panels.filter(p => p.type === 'row')
    expect(rows.length).toBeGreaterThanOrEqual(6)
    for (const [i, p] of dashboard.panels.entries()) {
      if (p.type === 'row') expect(dashboard.panels[i + 1]?.type, `row "${p.title}" has panels`).not.toBe('row')
    }
    for (const p of graphPanels()) expect(p.description?.length ?? 0, `panel "${p.title}" has a description`).toBeGreaterThan(30)
  })

  it('gives every chart a unit, timeseries a legend, and gauges thresholds', () => {
    for (const p of graphPanels()) {
      if (['timeseries', 'stat', 'gauge', 'bargauge', 'piechart'].includes(p.type)) expect(p.fieldConfig?.defaults?.unit, `panel "${p.title}"`).toBeTruthy()
      if (p.type === 'timeseries') {
        expect(p.options?.legend?.showLegend, `panel "${p.title}"`).toBe(true)
        for (const t of p.targets ?? []) expect(t.legendFormat, `panel "${p.title}" query ${t.refId}`).toBeTruthy()
      }
      if (p.type === 'gauge') expect(p.fieldConfig?.defaults?.thresholds?.steps?.length ?? 0, `panel "${p.title}"`).toBeGreaterThan(1)
    }
  })

  it('finds the metric names in PromQL, and nothing else', () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(grid_task_duration_seconds_bucket{node=~"$node"}[$__rate_interval])))'))
      .toEqual(['grid_task_duration_seconds_bucket'])
    expect(metricNames('max by (node) (label_replace(min by (peer, peer_id) (grid_node_health_score{peer=~"$node"}), "node", "$1", "peer", "(.*)"))'))
      .toEqual(['grid_node_health_score'])
    expect(metricNames('sum(increase(a_total{status="completed"}[$__range])) / on (node) group_left (type) sum without (x) (b) > bool 1e3 or vector(0)'))
      .toEqual(['a_total', 'b'])
    expect(metricNames('count(min by (peer) (c offset 5m) == 0.5) unless d[5m:1m]')).toEqual(['c', 'd'])
    expect(() => metricNames('rates(grid_tasks_started_total[1m])')).toThrow(/"rates\(" is no PromQL function/)
  })

  it('writes every query as PromQL that promtool accepts', () => {
    const tool = promtool()
    if (tool === undefined) {
      expect(process.env.GRID_TEST_REQUIRE_TOOLS, 'promtool is required in CI').not.toBe('1')
      return
    }
    const rules = expressions().map(e => ({ record: e.key, expr: grafanaExpanded(e.expr) }))
    const dir = tempDir('grid-grafana-')
    try {
      const file = join(dir, 'dashboard-rules.yaml')
      writeFileSync(file, stringifyYaml({ groups: [{ name: 'grid-dashboard', rules }] }))
      const check = spawnSync(tool, ['check', 'rules', file], { encoding: 'utf8' })
      expect(check.stdout + check.stderr).toContain(`SUCCESS: ${rules.length} rules found`)
      expect(check.status).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('grafana - provisioning and instructions', () => {
  const provider = parseYaml(readFileSync(PROVIDER, 'utf8')) as { apiVersion: number, providers: Array<{ name: string, type: string, folder?: string, options: { path: string } }> }
  const datasource = parseYaml(readFileSync(DATASOURCE, 'utf8')) as { apiVersion: number, datasources: Array<{ name: string, type: string, uid: string, url: string, access: string }> }
  const readme = readFileSync(README, 'utf8')

  it('provisions the dashboard from the folder the README copies it to', () => {
    expect(provider.apiVersion).toBe(1)
    expect(provider.providers).toHaveLength(1)
    const p = provider.providers[0]
    expect(p?.type).toBe('file')
    const path = p?.options.path ?? ''
    expect(isAbsolute(path)).toBe(true)
    expect(readme).toContain(`grafana/grid-dashboard.json ${path}/grid-dashboard.json`)
    expect(readme).toContain('grafana/provisioning/dashboards/grid.yaml /etc/grafana/provisioning/dashboards/')
  })

  it('gives an example Prometheus data source the dashboard can use', () => {
    expect(datasource.apiVersion).toBe(1)
    expect(datasource.datasources).toHaveLength(1)
    expect(datasource.datasources[0]).toMatchObject({ type: 'prometheus', uid: 'prometheus', url: 'http://localhost:9090', access: 'proxy' })
    expect(readme).toContain('grafana/provisioning/datasources/prometheus.yaml /etc/grafana/provisioning/datasources/')
  })

  it('tells how Prometheus reaches every node, in YAML that parses', () => {
    for (const s of ['127.0.0.1:9464', '--metrics-listen', '/metrics', 'static_configs', 'file_sd_configs']) expect(readme).toContain(s)
    const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map(m => m[1] as string)
    expect(blocks.length).toBeGreaterThanOrEqual(3)
    for (const b of blocks) expect(() => parseYaml(b), b).not.toThrow()
  })
})

describe('grafana - every metric the dashboard names is one gridd exports', () => {
  let c: Cluster
  let n1: Gridd
  beforeAll(async () => {
    c = await Cluster.start(1, { args: () => ['--nvidia-smi', FAKE_NVIDIA_SMI], env: () => ({ FAKE_GPU_COUNT: '2' }) })
    n1 = c.node('n1')
    // a task, so the task series exist as they do on a working node
    expect((await n1.ctl(['run', '--', 'true'])).code).toBe(0)
  })
  afterAll(async () => { await c?.destroy() })

  it('names only metric families from the daemon\'s own exposition', async () => {
    const text = await waitFor('n1 to export its two fake GPUs', async () => {
      const t = await fetchMetrics(n1.socket)
      return (t.match(/^grid_gpu_utilization_percent\{/gm) ?? []).length === 2 ? t : undefined
    })
    const families = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(m => [m[1] as string, m[2] as string]))
    expect(families.get('grid_task_duration_seconds')).toBe('histogram')

    const used = dashboardMetrics()
    // the extraction found the dashboard's metrics, histogram series and GPU gauges among them
    expect(used.size).toBeGreaterThan(30)
    expect(used.has('grid_task_duration_seconds_bucket')).toBe(true)
    expect(used.has('grid_gpu_utilization_percent')).toBe(true)
    expect(used.has('grid_node_slots')).toBe(true)

    const unknown = [...used].filter(([name]) => !isExported(name, families)).map(([name, where]) => `${name} (${where.join('; ')})`)
    expect(unknown, 'metrics the dashboard names that gridd does not export').toEqual([])
  })
})
