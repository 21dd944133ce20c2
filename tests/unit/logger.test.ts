import { describe, expect, it } from 'vitest'
import { createLogger, logFormat, readableLine } from '../../daemon/logger.ts'
import { loadConfig } from '../../src/config/index.ts'

const noColours = { gray: (s: string) => s }

describe('logger - the format', () => {
  it('is pretty on a terminal and json elsewhere, unless the config names one', () => {
    expect(logFormat({ logFormat: null }, true)).toBe('pretty')
    expect(logFormat({ logFormat: null }, false)).toBe('json')
    expect(logFormat({ logFormat: 'json' }, true)).toBe('json')
    expect(logFormat({ logFormat: 'pretty' }, false)).toBe('pretty')
  })

  it('comes from logFormat, GRID_LOG_FORMAT or --log-format, and nothing else is accepted', () => {
    const none = { defaultConfigFile: '/nonexistent/gridd.yaml' }
    expect(loadConfig({ ...none, env: {} }).logFormat).toBeNull()
    expect(loadConfig({ ...none, env: { GRID_LOG_FORMAT: 'pretty' } }).logFormat).toBe('pretty')
    expect(loadConfig({ ...none, env: { GRID_LOG_FORMAT: 'pretty' }, flags: { logFormat: 'json' } }).logFormat).toBe('json')
    expect(() => loadConfig({ ...none, env: { GRID_LOG_FORMAT: 'fancy' } })).toThrow(/logFormat \(GRID_LOG_FORMAT\): "fancy" is not one of pretty, json/)
  })

  it('gives json mode a plain pino logger (pino-pretty is not loaded for it)', async () => {
    const log = await createLogger({ logLevel: 'silent', logFormat: 'json', name: 'n1' }, true)
    expect(log.level).toBe('silent')
  })
})

describe('logger - a readable line', () => {
  it('shows node, component and message, then every other field of the event, its own name and pid included', () => {
    const line = readableLine({ level: 30, time: 1, node: 'n1', component: 'membership', msg: 'member state changed', peer: '12D3KooWX', name: 'n2', pid: 42, to: 'alive' }, 'msg', noColours)
    expect(line).toBe('n1 membership: member state changed {"peer":"12D3KooWX","name":"n2","pid":42,"to":"alive"}')
  })

  it('keeps an event without component or fields on one short line, and an error\'s stack inside its field', () => {
    expect(readableLine({ level: 30, time: 1, node: 'n1', msg: 'gridd started' }, 'msg', noColours)).toBe('n1: gridd started')
    const line = readableLine({ node: 'n1', msg: 'stop failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' } }, 'msg', noColours)
    expect(line.split('\n')).toHaveLength(1)
    expect(line).toContain('"stack":"Error: boom\\n    at x"')
  })
})
