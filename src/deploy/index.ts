/**
 * deploy: installs, configures, starts, stops and restarts Grid on the hosts of an inventory, over SSH (ssh2).
 *
 * Owns the inventory format, SSH connections (a bounded pool, known_hosts checking, retries with backoff on transient
 * failures), the remote steps (probe, upload, install, start, wait until alive) and the per-host report. It runs in
 * gridctl, on the operator's machine: it must never import daemon internals (mesh, state, ...), reaches a daemon
 * only through the gridctl installed beside it on its host, and never prints or logs the swarm key. ssh2 is imported
 * here and nowhere else.
 */
export { deploy, ensureSwarmKey, type DeployOptions } from './steps.ts'
export { clusterAction, clusterStatus, DEFAULT_DRAIN_TIMEOUT_MS, type ClusterAction, type ClusterOptions } from './cluster.ts'
export { defaultKnownHostsFiles, type Progress, type RunOptions } from './common.ts'
export { loadInventory, defaultSwarmKeyPath, SERVICE_MANAGERS, type Inventory, type HostSpec, type ServiceManager } from './inventory.ts'
export { KnownHosts, knownHostsName, fingerprint, hostFieldMatches } from './known-hosts.ts'
export { findPackageDir } from './package.ts'
export { renderUnit, renderConfig, SYSUSERS_CONF, TMPFILES_CONF } from './render.ts'
export { layoutFor, type Layout } from './layout.ts'
export { HOST_COLUMNS, STATUS_COLUMNS, summary, type HostReport, type StatusReport, type HostResultKind } from './report.ts'
export * from './errors.ts'
export * from './constants.ts'
