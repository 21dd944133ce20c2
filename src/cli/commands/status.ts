import type { StatusResponse } from '../../../proto/index.ts'
import { formatDuration } from '../../interface/index.ts'
import { requirePositionals, type Command } from '../command.ts'
import { Lines, printObject } from '../output.ts'

export const statusCommand: Command = {
  name: 'status',
  summary: 'This node: id, name, addresses to join through, and the cluster\'s counts by state.',
  usage: 'status',
  async run (ctx, args) {
    requirePositionals(args, [])
    const s = await ctx.client.get<StatusResponse>('/status', ctx.signal)
    printObject(ctx.out, ctx.format, [
      ['id', s.id],
      ['name', s.name],
      ['cluster', s.cluster],
      ['version', s.version],
      ['state', s.state],
      ['addrs', new Lines(s.addrs)],
      ['region', s.region],
      ['labels', s.labels],
      ['capabilities', s.capabilities],
      ['uptime', formatDuration(s.uptimeMs)],
      ['connections', s.connections],
      ['nodes', `${s.counts.total} (alive ${s.counts.alive}, suspect ${s.counts.suspect}, dead ${s.counts.dead}, left ${s.counts.left})`],
      ['swarm key', s.swarmKeyProtected ? `fingerprint ${s.swarmKeyFingerprint ?? '?'}` : 'NONE (insecure lab mode)'],
      ['limits', s.limits === undefined ? '?' : s.limits.enforced ? `enforced (cgroup ${s.limits.cgroup ?? '?'})` : `NOT enforced: ${s.limits.reason ?? 'unknown'}`],
      ['metrics', s.metrics.enabled ? `http://${s.metrics.listen ?? ''}/metrics` : `off: ${s.metrics.error ?? 'disabled'}`],
      ['data dir', s.dataDir],
      ['socket', s.socket]
    ], s)
    return 0
  }
}
