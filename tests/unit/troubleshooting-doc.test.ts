import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ERRORS, HINTS, formatHinted, hintFor, isErrorCode, type HintCode } from '../../src/interface/index.ts'
import { nodeTooOld } from '../../src/node-version.ts'

const DOC = readFileSync(join(import.meta.dirname, '../../docs/troubleshooting.md'), 'utf8')

/** docs/troubleshooting.md's sections, by the code in their heading (`## CODE: what it means`). */
function sections (): Map<string, string> {
  const out = new Map<string, string>()
  const parts = DOC.split(/^## /m).slice(1)
  for (const p of parts) {
    const code = /^([A-Z_]+):/.exec(p)?.[1]
    if (code !== undefined) out.set(code, p)
  }
  return out
}

// these two are built at the error's site with its own path or address in them (`gridctl keygen /etc/grid/swarm.key`,
// `--listen /ip4/0.0.0.0/tcp/PORT`), so their section shows an instance rather than the table's text
const SITE_SPECIFIC: readonly HintCode[] = ['NO_SWARM_KEY', 'PORT_IN_USE']

describe('docs/troubleshooting.md - every error with a hint is documented', () => {
  const docs = sections()

  it('has a section for every code that has a hint, and none for a code that has not', () => {
    expect([...docs.keys()].sort()).toEqual(Object.keys(HINTS).sort())
  })

  it('shows each as printed (its code in brackets, or in the log event), with its cause and what to do', () => {
    for (const [code, text] of docs) {
      expect(text, code).toMatch(new RegExp(`error \\[${code}\\]: |"code":"${code}"`))
      expect(text, code).toContain('**Cause.**')
      expect(text, code).toContain('**What to do.**')
      if (!SITE_SPECIFIC.includes(code as HintCode)) expect(text, code).toContain(HINTS[code as HintCode])
    }
  })

  it('lists each code in its table with the exit code the program uses for it', () => {
    for (const code of Object.keys(HINTS)) {
      const row = DOC.split('\n').find(l => l.startsWith(`| [${code}](`))
      expect(row, code).toBeDefined()
      const exit = row?.split('|').map(c => c.trim())[3]
      if (isErrorCode(code)) expect(exit, code).toBe(String(ERRORS[code].exit))
    }
    expect(DOC).toMatch(/\| \[NODE_TOO_OLD\]\(.*\| 1 \|/)
  })
})

describe('hints - the next step, printed after the cause', () => {
  it('prints as error [CODE]: cause — next step', () => {
    expect(formatHinted('PORT_IN_USE', 'port 1 is in use', 'pass --listen')).toBe('error [PORT_IN_USE]: port 1 is in use — pass --listen')
    expect(hintFor('UNSATISFIABLE')).toBe(HINTS.UNSATISFIABLE)
    expect(hintFor('NOT_FOUND')).toBeUndefined()
    expect(hintFor('toString')).toBeUndefined()
  })

  it('gives the Node check, which imports nothing, the same next step as the table', () => {
    expect(nodeTooOld('gridctl', '20.20.2')).toBe(`gridctl: error [NODE_TOO_OLD]: gridctl needs Node.js 22 or later (found 20.20.2) — ${HINTS.NODE_TOO_OLD}`)
    expect(nodeTooOld('gridd', '24.1.0')).toBeUndefined()
  })
})
