import { API_PREFIX } from '../../../proto/api.ts'
import { daemonUnreachable, request } from '../client.ts'
import { requirePositionals, type Command } from '../command.ts'

export const metricsCommand: Command = {
  name: 'metrics',
  summary: 'Prints this node\'s Prometheus metrics (text exposition format).',
  usage: 'metrics',
  async run (ctx, args) {
    requirePositionals(args, [])
    const text = await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath: ctx.client.opts.socket, path: `${API_PREFIX}/metrics`, signal: ctx.signal }, res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')) })
        res.on('error', reject)
      })
      req.on('error', err => { reject(daemonUnreachable(ctx.client.opts.socket, err)) })
      req.end()
    })
    ctx.out.write(text)
    return 0
  }
}
