/**
 * Which of a job's items have a run in flight on its driver, and which run: one number per item in a typed array
 * (no object or map entry per item in flight, whatever the job's size). Pure.
 */

export class Inflight {
  /** per item: the run in flight (0: none) */
  private readonly runs: Uint32Array
  private count = 0

  constructor (length: number) {
    this.runs = new Uint32Array(length)
  }

  get size (): number { return this.count }

  /** The run of item i in flight (undefined: none). */
  get (i: number): number | undefined {
    const r = this.runs[i] ?? 0
    return r === 0 ? undefined : r
  }

  set (i: number, run: number): void {
    if (this.runs[i] === 0) this.count++
    this.runs[i] = run
  }

  delete (i: number): void {
    if (this.runs[i] === 0) return
    this.runs[i] = 0
    this.count--
  }

  /** Every item in flight with its run, in index order. */
  entries (): Array<[number, number]> {
    const out: Array<[number, number]> = []
    for (let i = 0; i < this.runs.length && out.length < this.count; i++) {
      const r = this.runs[i] as number
      if (r !== 0) out.push([i, r])
    }
    return out
  }
}
