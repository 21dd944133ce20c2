/**
 * metrics: the Prometheus registry and the /metrics endpoint.
 *
 * Owns the registry (created here and injected into every module, never global, so several nodes can share a test
 * process) and the HTTP server that exposes it. It must not define other modules' metrics: each registers its own.
 */
export { createRegistry, MetricsServer, type MetricsStatus } from './metrics.ts'
