/**
 * Turns what a user submits (API body, gridctl flags) into a complete, checked TaskSpec, or refuses it naming the
 * field that is wrong, before anything is recorded or run.
 */
import Type from 'typebox'
import { STRATEGIES, TaskSyncSchema, TASK_PAYLOAD_MAX_BYTES, TYPE_HELD_ENV, taskSpec, validator, type Strategy, type TaskSpec } from '../../proto/index.ts'
import { InvalidArgumentError, TooLargeError, parseDuration, parseSize } from '../interface/index.ts'
import { SubmitRequestSchema as SubmitBodySchema } from '../../proto/api-bodies.ts'

/**
 * The body of POST /v1/tasks (proto/api-bodies.ts) as the spec sees it: the control route has already turned the
 * client's `sync` (`{manifest, fetch}`) into the stored manifest's hash, and a wrong strategy gets its own message.
 */
export const SubmitRequestSchema = Type.Object({
  ...SubmitBodySchema.properties,
  sync: Type.Optional(TaskSyncSchema),
  strategy: Type.Optional(Type.String())
}, { additionalProperties: false })
const submitRequest = validator(SubmitRequestSchema)

export const DEFAULTS = { cpus: 1, gpus: 0, memory: 0, priority: 50, retries: 3 } as const

export interface SubmitOptions {
  detach: boolean
  encoding: 'utf8' | 'base64'
  /** the node as the user named it (id or name), resolved by the caller */
  node?: string
}

/** Checks the request and fills defaults; `resolveNode` turns a name or id into a peer id (or throws). */
export function normalizeSpec (body: unknown, resolveNode: (nameOrId: string) => string): { spec: TaskSpec, opts: SubmitOptions } {
  if (body === undefined || body === null || typeof body !== 'object') throw new InvalidArgumentError('a task needs a JSON body such as {"command": ["echo", "hi"]}')
  const b = submitRequest.parseUser(body, 'task')
  if ((b.command === undefined) === (b.type === undefined)) throw new InvalidArgumentError('invalid task: give exactly one of command (argv) or type (a configured task type)')
  if (b.payload !== undefined && b.type === undefined) throw new InvalidArgumentError('invalid task: payload is only for typed tasks (give type)')
  if (b.payload !== undefined) {
    const bytes = Buffer.byteLength(JSON.stringify(b.payload) ?? '')
    if (bytes > TASK_PAYLOAD_MAX_BYTES) throw new TooLargeError(`invalid task: payload is ${bytes} bytes; the limit is ${TASK_PAYLOAD_MAX_BYTES} bytes of JSON`)
  }
  if (b.stdin === true && b.type !== undefined) throw new InvalidArgumentError('invalid task: stdin is not for typed tasks (a typed task\'s stdin is its payload)')
  if (b.type !== undefined && b.env !== undefined) {
    const held = Object.keys(b.env).filter(k => TYPE_HELD_ENV.test(k))
    if (held.length > 0) throw new InvalidArgumentError(`invalid task: a typed task cannot set ${held.join(', ')}: how the type's program is found and loaded is its configuration's`)
  }
  let memory = 0
  if (b.memory !== undefined) {
    const m = typeof b.memory === 'number' ? b.memory : parseSize(b.memory)
    if (m === undefined || m < 0) throw new InvalidArgumentError(`invalid task: memory ${JSON.stringify(b.memory)} is not a size (as in 512MiB or 4G)`)
    memory = m
  }
  let timeoutMs: number | undefined
  if (b.timeout !== undefined) {
    const t = typeof b.timeout === 'number' ? b.timeout : parseDuration(b.timeout)
    if (t === undefined || t <= 0) throw new InvalidArgumentError(`invalid task: timeout ${JSON.stringify(b.timeout)} is not a positive duration (as in 30s, 10m, 2h)`)
    timeoutMs = t
  }
  if (b.strategy !== undefined && !(STRATEGIES as readonly string[]).includes(b.strategy)) {
    throw new InvalidArgumentError(`invalid task: strategy ${JSON.stringify(b.strategy)} is not one of ${STRATEGIES.join(', ')}`)
  }
  const strategy = (b.strategy ?? (b.session !== undefined ? 'affinity' : 'least-loaded')) as Strategy
  const spec: TaskSpec = {
    cpus: b.cpus ?? DEFAULTS.cpus,
    ...(b.cpus === undefined ? {} : { cpuLimit: true }),
    gpus: b.gpus ?? DEFAULTS.gpus,
    memory,
    require: b.require ?? [],
    labels: b.labels ?? {},
    priority: b.priority ?? DEFAULTS.priority,
    retries: b.retries ?? DEFAULTS.retries,
    retryOnFailure: b.retryOnFailure ?? false,
    env: b.env ?? {},
    strategy
  }
  if (b.command !== undefined) spec.command = b.command
  if (b.type !== undefined) spec.type = b.type
  if (b.payload !== undefined) spec.payload = b.payload
  if (b.region !== undefined) spec.region = b.region
  if (b.session !== undefined) spec.session = b.session
  if (timeoutMs !== undefined) spec.timeoutMs = timeoutMs
  if (b.cwd !== undefined) spec.cwd = b.cwd
  if (b.cwdDefault !== undefined) spec.cwdDefault = b.cwdDefault
  if (b.stdin === true) spec.stdin = true
  if (b.sync !== undefined) spec.sync = b.sync
  if (b.node !== undefined) spec.node = resolveNode(b.node)
  taskSpec.parseUser(spec, 'task')
  const opts: SubmitOptions = { detach: b.detach ?? false, encoding: b.encoding ?? 'utf8' }
  if (b.node !== undefined) opts.node = b.node
  return { spec, opts }
}
