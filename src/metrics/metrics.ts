import { createServer, type Server } from 'node:http'
import type { Logger } from 'pino'
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Startable } from '../interface/index.ts'

/**
 * Resolution of the event-loop lag that the metrics report (grid_nodejs_eventloop_lag_*): prom-client's monitor wakes
 * the loop this often. 100 ms, as membership's own monitor (LAG_RESOLUTION_MS, which says why).
 */
export const EVENT_LOOP_METRICS_MS = 100

/**
 * A fresh registry with process metrics (CPU, memory, event loop lag, handles) named grid_process_* and
 * grid_nodejs_*, and grid_build_info{version} when a version is given.
 */
export function createRegistry (labels: Record<string, string> = {}, version?: string): Registry {
  const registry = new Registry()
  if (Object.keys(labels).length > 0) registry.setDefaultLabels(labels)
  if (version !== undefined) {
    new Gauge({ name: 'grid_build_info', help: 'Always 1; its version label says which gridd this is', labelNames: ['version', 'node_version'], registers: [registry] })
      .set({ version, node_version: process.versions.node }, 1)
  }
  collectDefaultMetrics({ register: registry, prefix: 'grid_', eventLoopMonitoringPrecision: EVENT_LOOP_METRICS_MS })
  // prom-client names three gauges *_total, which Prometheus reserves for counters (promtool rejects them);
  // grid_nodejs_active_resources{type} carries the same figures
  for (const name of ['grid_nodejs_active_handles_total', 'grid_nodejs_active_requests_total', 'grid_nodejs_active_resources_total']) registry.removeSingleMetric(name)
  return registry
}

export interface MetricsStatus {
  enabled: boolean
  /** The address actually bound (port 0 resolved), or the one asked for if binding failed. */
  listen: string | null
  error: string | null
}

/** Serves GET /metrics. A taken address is logged and the daemon runs on without metrics (status says so). */
export class MetricsServer implements Startable {
  private server?: Server
  private state: MetricsStatus

  constructor (private readonly components: { logger: Logger, registry: Registry }, private readonly listen: string | null) {
    this.state = { enabled: false, listen, error: listen === null ? 'disabled (metricsListen: off)' : null }
  }

  status (): MetricsStatus {
    return { ...this.state }
  }

  async start (): Promise<void> {
    if (this.listen === null) return
    const idx = this.listen.lastIndexOf(':')
    const host = this.listen.slice(0, idx).replace(/^\[|\]$/g, '')
    const port = Number(this.listen.slice(idx + 1))
    const registry = this.components.registry
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('see /metrics\n')
        return
      }
      registry.metrics().then(text => {
        res.writeHead(200, { 'content-type': registry.contentType }).end(text)
      }, (err: unknown) => {
        this.components.logger.error({ err }, 'metrics collection failed')
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`)
      })
    })
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => { server.off('error', reject); resolve() })
      })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      this.state = { enabled: false, listen: this.listen, error: `cannot listen on ${this.listen}: ${code}` }
      this.components.logger.warn({ err, listen: this.listen }, 'metrics endpoint not started; running on without it (set --metrics-listen to a free HOST:PORT, or off)')
      return
    }
    const addr = server.address()
    const bound = addr !== null && typeof addr === 'object' ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : this.listen
    this.state = { enabled: true, listen: bound, error: null }
    this.server = server
    this.components.logger.info({ listen: bound }, 'metrics endpoint listening')
  }

  async stop (): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  }
}
