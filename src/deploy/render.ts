/**
 * The text of every file deploy writes on a host: the systemd unit (the one in systemd/ is this one rendered for
 * the default prefix; a unit test keeps them equal), sysusers and tmpfiles entries, the two launchers and gridd's
 * YAML config. Everything here is deterministic, so that a second deploy finds the same bytes and changes nothing.
 */
import { stringify } from 'yaml'
import { DEFAULT_PREFIX, SERVICE_USER, SYSTEMD_CONFIG_DIR, TASK_USER } from './constants.ts'
import type { Layout } from './layout.ts'
import { GRIDD_NODE_FLAGS } from '../version.ts'

/** gridd.service for a prefix. */
export function renderUnit (prefix: string = DEFAULT_PREFIX): string {
  return `# Grid daemon (gridd), one per machine. \`gridctl deploy\` installs this unit with its prefix in ExecStart; to
# install it by hand see docs/deploy.md (it needs grid.sysusers.conf and grid.tmpfiles.conf from the same folder).
[Unit]
Description=Grid cluster daemon (gridd)
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User=${SERVICE_USER}
Group=${SERVICE_USER}
# Tasks and warm workers run as ${TASK_USER} (executor.taskUser), so they cannot read gridd's data dir (node key,
# swarm key, state): gridd starts each one through setpriv, which needs CAP_SETUID and CAP_SETGID, and signals them
# (cancel, timeout, stop), which needs CAP_KILL; they get no capability themselves. Their scratch directories are in
# /var/lib/grid-scratch, shared through the ${TASK_USER} group, which gridd is in. A drop-in with
# Environment=GRID_TASK_USER= runs them as ${SERVICE_USER} again (and the capabilities can then go).
Environment=GRID_TASK_USER=${TASK_USER}
SupplementaryGroups=${TASK_USER}
AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL
ExecStart=${prefix}/bin/gridd --config ${SYSTEMD_CONFIG_DIR}/gridd.yaml
# gridd's data dir is $STATE_DIRECTORY (/var/lib/grid, the first one; grid-scratch holds tasks' scratch directories);
# its control socket goes in $RUNTIME_DIRECTORY (/run/grid), where members of the grid group can use it (0660)
StateDirectory=grid grid-scratch
StateDirectoryMode=0700
RuntimeDirectory=grid
RuntimeDirectoryMode=0750
# On SIGTERM gridd leaves the cluster gracefully, stops its tasks and cuts its own stop at 20 s. KillMode=mixed sends
# SIGTERM to gridd alone; once it has exited (or after TimeoutStopSec) SIGKILL goes to whatever is left in the unit,
# tasks' process groups included.
KillMode=mixed
TimeoutStopSec=30s
Restart=on-failure
RestartSec=2s
# exit status 2 is a configuration or flag error, which restarting cannot fix
RestartPreventExitStatus=2
LimitNOFILE=65536
UMask=0027
# Each task runs in a cgroup of its own under the unit's (its --memory limit and --cpus quota): the unit delegates
# its cgroup to gridd, which moves itself into a gridd/ sub-cgroup (a delegated v2 cgroup with controllers for its
# children may hold no processes itself). Hence no ProtectControlGroups, which would make /sys/fs/cgroup read-only.
Delegate=yes
# Hardening that leaves tasks what they need: GPUs (/dev/nvidia*, hence no PrivateDevices), users' files
# (home directories read-only) and scratch space (/tmp, /srv, /mnt and other mounts stay writable: ProtectSystem=full
# keeps /usr, /boot and /etc read-only, where strict would make every path read-only).
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
# Cheap for a daemon that spawns tasks (every line here also binds the tasks; checked with sh, python3 and Node):
# no capabilities but the three that start and stop tasks as ${TASK_USER} (gridd runs as an unprivileged user, its
# tasks as another, with none); no new namespaces (no containers or
# sandboxes inside tasks); IP, Unix and netlink (interface lists) sockets only; the system-service system calls,
# where any other (ptrace, mount, perf_event_open, bpf...) fails with EPERM instead of killing the task; other
# users' processes invisible in /proc (${TASK_USER}'s too: gridd never reads theirs; if gridd and its spawner die at
# once, systemd kills what is left in the unit before a restart); the user's SysV IPC removed at stop; mounts of its
# own (the host's still propagate in). \`systemd-analyze security gridd.service\` scores 2.8 (2.3 without the task
# user's capabilities and groups, 7.0 before any of this); a unit test keeps it under 5.
CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_KILL
RestrictNamespaces=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
ProtectProc=invisible
RemoveIPC=yes
PrivateMounts=yes

[Install]
WantedBy=multi-user.target
`
}

/** The user and group gridd runs as, and the one its tasks run as (sysusers.d(5)). */
export const SYSUSERS_CONF = `# The user and group gridd.service runs as, and the one its tasks and warm workers run as (executor.taskUser), with
# no home: a task's HOME is its working directory (systemd-sysusers; see sysusers.d(5)).
u ${SERVICE_USER} - "Grid cluster daemon" /var/lib/grid
u ${TASK_USER} - "Grid tasks" /nonexistent
`

/** /etc/grid: gridd.yaml (root:grid 0640) and swarm.key (grid:grid 0600) live there (tmpfiles.d(5)). */
export const TMPFILES_CONF = `# Directories gridd.service needs besides its StateDirectory and RuntimeDirectory (systemd-tmpfiles; see tmpfiles.d(5)).
# ${SYSTEMD_CONFIG_DIR} holds gridd.yaml (root:grid, 0640) and swarm.key (grid:grid, 0600).
d ${SYSTEMD_CONFIG_DIR} 0750 root ${SERVICE_USER} -
`

/** Quotes a string for POSIX sh. */
export function shq (s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`
}

/** bin/gridd: runs the bundled daemon with the Node found on the host. */
export function renderGriddLauncher (layout: Layout, nodePath: string): string {
  return `#!/bin/sh
# gridd launcher, written by gridctl deploy: the bundled daemon, run by the Node found on this host.
exec ${[nodePath, ...GRIDD_NODE_FLAGS, layout.griddJs].map(shq).join(' ')} "$@"
`
}

/**
 * bin/gridctl: the bundled CLI, talking to this host's daemon unless --socket or GRID_SOCKET says otherwise, with Node's
 * compile cache of the bundle in the user's cache directory (as npm run install-bin's launcher: deploy/install-bin.mjs).
 */
export function renderGridctlLauncher (layout: Layout, nodePath: string): string {
  return `#!/bin/sh
# gridctl launcher, written by gridctl deploy: talks to this host's gridd unless --socket or GRID_SOCKET says otherwise.
: "\${GRID_SOCKET:=${layout.socket}}"
export GRID_SOCKET
# Node's compile cache of the bundle (Node >= 22.1): its compiled code kept between calls, not parsed again each time
[ -n "\${NODE_COMPILE_CACHE-}" ] || [ -z "\${HOME-}" ] || { NODE_COMPILE_CACHE="\${XDG_CACHE_HOME:-$HOME/.cache}/grid/compile-cache"; export NODE_COMPILE_CACHE; }
exec ${shq(nodePath)} ${shq(layout.gridctlJs)} "$@"
`
}

export interface ConfigInput {
  cluster: string | null
  bootstrap: string[]
  /** The host's gridd keys from the inventory (name, listen, labels, ..., and dotted keys such as membership.x). */
  gridd: Record<string, unknown>
}

/** gridd.yaml for one host, with keys in a fixed order and sections nested (membership:, mesh:). */
export function renderConfig (layout: Layout, input: ConfigInput): string {
  const doc: Record<string, unknown> = {}
  if (input.cluster !== null) doc.cluster = input.cluster
  const order = ['name', 'listen', 'announce', 'region', 'labels', 'capabilities', 'metricsListen', 'logLevel']
  for (const k of order) if (input.gridd[k] !== undefined) doc[k] = input.gridd[k]
  doc.bootstrap = input.bootstrap
  doc.swarmKey = layout.swarmKeyFile
  if (layout.dataDir !== null) doc.dataDir = layout.dataDir
  if (layout.serviceManager === 'none') doc.socket = layout.socket
  const rest = Object.keys(input.gridd).filter(k => !order.includes(k)).sort()
  for (const k of rest) {
    const dot = k.indexOf('.')
    if (dot < 0) { doc[k] = input.gridd[k]; continue }
    const section = k.slice(0, dot)
    const sub = (doc[section] ?? {}) as Record<string, unknown>
    sub[k.slice(dot + 1)] = input.gridd[k]
    doc[section] = sub
  }
  return '# Written by gridctl deploy; edits here are replaced by the next deploy (change the inventory instead).\n' +
    stringify(doc, { lineWidth: 0 })
}
