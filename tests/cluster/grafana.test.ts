/**
 * Every metric the Grafana dashboard's queries name is one a running gridd exports, so a renamed metric breaks this
 * test, not a user's dashboard. (The dashboard's own checks are in tests/unit/grafana.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Cluster, waitFor, type Gridd } from '../helpers/cluster.ts'
import { dashboardMetrics, isExported } from '../helpers/dashboard.ts'
import { fetchMetrics } from '../helpers/metrics.ts'
import { FAKE_NVIDIA_SMI } from '../helpers/paths.ts'

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
