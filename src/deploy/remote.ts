/**
 * What runs on a host: POSIX sh scripts fed to `sh -s` on stdin (so the login shell's quoting rules never matter),
 * through `sudo -n` where the inventory asks for it. Each script is idempotent, and none reads or prints the swarm
 * key: it travels by SFTP only.
 */
import {
  SERVICE_USER, STOP_WAIT_S, SYSTEMD_CONFIG_DIR, SYSTEMD_UNIT_FILE, SYSUSERS_FILE, TASK_USER, TMPFILES_FILE, UNIT_NAME
} from './constants.ts'
import { RemoteCommandError } from './errors.ts'
import type { Layout } from './layout.ts'
import { shq } from './render.ts'
import type { ExecResult, SshSession } from './ssh.ts'

export interface RunOptions { sudo: boolean, signal?: AbortSignal, timeoutMs?: number }

/** Runs a script with sh (as root through sudo -n when asked); stdin is the script, so commands in it get /dev/null. */
export async function runScript (s: SshSession, script: string, opts: RunOptions): Promise<ExecResult> {
  const o: { stdin: string, signal?: AbortSignal, timeoutMs?: number } = { stdin: script }
  if (opts.signal !== undefined) o.signal = opts.signal
  if (opts.timeoutMs !== undefined) o.timeoutMs = opts.timeoutMs
  return await s.exec(opts.sudo ? 'sudo -n sh -s' : 'sh -s', o)
}

/** Runs a script that must succeed; a failure names the step, its exit status and the end of its output. */
export async function mustRun (s: SshSession, step: string, script: string, opts: RunOptions): Promise<ExecResult> {
  const r = await runScript(s, script, opts)
  if (r.code !== 0) throw remoteFailure(s, step, r, opts.sudo)
  return r
}

export function remoteFailure (s: SshSession, step: string, r: ExecResult, sudo: boolean): RemoteCommandError {
  const tail = lastLines(`${r.stderr}\n${r.stdout}`, 6)
  let hint = ''
  if (/sudo: .*password is required|sudo: a terminal is required/.test(r.stderr)) hint = `; ${s.target.user} needs passwordless sudo (NOPASSWD) on the host`
  else if (/sudo: .*not found/.test(r.stderr)) hint = '; sudo is not installed on the host'
  else if (/Permission denied|Operation not permitted|Read-only file system/.test(r.stderr)) hint = sudo ? '' : `; connect as root, or set sudo: true for this host`
  const status = r.code === null ? `killed by ${r.signal ?? 'a signal'}` : `exit status ${r.code}`
  return new RemoteCommandError(`${step} failed on ${s.target.label} (${status})${tail === '' ? '' : `: ${tail}`}${hint}`)
}

export function lastLines (text: string, n: number): string {
  return text.split('\n').map(l => l.trim()).filter(l => l !== '').slice(-n).join(' | ').slice(-1500)
}

export interface Probe {
  nodeMissing: boolean
  /** process.version of the host's Node, e.g. v22.4.0. */
  node: string | null
  /** Absolute path of that Node (what the launchers run). */
  nodePath: string | null
  uid: number | null
  /** sha256 (hex) of each managed file, null when absent. */
  files: Record<string, string | null>
  /** The installed package's version (lib/VERSION), null when not installed. */
  installed: string | null
  running: boolean
  pid: number | null
  /** systemd is the host's service manager (/run/systemd/system exists). */
  systemd: boolean
  /** `systemctl is-active gridd.service` (systemd layout only). */
  unitState: string | null
}

/**
 * One round trip that tells everything a deploy decides on: the host's Node (version and path), whether we are
 * root, the sha256 of each file deploy manages, the installed version, and whether gridd runs. Node does the
 * hashing, so nothing beyond sh and Node is needed on the host.
 */
export function probeScript (layout: Layout, node: string, files: string[]): string {
  const js = `
const fs = require('fs'), crypto = require('crypto'), cp = require('child_process');
const a = JSON.parse(process.argv[1]);
const out = { nodeMissing: false, node: process.version, nodePath: process.execPath, uid: process.getuid ? process.getuid() : null, files: {}, installed: null, running: false, pid: null, systemd: fs.existsSync('/run/systemd/system'), unitState: null };
for (const f of a.files) { try { out.files[f] = crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex'); } catch (e) { out.files[f] = null; } }
try { out.installed = fs.readFileSync(a.versionFile, 'utf8').trim() || null; } catch (e) {}
function alive(pid) {
  try { process.kill(pid, 0); } catch (e) { if (e.code !== 'EPERM') return false; }
  try { return /gridd/.test(fs.readFileSync('/proc/' + pid + '/cmdline', 'latin1')); } catch (e) { return true; }
}
if (a.pidFile) {
  try { const pid = Number(fs.readFileSync(a.pidFile, 'utf8').trim()); if (pid > 0 && alive(pid)) { out.running = true; out.pid = pid; } } catch (e) {}
} else {
  const r = cp.spawnSync('systemctl', ['is-active', a.unit], { encoding: 'utf8' });
  out.unitState = r.error ? null : String(r.stdout || '').trim() || null;
  out.running = out.unitState === 'active';
}
process.stdout.write(JSON.stringify(out));
`
  const args = JSON.stringify({ files, versionFile: layout.versionFile, pidFile: layout.pidFile, unit: UNIT_NAME })
  return `N=${shq(node)}
if ! command -v "$N" >/dev/null 2>&1; then printf '{"nodeMissing":true}'; exit 0; fi
exec "$(command -v "$N")" -e ${shq(js)} ${shq(args)} </dev/null
`
}

export function parseProbe (s: SshSession, r: ExecResult, sudo: boolean): Probe {
  if (r.code !== 0) throw remoteFailure(s, 'checking the host', r, sudo)
  try {
    const p = JSON.parse(r.stdout) as Partial<Probe>
    if (p.nodeMissing === true) {
      return { nodeMissing: true, node: null, nodePath: null, uid: null, files: {}, installed: null, running: false, pid: null, systemd: false, unitState: null }
    }
    return {
      nodeMissing: false,
      node: typeof p.node === 'string' ? p.node : null,
      nodePath: typeof p.nodePath === 'string' ? p.nodePath : null,
      uid: typeof p.uid === 'number' ? p.uid : null,
      files: p.files ?? {},
      installed: typeof p.installed === 'string' ? p.installed : null,
      running: p.running === true,
      pid: typeof p.pid === 'number' ? p.pid : null,
      systemd: p.systemd === true,
      unitState: typeof p.unitState === 'string' ? p.unitState : null
    }
  } catch {
    throw new RemoteCommandError(`checking ${s.target.label} returned something that is not the expected JSON: ${lastLines(r.stdout + '\n' + r.stderr, 3)}`)
  }
}

/** A private directory for uploads (as the SSH user, who owns what SFTP writes). */
export const MKTEMP_SCRIPT = 'umask 077; mktemp -d "${TMPDIR:-/tmp}/grid-deploy.XXXXXX"\n'

export function cleanupScript (dir: string): string {
  return `rm -rf ${shq(dir)}\n`
}

export interface InstallItem {
  /** File name in the staging directory. */
  staged: string
  dest: string
  mode: string
  /** user:group, or '' to leave the owner as is. */
  owner: string
}

/**
 * Moves staged files into place, each atomically (copy beside it, chmod, chown, rename). With keepChunks (a new
 * package), the files of the chunks directory that the new package has not are removed after: older builds' chunks.
 */
export function installScript (layout: Layout, staging: string, items: InstallItem[], keepChunks?: string[]): string {
  const lines = [
    'set -eu',
    'umask 022',
    `S=${shq(staging)}`,
    'put() {',
    '  d=$(dirname "$2"); [ -d "$d" ] || mkdir -p "$d"',
    '  ( umask 077; cp "$S/$1" "$2.grid-new" )',
    '  chmod "$3" "$2.grid-new"',
    '  if [ -n "$4" ]; then chown "$4" "$2.grid-new"; fi',
    '  mv -f "$2.grid-new" "$2"',
    '}'
  ]
  if (layout.serviceManager === 'systemd') {
    const sysusers = items.find(i => i.dest === SYSUSERS_FILE)
    if (sysusers !== undefined) lines.push(`put ${shq(sysusers.staged)} ${shq(sysusers.dest)} ${sysusers.mode} ''`)
    lines.push(
      `if ! id -u ${SERVICE_USER} >/dev/null 2>&1 || ! id -u ${TASK_USER} >/dev/null 2>&1; then`,
      `  if command -v systemd-sysusers >/dev/null 2>&1; then systemd-sysusers ${SYSUSERS_FILE}; else`,
      `    id -u ${SERVICE_USER} >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/grid --no-create-home --shell /usr/sbin/nologin ${SERVICE_USER}`,
      `    id -u ${TASK_USER} >/dev/null 2>&1 || useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin ${TASK_USER}`,
      '  fi',
      'fi'
    )
    const tmpfiles = items.find(i => i.dest === TMPFILES_FILE)
    if (tmpfiles !== undefined) lines.push(`put ${shq(tmpfiles.staged)} ${shq(tmpfiles.dest)} ${tmpfiles.mode} ''`)
    lines.push(
      `if ! systemd-tmpfiles --create ${TMPFILES_FILE} >/dev/null 2>&1; then`,
      `  mkdir -p ${SYSTEMD_CONFIG_DIR}; chown root:${SERVICE_USER} ${SYSTEMD_CONFIG_DIR}; chmod 0750 ${SYSTEMD_CONFIG_DIR}`,
      'fi'
    )
  } else {
    for (const d of [layout.etcDir, layout.runDir, layout.logDir]) if (d !== null) lines.push(`mkdir -p ${shq(d)}; chmod 0700 ${shq(d)}`)
  }
  for (const i of items) {
    if (i.dest === SYSUSERS_FILE || i.dest === TMPFILES_FILE) continue
    lines.push(`put ${shq(i.staged)} ${shq(i.dest)} ${i.mode} ${shq(i.owner)}`)
  }
  if (keepChunks !== undefined) {
    lines.push(
      `if [ -d ${shq(layout.chunksDir)} ]; then for f in ${shq(layout.chunksDir)}/*; do`,
      `  case "\${f##*/}" in ${keepChunks.length > 0 ? keepChunks.map(shq).join('|') : "''"}) ;; *) rm -f "$f" ;; esac`,
      'done; fi'
    )
  }
  if (layout.serviceManager === 'systemd') {
    if (items.some(i => i.dest === SYSTEMD_UNIT_FILE)) lines.push('systemctl daemon-reload')
    lines.push(`systemctl enable --quiet ${UNIT_NAME}`)
  }
  return lines.join('\n') + '\n'
}

/** Starts gridd unless it runs; prints "started" or "running". */
export function startScript (layout: Layout): string {
  if (layout.serviceManager === 'systemd') {
    return `set -eu
if systemctl is-active --quiet ${UNIT_NAME}; then echo running; exit 0; fi
systemctl start ${UNIT_NAME}
echo started
`
  }
  return `set -eu
${alivePidFn(layout)}
if running; then echo running; exit 0; fi
${detachedStart(layout)}
echo started
`
}

/** Stops gridd if it runs; prints "stopped" or "not running". */
export function stopScript (layout: Layout): string {
  if (layout.serviceManager === 'systemd') {
    return `set -eu
if ! systemctl is-active --quiet ${UNIT_NAME}; then echo 'not running'; exit 0; fi
systemctl stop ${UNIT_NAME}
echo stopped
`
  }
  return `set -eu
${alivePidFn(layout)}
if ! running; then rm -f ${shq(layout.pidFile as string)}; echo 'not running'; exit 0; fi
${detachedStop(layout)}
echo stopped
`
}

/** Restarts gridd (or starts it when it does not run); prints "restarted". */
export function restartScript (layout: Layout): string {
  if (layout.serviceManager === 'systemd') return `set -eu\nsystemctl restart ${UNIT_NAME}\necho restarted\n`
  return `set -eu
${alivePidFn(layout)}
if running; then
${detachedStop(layout)}
fi
${detachedStart(layout)}
echo restarted
`
}

/** Without a service manager: a new session (setsid) so that gridd outlives the SSH session, with a pid file and a log. */
function detachedStart (layout: Layout): string {
  const cmd = `${shq(layout.binGridd)} --config ${shq(layout.configFile)} >>${shq(layout.logFile as string)} 2>&1 </dev/null &`
  const pid = shq(layout.pidFile as string)
  return `mkdir -p ${shq(layout.runDir as string)} ${shq(layout.logDir as string)}
cd ${shq(layout.prefix)}
if command -v setsid >/dev/null 2>&1; then setsid nohup ${cmd}
else nohup ${cmd}
fi
echo $! >${pid}.new
mv -f ${pid}.new ${pid}`
}

/** SIGTERM, then SIGKILL to its process group after ${STOP_WAIT_S}s (gridd cuts its own graceful stop at 20 s). */
function detachedStop (layout: Layout): string {
  return `kill -TERM "$P" 2>/dev/null || true
i=0
while kill -0 "$P" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt ${STOP_WAIT_S * 5} ]; then break; fi
  sleep 0.2
done
kill -KILL -- "-$P" 2>/dev/null || kill -KILL "$P" 2>/dev/null || true
rm -f ${shq(layout.pidFile as string)}`
}

/** `running` tells whether the pid file names a live gridd; sets $P. */
function alivePidFn (layout: Layout): string {
  const pidFile = shq(layout.pidFile as string)
  return `P=
running() {
  [ -f ${pidFile} ] || return 1
  P=$(cat ${pidFile} 2>/dev/null || true)
  [ -n "$P" ] || return 1
  kill -0 "$P" 2>/dev/null || return 1
  if [ -r "/proc/$P/cmdline" ]; then tr '\\000' ' ' <"/proc/$P/cmdline" | grep -q gridd || return 1; fi
  return 0
}`
}

/** Marker lines the checks below print instead of gridctl's output. */
export const DOWN_MARKER = 'GRID_DAEMON_DOWN'
export const STARTING_MARKER = 'GRID_DAEMON_STARTING'

/**
 * Runs the installed gridctl with `args` when the daemon process lives; otherwise prints DOWN_MARKER and the end of
 * its log (or STARTING_MARKER while systemd restarts it).
 */
export function gridctlScript (layout: Layout, args: string[]): string {
  const run = `exec ${shq(layout.binGridctl)} ${args.map(shq).join(' ')} </dev/null`
  if (layout.serviceManager === 'systemd') {
    return `st=$(systemctl is-active ${UNIT_NAME} 2>/dev/null || true)
case "$st" in
  active) ;;
  failed|inactive) echo ${DOWN_MARKER}; journalctl -u ${UNIT_NAME} -n 12 --no-pager -o cat 2>/dev/null || true; exit 0 ;;
  *) echo ${STARTING_MARKER}; exit 0 ;;
esac
${run}
`
  }
  return `${alivePidFn(layout)}
if ! running; then echo ${DOWN_MARKER}; tail -n 12 ${shq(layout.logFile as string)} 2>/dev/null || true; exit 0; fi
${run}
`
}

/** A remote gridctl run without the liveness check (drain, undrain). */
export function plainGridctlScript (layout: Layout, args: string[]): string {
  return `exec ${shq(layout.binGridctl)} ${args.map(shq).join(' ')} </dev/null\n`
}

/** The end of a daemon log as short readable lines: pino JSON lines become "level msg: error". */
export function summarizeLog (text: string, n = 5): string {
  const names: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }
  const lines = text.split('\n').map(l => l.trim()).filter(l => l !== '' && l !== DOWN_MARKER)
  const out = lines.map(l => {
    if (!l.startsWith('{')) return l
    try {
      const o = JSON.parse(l) as { level?: number, msg?: string, err?: { message?: string } }
      const text = `${names[o.level ?? 30] ?? 'log'} ${o.msg ?? ''}${o.err?.message !== undefined ? `: ${o.err.message}` : ''}`
      return text.replace(/\s+/g, ' ').slice(0, 400)
    } catch {
      return l
    }
  })
  // warnings and errors say more than the last info lines
  const important = out.filter(l => /^(warn|error|fatal) /.test(l) || /^gridd: /.test(l))
  return (important.length > 0 ? important : out).slice(-n).join(' | ').slice(-1500)
}
