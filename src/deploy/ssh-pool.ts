import { DeployCancelledError } from './errors.ts'
import { SshSession, type SshOptions, type SshTarget } from './ssh.ts'

/**
 * Bounds how many hosts are worked on at once, and holds one session per host: opened on the host's first step,
 * reused for every later one, closed when the caller is done with the host (or kept for a later phase).
 */
export class SshPool {
  private readonly sessions = new Map<string, SshSession>()
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor (private readonly opts: SshOptions, readonly concurrency: number) {}

  /** Runs `fn` with the host's session, holding one of the pool's slots; `keep` leaves the connection open afterwards. */
  async with<T> (target: SshTarget, fn: (s: SshSession) => Promise<T>, options: { keep?: boolean, signal?: AbortSignal, onConnect?: () => void } = {}): Promise<T> {
    await this.acquire(options.signal)
    try {
      const s = await this.session(target, options.signal, options.onConnect)
      return await fn(s)
    } finally {
      if (options.keep !== true) this.drop(target)
      this.release()
    }
  }

  /** The host's open session, or a new one. */
  async session (target: SshTarget, signal?: AbortSignal, onConnect?: () => void): Promise<SshSession> {
    const existing = this.sessions.get(target.label)
    if (existing !== undefined) return existing
    onConnect?.()
    const s = await SshSession.open(target, this.opts, signal === undefined ? {} : { signal })
    this.sessions.set(target.label, s)
    return s
  }

  drop (target: SshTarget): void {
    this.sessions.get(target.label)?.close()
    this.sessions.delete(target.label)
  }

  closeAll (): void {
    for (const s of this.sessions.values()) s.close()
    this.sessions.clear()
  }

  private async acquire (signal?: AbortSignal): Promise<void> {
    if (this.active < this.concurrency) { this.active++; return }
    await new Promise<void>((resolve, reject) => {
      const go = (): void => { signal?.removeEventListener('abort', onAbort); resolve() }
      const onAbort = (): void => {
        const i = this.waiting.indexOf(go)
        if (i >= 0) this.waiting.splice(i, 1)
        reject(new DeployCancelledError('cancelled'))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(go)
    })
  }

  private release (): void {
    const next = this.waiting.shift()
    if (next !== undefined) next()
    else this.active--
  }
}
