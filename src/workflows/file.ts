/**
 * A workflow file's content (POST /v1/workflows' body): checked whole, every mistake at once (a cycle named, a need
 * that names no job, an unknown field, a parameter with no value), and `${{ params.X }}` replaced in every string of
 * every job. Pure: what nodes can run is checked by the service.
 */
import { WORKFLOW_JOBS_MAX, WORKFLOW_JOB_NAME, type WorkflowJobDef } from '../../proto/index.ts'

/** What a job of a workflow may say: the fields of `gridctl run`, `needs`, and the distribute fields. */
export const RUN_FIELDS = ['command', 'type', 'payload', 'cpus', 'gpus', 'memory', 'require', 'labels', 'region', 'env', 'cwd', 'timeout', 'retries', 'retryOnFailure', 'priority', 'node', 'session', 'sync'] as const
export const DISTRIBUTE_FIELDS = ['items', 'count', 'strategy', 'aggregate', 'reduce', 'maxParallel'] as const
const JOB_FIELDS = new Set<string>([...RUN_FIELDS, ...DISTRIBUTE_FIELDS, 'needs'])
const TOP_FIELDS = new Set(['name', 'parallelism', 'params', 'jobs', 'detach'])
const EXPR = /\$\{\{\s*([^}]*?)\s*\}\}/g
const PARAM = /^params\.([A-Za-z_][A-Za-z0-9_-]*)$/

export interface WorkflowDef {
  name: string
  parallelism?: number
  order: string[]
  defs: Record<string, WorkflowJobDef>
}

export type Checked = { ok: true, def: WorkflowDef, detach: boolean } | { ok: false, errors: string[] }

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

export function checkWorkflow (body: unknown): Checked {
  const errors: string[] = []
  if (!isObject(body)) return { ok: false, errors: ['a workflow is an object with name and jobs'] }
  for (const k of Object.keys(body)) if (!TOP_FIELDS.has(k)) errors.push(`unknown field ${JSON.stringify(k)} (a workflow has ${[...TOP_FIELDS].join(', ')})`)
  const name = body.name ?? 'workflow'
  if (typeof name !== 'string' || name.length === 0 || name.length > 128) errors.push('name must be a text of 1 to 128 characters')
  const par = body.parallelism
  if (par !== undefined && (typeof par !== 'number' || !Number.isInteger(par) || par < 1)) errors.push('parallelism must be a whole number of 1 or more')
  if (body.detach !== undefined && typeof body.detach !== 'boolean') errors.push('detach must be true or false')
  const params: Record<string, string | undefined> = {}
  if (body.params !== undefined) {
    if (!isObject(body.params)) errors.push('params must be an object of names to values')
    else {
      for (const [k, v] of Object.entries(body.params)) {
        if (v === null || v === undefined) params[k] = undefined
        else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') params[k] = String(v)
        else errors.push(`params.${k} must be a text, a number or true/false`)
      }
    }
  }
  const jobs = body.jobs
  if (!isObject(jobs) || Object.keys(jobs).length === 0) {
    errors.push('jobs must be an object of job names to jobs, with at least one job')
    return { ok: false, errors }
  }
  const order = Object.keys(jobs)
  if (order.length > WORKFLOW_JOBS_MAX) errors.push(`a workflow has at most ${WORKFLOW_JOBS_MAX} jobs; this one has ${order.length}`)
  const defs: Record<string, WorkflowJobDef> = {}
  const missing = new Set<string>()
  for (const jn of order) {
    const j = jobs[jn]
    const at = `job ${jn}`
    if (!WORKFLOW_JOB_NAME.test(jn)) errors.push(`${at}: a job's name is 1 to 63 letters, digits, - and _, starting with a letter or digit`)
    if (!isObject(j)) { errors.push(`${at}: must be an object (command or type, needs, ...)`); continue }
    for (const k of Object.keys(j)) if (!JOB_FIELDS.has(k)) errors.push(`${at}: unknown field ${JSON.stringify(k)}`)
    let needs: string[] = []
    if (j.needs !== undefined) {
      if (!Array.isArray(j.needs) || j.needs.some(n => typeof n !== 'string')) errors.push(`${at}: needs must be a list of job names`)
      else needs = [...new Set(j.needs as string[])]
    }
    for (const n of needs) if (!Object.hasOwn(jobs, n)) errors.push(`${at}: needs ${JSON.stringify(n)}, which names no job of this workflow`)
    if ((j.command === undefined) === (j.type === undefined)) errors.push(`${at}: give exactly one of command (argv) or type (a configured task type)`)
    // broadcast takes no items: a strategy alone makes a distribute job too
    const distribute = j.items !== undefined || j.count !== undefined || j.strategy !== undefined
    if (!distribute) for (const k of DISTRIBUTE_FIELDS) if (j[k] !== undefined) errors.push(`${at}: ${k} is for a distribute job (give items, count or strategy)`)
    const body: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(j)) {
      if (k === 'needs' || !JOB_FIELDS.has(k)) continue
      body[k] = substitute(v, params, missing, e => { errors.push(`${at}: ${e}`) })
    }
    // a workflow's retries are Argo's retryStrategy: a job that fails is run again, unless retryOnFailure says not
    if (body.retries !== undefined && body.retryOnFailure === undefined) body.retryOnFailure = true
    defs[jn] = { needs, distribute, body }
  }
  for (const p of missing) errors.push(`parameter ${p} has no value: give --param ${p}=VALUE or a default under params`)
  const cycle = findCycle(order, n => defs[n]?.needs ?? [])
  if (cycle !== undefined) errors.push(`the jobs form a cycle: ${cycle.join(' -> ')}`)
  if (errors.length > 0) return { ok: false, errors }
  const def: WorkflowDef = { name: name as string, order, defs }
  if (typeof par === 'number') def.parallelism = par
  return { ok: true, def, detach: body.detach === true }
}

/** Every `${{ params.X }}` in every string of v replaced; a name with no value goes into `missing`. */
export function substitute (v: unknown, params: Record<string, string | undefined>, missing: Set<string>, error: (e: string) => void): unknown {
  if (typeof v === 'string') {
    return v.replace(EXPR, (whole, expr: string) => {
      const m = PARAM.exec(expr)
      if (m === null) { error(`${whole} is not an expression a workflow knows (only \${{ params.NAME }})`); return whole }
      const name = m[1] as string
      const value = params[name]
      if (value === undefined) { missing.add(name); return whole }
      return value
    })
  }
  if (Array.isArray(v)) return v.map(x => substitute(x, params, missing, error))
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, params, missing, error)]))
  return v
}

/** A cycle among the jobs (its names, the first repeated at the end), or undefined. */
export function findCycle (order: string[], needsOf: (n: string) => string[]): string[] | undefined {
  const known = new Set(order)
  const state = new Map<string, 1 | 2>()
  const path: string[] = []
  const visit = (n: string): string[] | undefined => {
    const s = state.get(n)
    if (s === 2) return undefined
    if (s === 1) return [...path.slice(path.indexOf(n)), n]
    state.set(n, 1)
    path.push(n)
    for (const m of needsOf(n)) {
      if (!known.has(m)) continue
      const c = visit(m)
      if (c !== undefined) return c
    }
    path.pop()
    state.set(n, 2)
    return undefined
  }
  for (const n of order) {
    const c = visit(n)
    if (c !== undefined) return c.reverse()
  }
  return undefined
}
