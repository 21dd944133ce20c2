/**
 * The container and Kubernetes examples in deploy/ (docs/deploy.md): the Kubernetes manifests against the Kubernetes
 * object schemas (kubernetes-models: its validators for values, its object types for field names), the compose file
 * against the Compose Specification's JSON schema (the copy dclint ships), and every gridd setting they name against
 * gridd's own configuration. No Docker, cluster or network needed.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { Model } from '@kubernetes-models/base'
import { ConfigMap, Namespace, Service } from 'kubernetes-models/v1'
import { DaemonSet } from 'kubernetes-models/apps/v1'
import { parse, parseAllDocuments } from 'yaml'
import { afterAll, describe, expect, it } from 'vitest'
import { FIELDS, loadConfig } from '../../src/config/index.ts'
import { ROOT } from '../helpers/paths.ts'

const K8S_DIR = join(ROOT, 'deploy/kubernetes')
const COMPOSE = join(ROOT, 'deploy/compose.yaml')
const DOCKERFILE = join(ROOT, 'deploy/Dockerfile')
const ENTRYPOINT = join(ROOT, 'deploy/container/entrypoint.sh')
const SCRATCH = join(ROOT, '.tmp', `deploy-examples-${process.pid}`)
mkdirSync(SCRATCH, { recursive: true })
afterAll(() => { rmSync(SCRATCH, { recursive: true, force: true }) })

type Obj = Record<string, any>

/** Each kind the manifests use: its kubernetes-models class (values) and object type (field names). */
const KINDS: Record<string, { model: new (data: any) => Model<any>, module: string, type: string }> = {
  'v1/Namespace': { model: Namespace, module: 'kubernetes-models/v1/Namespace', type: 'INamespace' },
  'v1/ConfigMap': { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'v1/Service': { model: Service, module: 'kubernetes-models/v1/Service', type: 'IService' },
  'apps/v1/DaemonSet': { model: DaemonSet, module: 'kubernetes-models/apps/v1/DaemonSet', type: 'IDaemonSet' }
}

function manifests (): Array<{ file: string, doc: Obj }> {
  const out: Array<{ file: string, doc: Obj }> = []
  for (const file of readdirSync(K8S_DIR).filter(f => f.endsWith('.yaml')).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8'))) {
      expect(d.errors, file).toEqual([])
      const doc = d.toJS() as Obj | null
      if (doc !== null) out.push({ file, doc })
    }
  }
  return out
}

function kindOf (doc: Obj): string { return `${String(doc.apiVersion)}/${String(doc.kind)}` }

/** kubernetes-models' validation: types, required fields, enums and formats; the errors it lists, or none. */
function validateValues (doc: Obj): string | undefined {
  const k = KINDS[kindOf(doc)]
  if (k === undefined) return `no model for ${kindOf(doc)}`
  try {
    new k.model(doc).validate()
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/**
 * Field names: the Kubernetes schemas accept unknown fields (the API server drops or refuses them later), so a typo
 * passes validate(). Each object is type-checked as an object literal of its kubernetes-models type instead, where a
 * field the type lacks is an error (TypeScript's excess property check), at every depth. One tsc run for all.
 */
function checkFieldNames (docs: Array<{ file: string, doc: Obj }>): string {
  const dir = join(SCRATCH, `fields-${Math.random().toString(36).slice(2)}`)
  mkdirSync(dir)
  const lines: string[] = []
  docs.forEach(({ doc }, i) => {
    const k = KINDS[kindOf(doc)]
    if (k === undefined) throw new Error(`no model for ${kindOf(doc)}`)
    lines.push(`import type { ${k.type} as T${i} } from '${k.module}'`, `export const doc${i}: T${i} = ${JSON.stringify(doc)}`)
  })
  writeFileSync(join(dir, 'manifests.ts'), lines.join('\n') + '\n')
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2023', skipLibCheck: true, types: [] },
    files: ['manifests.ts']
  }))
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' })
  if (r.status === 0) return ''
  // line 2i+2 of manifests.ts is document i: name its file instead
  const out = `${r.stdout}${r.stderr}`.trim().replace(/^\S*manifests\.ts\((\d+),\d+\)/gm, (_, line: string) => docs[(Number(line) - 2) / 2]?.file ?? 'manifests.ts')
  return out === '' ? `tsc exited ${String(r.status)}` : out
}

function composeValidator (): (doc: unknown) => string | undefined {
  // dclint's exports do not list its schemas/ folder: read the file from the installed package
  const schema = JSON.parse(readFileSync(join(ROOT, 'node_modules/dclint/schemas/compose.schema.json'), 'utf8')) as Obj
  // draft-07, Ajv's default, which it knows by its http:// id: the file names it https://
  expect(schema.$schema).toBe('https://json-schema.org/draft-07/schema')
  delete schema.$schema
  const ajv = new Ajv({ allErrors: true, strict: false })
  const check = ajv.compile(schema)
  return doc => check(doc) ? undefined : ajv.errorsText(check.errors)
}

/** The compose file as Compose reads it: YAML merge keys (<<) applied. */
function composeDoc (text = readFileSync(COMPOSE, 'utf8')): Obj {
  return parse(text, { merge: true }) as Obj
}

/** The settings gridd reads from its environment: every field's GRID_* variable, and GRID_CONFIG (src/config/load.ts). */
function griddEnv (): Set<string> {
  expect(readFileSync(join(ROOT, 'src/config/load.ts'), 'utf8')).toContain('env.GRID_CONFIG')
  return new Set([...FIELDS.flatMap(f => f.env === undefined ? [] : [f.env]), 'GRID_CONFIG'])
}

/** The variables the entrypoint reads: the names it documents and uses as ${NAME...}. */
function entrypointEnv (): Set<string> {
  return new Set([...readFileSync(ENTRYPOINT, 'utf8').matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map(m => m[1] as string))
}

function daemonSets (): Obj[] { return manifests().map(m => m.doc).filter(d => d.kind === 'DaemonSet') }

describe('deploy examples - Kubernetes manifests', () => {
  it('are each a Kubernetes object that kubernetes-models validates', () => {
    const all = manifests()
    expect(all.map(m => kindOf(m.doc)).sort()).toEqual(['apps/v1/DaemonSet', 'apps/v1/DaemonSet', 'v1/ConfigMap', 'v1/Namespace', 'v1/Service'])
    for (const { file, doc } of all) expect(validateValues(doc), file).toBeUndefined()
  })

  it('name only fields the Kubernetes object types have', () => {
    expect(checkFieldNames(manifests())).toBe('')
  })

  it('fail the checks on a wrong value or a misspelt field', () => {
    const ds = structuredClone(daemonSets()[0] as Obj)
    ds.spec.template.spec.hostNetwork = 'yes'
    expect(validateValues(ds)).toMatch(/hostNetwork/)
    const typo = structuredClone(daemonSets()[0] as Obj)
    typo.spec.template.spec.containers[0].livenessProbe.exec.commnd = typo.spec.template.spec.containers[0].livenessProbe.exec.command
    expect(checkFieldNames([{ file: 'typo.yaml', doc: typo }])).toMatch(/^typo\.yaml: error TS\d+: .*'"commnd"' does not exist in type 'IExecAction'/)
    const top = structuredClone(daemonSets()[0] as Obj)
    top.spec.template.spec.hostNetwrk = true
    expect(checkFieldNames([{ file: 'top.yaml', doc: top }])).toMatch(/'"hostNetwrk"' does not exist in type 'IPodSpec'/)
  })

  it('run gridd on the host network with the key from a Secret, the config from a ConfigMap and a gridctl status probe', () => {
    const docs = manifests().map(m => m.doc)
    const svc = docs.find(d => d.kind === 'Service') as Obj
    expect(svc.spec.clusterIP).toBe('None')
    for (const ds of daemonSets()) {
      const pod = ds.spec.template.spec
      const c = pod.containers[0]
      expect(pod.hostNetwork).toBe(true)
      expect(c.livenessProbe.exec.command).toEqual(['gridctl', 'status'])
      const vols = new Map<string, Obj>(pod.volumes.map((v: Obj) => [v.name, v]))
      const mountOf = (pred: (v: Obj) => boolean): string => c.volumeMounts.find((m: Obj) => pred(vols.get(m.name) as Obj)).mountPath
      const env = new Map<string, Obj>(c.env.map((e: Obj) => [e.name, e]))
      expect(env.get('GRID_SWARM_KEY')?.value).toBe(`${mountOf(v => v.secret?.secretName === 'grid-swarm-key')}/swarm.key`)
      const cm = docs.find(d => d.kind === 'ConfigMap' && d.metadata.name === [...vols.values()].find(v => v.configMap !== undefined)?.configMap.name) as Obj
      expect(env.get('GRID_CONFIG')?.value).toBe(`${mountOf(v => v.configMap !== undefined)}/${Object.keys(cm.data)[0] as string}`)
      expect(env.get('BOOTSTRAP_DNS')?.value).toBe(`${svc.metadata.name as string}.${svc.metadata.namespace as string}.svc.cluster.local`)
      expect(svc.spec.selector['app.kubernetes.io/name']).toBe(ds.spec.template.metadata.labels['app.kubernetes.io/name'])
    }
    const gpu = daemonSets().filter(ds => ds.spec.template.spec.containers[0].resources.limits?.['nvidia.com/gpu'] !== undefined)
    expect(gpu.map(ds => ds.spec.template.spec.containers[0].image)).toEqual([expect.stringMatching(/-gpu$/)])
  })

  it('name only settings gridd or the entrypoint knows, with values gridd accepts', () => {
    const known = griddEnv()
    const entry = entrypointEnv()
    const cm = manifests().map(m => m.doc).find(d => d.kind === 'ConfigMap') as Obj
    const configFile = join(SCRATCH, 'gridd.yaml')
    writeFileSync(configFile, cm.data['gridd.yaml'])
    for (const ds of daemonSets()) {
      const c = ds.spec.template.spec.containers[0]
      expect(c.args ?? [], 'gridd flags in args').toEqual([])
      const env: Record<string, string> = { GRID_NAME: 'ip-10-0-1-17', POD_IP: '10.0.1.17' }
      for (const e of c.env as Obj[]) {
        if (e.name.startsWith('GRID_')) expect(known, e.name).toContain(e.name)
        else expect(entry, e.name).toContain(e.name)
        if (typeof e.value === 'string') env[e.name] = e.value.replace(/\$\((\w+)\)/g, (_: string, v: string) => env[v] ?? '')
      }
      // the config file named by GRID_CONFIG is the ConfigMap's (here a copy); the key path need not exist to load
      const config = loadConfig({ env: { ...env, GRID_CONFIG: configFile }, defaultConfigFile: join(SCRATCH, 'none.yaml') })
      expect(config.swarmKey).toBe('/etc/grid/secret/swarm.key')
      expect(config.metricsListen).toBe('10.0.1.17:9464')
    }
  })
})

describe('deploy examples - compose file', () => {
  const validate = composeValidator()

  it('is valid under the Compose Specification schema, and a misspelt field is not', () => {
    expect(validate(composeDoc())).toBeUndefined()
    const typo = composeDoc()
    typo.services.node2.enviroment = typo.services.node2.environment
    expect(validate(typo)).toMatch(/additional properties/)
    const text = readFileSync(COMPOSE, 'utf8').replace('stop_grace_period:', 'stop_grace_periods:')
    expect(validate(composeDoc(text))).toMatch(/additional properties/)
  })

  it('runs three nodes, the first bootstrapping the others, with the key as a secret and data in volumes', () => {
    const c = composeDoc()
    const names = Object.keys(c.services).sort()
    expect(names).toEqual(['node1', 'node2', 'node3'])
    const known = griddEnv()
    for (const name of names) {
      const s = c.services[name]
      expect(s.secrets).toEqual(['swarm_key'])
      expect(s.environment.GRID_SWARM_KEY).toBe('/run/secrets/swarm_key')
      expect(s.volumes).toEqual([`${name}-data:/var/lib/grid`])
      expect(c.volumes).toHaveProperty(`${name}-data`)
      expect(s.healthcheck.test).toEqual(['CMD', 'gridctl', 'status'])
      for (const k of Object.keys(s.environment)) expect(known, k).toContain(k)
      const config = loadConfig({ env: s.environment, defaultConfigFile: join(SCRATCH, 'none.yaml') })
      expect(config.name).toBe(name)
      expect(config.bootstrap).toEqual(name === 'node1' ? [] : ['/dns4/node1/tcp/7470'])
    }
    expect(c.secrets.swarm_key.file).toBe('./swarm.key')
  })
})

describe('deploy examples - Dockerfile and entrypoint', () => {
  it('builds the bundles with install-bin and has cpu and gpu targets, cpu the default, with settings gridd knows', () => {
    const text = readFileSync(DOCKERFILE, 'utf8')
    const stages = [...text.matchAll(/^FROM (\S+) AS (\w+)$/gm)].map(m => [m[1], m[2]])
    expect(stages).toEqual([['${NODE_IMAGE}', 'build'], ['${CUDA_IMAGE}', 'gpu'], ['${NODE_IMAGE}', 'cpu']])
    expect(text).toMatch(/^ARG NODE_IMAGE=node:24-slim$/m)
    expect(text).toMatch(/^ARG CUDA_IMAGE=nvidia\/cuda:\S+$/m)
    expect(text).toContain('RUN npm ci ')
    expect(text).toContain('node deploy/install-bin.mjs --prefix /opt/grid')
    for (const m of text.matchAll(/^COPY (?:--chmod=\S+ )?(deploy\/\S+) /gm)) expect(() => readFileSync(join(ROOT, m[1] as string))).not.toThrow()
    const known = griddEnv()
    for (const m of text.matchAll(/\b(GRID_[A-Z0-9_]+)=/g)) expect(known, m[1]).toContain(m[1])

    // COPY keeps the file's mode: the entrypoint must be executable in the tree
    expect(statSync(ENTRYPOINT).mode & 0o111).toBe(0o111)
    // the host's node_modules and build output never enter the context (npm ci makes the image's own)
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')
    for (const p of ['node_modules', 'dist', '.git', '*.swarm.key', 'deploy/swarm.key']) expect(ignored).toContain(p)
  })

  it('bootstraps from the other addresses of BOOTSTRAP_DNS, not its own, and passes gridd its arguments', () => {
    const bin = join(SCRATCH, 'bin')
    mkdirSync(bin, { recursive: true })
    const tool = (name: string, body: string): void => { writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`); chmodSync(join(bin, name), 0o755) }
    tool('getent', '[ "$1 $2" = "ahostsv4 grid-bootstrap.grid.svc" ] || exit 2\nfor a in 10.0.0.7 10.0.0.5 10.0.0.6; do echo "$a STREAM grid-bootstrap"; echo "$a DGRAM"; done')
    tool('id', 'echo 1000')
    tool('gridd', 'echo "gridd $*"')
    const run = (env: Record<string, string>): { code: number | null, out: string, err: string } => {
      const r = spawnSync('sh', [ENTRYPOINT, '--log-level', 'debug'], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin`, ...env } })
      return { code: r.status, out: r.stdout.trim(), err: r.stderr }
    }
    const r = run({ BOOTSTRAP_DNS: 'grid-bootstrap.grid.svc', POD_IP: '10.0.0.6' })
    expect(r.code).toBe(0)
    const boots = [...r.out.matchAll(/--bootstrap (\S+)/g)].map(m => m[1]).sort()
    expect(boots).toEqual(['/ip4/10.0.0.5/tcp/7470', '/ip4/10.0.0.7/tcp/7470'])
    expect(r.out).toMatch(/^gridd --log-level debug /)
    // alone behind the name: it waits BOOTSTRAP_WAIT_S, then starts as the first node
    const alone = run({ BOOTSTRAP_DNS: 'nobody.grid.svc', BOOTSTRAP_WAIT_S: '0' })
    expect(alone.out).toBe('gridd --log-level debug')
    expect(alone.err).toMatch(/starting as the first node/)
    // a command instead of flags runs that command (docker run IMAGE gridctl keygen FILE)
    const cmd = spawnSync('sh', [ENTRYPOINT, 'echo', 'hello'], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin` } })
    expect(cmd.stdout).toBe('hello\n')
  })
})
