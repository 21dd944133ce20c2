/** Defaults of `gridctl deploy` and `gridctl cluster`, each with why it is what it is. */

/** Where the package is installed: lib/gridd.mjs, lib/gridctl.mjs, lib/chunks/, bin/gridd and bin/gridctl. */
export const DEFAULT_PREFIX = '/opt/grid'

/** Grid's bundles target Node 22 (esbuild target node22); older Node lacks APIs they use. */
export const NODE_MAJOR_MIN = 22

/** Hosts worked on at once: enough to deploy a hundred boxes in a few rounds, few enough not to flood one link. */
export const DEFAULT_CONCURRENCY = 10
export const MAX_CONCURRENCY = 256

/** Retries of a transient connection failure (refused, timed out, reset) before a host is given up. */
export const DEFAULT_RETRIES = 3
export const MAX_RETRIES = 20
/** Backoff between retries: full jitter from the base up to a ceiling that doubles each attempt. */
export const RETRY_BASE_MS = 500
export const RETRY_CAP_MS = 8_000

/** TCP connect plus SSH handshake; a box that takes longer is overloaded or not there. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000
/** SSH keepalives notice a dead link within about 3 intervals instead of waiting for TCP. */
export const KEEPALIVE_INTERVAL_MS = 10_000
export const KEEPALIVE_COUNT_MAX = 3

/** One remote step (probe, install, start); stopping may take the daemon's 20 s graceful leave, so this is longer. */
export const REMOTE_STEP_TIMEOUT_MS = 120_000
/** Output kept from one remote command: enough for JSON node lists, bounded so a runaway command cannot eat memory. */
export const REMOTE_OUTPUT_MAX_BYTES = 4 * 1024 * 1024

/** How long a started node may take to be alive in the mesh (and see the nodes it must see). */
export const DEFAULT_WAIT_TIMEOUT_MS = 90_000
/** Poll interval while waiting for a node; each poll is one remote gridctl run (~0.2 s of CPU on the host). */
export const ALIVE_POLL_INTERVAL_MS = 500

/** gridd cuts its own stop at 20 s; the remote stop waits a little longer before SIGKILL (like the unit's TimeoutStopSec). */
export const STOP_WAIT_S = 30

/** systemd names, fixed so that a hand install and a deployed one look the same. */
export const UNIT_NAME = 'gridd.service'
export const SERVICE_USER = 'grid'
/** The user the unit's tasks and warm workers run as (executor.taskUser), so they cannot read gridd's data dir. */
export const TASK_USER = 'grid-task'
export const SYSTEMD_CONFIG_DIR = '/etc/grid'
export const SYSTEMD_UNIT_FILE = `/etc/systemd/system/${UNIT_NAME}`
export const SYSUSERS_FILE = '/etc/sysusers.d/grid.conf'
export const TMPFILES_FILE = '/etc/tmpfiles.d/grid.conf'
export const SYSTEMD_SOCKET = '/run/grid/gridd.sock'

/** Files of the package, as `npm run bundle` writes them. */
export const PACKAGE_FILES = ['gridd.mjs', 'gridctl.mjs'] as const

/** The package's folder of chunks beside the two programs: the code they share and what they load only when needed. */
export const CHUNKS_DIR = 'chunks'
