import { spawnSync } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/index.ts'
import {
  InventoryError, KnownHosts, hostFieldMatches, knownHostsName, layoutFor, loadInventory, renderConfig
} from '../../src/deploy/index.ts'
import { pickBootstrap } from '../../src/deploy/common.ts'
import { loadPackage } from '../../src/deploy/package.ts'
import { gridctlScript, installScript, probeScript, restartScript, startScript, stopScript } from '../../src/deploy/remote.ts'
import { tempDir } from '../helpers/cluster.ts'
import { violationsOf } from '../helpers/violations.ts'

const dir = tempDir('grid-deploy-unit-')
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })
const file = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p }
const key = file('id_test', 'only its existence is checked when the inventory is read\n')

const violations = (fn: () => unknown): string[] => violationsOf(InventoryError, fn)

// public key blobs: only their bytes are compared (the first is a real ed25519 key, the second any other bytes)
const KEY_A = 'AAAAC3NzaC1lZDI1NTE5AAAAIPO9fk+cUYQoiMvsmqirOLD1StP/rno8nVJGn7BP8G7w'
const KEY_B = 'AAAAC3NzaC1lZDI1NTE5AAAAILH0c8V4I5uZ9Wk4w0rHqfGm2vJgS1rVd4Y2mA2bq7bE'
const blob = (b64: string): Buffer => Buffer.from(b64, 'base64')

describe('deploy - known_hosts', () => {
  it('files a host under host on port 22, [host]:port elsewhere, and the alias when there is one', () => {
    expect(knownHostsName('gpu-1', 22)).toBe('gpu-1')
    expect(knownHostsName('10.0.0.5', 2222)).toBe('[10.0.0.5]:2222')
    expect(knownHostsName('10.0.0.5', 2222, 'gpu-1')).toBe('gpu-1')
  })

  it('matches plain, wildcard, negated and hashed host fields as OpenSSH does', () => {
    expect(hostFieldMatches('gpu-1,10.0.0.5', '10.0.0.5')).toBe(true)
    expect(hostFieldMatches('GPU-1', 'gpu-1')).toBe(true)
    expect(hostFieldMatches('gpu-*', 'gpu-17')).toBe(true)
    expect(hostFieldMatches('gpu-?', 'gpu-17')).toBe(false)
    expect(hostFieldMatches('gpu-*,!gpu-13', 'gpu-13')).toBe(false)
    expect(hostFieldMatches('[10.0.0.5]:2222', '[10.0.0.5]:2222')).toBe(true)
    expect(hostFieldMatches('[10.0.0.5]:2222', '10.0.0.5')).toBe(false)
    const salt = randomBytes(20)
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.5]:2222').digest('base64')}`
    expect(hostFieldMatches(hashed, '[10.0.0.5]:2222')).toBe(true)
    expect(hostFieldMatches(hashed, '10.0.0.5')).toBe(false)
  })

  it('says ok, unknown, changed or revoked, and skips what it cannot use', () => {
    const kh = new KnownHosts(KnownHosts.parse([
      '# comment',
      `gpu-1 ssh-ed25519 ${KEY_A} root@gpu-1`,
      `@cert-authority *.lab ssh-ed25519 ${KEY_B}`,
      `@revoked * ssh-ed25519 ${KEY_B}`,
      'garbage line',
      ''
    ].join('\n'), 'kh'), ['kh'])
    expect(kh.check('gpu-1', blob(KEY_A)).verdict).toBe('ok')
    expect(kh.check('gpu-1', blob(KEY_B)).verdict).toBe('revoked')
    expect(kh.check('gpu-2', blob(KEY_A))).toEqual({ verdict: 'unknown', certAuthority: false })
    expect(kh.check('x.lab', blob(KEY_A))).toEqual({ verdict: 'unknown', certAuthority: true })
    const other = new KnownHosts(KnownHosts.parse(`gpu-1 ssh-ed25519 ${KEY_B}\n`, 'kh2'), ['kh2'])
    const v = other.check('gpu-1', blob(KEY_A))
    expect(v.verdict).toBe('changed')
    expect(v.verdict === 'changed' && v.known[0]?.line).toBe(1)
  })

  it('offers the host key algorithms known for a host first', () => {
    const kh = new KnownHosts(KnownHosts.parse('gpu-1 ssh-rsa AAAAB3NzaC1yc2E=\n'), [])
    expect(kh.algorithmsFor('gpu-1').slice(0, 3)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'])
    expect(kh.algorithmsFor('gpu-2')[0]).toBe('ssh-ed25519')
  })
})

describe('deploy - inventory', () => {
  it('merges defaults into each host, labels key by key, and accepts "[user@]host[:port]" strings', () => {
    const inv = loadInventory(file('a.yaml', [
      'cluster: ml',
      'defaults: { user: ops, port: 2200, key: id_test, labels: { rack: r1 }, region: eu-west }',
      'hosts:',
      '  - { host: gpu-1.example.com, name: gpu-1, labels: { gpu: a100 }, listen: /ip4/0.0.0.0/tcp/7470 }',
      '  - root@10.0.0.2:22',
      ''
    ].join('\n')), { env: {} })
    expect(inv.serviceManager).toBe('systemd')
    expect(inv.swarmKey).toBe(join(dir, 'a.swarm.key'))
    const [a, b] = inv.hosts
    expect(a).toMatchObject({ host: 'gpu-1.example.com', port: 2200, user: 'ops', key, label: 'gpu-1', prefix: '/opt/grid' })
    expect(a?.gridd).toEqual({ name: 'gpu-1', labels: { rack: 'r1', gpu: 'a100' }, listen: ['/ip4/0.0.0.0/tcp/7470'], region: 'eu-west' })
    expect(b).toMatchObject({ host: '10.0.0.2', port: 22, user: 'root', label: '10.0.0.2', name: null })
  })

  it('refuses two nodes on one machine under systemd, which runs one gridd.service', () => {
    const text = 'defaults: { key: id_test }\nhosts:\n  - { host: 10.0.0.1, name: a, prefix: /opt/a }\n  - { host: 10.0.0.1, name: b, prefix: /opt/b }\n'
    expect(violations(() => loadInventory(file('b.yaml', text), { env: {} }))).toEqual([
      'hosts[1]: shares 10.0.0.1:22 with hosts[0]; one machine runs one gridd.service, so several nodes on one machine need --service-manager none (or serviceManager: none)'
    ])
    expect(loadInventory(file('b.yaml', text), { env: {}, serviceManager: 'none' }).hosts).toHaveLength(2)
  })

  it('names a missing key file, and a host list that is not there', () => {
    expect(violations(() => loadInventory(file('c.yaml', 'hosts:\n  - { host: h, key: /nonexistent/key }\n'), { env: {} }))).toEqual(['hosts[0].key: /nonexistent/key does not exist'])
    expect(violations(() => loadInventory(file('d.yaml', 'cluster: x\n'), { env: {} }))).toEqual(['hosts: missing; list the hosts to deploy to (e.g. hosts: [{ host: gpu-1.example.com }])'])
  })
})

describe('deploy - what it writes on a host', () => {
  it('writes a gridd config that gridd itself accepts, with the same values', () => {
    const layout = layoutFor(join(dir, 'p'), 'none')
    const text = renderConfig(layout, {
      cluster: 'ml',
      bootstrap: ['/ip4/10.0.0.1/tcp/7470/p2p/12D3KooWMwwaX8yPGNjh9d7mTqGMD74wMdbEQDH3rkWdjsywBNHv'],
      gridd: { name: 'gpu-1', listen: ['/ip4/0.0.0.0/tcp/7471'], labels: { rack: 'r1' }, metricsListen: 'off', 'membership.heartbeatInterval': '2s' }
    })
    const c = loadConfig({ configFile: file('gridd.yaml', text), env: {}, defaultConfigFile: join(dir, 'none') })
    expect(c).toMatchObject({
      cluster: 'ml',
      name: 'gpu-1',
      listen: ['/ip4/0.0.0.0/tcp/7471'],
      labels: { rack: 'r1' },
      metricsListen: null,
      dataDir: join(dir, 'p/data'),
      socket: join(dir, 'p/run/gridd.sock'),
      swarmKey: join(dir, 'p/etc/swarm.key'),
      swarmKeyGenerate: false,
      membership: { heartbeatIntervalMs: 2000 }
    })
    // under systemd the unit's StateDirectory and RuntimeDirectory decide
    const sd = renderConfig(layoutFor('/opt/grid', 'systemd'), { cluster: null, bootstrap: [], gridd: {} })
    expect(sd).not.toMatch(/dataDir|socket/)
    expect(sd).toMatch(/^swarmKey: \/etc\/grid\/swarm\.key$/m)
  })

  it('runs only scripts that POSIX sh parses, for both service managers', () => {
    for (const sm of ['systemd', 'none'] as const) {
      const l = layoutFor('/opt/grid', sm)
      const items = [{ staged: '0-gridd.mjs', dest: l.griddJs, mode: '0644', owner: '' }, { staged: "1-it's", dest: l.configFile, mode: '0640', owner: 'root:grid' }]
      for (const script of [probeScript(l, 'node', [l.griddJs]), installScript(l, '/tmp/x y', items), startScript(l), stopScript(l), restartScript(l), gridctlScript(l, ['nodes', '-o', 'json'])]) {
        const r = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' })
        expect(r.status, `${sm}:\n${script}\n${r.stderr}`).toBe(0)
      }
    }
  })

  it('installs a new package\'s chunks and removes the ones older builds left, keeping those it still loads', () => {
    const l = layoutFor(join(dir, 'prefix'), 'none')
    const staging = join(dir, 'staging')
    mkdirSync(staging, { recursive: true })
    mkdirSync(l.chunksDir, { recursive: true })
    writeFileSync(join(staging, '0-chunk-NEW.mjs'), 'export const n = 1\n')
    for (const old of ['chunk-KEPT.mjs', 'chunk-OLD.mjs', "it's-old.mjs"]) writeFileSync(join(l.chunksDir, old), 'export {}\n')
    const items = [{ staged: '0-chunk-NEW.mjs', dest: `${l.chunksDir}/chunk-NEW.mjs`, mode: '0644', owner: '' }]
    const r = spawnSync('sh', ['-c', installScript(l, staging, items, ['chunk-NEW.mjs', 'chunk-KEPT.mjs'])], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    expect(readdirSync(l.chunksDir).sort()).toEqual(['chunk-KEPT.mjs', 'chunk-NEW.mjs'])
    expect(readFileSync(join(l.chunksDir, 'chunk-NEW.mjs'), 'utf8')).toBe('export const n = 1\n')
  })

  it('refuses a package folder that lacks a chunk its programs load, naming it', async () => {
    const pkg = join(dir, 'package')
    mkdirSync(join(pkg, 'chunks'), { recursive: true })
    writeFileSync(join(pkg, 'gridd.mjs'), 'import "./chunks/chunk-A.mjs"\nawait import("./chunks/gridd-main-B.mjs")\n')
    writeFileSync(join(pkg, 'gridctl.mjs'), 'import "./chunks/chunk-A.mjs"\n')
    writeFileSync(join(pkg, 'chunks', 'chunk-A.mjs'), 'export {}\n')
    writeFileSync(join(pkg, 'chunks', 'gridd-main-B.mjs'), 'import { x } from "./chunk-C.mjs"\n')
    await expect(loadPackage(pkg)).rejects.toThrow(/lacks 1 of the chunks its programs load \(chunks\/chunk-C\.mjs\): copy the whole folder "npm run bundle" writes/)
  })

  it('bootstraps others through the address it reached the first host at, else its routable ones', async () => {
    const id = '12D3KooWMwwaX8yPGNjh9d7mTqGMD74wMdbEQDH3rkWdjsywBNHv'
    const addrs = [`/ip4/127.0.0.1/tcp/7470/p2p/${id}`, `/ip4/10.0.0.5/tcp/7470/p2p/${id}`, `/ip4/172.17.0.1/tcp/7470/p2p/${id}`]
    expect(await pickBootstrap(addrs, '10.0.0.5')).toEqual([`/ip4/10.0.0.5/tcp/7470/p2p/${id}`])
    expect(await pickBootstrap(addrs, '192.0.2.1')).toEqual([`/ip4/10.0.0.5/tcp/7470/p2p/${id}`, `/ip4/172.17.0.1/tcp/7470/p2p/${id}`])
    expect(await pickBootstrap([addrs[0] as string], '127.0.0.1')).toEqual([addrs[0]])
  })
})
