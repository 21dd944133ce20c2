/**
 * The Grafana dashboard in grafana/: its variables, panels and provisioning files, and that promtool parses every
 * query. That every metric a query names is one a running gridd exports is checked in tests/cluster/grafana.test.ts.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { tempDir } from '../helpers/cluster.ts'
import {
  DATASOURCE, DS_REF, PROVIDER, README, allPanels, dashboard, expressions, grafanaExpanded, graphPanels, metricNames,
  variable, variableQuery
} from '../helpers/dashboard.ts'
import { PROMTOOL, needsTool } from '../helpers/tools.ts'

const promtoolCheck = needsTool('writes every query as PromQL that promtool accepts', PROMTOOL, 'promtool')

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

  it.skipIf(promtoolCheck.skipped)(promtoolCheck.title, () => {
    expect(PROMTOOL, 'GRID_TEST_REQUIRE_TOOLS=1 but promtool is missing: set GRID_PROMTOOL or put it on PATH').toBeDefined()
    const tool = PROMTOOL as string
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
