/** The dev cluster's layout and limits (gridctl dev; README, "A dev cluster on one machine"). */

/** The folder `gridctl dev up` keeps its cluster in, under the current directory. */
export const DEV_DIR = '.grid-dev'
/** The record of the running cluster in DEV_DIR: its nodes, their pids, sockets and logs. */
export const DEV_STATE_FILE = 'cluster.json'
export const DEV_STATE_VERSION = 1
export const DEV_DEFAULT_NODES = 3
/** Most nodes one dev cluster may have: each is a whole gridd (~150 MB of memory). */
export const DEV_MAX_NODES = 16
/** Most fake GPUs per node (--gpus-fake). */
export const DEV_MAX_FAKE_GPUS = 16
/** How long one node may take to answer on its control socket after it is started. */
export const DEV_START_TIMEOUT_MS = 60_000
/** How long the nodes may take to see each other alive, once all answer. */
export const DEV_CONVERGE_TIMEOUT_MS = 90_000
/** How long `dev down` waits for the nodes to exit after SIGTERM before it sends SIGKILL. */
export const DEV_STOP_TIMEOUT_MS = 30_000
/** How long `dev kill` waits for the process to be gone after SIGKILL. */
export const DEV_KILL_TIMEOUT_MS = 10_000
/** How often the waits poll (sockets, membership, exits). */
export const DEV_POLL_INTERVAL_MS = 200
/** The deadline of one request to a node while waiting or for `dev status`. */
export const DEV_REQUEST_TIMEOUT_MS = 5000
