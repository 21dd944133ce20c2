/**
 * External tools some tests use (promtool, systemd-analyze, sshd). Where one is missing its tests are skipped with the
 * reason in their title; GRID_TEST_REQUIRE_TOOLS=1 (CI) turns a missing tool into a failure instead.
 */
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'

export const REQUIRE_TOOLS = process.env.GRID_TEST_REQUIRE_TOOLS === '1'

/** The first of `paths` that exists, else `name` on PATH. */
export function findTool (name: string, paths: Array<string | undefined> = []): string | undefined {
  for (const p of paths) if (p !== undefined && p !== '' && existsSync(p)) return p
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name)
  }
  return undefined
}

/** promtool from GRID_PROMTOOL, where .ci/run unpacks it, or PATH. */
export const PROMTOOL = findTool('promtool', [process.env.GRID_PROMTOOL, '/opt/grid-ci/prometheus/usr/bin/promtool'])

/**
 * A title for a describe or it that may be skipped: `skipped` says whether to skip (the tool is missing and not
 * required), and the title says why.
 */
export function needsTool (title: string, tool: string | undefined, name: string): { title: string, skipped: boolean } {
  const skipped = tool === undefined && !REQUIRE_TOOLS
  return { title: skipped ? `${title} (skipped: ${name} is not installed)` : title, skipped }
}
