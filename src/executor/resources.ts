/**
 * This machine's resources: CPUs, memory and GPUs, refreshed in the background, and the load report that
 * heartbeats carry. Task slots and GPU assignments are the executor's; it tells this object what is in use.
 */
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os'
import type { Logger } from 'pino'
import { Gauge, type Registry } from 'prom-client'
import type { GpuInfo, LoadReport, Startable } from '../interface/index.ts'
import { repeat } from '../util/index.ts'
import { queryGpus } from './gpus.ts'

const MISSING_RECHECK_MS = 60_000
/**
 * The machine's load average and memory are read again at most this often: three system calls (about 35 us
 * together) that the load report needed at every call, several times per task (the member view a task's placement
 * reads builds this node's own entry each time). The load average is a minute's average; the task slots, queue and
 * GPUs in the report are the executor's and always current.
 */
const OS_FIGURES_MAX_AGE_MS = 1_000

export interface ResourcesInit {
  nvidiaSmi: string
  /** How often GPU utilisation and memory are read again. */
  gpuRefreshMs?: number
}

export interface Usage {
  running: number
  queued: number
  done?: number
  failed?: number
  slots: number
  freeSlots: number
  freeGpus: number
  /** memory offered to tasks and not held by one, bytes (absent: the machine's) */
  memoryBytes?: number
  freeMemoryBytes?: number
}

export class LocalResources implements Startable {
  readonly cpus = availableParallelism()
  private gpuList: GpuInfo[] = []
  private gpuError: string | null = null
  /** GPUs nvidia-smi reports lost, or all of them while it fails: unusable until it reports them fine */
  private lostGpus: GpuInfo[] = []
  private hadGpus = false
  private missingUntil = 0
  private loop?: { stop: () => void }
  private usage: () => Usage
  private os = { at: -Infinity, cpu: 0, memTotalMiB: 0, memFreeMiB: 0 }

  constructor (private readonly components: { logger: Logger, registry?: Registry }, private readonly init: ResourcesInit) {
    this.usage = () => ({ running: 0, queued: 0, slots: this.cpus, freeSlots: this.cpus, freeGpus: this.gpuList.length })
    const r = components.registry
    if (r === undefined) return
    const self = this
    const perGpu = (name: string, help: string, value: (g: GpuInfo) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['gpu', 'uuid', 'model'],
        registers: [r],
        collect () {
          this.reset()
          for (const g of self.gpuList) this.set({ gpu: String(g.index), uuid: g.uuid, model: g.name }, value(g))
        }
      })
    }
    perGpu('grid_gpu_utilization_percent', 'GPU utilisation as nvidia-smi reports it, per GPU', g => g.utilizationPercent)
    perGpu('grid_gpu_memory_used_bytes', 'GPU memory in use, per GPU', g => g.memoryUsedMiB * 1048576)
    perGpu('grid_gpu_memory_total_bytes', 'GPU memory, per GPU', g => g.memoryTotalMiB * 1048576)
    const one = (name: string, help: string, value: () => number): void => {
      new Gauge({ name, help, registers: [r], collect () { this.set(value()) } })
    }
    one('grid_node_slots', 'CPU slots this node hands to tasks', () => this.usage().slots)
    one('grid_node_slots_free', 'CPU slots free now', () => this.usage().freeSlots)
    one('grid_node_gpus', 'GPUs on this node', () => this.gpus().length)
    one('grid_node_gpus_free', 'GPUs not held by a task or worker', () => this.usage().freeGpus)
    one('grid_node_cpu_load_ratio', '1-minute load average divided by the number of CPUs', () => this.load().cpu)
    one('grid_node_memory_total_bytes', 'Memory of this machine', () => totalmem())
    one('grid_node_memory_free_bytes', 'Free memory of this machine', () => freemem())
  }

  /** Reads the GPU inventory once before the node announces itself, then keeps it fresh. */
  async start (): Promise<void> {
    await this.refreshGpus()
    this.loop = repeat(async () => { await this.refreshGpus() }, this.init.gpuRefreshMs ?? 5_000, err => {
      this.components.logger.warn({ err }, 'GPU refresh failed')
    })
  }

  stop (): void {
    this.loop?.stop()
  }

  /** The executor reports what it uses; until it does, everything is free. */
  setUsageSource (fn: () => Usage): void {
    this.usage = fn
  }

  /** The GPUs tasks may use now: none while nvidia-smi fails, and never one it reports lost. */
  gpus (): GpuInfo[] {
    return this.gpuError !== null && this.hadGpus ? [] : this.gpuList
  }

  /**
   * Why GPUs this node has had cannot be used now (nvidia-smi failing, a GPU reported lost), null when they can: the
   * node is degraded meanwhile. A machine that never had a GPU is not degraded by a broken nvidia-smi.
   */
  gpusLost (): string | null {
    if (!this.hadGpus) return null
    if (this.gpuError !== null) return `${this.gpuError}; its GPUs are unusable until nvidia-smi reports them fine`
    if (this.lostGpus.length > 0) return `nvidia-smi reports GPU ${this.lostGpus.map(g => `${g.index} (${g.uuid})`).join(', ')} lost`
    return null
  }

  /** Why GPUs could not be read, when nvidia-smi exists but failed. */
  gpuProblem (): string | null {
    return this.gpuError
  }

  private osFigures (): { cpu: number, memTotalMiB: number, memFreeMiB: number } {
    const now = performance.now()
    if (now - this.os.at >= OS_FIGURES_MAX_AGE_MS) {
      this.os = {
        at: now,
        cpu: Math.round((loadavg()[0] ?? 0) / this.cpus * 1000) / 1000,
        memTotalMiB: Math.round(totalmem() / 1048576),
        memFreeMiB: Math.round(freemem() / 1048576)
      }
    }
    return this.os
  }

  load (): LoadReport {
    const u = this.usage()
    const gpus = this.gpus()
    const os = this.osFigures()
    return {
      cpu: os.cpu,
      cpus: this.cpus,
      memTotalMiB: os.memTotalMiB,
      memFreeMiB: os.memFreeMiB,
      running: u.running,
      queued: u.queued,
      slots: u.slots,
      freeSlots: u.freeSlots,
      gpus: gpus.length,
      freeGpus: u.freeGpus,
      gpuUtilizationPercent: gpus.length === 0 ? 0 : Math.round(gpus.reduce((s, g) => s + g.utilizationPercent, 0) / gpus.length),
      gpuMemoryUsedMiB: gpus.reduce((s, g) => s + g.memoryUsedMiB, 0),
      gpuMemoryTotalMiB: gpus.reduce((s, g) => s + g.memoryTotalMiB, 0),
      ...(u.memoryBytes === undefined ? {} : { taskMemoryMiB: Math.floor(u.memoryBytes / 1048576) }),
      ...(u.freeMemoryBytes === undefined ? {} : { taskMemoryFreeMiB: Math.floor(u.freeMemoryBytes / 1048576) }),
      done: u.done ?? 0,
      failed: u.failed ?? 0
    }
  }

  private async refreshGpus (): Promise<void> {
    if (Date.now() < this.missingUntil) return
    const r = await queryGpus(this.init.nvidiaSmi)
    if (r.ok) {
      if (this.gpuError !== null || r.gpus.length !== this.gpuList.length) {
        this.components.logger.info({ gpus: r.gpus.map(g => ({ index: g.index, uuid: g.uuid, name: g.name, memoryTotalMiB: g.memoryTotalMiB })) }, 'GPUs found')
      }
      if (r.lost.length > 0 && r.lost.map(g => g.uuid).join() !== this.lostGpus.map(g => g.uuid).join()) {
        this.components.logger.warn({ lost: r.lost.map(g => ({ index: g.index, uuid: g.uuid })) }, 'nvidia-smi reports GPUs lost; they are unusable until it reports them fine')
      }
      this.gpuList = r.gpus
      this.lostGpus = r.lost
      if (r.gpus.length + r.lost.length > 0) this.hadGpus = true
      this.gpuError = null
      return
    }
    if (r.missing) {
      // no nvidia-smi: look again once a minute (a driver installed later), not every refresh
      this.gpuList = []
      this.missingUntil = Date.now() + MISSING_RECHECK_MS
      return
    }
    if (this.gpuError !== r.error) this.components.logger.warn({ error: r.error, gpus: this.gpuList.length }, this.hadGpus ? 'cannot read GPUs; they are unusable until nvidia-smi works again' : 'cannot read GPUs')
    this.gpuError = r.error
  }
}
