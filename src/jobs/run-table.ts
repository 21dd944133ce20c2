/**
 * Every item's latest run on its driver, compactly: status, run number, round, exit code, attempts and node in typed
 * arrays (about 20 bytes an item), stdout in one array of texts once any item has some ('' for none: a slot of 8
 * bytes an item, not a map entry), errors only for the items that have any. A million-item job's driver
 * holds no object per item; an ItemRun is made when one is asked for. Pure.
 */
import type { ItemRun } from '../../proto/index.ts'

const STATUSES: ReadonlyArray<ItemRun['status'] | undefined> = [undefined, 'running', 'completed', 'failed', 'cancelled']
const CODE: Record<ItemRun['status'], number> = { running: 1, completed: 2, failed: 3, cancelled: 4 }
/** flags: the run has an exit code (else null), attempts, a node name */
const HAS_EXIT = 1
const HAS_ATTEMPTS = 2
const HAS_EXIT_NULL = 4

export class RunTable {
  readonly length: number
  private readonly status: Uint8Array
  private readonly flags: Uint8Array
  private readonly run: Uint32Array
  private readonly round: Uint32Array
  private readonly exit: Int32Array
  private readonly attempts: Uint32Array
  /** index + 1 into `nodes` (0: none) */
  private readonly node: Uint32Array
  private readonly nodes: Array<{ id: string, name?: string }> = []
  private readonly nodeIndex = new Map<string, number>()
  /** every item's stdout ('' for none), made at the first that has one */
  private stdout: string[] | undefined
  private readonly error = new Map<number, string>()

  constructor (length: number) {
    this.length = length
    this.status = new Uint8Array(length)
    this.flags = new Uint8Array(length)
    this.run = new Uint32Array(length)
    this.round = new Uint32Array(length)
    this.exit = new Int32Array(length)
    this.attempts = new Uint32Array(length)
    this.node = new Uint32Array(length)
  }

  static from (runs: ReadonlyArray<ItemRun | null>): RunTable {
    const t = new RunTable(runs.length)
    runs.forEach((r, i) => { if (r !== null) t.set(i, r) })
    return t
  }

  /** Item i's status (undefined: not started). */
  statusOf (i: number): ItemRun['status'] | undefined {
    return STATUSES[this.status[i] ?? 0]
  }

  /** Item i's run number (0: not started). */
  runOf (i: number): number {
    return this.run[i] ?? 0
  }

  get (i: number): ItemRun | null {
    const status = this.statusOf(i)
    if (status === undefined) return null
    const r: ItemRun = { status, run: this.run[i] as number }
    const round = this.round[i] as number
    if (round > 0) r.round = round
    const n = this.nodes[(this.node[i] as number) - 1]
    if (n !== undefined) { r.node = n.id; if (n.name !== undefined) r.nodeName = n.name }
    const f = this.flags[i] as number
    if ((f & HAS_EXIT) !== 0) r.exitCode = this.exit[i] as number
    else if ((f & HAS_EXIT_NULL) !== 0) r.exitCode = null
    if ((f & HAS_ATTEMPTS) !== 0) r.attempts = this.attempts[i] as number
    const out = this.stdout?.[i]
    if (out !== undefined && out !== '') r.stdout = out
    const err = this.error.get(i)
    if (err !== undefined) r.error = err
    return r
  }

  set (i: number, r: ItemRun): void {
    this.status[i] = CODE[r.status]
    this.run[i] = r.run
    this.round[i] = r.round ?? 0
    let f = 0
    if (typeof r.exitCode === 'number') { f |= HAS_EXIT; this.exit[i] = r.exitCode } else if (r.exitCode === null) f |= HAS_EXIT_NULL
    if (r.attempts !== undefined) { f |= HAS_ATTEMPTS; this.attempts[i] = r.attempts }
    this.flags[i] = f
    this.node[i] = r.node === undefined ? 0 : this.nodeRef(r.node, r.nodeName)
    this.setStdout(i, r.stdout ?? '')
    if (r.error !== undefined && r.error !== '') this.error.set(i, r.error)
    else this.error.delete(i)
  }

  /** Item i's run `run` (of round `round`) is running: as set() with that run, without an ItemRun to build. */
  setRunning (i: number, run: number, round: number): void {
    this.status[i] = CODE.running
    this.run[i] = run
    this.round[i] = round
    this.flags[i] = 0
    this.node[i] = 0
    this.setStdout(i, '')
    this.error.delete(i)
  }

  /**
   * Item i's run completed with exit code 0 after one attempt on `node` (nodeRef's number), printing `stdout`: as
   * set() with that run, without an ItemRun to build (a warm worker's item, thousands a second).
   */
  setCompleted (i: number, run: number, round: number, node: number, stdout: string): void {
    this.status[i] = CODE.completed
    this.run[i] = run
    this.round[i] = round
    this.flags[i] = HAS_EXIT | HAS_ATTEMPTS
    this.exit[i] = 0
    this.attempts[i] = 1
    this.node[i] = node
    this.setStdout(i, stdout)
    this.error.delete(i)
  }

  private setStdout (i: number, text: string): void {
    if (this.stdout === undefined) {
      if (text === '') return
      // filled in order, so that it stays a plain array of pointers however the items end
      const all: string[] = []
      for (let k = 0; k < this.length; k++) all.push('')
      this.stdout = all
    }
    this.stdout[i] = text
  }

  /** Items [from, to)'s runs, as objects (a chunk to write, a page to show). */
  slice (from: number, to: number): Array<ItemRun | null> {
    const out: Array<ItemRun | null> = []
    for (let i = from; i < Math.min(to, this.length); i++) out.push(this.get(i))
    return out
  }

  /** Every item's run, as objects (for gridctl job on the driver's node). */
  toArray (): Array<ItemRun | null> {
    return this.slice(0, this.length)
  }

  /** How many items' runs have this status. */
  count (status: ItemRun['status']): number {
    const code = CODE[status]
    let n = 0
    for (let i = 0; i < this.length; i++) if (this.status[i] === code) n++
    return n
  }

  /** How many items have no run, and how many a run of each status (one pass, no object per item). */
  counts (): Record<ItemRun['status'] | 'none', number> {
    const by = [0, 0, 0, 0, 0]
    for (let i = 0; i < this.length; i++) (by[this.status[i] as number] as number)++
    return { none: by[0] as number, running: by[1] as number, completed: by[2] as number, failed: by[3] as number, cancelled: by[4] as number }
  }

  /** The number that stands for a node (and its name) in this table (for setCompleted). */
  nodeRef (id: string, name: string | undefined): number {
    const key = `${id}\u0000${name ?? ''}`
    let n = this.nodeIndex.get(key)
    if (n === undefined) {
      this.nodes.push(name === undefined ? { id } : { id, name })
      n = this.nodes.length
      this.nodeIndex.set(key, n)
    }
    return n
  }
}
