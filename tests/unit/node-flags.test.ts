import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { renderGriddLauncher } from '../../src/deploy/render.ts'
import { layoutFor } from '../../src/deploy/layout.ts'
import { GRIDD_NODE_FLAGS } from '../../src/version.ts'
import { ROOT } from '../helpers/paths.ts'

// gridd's memory depends on Node flags (the young generation's size) that only a launcher can give: every way we
// ship of starting it must pass them
describe('the Node flags gridd runs with', () => {
  it('are in the bin\'s shebang, npm start and the launcher deploy writes', () => {
    const shebang = readFileSync(join(ROOT, 'daemon/gridd.ts'), 'utf8').split('\n')[0] as string
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start as string
    const launcher = renderGriddLauncher(layoutFor('/opt/grid', 'systemd'), '/usr/bin/node')
    expect(GRIDD_NODE_FLAGS.length).toBeGreaterThan(0)
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node /)
    for (const f of GRIDD_NODE_FLAGS) {
      expect(shebang.split(' ')).toContain(f)
      expect(start.split(' ')).toContain(f)
      expect(launcher).toContain(`exec '/usr/bin/node' '${f}' '/opt/grid/lib/gridd.mjs' "$@"`)
    }
  })

  it('are in the launcher npm run install-bin writes (and only gridd\'s)', async () => {
    // a computed specifier: the install script is plain JavaScript, run by Node without a build
    const install = await import(pathToFileURL(join(ROOT, 'deploy/install-bin.mjs')).href) as {
      griddNodeFlags: () => string[]
      renderLauncher: (program: string, node: string, bundle: string, flags: string[]) => string
    }
    expect(install.griddNodeFlags()).toEqual(GRIDD_NODE_FLAGS)
    const launcher = install.renderLauncher('gridd', '/opt/node/bin/node', '/home/u/.local/lib/grid/gridd.mjs', install.griddNodeFlags())
    expect(launcher).toContain(`exec "$NODE" ${GRIDD_NODE_FLAGS.map(f => `'${f}'`).join(' ')} '/home/u/.local/lib/grid/gridd.mjs' "$@"`)
  })
})
