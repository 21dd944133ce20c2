import { describe, expect, it } from 'vitest'
import { checkWorkflow, findCycle } from '../../src/workflows/index.ts'

const errorsOf = (body: unknown): string[] => {
  const r = checkWorkflow(body)
  if (r.ok) throw new Error('expected errors')
  return r.errors
}

describe('workflows - the file', () => {
  it('takes the issue\'s example: needs, a distribute job, a typed job, params replaced in commands', () => {
    const r = checkWorkflow({
      name: 'train-eval',
      parallelism: 4,
      params: { epochs: '3' },
      jobs: {
        prep: { command: ['sh', '-c', 'python prep.py > data.txt'] },
        train: { needs: ['prep'], gpus: 1, retries: 2, timeout: '2h', command: ['python', 'train.py', '--epochs', '${{ params.epochs }}'] },
        shards: { needs: ['prep'], items: ['a', 'b', 'c'], command: ['sh', '-c', 'echo "$GRID_ITEM"'] },
        report: { needs: ['train', 'shards'], type: 'report' }
      }
    })
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.def.order).toEqual(['prep', 'train', 'shards', 'report'])
    expect(r.def.parallelism).toBe(4)
    expect(r.def.defs.train?.body.command).toEqual(['python', 'train.py', '--epochs', '3'])
    expect(r.def.defs.shards?.distribute).toBe(true)
    expect(r.def.defs.train?.distribute).toBe(false)
    expect(r.def.defs.report?.needs).toEqual(['train', 'shards'])
    expect(r.def.defs.report?.body).toEqual({ type: 'report' })
    // retries in a workflow retry a failure (retryOnFailure: false keeps tasks' meaning: retried only when its node is lost)
    expect(r.def.defs.train?.body.retryOnFailure).toBe(true)
    expect(r.def.defs.prep?.body.retryOnFailure).toBeUndefined()
  })

  it('replaces params in env and wherever they appear in a string; a number is its text', () => {
    const r = checkWorkflow({ params: { n: 5, who: 'x' }, jobs: { a: { command: ['echo', 'n=${{params.n}} ${{ params.who }}!'], env: { N: '${{ params.n }}' } } } })
    expect(r.ok && r.def.defs.a?.body).toEqual({ command: ['echo', 'n=5 x!'], env: { N: '5' } })
  })

  it('names every mistake at once: a cycle, a need naming no job, unknown fields, a parameter with no value', () => {
    const errors = errorsOf({
      name: 'bad',
      colour: 'blue',
      params: { given: null },
      jobs: {
        a: { command: ['true'], needs: ['c'] },
        b: { command: ['true'], needs: ['a'], retires: 2 },
        c: { command: ['true'], needs: ['b'] },
        d: { command: ['echo', '${{ params.given }}', '${{ params.nope }}'], needs: ['ghost'] }
      }
    })
    expect(errors).toContain('unknown field "colour" (a workflow has name, parallelism, params, jobs, detach)')
    expect(errors).toContain('job b: unknown field "retires"')
    expect(errors).toContain('job d: needs "ghost", which names no job of this workflow')
    expect(errors.some(e => e.startsWith('parameter given has no value'))).toBe(true)
    expect(errors.some(e => e.startsWith('parameter nope has no value'))).toBe(true)
    expect(errors.find(e => e.startsWith('the jobs form a cycle'))).toMatch(/a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c/)
  })

  it('refuses a job with neither or both of command and type, distribute fields without items, bad names and an unknown expression', () => {
    const errors = errorsOf({ jobs: { a: {}, b: { command: ['x'], type: 't' }, c: { command: ['x'], aggregate: 'majority' }, 'bad name': { command: ['x'] }, e: { command: ['${{ env.HOME }}'] } } })
    expect(errors).toContain('job a: give exactly one of command (argv) or type (a configured task type)')
    expect(errors).toContain('job b: give exactly one of command (argv) or type (a configured task type)')
    expect(errors).toContain('job c: aggregate is for a distribute job (give items, count or strategy)')
    expect(errors.some(e => e.startsWith('job bad name: a job\'s name'))).toBe(true)
    expect(errors.some(e => e.startsWith('job e: ${{ env.HOME }} is not an expression'))).toBe(true)
  })

  it('refuses a body without jobs, and a bad parallelism', () => {
    expect(errorsOf({ name: 'x' })).toEqual(['jobs must be an object of job names to jobs, with at least one job'])
    expect(errorsOf({ parallelism: 0, jobs: { a: { command: ['true'] } } })).toEqual(['parallelism must be a whole number of 1 or more'])
    expect(errorsOf([1])).toEqual(['a workflow is an object with name and jobs'])
  })

  it('finds a self-need as a cycle, and none in a diamond', () => {
    expect(findCycle(['a'], () => ['a'])).toEqual(['a', 'a'])
    const needs: Record<string, string[]> = { a: [], b: ['a'], c: ['a'], d: ['b', 'c'] }
    expect(findCycle(Object.keys(needs), n => needs[n] ?? [])).toBeUndefined()
  })
})
