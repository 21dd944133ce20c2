import { describe, expect, it } from 'vitest'
import { fencedBlocks, isTested, testedBlocks } from '../helpers/guide-blocks.ts'

describe('guide blocks - the ```sh tested blocks a guide runs', () => {
  const text = [
    '# A guide', // 1
    '```sh tested', // 2
    'gridctl status', // 3
    '```', // 4
    '```sh', // 5
    'gridctl deploy -i x.yaml', // 6
    '```', // 7
    '````sh tested', // 8
    'cat <<EOF', // 9
    '```', // 10: inside a longer fence, not a close
    'EOF', // 11
    '````', // 12
    '~~~yaml', // 13
    'a: 1', // 14
    '~~~' // 15
  ].join('\n')

  it('takes only `sh tested` blocks, in order, with the line of their opening fence', () => {
    expect(testedBlocks(text)).toEqual([
      { line: 2, code: 'gridctl status\n' },
      { line: 8, code: 'cat <<EOF\n```\nEOF\n' }
    ])
  })

  it('sees every fenced block with its info string, ``` or ~~~', () => {
    expect(fencedBlocks(text).map(b => [b.line, b.info])).toEqual([[2, 'sh tested'], [5, 'sh'], [8, 'sh tested'], [13, 'yaml']])
  })

  it('knows a tested info string from others', () => {
    expect(isTested('sh tested')).toBe(true)
    expect(isTested('  sh   tested ')).toBe(true)
    expect(isTested('sh')).toBe(false)
    expect(isTested('bash tested')).toBe(false)
    expect(isTested('sh tested-not')).toBe(false)
  })
})
