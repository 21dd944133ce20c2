/** Prometheus text for tests: one daemon's exposition through its control socket, and a value read from it. */
import { request } from 'node:http'

/** GET /v1/metrics on a control socket; anything but a 200 rejects with the status and body. */
export async function fetchMetrics (socket: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    request({ socketPath: socket, path: '/v1/metrics' }, res => {
      let body = ''
      res.on('data', d => { body += String(d) })
      res.on('end', () => { res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /v1/metrics: ${res.statusCode ?? '?'} ${body}`)) })
      res.on('error', reject)
    }).on('error', reject).end()
  })
}

/** Reads one counter (summed over labels matching `labels`) from Prometheus text. */
export function metricValue (text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+)/.exec(line)
    if (m === null || m[1] !== name) continue
    const ls = m[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3])
  }
  return sum
}
