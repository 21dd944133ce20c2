/**
 * Writes the valid seeds of every target into tests/fuzz/corpus/ (committed; run again only when a wire shape
 * changes): `bash deploy/with-node.sh node --experimental-transform-types tests/fuzz/make-corpus.ts`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import * as Y from 'yjs'
import { encode, encodeRpcFrame, type Frame } from '../../proto/index.ts'
import { Ed25519RecordSigner } from '../../src/state/index.ts'
import { StateFiles } from '../../src/state/persistence.ts'
import { encodeManifest } from '../../src/sync/index.ts'
import { writeSeed } from './corpus.ts'

const key = await generateKeyPair('Ed25519')
const w = peerIdFromPrivateKey(key).toString()
const signer = new Ed25519RecordSigner(key)
const now = 1_760_000_000_000

function entryUpdate (collection: string, k: string, value: unknown): Uint8Array {
  const doc = new Y.Doc()
  doc.getMap(collection).set(k, { value, stamp: [now, 0] })
  doc.getMap(collection).set(`${k}-gone`, { value: null, stamp: [now, 1], deleted: true })
  return Y.encodeStateAsUpdate(doc)
}
const updates = [
  entryUpdate('sessions', 's1', { value: { n: 1 }, owner: w, createdAt: now, updatedAt: now, ttlMs: null }),
  entryUpdate('registry', w, { name: 'n1', addrs: ['/ip4/127.0.0.1/tcp/4001'], region: 'r', labels: { pool: 'a' }, capabilities: [], gpus: [], version: '0.1.0', drain: false, joinedAt: now, updatedAt: now }),
  entryUpdate('tasks', 't1', { exec: { attempt: 1, node: w, nodeName: 'n1', status: 'running', queuedAt: now } })
]
const record = (u: Uint8Array, n: number): { w: string, g: number, n: number, u: Uint8Array, s: Uint8Array } => ({ w, g: now, n, u, s: signer.sign(w, now, n, u) })
const records = updates.map((u, i) => record(u, i))

// yjs-update: the bytes a record carries
updates.forEach((u, i) => writeSeed('yjs-update', `entry-${i}`, u))
// incremental update over an existing document (a delete set and a second client)
{
  const doc = new Y.Doc()
  Y.applyUpdate(doc, updates[0] as Uint8Array)
  const sv = Y.encodeStateVector(doc)
  doc.getMap('sessions').delete('s1')
  writeSeed('yjs-update', 'delete-set', Y.encodeStateAsUpdate(doc, sv))
}

// state-update: a pushed record (msgpack), a nudge
records.forEach((r, i) => writeSeed('state-update', `record-${i}`, encode(r)))
writeSeed('state-update', 'nudge', encode({ w, g: now, u: new Uint8Array([0, 0]) }))

// rpc-frame: one frame of each kind, and several on one stream
const frames: Frame[] = [
  { type: 'request', id: 1, method: 'member.ping', data: {}, deadlineMs: 2000 },
  { type: 'request', id: 2, method: 'state.sync', data: { docs: { [w]: { g: now, n: 3 } }, maxBytes: 4096 }, deadlineMs: 5000 },
  { type: 'request', id: 3, method: 'task.cancel', data: { id: 't1', by: w }, deadlineMs: 5000 },
  { type: 'request', id: 4, method: 'task.stdin', data: { id: 't1', attempt: 1, data: new Uint8Array([104, 105]), end: true }, deadlineMs: 5000 },
  { type: 'request', id: 5, method: 'sync.get', data: { ranges: [{ hash: 'a'.repeat(64), offset: 0, length: 10 }] }, deadlineMs: 5000 },
  { type: 'result', id: 1, data: { inc: 5, state: 'alive' } },
  { type: 'error', id: 2, error: { code: 'BUSY', message: 'busy', details: { retryAfterMs: 100 } } },
  { type: 'event', id: 3, data: { type: 'stdout', data: new Uint8Array([1, 2]) } },
  { type: 'cancel', id: 4 },
  { type: 'keepalive', nonce: 7, reply: false },
  { type: 'notify', method: 'state.push', data: records[0] }
]
frames.forEach((f, i) => writeSeed('rpc-frame', `${i}-${f.type}`, encodeRpcFrame(f, 1 << 24)))
{
  const all = frames.slice(0, 6).map(f => encodeRpcFrame(f, 1 << 24))
  writeSeed('rpc-frame', 'stream', Buffer.concat(all))
}

// membership: a heartbeat and a notice, as gossiped
const load = { cpu: 0.5, cpus: 2, memTotalMiB: 1024, memFreeMiB: 512, running: 0, queued: 0, slots: 2, freeSlots: 2, gpus: 0, freeGpus: 0, gpuUtilizationPercent: 0, gpuMemoryUsedMiB: 0, gpuMemoryTotalMiB: 0 }
writeSeed('membership', 'heartbeat', encode({ t: 'hb', id: w, name: 'n1', inc: 1_760_000_000, seq: 4, state: 'alive', load, ver: '0.1.0', ts: now, health: { s: 'healthy', r: '', since: now, br: 'closed' }, paused: false }))
writeSeed('membership', 'notice', encode({ t: 'notice', kind: 'suspect', id: w, inc: 1_760_000_000, by: w }))

// wal / snapshot: as StateFiles writes them
{
  const dir = mkdtempSync(join(tmpdir(), 'grid-fuzz-corpus-'))
  const files = new StateFiles(dir)
  files.load()
  await files.append(records.slice(0, 2))
  await files.append(records.slice(2))
  await files.close()
  writeSeed('wal', 'wal-log', new Uint8Array(readFileSync(files.walPath)))
  await files.compact(records, { clean: true })
  writeSeed('wal', 'snapshot', new Uint8Array(readFileSync(files.snapshotPath)))
  rmSync(dir, { recursive: true, force: true })
}

// manifest: a synced tree's manifest blob
writeSeed('manifest', 'tree', new Uint8Array(encodeManifest({ version: 1, entries: [{ path: 'a.txt', mode: 0o644, size: 3, sha256: 'b'.repeat(64) }, { path: 'dir/link', link: '../a.txt' }] })))

// control API bodies
writeSeed('control-task', 'argv', { command: ['echo', 'hi'] })
writeSeed('control-task', 'full', { command: ['sh', '-c', 'exit 0'], cpus: 1, memory: '64M', env: { A: 'b' }, timeout: '30s', retries: 2, priority: 5, labels: { pool: 'a' }, strategy: 'least-loaded' })
writeSeed('control-task', 'typed', { type: 'echo', payload: { x: [1, 2] }, session: 's1' })
writeSeed('control-job', 'count', { command: ['echo', 'hi'], count: 3 })
writeSeed('control-job', 'map-reduce', { command: ['cat'], items: ['a', 'b', 1, { c: 2 }], strategy: 'map-reduce', reduce: 'wc -l', maxParallel: 2, aggregate: 'all-success' })
writeSeed('control-workflow', 'dag', { name: 'w', params: { n: '5' }, parallelism: 2, jobs: { a: { command: ['echo', '${{ params.n }}'] }, b: { needs: ['a'], command: ['cat'], env: { X: '1' } }, c: { needs: ['a', 'b'], items: [1, 2], command: ['echo'] } } })
writeSeed('control-body', 'stdin', { which: 'stdin', body: { data: 'aGk=', encoding: 'base64', end: true } })
writeSeed('control-body', 'sync-missing', { which: 'sync-missing', body: { hashes: ['c'.repeat(64)] } })
writeSeed('control-body', 'sync-read', { which: 'sync-read', body: { ranges: [{ hash: 'c'.repeat(64), offset: 0, length: 4 }] } })
writeSeed('control-body', 'sync-submit', { which: 'sync-submit', body: { manifest: { version: 1, entries: [{ path: 'x', mode: 420, size: 1, sha256: 'c'.repeat(64) }] }, fetch: ['out/*'] } })
writeSeed('control-body', 'items', { which: 'items', body: '["a", "b", {"c": 1}]' })

// task-entry: entries of the replicated tasks, jobs and workflows collections
writeSeed('task-entry', 'task', { collection: 'tasks', value: { coord: { spec: { command: ['echo', 'hi'], cpus: 1 }, origin: w, originName: 'n1', coordinator: w, attempt: 1, createdAt: now }, exec: { attempt: 1, node: w, nodeName: 'n1', status: 'completed', queuedAt: now, exitCode: 0 }, cancel: { at: now, by: w } } })
writeSeed('task-entry', 'legacy-task', { collection: 'tasks', value: { c: { spec: { command: ['true'] }, origin: w, originName: 'n1', coordinator: w, attempt: 1, createdAt: now } } })

// worker-reply: a warm worker's stdout
writeSeed('worker-reply', 'replies', '{"id":"1","result":{"ok":true}}\n{"id":"2","error":"boom"}\n\n{"id":"3","result":null}\n')

// config: a gridd.yaml
writeSeed('config', 'gridd', 'cluster: lab\nname: n1\nlisten:\n  - /ip4/0.0.0.0/tcp/4001\nbootstrap: []\nslots: 4\nlabels:\n  pool: gpu\nexecutor:\n  taskUser: nobody\n')
