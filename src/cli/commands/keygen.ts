import { existsSync } from 'node:fs'
import { ConflictError } from '../../interface/index.ts'
import { writeFileAtomic } from '../../util/index.ts'
import { requirePositionals, type Command } from '../command.ts'
import { printObject } from '../output.ts'

export const keygenCommand: Command = {
  name: 'keygen',
  summary: 'Writes a new swarm key (the cluster secret) to FILE with mode 0600. Copy it to every node of the cluster.',
  usage: 'keygen FILE [--force]',
  local: true,
  options: { force: { type: 'boolean' } },
  optionHelp: { force: 'overwrite FILE if it exists (nodes using the old key can no longer connect)' },
  async run (ctx, args) {
    const [file] = requirePositionals(args, ['FILE']) as [string]
    if (existsSync(file) && args.values.force !== true) throw new ConflictError(`${file} exists; pass --force to replace it (nodes using the old key will no longer connect)`)
    // loaded here, not at start-up: @libp2p/pnet is only needed by this command
    const { newSwarmKey, parseSwarmKey } = await import('../../../proto/swarm-key.ts')
    const key = newSwarmKey()
    writeFileAtomic(file, key, 0o600)
    const { fingerprint } = parseSwarmKey(key, file)
    printObject(ctx.out, ctx.format, [['file', file], ['fingerprint', fingerprint], ['mode', '0600']], { file, fingerprint })
    return 0
  }
}
