/**
 * The resource ledger: what of this node's CPU slots, memory and GPUs is held, by tasks and by warm workers alike.
 * One picker hands out GPUs for both (the free ones with the lowest indexes, exclusively, by UUID), so a GPU is never
 * held twice.
 */
import type { GpuInfo } from '../interface/index.ts'

/** What something asks for. */
export interface ResourceNeed { cpus: number, gpus: number, memory: number }

/** What something holds: its slots, its GPUs by UUID, its memory (bytes). */
export interface ResourceHold { cpus: number, gpus: string[], memory: number }

export interface LedgerCapacity {
  slots: number
  /** bytes */
  memoryBytes: number
}

export class ResourceLedger {
  private readonly assignedGpus = new Set<string>()
  private usedSlots = 0
  private usedMemory = 0

  /** `gpus`: the node's GPUs right now (the inventory may change while the node runs). */
  constructor (private readonly gpus: () => GpuInfo[], private readonly capacity: LedgerCapacity) {}

  get freeSlots (): number { return Math.max(0, this.capacity.slots - this.usedSlots) }
  get freeMemoryBytes (): number { return Math.max(0, this.capacity.memoryBytes - this.usedMemory) }
  get freeGpus (): number { return this.freeGpuList().length }

  /** Could this ever be held here (with nothing else held)? Undefined when yes, else why not. */
  cannotEverHold (need: ResourceNeed): string | undefined {
    const gpus = this.gpus().length
    if (need.gpus > gpus) return `it has ${gpus} GPU${gpus === 1 ? '' : 's'}, the task needs ${need.gpus}`
    if (need.cpus > this.capacity.slots) return `it has ${this.capacity.slots} CPU slots, the task needs ${need.cpus}`
    if (need.memory > this.capacity.memoryBytes) return `it has ${Math.floor(this.capacity.memoryBytes / 1048576)} MiB for tasks, the task needs ${Math.ceil(need.memory / 1048576)} MiB`
    return undefined
  }

  /** Is all of it free now? */
  fits (need: ResourceNeed): boolean {
    return this.freeSlots >= need.cpus && this.freeGpus >= need.gpus && this.freeMemoryBytes >= need.memory
  }

  /** Takes it, when all of it is free now; undefined when not (nothing is taken then). */
  take (need: ResourceNeed): ResourceHold | undefined {
    const free = this.freeGpuList()
    if (this.capacity.slots - this.usedSlots < need.cpus || free.length < need.gpus || this.capacity.memoryBytes - this.usedMemory < need.memory) return undefined
    const gpus = free.slice(0, need.gpus).map(g => g.uuid)
    for (const g of gpus) this.assignedGpus.add(g)
    this.usedSlots += need.cpus
    this.usedMemory += need.memory
    return { cpus: need.cpus, gpus, memory: need.memory }
  }

  /** Gives back what `take` handed out. */
  release (held: ResourceHold): void {
    for (const g of held.gpus) this.assignedGpus.delete(g)
    this.usedSlots -= held.cpus
    this.usedMemory -= held.memory
  }

  /** The GPUs no one holds, lowest index first. */
  private freeGpuList (): GpuInfo[] {
    return this.gpus().filter(g => !this.assignedGpus.has(g.uuid)).sort((a, b) => a.index - b.index)
  }
}
