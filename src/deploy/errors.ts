/**
 * Errors of deploy and cluster runs: one class per condition, each with a stable `deployCode` (shown per host in the
 * report and its JSON) on top of the GridError code that sets gridctl's exit status. Match on the class or the code,
 * never on the message.
 */
import { GridError, type ErrorCode } from '../interface/index.ts'

export const DEPLOY_ERROR_CODES = {
  /** The host did not take a TCP connection or an SSH handshake (refused, timed out, reset, unknown name). */
  SSH_UNREACHABLE: 'PEER_UNREACHABLE',
  /** The host refused every key offered: wrong user, or the public key is not in its authorized_keys. */
  SSH_AUTH: 'PEER_UNREACHABLE',
  /** The private key file cannot be read, is not a key, or is encrypted (use ssh-agent for those). */
  SSH_KEY: 'INVALID_CONFIG',
  /** known_hosts has no key for the host. */
  HOST_KEY_UNKNOWN: 'PEER_UNREACHABLE',
  /** known_hosts has another key for the host, or marks its key revoked. */
  HOST_KEY_CHANGED: 'PEER_UNREACHABLE',
  /** No Node executable on the host. */
  NODE_MISSING: 'UNSATISFIABLE',
  /** Node on the host is older than Grid needs. */
  NODE_TOO_OLD: 'UNSATISFIABLE',
  /** The host lacks something this run needs: systemd for --service-manager systemd, or root (or sudo) for it. */
  HOST_UNSUITABLE: 'UNSATISFIABLE',
  /** A command run on the host failed; the message has its exit status and the end of its output. */
  REMOTE_COMMAND: 'INTERNAL',
  /** Grid is not installed on the host (cluster commands). */
  NOT_INSTALLED: 'NOT_FOUND',
  /** gridd runs but did not become alive in the mesh, or does not see the nodes it must see, in time. */
  NOT_ALIVE: 'TIMEOUT',
  /** gridd exited (or its unit failed) right after start. */
  DAEMON_EXITED: 'UNAVAILABLE',
  /** The gridctl installed on the host lacks a command this run needs (drain, undrain). */
  COMMAND_MISSING: 'UNSATISFIABLE',
  /** Not attempted because a host it depends on failed (the bootstrap host, an earlier step of a rolling restart). */
  SKIPPED: 'UNAVAILABLE',
  /** Interrupted (Ctrl-C). */
  CANCELLED: 'CANCELLED'
} as const satisfies Record<string, ErrorCode>

export type DeployErrorCode = keyof typeof DEPLOY_ERROR_CODES

type Options = { cause?: unknown, details?: unknown }

export class DeployError extends GridError {
  readonly deployCode: DeployErrorCode
  constructor (deployCode: DeployErrorCode, name: string, message: string, o?: Options) {
    super(DEPLOY_ERROR_CODES[deployCode], message, o)
    this.deployCode = deployCode
    this.name = name
  }
}

export class SshUnreachableError extends DeployError { constructor (m: string, o?: Options) { super('SSH_UNREACHABLE', 'SshUnreachableError', m, o) } }
export class SshAuthError extends DeployError { constructor (m: string, o?: Options) { super('SSH_AUTH', 'SshAuthError', m, o) } }
export class SshKeyError extends DeployError { constructor (m: string, o?: Options) { super('SSH_KEY', 'SshKeyError', m, o) } }
export class HostKeyUnknownError extends DeployError { constructor (m: string, o?: Options) { super('HOST_KEY_UNKNOWN', 'HostKeyUnknownError', m, o) } }
export class HostKeyChangedError extends DeployError { constructor (m: string, o?: Options) { super('HOST_KEY_CHANGED', 'HostKeyChangedError', m, o) } }
export class NodeMissingError extends DeployError { constructor (m: string, o?: Options) { super('NODE_MISSING', 'NodeMissingError', m, o) } }
export class NodeTooOldError extends DeployError { constructor (m: string, o?: Options) { super('NODE_TOO_OLD', 'NodeTooOldError', m, o) } }
export class HostUnsuitableError extends DeployError { constructor (m: string, o?: Options) { super('HOST_UNSUITABLE', 'HostUnsuitableError', m, o) } }
export class RemoteCommandError extends DeployError { constructor (m: string, o?: Options) { super('REMOTE_COMMAND', 'RemoteCommandError', m, o) } }
export class NotInstalledError extends DeployError { constructor (m: string, o?: Options) { super('NOT_INSTALLED', 'NotInstalledError', m, o) } }
export class NotAliveError extends DeployError { constructor (m: string, o?: Options) { super('NOT_ALIVE', 'NotAliveError', m, o) } }
export class DaemonExitedError extends DeployError { constructor (m: string, o?: Options) { super('DAEMON_EXITED', 'DaemonExitedError', m, o) } }
export class CommandMissingError extends DeployError { constructor (m: string, o?: Options) { super('COMMAND_MISSING', 'CommandMissingError', m, o) } }
export class SkippedError extends DeployError { constructor (m: string, o?: Options) { super('SKIPPED', 'SkippedError', m, o) } }
export class DeployCancelledError extends DeployError { constructor (m: string, o?: Options) { super('CANCELLED', 'DeployCancelledError', m, o) } }

/** The inventory file is unreadable or has invalid entries; every violation is listed, each naming its key. */
export class InventoryError extends GridError {
  readonly violations: string[]
  constructor (file: string, violations: string[], o?: Options) {
    super('INVALID_CONFIG', `invalid inventory ${file}:\n  - ${violations.join('\n  - ')}`, { ...o, details: { violations } })
    this.violations = violations
    this.name = 'InventoryError'
  }
}

/** The stable code shown for any error in a host's report line. */
export function reportCode (err: unknown): string {
  if (err instanceof DeployError) return err.deployCode
  if (err instanceof GridError) return err.code
  return 'INTERNAL'
}
