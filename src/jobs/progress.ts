/**
 * Which of a job's progress chunks the driver writes, and when. Every write of a chunk is a new entry in the
 * replicated document: a signed record every node keeps until its writer's next generation, in its log, and a
 * tombstone in Yjs. So a chunk is written when it must be, not at every result:
 *
 * - a run that must be recorded before its task exists (`mustRecord`) is written before the task is submitted;
 * - a chunk whose every item has its final run (none pending, none running) is written once, as it settles;
 * - a chunk still open with results not written is written at most every JOB_PARTIAL_FLUSH_MS (others' view of a
 *   slow chunk, and what a successor need not run again);
 * - at the job's end, everything not written.
 *
 * A chunk is thus written at most once per start wave, once settled, and once per JOB_PARTIAL_FLUSH_MS while open,
 * whatever the item rate. Pure bookkeeping: it writes nothing itself.
 */
import { JOB_CHUNK_ITEMS, type ItemRun } from '../../proto/index.ts'

/** A chunk still open whose results are not written yet is written at most this often. */
export const JOB_PARTIAL_FLUSH_MS = 5_000

/** Whether a run's status is an item's last word for now: it ended (not pending, not running). */
export function settled (status: ItemRun['status'] | undefined): boolean {
  return status !== undefined && status !== 'running'
}

export class ChunkSchedule {
  /** per chunk: items whose run has not ended (pending or running) */
  private readonly open: Uint8Array
  /** chunks with a run that must be written before its task is submitted */
  private readonly mustWrite = new Set<number>()
  /** chunks with changes not written yet */
  private readonly unwritten = new Set<number>()
  private lastPartial: number

  constructor (runs: ReadonlyArray<ItemRun | null>, now = Date.now()) {
    this.open = new Uint8Array(Math.ceil(runs.length / JOB_CHUNK_ITEMS))
    runs.forEach((r, i) => { if (!settled(r?.status)) (this.open[Math.floor(i / JOB_CHUNK_ITEMS)] as number)++ })
    this.lastPartial = now
  }

  /** Item i's run's status changed from `prev` (undefined: not started) to `next`; `mustRecord`: it is to be written before its task exists. */
  changed (i: number, prev: ItemRun['status'] | undefined, next: ItemRun['status'], mustRecord = false): void {
    const c = Math.floor(i / JOB_CHUNK_ITEMS)
    const was = settled(prev)
    const is = settled(next)
    if (was && !is) (this.open[c] as number)++
    else if (!was && is) (this.open[c] as number)--
    this.unwritten.add(c)
    if (mustRecord) this.mustWrite.add(c)
  }

  /** The chunks to write before submitting the tasks just recorded. */
  beforeStart (): number[] {
    return this.take([...this.mustWrite])
  }

  /** The chunks to write at a periodic flush: those that settled, and every other one once per JOB_PARTIAL_FLUSH_MS. */
  due (now = Date.now()): number[] {
    if (now - this.lastPartial >= JOB_PARTIAL_FLUSH_MS) {
      this.lastPartial = now
      return this.take([...this.unwritten])
    }
    const out: number[] = []
    for (const c of this.unwritten) if (this.open[c] === 0 || this.mustWrite.has(c)) out.push(c)
    return this.take(out)
  }

  /** Every chunk not written yet (the job ends, or its driver stops). */
  all (): number[] {
    return this.take([...this.unwritten])
  }

  private take (chunks: number[]): number[] {
    for (const c of chunks) { this.unwritten.delete(c); this.mustWrite.delete(c) }
    return chunks
  }
}
