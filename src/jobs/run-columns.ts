/**
 * A progress chunk's runs by column (proto's RunColumns) and back: what the driver writes for a chunk, and every
 * reader's ItemRuns from it. Pure. A run's absent exit code or attempts read back as null and 0 (what results show
 * for them either way); an empty stdout or error is not kept.
 */
import { JOB_CHUNK_MAX_BYTES, type ItemRun, type RunColumns } from '../../proto/index.ts'

const LETTER: Record<ItemRun['status'], string> = { running: 'r', completed: 'c', failed: 'f', cancelled: 'x' }
const STATUS: Record<string, ItemRun['status'] | undefined> = { r: 'running', c: 'completed', f: 'failed', x: 'cancelled' }

/** A chunk's runs (null: not started) by column. */
export function toColumns (runs: ReadonlyArray<ItemRun | null | undefined>): RunColumns {
  const cols: RunColumns = { s: '', r: [], n: [], nn: [], ni: [], x: [], a: [] }
  const nodes = new Map<string, number>()
  const rounds: number[] = []
  const out: string[] = []
  const errs: string[] = []
  let s = ''
  for (const r of runs) {
    s += r === null || r === undefined ? '-' : LETTER[r.status]
    cols.r.push(r?.run ?? 0)
    rounds.push(r?.round ?? 0)
    let ni = -1
    if (r?.node !== undefined) {
      ni = nodes.get(r.node) ?? -1
      if (ni < 0) { ni = cols.n.length; nodes.set(r.node, ni); cols.n.push(r.node); cols.nn.push(r.nodeName ?? '') }
    }
    cols.ni.push(ni)
    cols.x.push(r?.exitCode ?? null)
    cols.a.push(r?.attempts ?? 0)
    out.push(r?.stdout ?? '')
    errs.push(r?.error ?? '')
  }
  cols.s = s
  if (rounds.some(d => d > 0)) cols.d = rounds
  fitTexts([out, errs], JOB_CHUNK_MAX_BYTES)
  if (out.some(o => o !== '')) cols.o = out
  if (errs.some(e => e !== '')) cols.e = errs
  return cols
}

/**
 * Cuts the texts (in place) so that together they are at most `budget` bytes of UTF-8: texts under their fair share
 * stay whole, the larger ones share the rest equally (their beginnings are kept).
 */
export function fitTexts (lists: string[][], budget: number): void {
  const all: Array<{ list: string[], i: number, bytes: number }> = []
  let total = 0
  for (const list of lists) {
    list.forEach((t, i) => {
      if (t === '') return
      const bytes = Buffer.byteLength(t)
      all.push({ list, i, bytes })
      total += bytes
    })
  }
  if (total <= budget) return
  all.sort((a, b) => a.bytes - b.bytes)
  let left = budget
  all.forEach((t, k) => {
    const share = Math.floor(left / (all.length - k))
    if (t.bytes > share) t.list[t.i] = Buffer.from(t.list[t.i] as string).subarray(0, share).toString('utf8')
    left -= Math.min(t.bytes, share)
  })
}

/** The runs of a chunk written by column (null: not started, or a letter this release does not know). */
export function fromColumns (cols: RunColumns): Array<ItemRun | null> {
  const runs: Array<ItemRun | null> = []
  for (let i = 0; i < cols.s.length; i++) {
    const status = STATUS[cols.s[i] as string]
    const run = cols.r[i] ?? 0
    if (status === undefined || run < 1) { runs.push(null); continue }
    const r: ItemRun = { status, run }
    const round = cols.d?.[i] ?? 0
    if (round > 0) r.round = round
    const ni = cols.ni[i] ?? -1
    const node = cols.n[ni]
    if (node !== undefined) {
      r.node = node
      const name = cols.nn[ni]
      if (name !== undefined && name !== '') r.nodeName = name
    }
    if (status !== 'running') {
      r.exitCode = cols.x[i] ?? null
      r.attempts = cols.a[i] ?? 0
    }
    const stdout = cols.o?.[i]
    if (stdout !== undefined && stdout !== '') r.stdout = stdout
    const error = cols.e?.[i]
    if (error !== undefined && error !== '') r.error = error
    runs.push(r)
  }
  return runs
}
