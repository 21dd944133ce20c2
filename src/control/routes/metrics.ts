import type { Registry } from 'prom-client'
import type { Route } from '../server.ts'

/** GET /v1/metrics: this node's Prometheus text, also when the TCP metrics endpoint is off or its port was taken. */
export function metricsRoute (registry: Registry): Route {
  return {
    method: 'GET',
    path: '/metrics',
    handler: async () => ({ text: await registry.metrics(), contentType: registry.contentType })
  }
}
