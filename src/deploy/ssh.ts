/**
 * SSH for deploy runs (ssh2, imported nowhere else): one connection per host, opened with retries on transient
 * failures (refused, timed out, reset; never on authentication or host keys), checked against known_hosts, reused
 * for every step on that host (exec with a deadline and bounded output, SFTP uploads). Keys and host keys are
 * ssh-auth.ts's; the pool that bounds how many hosts are worked on at once is ssh-pool.ts's.
 */
import ssh2, { type Client, type ClientChannel, type SFTPWrapper } from 'ssh2'
import { backoffMs, delay } from '../util/index.ts'
import {
  KEEPALIVE_COUNT_MAX, KEEPALIVE_INTERVAL_MS, REMOTE_OUTPUT_MAX_BYTES, REMOTE_STEP_TIMEOUT_MS, RETRY_BASE_MS, RETRY_CAP_MS
} from './constants.ts'
import { DeployCancelledError, RemoteCommandError, SshAuthError, SshUnreachableError, type DeployError } from './errors.ts'
import { knownHostsName, type KnownHosts } from './known-hosts.ts'
import { authMethods, checkHostKey } from './ssh-auth.ts'

export interface SshTarget {
  host: string
  port: number
  user: string
  /** Private key file; null: ssh-agent, then ~/.ssh's default keys. */
  key: string | null
  hostKeyAlias: string | null
  /** The host's label in progress lines and errors. */
  label: string
}

export interface SshOptions {
  /** null: host keys are not checked at all (--insecure-ignore-host-keys). */
  knownHosts: KnownHosts | null
  /** The known_hosts file a missing key should be added to (named in messages). */
  knownHostsFile: string
  connectTimeoutMs: number
  /** Further attempts after a transient connection failure. */
  retries: number
  env: NodeJS.ProcessEnv
  /** Told before each retry (for progress lines). */
  onRetry?: (target: SshTarget, attempt: number, delayMs: number, err: DeployError) => void
  random?: () => number
}

export interface ExecResult {
  /** Exit status; null when the command was killed by a signal. */
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
}

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed. */
  stdin?: string
  timeoutMs?: number
  signal?: AbortSignal
}

// ssh2 is CommonJS: Node's ESM loader gives only its default export
const { Client: SshClient } = ssh2

/** Errors worth another attempt: the network or the host's sshd was briefly not there. */
const transient = new WeakSet<Error>()
function markTransient<E extends Error> (err: E): E { transient.add(err); return err }
export function isTransient (err: unknown): boolean { return err instanceof Error && transient.has(err) }

/** One host's connection, reconnected (with the same retries) if it drops between steps. */
export class SshSession {
  private client: Client | null = null
  private sftpP: Promise<SFTPWrapper> | null = null
  private closing = false

  private constructor (readonly target: SshTarget, private readonly opts: SshOptions) {}

  static async open (target: SshTarget, opts: SshOptions, options: { signal?: AbortSignal } = {}): Promise<SshSession> {
    const s = new SshSession(target, opts)
    await s.connect(options.signal)
    return s
  }

  get where (): string { return `${this.target.user}@${this.target.host}:${this.target.port}` }

  /**
   * Runs a command and collects its output. A connection that dropped before or during the command is reopened and
   * the command run once more: every step deploy runs is idempotent.
   */
  async exec (command: string, options: ExecOptions = {}): Promise<ExecResult> {
    return await this.onceMore(async () => await this.execOnce(command, options), options.signal)
  }

  /** Writes bytes to a remote file (created with `mode`) over SFTP. */
  async writeFile (remotePath: string, data: Buffer, mode: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.onceMore(async () => {
      const sftp = await this.sftp(options.signal)
      await abortable(new Promise<void>((resolve, reject) => {
        sftp.writeFile(remotePath, data, { mode }, err => { if (err !== null && err !== undefined) reject(this.sftpError(remotePath, err)); else resolve() })
      }), options.signal)
    }, options.signal)
  }

  /** Uploads a local file over SFTP with parallel requests (fast on links with latency). */
  async putFile (localPath: string, remotePath: string, mode: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.onceMore(async () => {
      const sftp = await this.sftp(options.signal)
      await abortable(new Promise<void>((resolve, reject) => {
        sftp.fastPut(localPath, remotePath, { mode, concurrency: 32, chunkSize: 32_768 }, err => { if (err !== null && err !== undefined) reject(this.sftpError(remotePath, err)); else resolve() })
      }), options.signal)
    }, options.signal)
  }

  /** Runs a step; when the connection was lost under it, reconnects (with the usual retries) and runs it once more. */
  private async onceMore<T> (step: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await step()
    } catch (err) {
      if (!isTransient(err) || signal?.aborted === true || this.closing) throw err
      await this.connect(signal)
      return await step()
    }
  }

  close (): void {
    this.closing = true
    this.sftpP = null
    const c = this.client
    this.client = null
    if (c !== null) { try { c.end() } catch {} }
  }

  private sftpError (path: string, err: Error): Error {
    if (this.client === null && !this.closing) return markTransient(new SshUnreachableError(`${this.where}: connection lost while uploading ${path}`, { cause: err }))
    return new RemoteCommandError(`uploading ${path} to ${this.target.label} failed: ${err.message}`, { cause: err })
  }

  private async sftp (signal?: AbortSignal): Promise<SFTPWrapper> {
    if (this.client === null) await this.connect(signal)
    if (this.sftpP === null) {
      const client = this.client as Client
      this.sftpP = new Promise<SFTPWrapper>((resolve, reject) => {
        client.sftp((err, sftp) => {
          if (err !== undefined && err !== null) {
            this.sftpP = null
            reject(new RemoteCommandError(`${this.target.label}: the SFTP subsystem is not available (${err.message}); enable "Subsystem sftp" in its sshd_config`, { cause: err }))
          } else resolve(sftp)
        })
      })
    }
    return await this.sftpP
  }

  private async execOnce (command: string, options: ExecOptions): Promise<ExecResult> {
    if (this.client === null) await this.connect(options.signal)
    const client = this.client as Client
    const timeoutMs = options.timeoutMs ?? REMOTE_STEP_TIMEOUT_MS
    return await new Promise<ExecResult>((resolve, reject) => {
      let channel: ClientChannel | undefined
      let settled = false
      const finish = (fn: () => void): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        fn()
      }
      const onAbort = (): void => {
        try { channel?.close() } catch {}
        finish(() => { reject(new DeployCancelledError(`${this.target.label}: cancelled`)) })
      }
      const timer = setTimeout(() => {
        try { channel?.signal('KILL') } catch {}
        try { channel?.close() } catch {}
        finish(() => { reject(new RemoteCommandError(`${this.target.label}: a remote step took longer than ${Math.round(timeoutMs / 1000)}s and was abandoned`)) })
      }, timeoutMs)
      if (options.signal?.aborted === true) { onAbort(); return }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      client.exec(command, (err, ch) => {
        if (err !== undefined && err !== null) {
          finish(() => { reject(markTransient(new SshUnreachableError(`${this.where}: could not open a session (${err.message})`, { cause: err }))) })
          return
        }
        channel = ch
        const out: Buffer[] = []
        const errOut: Buffer[] = []
        let outBytes = 0
        let errBytes = 0
        let code: number | null = null
        let sig: string | null = null
        let exited = false
        ch.on('data', (d: Buffer) => { if (outBytes < REMOTE_OUTPUT_MAX_BYTES) { out.push(d); outBytes += d.length } })
        ch.stderr.on('data', (d: Buffer) => { if (errBytes < REMOTE_OUTPUT_MAX_BYTES) { errOut.push(d); errBytes += d.length } })
        ch.on('exit', (c: number | null, s?: string) => {
          exited = true
          code = typeof c === 'number' ? c : null
          sig = typeof s === 'string' ? s : null
        })
        ch.on('close', () => {
          if (!exited && this.client !== client) {
            finish(() => { reject(markTransient(new SshUnreachableError(`${this.where}: connection lost during a remote step`))) })
            return
          }
          finish(() => { resolve({ code, signal: sig, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') }) })
        })
        ch.end(options.stdin ?? '')
      })
    })
  }

  /** Opens (or reopens) the connection, retrying transient failures with exponential backoff and jitter. */
  private async connect (signal?: AbortSignal): Promise<void> {
    if (this.client !== null) return
    this.closing = false
    const started = Date.now()
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted === true) throw new DeployCancelledError(`${this.target.label}: cancelled`)
      try {
        this.client = await this.connectOnce(signal)
        return
      } catch (err) {
        if (!isTransient(err) || attempt >= this.opts.retries) {
          if (isTransient(err) && attempt > 0) {
            const e = err as DeployError
            throw new SshUnreachableError(`${e.message} (gave up after ${attempt + 1} attempts in ${((Date.now() - started) / 1000).toFixed(1)}s)`, { cause: e })
          }
          throw err
        }
        const wait = backoffMs(attempt, RETRY_BASE_MS, RETRY_CAP_MS, this.opts.random)
        this.opts.onRetry?.(this.target, attempt + 1, wait, err as DeployError)
        try {
          await delay(wait, signal)
        } catch {
          throw new DeployCancelledError(`${this.target.label}: cancelled`)
        }
      }
    }
  }

  private async connectOnce (signal?: AbortSignal): Promise<Client> {
    const t = this.target
    const auth = authMethods(t, this.opts.env)
    const lookup = knownHostsName(t.host, t.port, t.hostKeyAlias)
    const known = this.opts.knownHosts
    let hostKeyError: DeployError | null = null
    const client = new SshClient()
    return await new Promise<Client>((resolve, reject) => {
      let settled = false
      const done = (err: Error | null): void => {
        if (settled) return
        settled = true
        signal?.removeEventListener('abort', onAbort)
        if (err === null) {
          client.on('close', () => { if (this.client === client) { this.client = null; this.sftpP = null } })
          resolve(client)
        } else {
          client.removeAllListeners('ready')
          client.on('error', () => {})
          try { client.destroy() } catch {}
          reject(err)
        }
      }
      const onAbort = (): void => { done(new DeployCancelledError(`${t.label}: cancelled`)) }
      signal?.addEventListener('abort', onAbort, { once: true })
      client.on('ready', () => { done(null) })
      client.on('error', (err: Error & { level?: string, code?: string }) => {
        if (settled) return
        done(hostKeyError ?? this.classify(err, auth.offered))
      })
      client.on('close', () => { done(hostKeyError ?? markTransient(new SshUnreachableError(`${this.where}: the connection closed during the SSH handshake`))) })
      try {
        client.connect({
          host: t.host,
          port: t.port,
          username: t.user,
          readyTimeout: this.opts.connectTimeoutMs,
          keepaliveInterval: KEEPALIVE_INTERVAL_MS,
          keepaliveCountMax: KEEPALIVE_COUNT_MAX,
          authHandler: auth.methods,
          ...(known === null
            ? { hostVerifier: () => true }
            : {
                algorithms: { serverHostKey: known.algorithmsFor(lookup) as never },
                hostVerifier: (key: Buffer): boolean => {
                  hostKeyError = checkHostKey(known, this.opts.knownHostsFile, lookup, t, key)
                  return hostKeyError === null
                }
              })
        })
      } catch (err) {
        done(new SshUnreachableError(`${this.where}: ${(err as Error).message}`, { cause: err }))
      }
    })
  }

  private classify (err: Error & { level?: string, code?: string }, offered: string): DeployError {
    const where = this.where
    if (err.level === 'client-authentication') {
      return new SshAuthError(`${where}: authentication failed (offered ${offered}); check the user, and that the public key is in ~${this.target.user}/.ssh/authorized_keys on the host`, { cause: err })
    }
    if (err.level === 'client-timeout') {
      return markTransient(new SshUnreachableError(`${where}: no SSH handshake within ${Math.round(this.opts.connectTimeoutMs / 1000)}s (host down, or a firewall drops the port?)`, { cause: err }))
    }
    switch (err.code) {
      case 'ECONNREFUSED': return markTransient(new SshUnreachableError(`${where}: connection refused (is sshd running there, on port ${this.target.port}?)`, { cause: err }))
      case 'ETIMEDOUT': return markTransient(new SshUnreachableError(`${where}: connection timed out (host down, or a firewall drops the port?)`, { cause: err }))
      case 'ECONNRESET':
      case 'EPIPE': return markTransient(new SshUnreachableError(`${where}: connection reset`, { cause: err }))
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
      case 'EHOSTDOWN': return markTransient(new SshUnreachableError(`${where}: no route to host`, { cause: err }))
      case 'EAI_AGAIN': return markTransient(new SshUnreachableError(`${where}: name lookup failed for now (DNS)`, { cause: err }))
      case 'ENOTFOUND':
      case 'EAI_NONAME': return new SshUnreachableError(`${where}: unknown host name ${this.target.host}`, { cause: err })
    }
    if (err.level === 'client-socket') return markTransient(new SshUnreachableError(`${where}: ${err.message}`, { cause: err }))
    return new SshUnreachableError(`${where}: SSH handshake failed: ${err.message}`, { cause: err })
  }
}

async function abortable<T> (p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return await p
  if (signal.aborted) throw new DeployCancelledError('cancelled')
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => {
      onAbort = () => { reject(new DeployCancelledError('cancelled')) }
      signal.addEventListener('abort', onAbort, { once: true })
    })])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
