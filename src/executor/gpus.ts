/**
 * GPU inventory and utilisation from `nvidia-smi --query-gpu` (CSV). A missing nvidia-smi means no GPUs; one that
 * fails or prints something unexpected is reported once and read again at the next refresh.
 */
import { execFile } from 'node:child_process'
import type { GpuInfo } from '../interface/index.ts'

export const NVIDIA_SMI_QUERY = ['--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu', '--format=csv,noheader,nounits']
const NVIDIA_SMI_TIMEOUT_MS = 10_000

export type GpuQueryResult =
  | { ok: true, gpus: GpuInfo[] }
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
        resolve({ ok: true, gpus: parseGpuCsv(stdout) })
      } catch (e) {
        resolve({ ok: false, missing: false, error: `${nvidiaSmi}: ${(e as Error).message}` })
      }
    })
  })
}

/** Parses `index, uuid, name, memory.total, memory.used, utilization.gpu` lines; "[N/A]" values read as 0. */
export function parseGpuCsv (text: string): GpuInfo[] {
  const gpus: GpuInfo[] = []
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
      utilizationPercent: Math.min(100, Math.max(0, num(f[f.length - 1])))
    })
  }
  return gpus.sort((a, b) => a.index - b.index)
}
