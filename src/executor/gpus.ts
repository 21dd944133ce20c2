/**
 * GPU inventory and utilisation from `nvidia-smi --query-gpu` (CSV). A missing nvidia-smi means no GPUs; one that
 * fails or prints something unexpected is reported once and read again at the next refresh.
 */
import { execFile } from 'node:child_process'
import type { GpuInfo } from '../interface/index.ts'

export const NVIDIA_SMI_QUERY = ['--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu', '--format=csv,noheader,nounits']
const NVIDIA_SMI_TIMEOUT_MS = 10_000

export type GpuQueryResult =
  /** `lost`: GPUs nvidia-smi lists but reports lost or in error ("fallen off the bus"): unusable */
  | { ok: true, gpus: GpuInfo[], lost: GpuInfo[] }
  | { ok: false, missing: boolean, error: string }

export async function queryGpus (nvidiaSmi: string): Promise<GpuQueryResult> {
  return await new Promise(resolve => {
    execFile(nvidiaSmi, NVIDIA_SMI_QUERY, { timeout: NVIDIA_SMI_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) {
        const code = (err as NodeJS.ErrnoException).code
        const missing = code === 'ENOENT' || code === 'EACCES'
        resolve({ ok: false, missing, error: missing ? `${nvidiaSmi} not found` : `${nvidiaSmi} failed: ${(stderr.trim() || err.message).split('\n')[0]}` })
        return
      }
      try {
        const all = parseGpuCsv(stdout)
        const lost = all.filter(g => g.lost === true).map(({ lost: _l, ...g }) => g)
        resolve({ ok: true, gpus: all.filter(g => g.lost !== true), lost })
      } catch (e) {
        resolve({ ok: false, missing: false, error: `${nvidiaSmi}: ${(e as Error).message}` })
      }
    })
  })
}

/** What nvidia-smi prints in a field of a GPU that fell off the bus or needs a reset. */
const LOST_GPU_FIELD = /GPU is lost|Unknown Error|requires reset/i

/**
 * Parses `index, uuid, name, memory.total, memory.used, utilization.gpu` lines; "[N/A]" values read as 0. A GPU
 * whose fields say it is lost ("[GPU is lost]", "[Unknown Error]", "[GPU requires reset]") is marked `lost`.
 */
export function parseGpuCsv (text: string): Array<GpuInfo & { lost?: true }> {
  const gpus: Array<GpuInfo & { lost?: true }> = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const f = line.split(',').map(s => s.trim())
    if (f.length < 6) throw new Error(`unexpected output line ${JSON.stringify(line.slice(0, 120))}`)
    const num = (s: string | undefined): number => {
      const n = Number(s)
      return Number.isFinite(n) ? n : 0
    }
    const index = Number(f[0])
    if (!Number.isInteger(index) || index < 0) throw new Error(`bad GPU index in ${JSON.stringify(line.slice(0, 120))}`)
    // the name may itself contain commas: everything between the uuid and the last three numbers
    const name = f.slice(2, f.length - 3).join(', ')
    gpus.push({
      index,
      uuid: f[1] as string,
      name,
      memoryTotalMiB: num(f[f.length - 3]),
      memoryUsedMiB: num(f[f.length - 2]),
      utilizationPercent: Math.min(100, Math.max(0, num(f[f.length - 1]))),
      ...(LOST_GPU_FIELD.test(line) ? { lost: true as const } : {})
    })
  }
  return gpus.sort((a, b) => a.index - b.index)
}
