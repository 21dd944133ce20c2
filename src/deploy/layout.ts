/**
 * Where things live on a host. The program always goes under the prefix (lib/, bin/). Under systemd the rest follows
 * the unit: config and swarm key in /etc/grid, data in /var/lib/grid (StateDirectory), socket in /run/grid
 * (RuntimeDirectory), logs in the journal. Without a service manager everything stays under the prefix, so several
 * nodes can share one machine.
 */
import { CHUNKS_DIR, SYSTEMD_CONFIG_DIR, SYSTEMD_SOCKET } from './constants.ts'
import type { ServiceManager } from './inventory.ts'

export interface Layout {
  serviceManager: ServiceManager
  prefix: string
  griddJs: string
  gridctlJs: string
  /** The chunks both programs load (the package's chunks/). */
  chunksDir: string
  /** The package's version, written beside the bundles so that `cluster status` can tell what is installed. */
  versionFile: string
  binGridd: string
  binGridctl: string
  configFile: string
  swarmKeyFile: string
  socket: string
  /** gridd's data directory; null under systemd, where it is the unit's $STATE_DIRECTORY. */
  dataDir: string | null
  /** Without a service manager: the daemon's pid file and log file. */
  pidFile: string | null
  logFile: string | null
  /** Directories (without a service manager) that hold the config and the runtime files. */
  etcDir: string | null
  runDir: string | null
  logDir: string | null
}

export function layoutFor (prefix: string, serviceManager: ServiceManager): Layout {
  const lib = `${prefix}/lib`
  const bin = `${prefix}/bin`
  const common = {
    serviceManager,
    prefix,
    griddJs: `${lib}/gridd.mjs`,
    gridctlJs: `${lib}/gridctl.mjs`,
    chunksDir: `${lib}/${CHUNKS_DIR}`,
    versionFile: `${lib}/VERSION`,
    binGridd: `${bin}/gridd`,
    binGridctl: `${bin}/gridctl`
  }
  if (serviceManager === 'systemd') {
    return {
      ...common,
      configFile: `${SYSTEMD_CONFIG_DIR}/gridd.yaml`,
      swarmKeyFile: `${SYSTEMD_CONFIG_DIR}/swarm.key`,
      socket: SYSTEMD_SOCKET,
      dataDir: null,
      pidFile: null,
      logFile: null,
      etcDir: null,
      runDir: null,
      logDir: null
    }
  }
  return {
    ...common,
    configFile: `${prefix}/etc/gridd.yaml`,
    swarmKeyFile: `${prefix}/etc/swarm.key`,
    socket: `${prefix}/run/gridd.sock`,
    dataDir: `${prefix}/data`,
    pidFile: `${prefix}/run/gridd.pid`,
    logFile: `${prefix}/log/gridd.log`,
    etcDir: `${prefix}/etc`,
    runDir: `${prefix}/run`,
    logDir: `${prefix}/log`
  }
}
