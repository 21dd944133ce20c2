/**
 * The body of POST /v1/jobs: the fields of POST /v1/tasks (every run's spec) plus strategy, items, count, aggregate,
 * reduce, maxParallel, detach and results. Everything is checked here, before anything is recorded or run; a mistake is an
 * InvalidArgumentError naming it (gridctl exits 2).
 */
import { JOB_AGGREGATES, JOB_REDUCE_MAX_CHARS, JOB_STRATEGIES, JOB_ITEMS_MAX, type JobAggregate, type JobStrategy, type TaskSpec } from '../../proto/index.ts'
import { InvalidArgumentError } from '../interface/index.ts'
import { normalizeSpec } from '../tasks/index.ts'
import { checkItems } from './items.ts'
import { runStrategy } from './placement.ts'

export interface JobRequest {
  strategy: JobStrategy
  aggregate: JobAggregate
  /** the items, or undefined for broadcast (one run per node) and --count (item i is i) */
  items?: unknown[]
  count?: number
  reduce?: string
  maxParallel?: number
  detach: boolean
  /** false: the client's stream carries no `result` events and `done` carries the job without its results */
  results: boolean
  /** every run's spec, before its item */
  spec: TaskSpec
}

const JOB_FIELDS = new Set(['strategy', 'items', 'count', 'aggregate', 'reduce', 'maxParallel', 'detach', 'results'])

export function normalizeJob (body: unknown, resolveNode: (nameOrId: string) => string): JobRequest {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidArgumentError('a job needs a JSON body such as {"command": ["echo", "hi"], "count": 3}')
  }
  const b = body as Record<string, unknown>
  const strategy = b.strategy ?? 'least-loaded'
  if (typeof strategy !== 'string' || !(JOB_STRATEGIES as readonly string[]).includes(strategy)) {
    throw new InvalidArgumentError(`invalid job: strategy ${JSON.stringify(strategy)} is not one of ${JOB_STRATEGIES.join(', ')}`)
  }
  const aggregate = b.aggregate ?? 'all-success'
  if (typeof aggregate !== 'string' || !(JOB_AGGREGATES as readonly string[]).includes(aggregate)) {
    throw new InvalidArgumentError(`invalid job: aggregate ${JSON.stringify(aggregate)} is not one of ${JOB_AGGREGATES.join(', ')}`)
  }
  if (b.reduce !== undefined && (typeof b.reduce !== 'string' || b.reduce.trim() === '' || b.reduce.length > JOB_REDUCE_MAX_CHARS)) {
    throw new InvalidArgumentError(`invalid job: reduce must be a shell command line of 1 to ${JOB_REDUCE_MAX_CHARS} characters`)
  }
  if (b.reduce !== undefined && strategy !== 'map-reduce') throw new InvalidArgumentError('invalid job: reduce is only for the map-reduce strategy')
  if (b.reduce === undefined && strategy === 'map-reduce') throw new InvalidArgumentError('invalid job: map-reduce needs reduce (a shell command that reads every result on its stdin)')
  if (strategy === 'broadcast' && (b.items !== undefined || b.count !== undefined)) {
    throw new InvalidArgumentError('invalid job: broadcast runs once on every eligible node; it takes no items and no count')
  }
  if (b.items !== undefined && b.count !== undefined) throw new InvalidArgumentError('invalid job: give items or count, not both')
  if (b.items !== undefined && !Array.isArray(b.items)) throw new InvalidArgumentError('invalid job: items must be a JSON array')
  if (Array.isArray(b.items)) checkItems(b.items as unknown[], 'invalid job: items')
  if (b.count !== undefined && (typeof b.count !== 'number' || !Number.isInteger(b.count) || b.count < 1 || b.count > JOB_ITEMS_MAX)) {
    throw new InvalidArgumentError(`invalid job: count must be a whole number from 1 to ${JOB_ITEMS_MAX}`)
  }
  if (strategy !== 'broadcast' && b.items === undefined && b.count === undefined) {
    throw new InvalidArgumentError(`invalid job: the ${strategy} strategy needs items (--items FILE or -) or a count (--count N)`)
  }
  if (b.maxParallel !== undefined && (typeof b.maxParallel !== 'number' || !Number.isInteger(b.maxParallel) || b.maxParallel < 1)) {
    throw new InvalidArgumentError('invalid job: maxParallel must be a whole number of 1 or more')
  }
  if (b.detach !== undefined && typeof b.detach !== 'boolean') throw new InvalidArgumentError('invalid job: detach must be true or false')
  if (b.results !== undefined && typeof b.results !== 'boolean') throw new InvalidArgumentError('invalid job: results must be true or false')
  if (b.stdin !== undefined) throw new InvalidArgumentError('invalid job: a job\'s runs get their item on stdin; stdin cannot be streamed to them')
  if (b.payload !== undefined) throw new InvalidArgumentError('invalid job: a job\'s runs get their item as payload; give items instead')
  const task: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(b)) if (!JOB_FIELDS.has(k)) task[k] = v
  task.strategy = runStrategy(strategy as JobStrategy)
  const { spec } = normalizeSpec(task, resolveNode)
  if (strategy === 'broadcast' && spec.node !== undefined) throw new InvalidArgumentError('invalid job: broadcast runs on every eligible node; it cannot name one (--node)')
  const out: JobRequest = { strategy: strategy as JobStrategy, aggregate: aggregate as JobAggregate, detach: b.detach === true, results: b.results !== false, spec }
  if (Array.isArray(b.items)) out.items = b.items as unknown[]
  if (typeof b.count === 'number') out.count = b.count
  if (typeof b.reduce === 'string') out.reduce = b.reduce
  if (typeof b.maxParallel === 'number') out.maxParallel = b.maxParallel
  return out
}
