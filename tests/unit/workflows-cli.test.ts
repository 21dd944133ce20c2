import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import type { WorkflowJobRecord, WorkflowRecord } from '../../proto/index.ts'
import { workflowLines } from '../../src/cli/commands/watch.ts'
import { drawDag, parseJsonObject, workflowBody, workflowExitCode, workflowJson } from '../../src/cli/commands/workflow.ts'

const j = (name: string, status: WorkflowJobRecord['status'], needs: string[] = []): WorkflowJobRecord =>
  ({ name, status, needs, node: null, nodeName: null, attempts: 0, exitCode: null, startedAt: null, endedAt: null, taskId: null, jobId: null, error: null })
const diamond: WorkflowRecord = { id: 'w1', name: 'd', status: 'running', jobs: [j('a', 'succeeded'), j('b', 'running', ['a']), j('c', 'pending', ['a']), j('d', 'pending', ['b', 'c'])], driverName: 'n1' }

describe('workflows - gridctl', () => {
  it('draws the DAG as layers', () => {
    expect(drawDag(diamond.jobs)).toEqual(['   a [succeeded]', '-> b [running]  c [pending]', '-> d [pending]'])
  })

  it('-o json is exactly the issue\'s document', () => {
    const doc = workflowJson(diamond) as Record<string, unknown>
    expect(Object.keys(doc)).toEqual(['id', 'name', 'status', 'jobs'])
    expect(Object.keys((doc.jobs as object[])[0] ?? {})).toEqual(['name', 'status', 'needs', 'node', 'nodeName', 'attempts', 'exitCode', 'startedAt', 'endedAt'])
  })

  it('exits as run and distribute do', () => {
    expect([workflowExitCode('succeeded'), workflowExitCode('failed'), workflowExitCode('cancelled')]).toEqual([0, 1, 130])
  })

  it('watch lists the workflows not ended, with their running jobs', () => {
    expect(workflowLines([diamond, { ...diamond, id: 'w2', status: 'succeeded' }])).toEqual(['', 'workflows: 1 not ended', '  w1 d running 1/4 done, running b'])
    expect(workflowLines([])).toEqual([])
  })

  it('reads a JSON workflow file without the YAML parser, as the YAML parser would', () => {
    const texts = [
      '{"name": "w", "params": {"n": "3"}, "jobs": {"a": {"command": ["sh", "-c", "echo \\"${{ params.n }}\\" \\u00e9"], "retries": 2, "timeout": "1h"}, "b": {"needs": ["a"], "command": ["true"], "env": {"X": ""}}}}',
      '  {"name": "w", "jobs": {}, "n": 1e3, "z": -0.5, "t": true, "u": null}\n'
    ]
    for (const t of texts) expect(parseJsonObject(t)).toEqual(parseYaml(t))
    // YAML, JSON that is not an object, and a key given twice (YAML rejects it; JSON.parse keeps the last) go to YAML
    for (const t of ['name: w\njobs: {}\n', '[1, 2]', '{"name": "w", "jobs": {"a": {"command": ["true"], "command": ["false"]}}}', '{"a": 1, "a": 2}', '{"name": "w",}']) expect(parseJsonObject(t), t).toBeUndefined()
    // the same key in two objects is no repetition, nor a value equal to a key
    expect(parseJsonObject('{"a": {"x": "a"}, "b": {"x": ["a", {"x": 1}]}, "x": "b"}')).toEqual({ a: { x: 'a' }, b: { x: ['a', { x: 1 }] }, x: 'b' })
  })

  it('a workflow file with a key given twice is refused, JSON or YAML', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grid-wf-file-'))
    try {
      const f = join(dir, 'w.json')
      writeFileSync(f, '{"name": "w", "jobs": {"a": {"command": ["true"]}}, "name": "v"}')
      expect(() => workflowBody(f, [], false)).toThrow(/neither YAML nor JSON: .*unique/)
      writeFileSync(f, '{"name": "w", "jobs": {"a": {"command": ["true"]}}}')
      expect(workflowBody(f, ['n=1'], true)).toEqual({ name: 'w', jobs: { a: { command: ['true'] } }, params: { n: '1' }, detach: true })
    } finally { rmSync(dir, { recursive: true, force: true }) }
  })
})
