import { describe, expect, it } from 'vitest'
import { ReplyLines, parseReply } from '../../src/executor/worker-replies.ts'

describe('warm workers - reply lines', () => {
  it('cuts a chunk of many replies into its lines, joins a line split over chunks, and drops one over the limit', () => {
    const lines: string[] = []
    let overflows = 0
    const r = new ReplyLines({ line: l => { lines.push(l) }, overflow: () => { overflows++ } }, 16)
    r.push(Buffer.from('{"id":"1"}\n{"id":"2"}\n\n{"id":'))
    r.push(Buffer.from('"3"}\nxxxxxxxx'))
    r.push(Buffer.from('xxxxxxxxxxxxxxxxxxxxxxxx'))
    r.push(Buffer.from('x\n{"id":"é"}\n'))
    expect(lines).toEqual(['{"id":"1"}', '{"id":"2"}', '', '{"id":"3"}', '{"id":"é"}'])
    expect(overflows).toBe(1)
    expect(parseReply('{"id":"1","result":{"a":1}}')).toEqual({ id: '1', outcome: { ok: true, result: { a: 1 } } })
    expect(parseReply('')).toBeUndefined()
    expect(parseReply('nope')).toMatchObject({ problem: expect.stringContaining('not JSON') })
  })
})
