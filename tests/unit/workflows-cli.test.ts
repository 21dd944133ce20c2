import { describe, expect, it } from 'vitest'
import type { WorkflowJobRecord, WorkflowRecord } from '../../proto/index.ts'
import { workflowLines } from '../../src/cli/commands/watch.ts'
import { drawDag, workflowExitCode, workflowJson } from '../../src/cli/commands/workflow.ts'

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
})
