/**
 * cli: gridctl, the client of the local daemon.
 *
 * Owns the commands (one file each, returning an exit code), the typed API client over the control socket, and the
 * output formats (table, JSON, Markdown), progress and watch. It must never import daemon internals: it is another
 * process, and speaks to the daemon only through the control API's contracts in proto/.
 */
export { runGridctl, defaultSocket } from './run-gridctl.ts'
export { ApiClient } from './client.ts'
