/**
 * The spawner's children for unit tests: a child with everything it says recorded, and what /proc tells of processes.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import type { Child, ChildHandlers, ChildSpec, ProcessHost } from '../../src/executor/index.ts'

export type End = { how: 'exit', code: number | null, signal: NodeJS.Signals | null } | { how: 'error', code: string } | { how: 'lost' }

/** A child with everything it says recorded. */
export interface Watched {
  child: Child
  pid: Promise<number>
  stdout: () => string
  /** stdout as it was when its end was reported */
  stdoutAtEnd: () => string
  stderr: () => string
  /** resolves once stdout has `text` */
  printed: (text: string) => Promise<void>
  ended: Promise<End>
  drains: number
}

export function start (host: ProcessHost, spec: ChildSpec, extra: Partial<ChildHandlers> = {}): Watched {
  const out: Buffer[] = []
  const err: Buffer[] = []
  const waiting: Array<{ text: string, resolve: () => void }> = []
  let onPid: (pid: number) => void = () => {}
  let onEnd: (e: End) => void = () => {}
  let atEnd = ''
  const end = (e: End): void => { atEnd = w.stdout(); onEnd(e) }
  const w: Watched = {
    child: undefined as unknown as Child,
    pid: new Promise(resolve => { onPid = resolve }),
    stdout: () => Buffer.concat(out).toString('utf8'),
    stdoutAtEnd: () => atEnd,
    stderr: () => Buffer.concat(err).toString('utf8'),
    printed: async text => { if (!w.stdout().includes(text)) await new Promise<void>(resolve => { waiting.push({ text, resolve }) }) },
    ended: new Promise(resolve => { onEnd = resolve }),
    drains: 0
  }
  w.child = host.spawn(spec, {
    spawned: pid => { onPid(pid) },
    output: (stream, data) => {
      (stream === 1 ? out : err).push(data)
      for (const x of [...waiting]) if (w.stdout().includes(x.text)) { waiting.splice(waiting.indexOf(x), 1); x.resolve() }
    },
    error: e => { end({ how: 'error', code: e.code }) },
    exit: (code, signal) => { end({ how: 'exit', code, signal }) },
    lost: () => { end({ how: 'lost' }) },
    drain: () => { w.drains++ },
    ...extra
  })
  return w
}

/** Gone, or a zombie nobody has reaped yet (it runs no more either way). */
export function gone (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

export async function until (what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}


/** What a process's file descriptors point at (socket:[inode], pipe:[inode], paths). */
export function fds (pid: number): Map<number, string> {
  const out = new Map<number, string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try { out.set(Number(fd), readlinkSync(`/proc/${pid}/fd/${fd}`)) } catch {}
  }
  return out
}

export function parentOf (pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1])
}

/** The processes the spawner has forked and not yet reaped. */
export function childrenOf (pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap(tid => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(' ').filter(x => x !== '').map(Number))
}


/** The spawner's pid: the parent of a child it runs. */
export async function spawnerPid (h: ProcessHost): Promise<number> {
  const w = start(h, { argv: ['sh', '-c', 'echo $PPID'], env: {} })
  await w.ended
  return Number(w.stdout().trim())
}
