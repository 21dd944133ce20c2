/**
 * The next step for each error a user meets first: not running, no permission, no or a different swarm key, a port in
 * use, nothing can run it, Node too old. Each code here has a section in docs/troubleshooting.md (a unit test holds
 * them together), and gridctl and gridd print an error with a hint as `error [CODE]: cause — next step`.
 *
 * Plain strings and no imports: gridctl loads this on every call.
 */

export const HINTS = {
  DAEMON_NOT_RUNNING: 'start it with `npm start` or `systemctl start gridd`, or point gridctl at another socket with --socket (or GRID_SOCKET)',
  SOCKET_PERMISSION_DENIED: 'run gridctl as the socket\'s owner, or as a member of its group (the systemd unit\'s socket is group grid: `sudo usermod -aG grid $USER`, then log in again)',
  NO_SWARM_KEY: 'copy the cluster\'s swarm key there from any member (its data dir\'s swarm.key), or create one for a new cluster with `gridctl keygen PATH`',
  SWARM_KEY: 'replace the file with the cluster\'s swarm key (three lines: /key/swarm/psk/1.0.0/, /base16/, 64 hex digits), or create one with `gridctl keygen PATH`',
  SWARM_KEY_MISMATCH: 'compare the swarm key fingerprint `gridctl status` prints on both nodes, copy the cluster\'s swarm.key to the node that differs and restart it',
  PORT_IN_USE: 'stop what holds the port, or pass --listen with a free port (several nodes on one machine each need their own --listen, --data-dir and --name)',
  UNSATISFIABLE: 'ask for what a node offers (`gridctl nodes` lists each one\'s slots, memory, GPUs, labels and pool), or start a node that has it (gridd --slots, --task-memory, --capability, --label, --pool; GPUs are found with nvidia-smi)',
  /** src/node-version.ts prints the same text (it imports nothing, to run on any Node); a unit test keeps them equal. */
  NODE_TOO_OLD: 'install Node.js 24 LTS, or run it through deploy/with-node.sh, or put both commands on PATH with a suitable Node: npm run install-bin (see the README)'
} as const

export type HintCode = keyof typeof HINTS

/** The hint for a code, or undefined for codes that have none. */
export function hintFor (code: string): string | undefined {
  return Object.hasOwn(HINTS, code) ? HINTS[code as HintCode] : undefined
}

/** How gridctl and gridd print an error with a hint: `error [CODE]: cause — next step`. */
export function formatHinted (code: string, message: string, hint: string): string {
  return `error [${code}]: ${message} — ${hint}`
}
