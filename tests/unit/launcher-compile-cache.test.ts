/**
 * The launchers of the bundled gridctl (npm run install-bin's and gridctl deploy's) give Node a compile cache, so the
 * bundle's chunks a call loads are not parsed again each time (bench/cli): in the user's cache directory, unless NODE_COMPILE_CACHE
 * is set already (it wins) or there is no HOME (then none). Each launcher is run with a stand-in Node that prints it.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { layoutFor } from '../../src/deploy/layout.ts'
import { renderGriddLauncher, renderGridctlLauncher } from '../../src/deploy/render.ts'
import { ROOT } from '../helpers/paths.ts'

const dir = mkdtempSync(join(tmpdir(), 'grid-launcher-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
const fakeNode = join(dir, 'node')
writeFileSync(fakeNode, '#!/bin/sh\necho "cache=${NODE_COMPILE_CACHE-unset} args=$*"\n')
chmodSync(fakeNode, 0o755)

function run (launcher: string, env: Record<string, string>): string {
  const f = join(dir, 'launcher')
  writeFileSync(f, launcher)
  chmodSync(f, 0o755)
  const r = spawnSync(f, ['status', '-o', 'json'], { env: { PATH: '/usr/bin:/bin', ...env }, encoding: 'utf8' })
  expect(r.status, r.stderr).toBe(0)
  return r.stdout.trim()
}

describe('the bundled gridctl\'s launchers', async () => {
  const install = await import(pathToFileURL(join(ROOT, 'deploy/install-bin.mjs')).href) as { renderLauncher: (program: string, node: string, bundle: string, flags: string[]) => string }
  const launchers: Array<[string, string, string]> = [
    ['install-bin', install.renderLauncher('gridctl', fakeNode, '/l/gridctl.mjs', []), '/l/gridctl.mjs'],
    ['deploy', renderGridctlLauncher(layoutFor('/opt/grid', 'systemd'), fakeNode), layoutFor('/opt/grid', 'systemd').gridctlJs]
  ]
  for (const [who, launcher, bundle] of launchers) {
    it(`${who}: keep Node's compile cache in the user's cache directory; a NODE_COMPILE_CACHE set wins`, () => {
      expect(run(launcher, { HOME: '/home/u' })).toBe(`cache=/home/u/.cache/grid/compile-cache args=${bundle} status -o json`)
      expect(run(launcher, { HOME: '/home/u', XDG_CACHE_HOME: '/c' })).toBe(`cache=/c/grid/compile-cache args=${bundle} status -o json`)
      expect(run(launcher, { HOME: '/home/u', NODE_COMPILE_CACHE: '/mine' })).toBe(`cache=/mine args=${bundle} status -o json`)
      expect(run(launcher, {})).toBe(`cache=unset args=${bundle} status -o json`)
    })
  }

  it('gridd\'s do not (the daemon starts once)', () => {
    expect(install.renderLauncher('gridd', fakeNode, '/l/gridd.mjs', [])).not.toContain('NODE_COMPILE_CACHE')
    expect(renderGriddLauncher(layoutFor('/opt/grid', 'systemd'), fakeNode)).not.toContain('NODE_COMPILE_CACHE')
  })
})
