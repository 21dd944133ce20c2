/**
 * Every place bytes or JSON from outside the process are decoded, as a fuzz target (see harness.ts for what passes):
 * RPC frames (framing, frame shapes, every method's request, response and event shapes), gossiped membership
 * messages, pushed state records and the Yjs updates they carry, the WAL and snapshot files, entries read from the
 * replicated state, a warm worker's stdout, the control API's JSON bodies, the config file, synced-tree manifests.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PrivateKey } from '@libp2p/interface'
import fc from 'fast-check'
import { pino } from 'pino'
import * as proto from '../../proto/index.ts'
import { HEARTBEAT_MAX_BYTES, RpcFrameDecoder, decode, decodeTaskEntry, membershipMessage, rawEntry, StateUpdateSchema, validator, type MethodDef } from '../../proto/index.ts'
import { loadConfig } from '../../src/config/index.ts'
import { checkWorkflow } from '../../src/workflows/file.ts'
import { parseReply, ReplyLines } from '../../src/executor/worker-replies.ts'
import { normalizeJob } from '../../src/jobs/request.ts'
import { parseItems } from '../../src/jobs/items.ts'
import { checkUpdate, Ed25519RecordSigner } from '../../src/state/index.ts'
import { UpdateIntake } from '../../src/state/intake.ts'
import { StateFiles } from '../../src/state/persistence.ts'
import { checkManifest, decodeManifest } from '../../src/sync/index.ts'
import { normalizeSpec } from '../../src/tasks/spec.ts'
import { parseStdinBody } from '../../src/tasks/stdin-relay.ts'
import { InvalidArgumentError } from '../../src/interface/index.ts'
import { LogLimiter } from '../../src/util/index.ts'
import { seedBytes, seedValues } from './corpus.ts'
import { cap, type FuzzTarget } from './harness.ts'
import { hostileBytes, mutatedValue } from './mutate.ts'

/** Every RPC method's contract, as the proto module exports them. */
const METHODS: MethodDef[] = (Object.values(proto) as unknown[]).filter((v): v is MethodDef =>
  typeof v === 'object' && v !== null && 'name' in v && 'request' in v && 'response' in v)
const METHOD_BY_NAME = new Map(METHODS.map(m => [m.name, m]))

/** The frame cap the decoder is fuzzed under: small, so hostile length prefixes reach it. */
const FUZZ_FRAME_MAX_BYTES = 64 * 1024
/** A length prefix is at most this many bytes: what a decoder may hold past the cap. */
const PREFIX_MAX_BYTES = 7

const resolveNode = (n: string): string => {
  if (n.length === 0 || n.length > 128) throw new InvalidArgumentError(`no node named ${n.slice(0, 20)}`)
  return n
}

const rpcFrame: FuzzTarget<{ bytes: Uint8Array, cuts: number[] }> = {
  name: 'rpc-frame',
  decoder: 'proto/codec.ts RpcFrameDecoder + proto/rpc.ts frames + every method\'s shapes (src/mesh/rpc-channel.ts)',
  arbitrary: () => {
    const seeds = seedBytes('rpc-frame')
    // a prefix that claims up to 2^49 bytes, then a little of its body: must be refused on the prefix alone
    const huge = fc.tuple(fc.bigInt({ min: 1n, max: 2n ** 49n }), fc.uint8Array({ maxLength: 16 })).map(([n, tail]) => {
      const out: number[] = []
      let v = n
      while (v >= 0x80n) { out.push(Number(v & 0x7fn) | 0x80); v >>= 7n }
      out.push(Number(v))
      return new Uint8Array([...out, ...tail])
    })
    return fc.record({ bytes: fc.oneof({ arbitrary: hostileBytes(seeds), weight: 8 }, { arbitrary: huge, weight: 1 }), cuts: fc.array(fc.nat(), { maxLength: 6 }) })
  },
  run: ({ bytes, cuts }) => {
    const dec = new RpcFrameDecoder(FUZZ_FRAME_MAX_BYTES)
    const points = [...new Set(cuts.map(c => c % (bytes.byteLength + 1)))].sort((a, b) => a - b)
    let from = 0
    for (const to of [...points, bytes.byteLength]) {
      for (const f of dec.push(bytes.subarray(from, to))) {
        // what the channel does with each frame: the method's validators (requests, notifications, answers, events)
        if (f.type === 'request' || f.type === 'notify') METHOD_BY_NAME.get(f.method)?.request.check(f.data)
        if (f.type === 'result' || f.type === 'event') for (const m of METHODS) { m.response.check(f.data); m.event?.check(f.data) }
        if (f.type === 'error') proto.frame.check(f)
      }
      cap(dec.buffered <= FUZZ_FRAME_MAX_BYTES + PREFIX_MAX_BYTES, `the frame decoder holds ${dec.buffered} bytes (cap ${FUZZ_FRAME_MAX_BYTES})`)
      from = to
    }
  }
}

const rpcRequest: FuzzTarget<{ method: string, data: unknown }> = {
  name: 'rpc-request',
  decoder: 'every RPC method\'s request validator (proto/*.ts method(...)), as rpc-channel serves a request',
  arbitrary: () => {
    const seeds = seedBytes('rpc-frame').flatMap(b => { try { return [proto.rpcFrameFromWire(decode(b.subarray(varintLength(b))))] } catch { return [] } })
      .filter(f => f.type === 'request' || f.type === 'notify').map(f => f.data as unknown)
    return fc.record({ method: fc.constantFrom(...METHODS.map(m => m.name)), data: fc.oneof(mutatedValue(seeds), fc.anything({ maxDepth: 3, withTypedArray: true })) })
  },
  run: ({ method, data }) => {
    METHOD_BY_NAME.get(method)?.request.parsePeer(data, `${method} request`)
  }
}

function varintLength (b: Uint8Array): number {
  let i = 0
  while (i < b.byteLength && (b[i] as number) >= 0x80) i++
  return i + 1
}

const membership: FuzzTarget<Uint8Array> = {
  name: 'membership',
  decoder: 'src/membership/heartbeats.ts validate (msgpack decode + proto/membership.ts)',
  arbitrary: () => hostileBytes(seedBytes('membership')),
  run: bytes => {
    if (bytes.byteLength > HEARTBEAT_MAX_BYTES) return
    membershipMessage.parsePeer(decode(bytes), 'membership message')
  }
}

const silent = pino({ level: 'silent' })
const counter = { inc: () => {} } as unknown as import('prom-client').Counter<'reason'>
const intake = new UpdateIntake({
  log: silent,
  limiter: new LogLimiter(60_000),
  metrics: { rejected: counter },
  // verifying needs no private key: the writer's public key is in its peer id
  signer: new Ed25519RecordSigner({} as PrivateKey)
})
const stateUpdate = validator(StateUpdateSchema)

const stateRecord: FuzzTarget<Uint8Array> = {
  name: 'state-update',
  decoder: 'state.push / state.sync records: proto/state.ts StateUpdate + src/state/intake.ts (signature, size, content)',
  arbitrary: () => hostileBytes(seedBytes('state-update'), 2048),
  run: bytes => {
    const rec = stateUpdate.parsePeer(decode(bytes), 'state update')
    intake.check(rec, 'fuzz')
    // a member gone bad signs whatever it likes as itself: the content check must hold on its own
    checkUpdate(rec.u)
  }
}

const yjsUpdate: FuzzTarget<Uint8Array> = {
  name: 'yjs-update',
  decoder: 'src/state/writer-doc.ts checkUpdate (Yjs update decoding and entry shapes)',
  arbitrary: () => hostileBytes(seedBytes('yjs-update'), 1024),
  run: bytes => { checkUpdate(bytes) }
}

let walDir: string | undefined
const wal: FuzzTarget<{ snapshot: Uint8Array | undefined, log: Uint8Array | undefined }> = {
  name: 'wal',
  decoder: 'src/state/persistence.ts StateFiles.load (snapshot.bin and wal.log)',
  arbitrary: () => {
    const seeds = seedBytes('wal')
    return fc.record({ snapshot: fc.option(hostileBytes(seeds, 1024), { nil: undefined }), log: fc.option(hostileBytes(seeds, 1024), { nil: undefined }) })
  },
  run: ({ snapshot, log }) => {
    walDir ??= mkdtempSync(join(tmpdir(), 'grid-fuzz-wal-'))
    const files = new StateFiles(walDir)
    rmSync(files.dir, { recursive: true, force: true })
    files.load()
    if (snapshot !== undefined) writeFileSync(files.snapshotPath, snapshot)
    if (log !== undefined) writeFileSync(files.walPath, log)
    const loaded = files.load()
    // what the store applies must be records: a writer id, a generation, update bytes (n and s together or neither)
    for (const r of [...loaded.snapshot, ...loaded.wal]) {
      cap(typeof r === 'object' && r !== null && typeof r.w === 'string' && Number.isSafeInteger(r.g) && r.u instanceof Uint8Array &&
        (r.n === undefined) === (r.s === undefined) && (r.n === undefined || Number.isSafeInteger(r.n)) && (r.s === undefined || r.s instanceof Uint8Array),
      `StateFiles.load returned a record that is not one: ${String(JSON.stringify(r)).slice(0, 200)}`)
    }
  }
}

const taskEntry: FuzzTarget<unknown> = {
  name: 'task-entry',
  decoder: 'replicated entries: proto/legacy-entries.ts rawEntry, decodeTaskEntry; jobs, workflows, registry, sessions validators',
  arbitrary: () => fc.oneof(mutatedValue(seedValues('task-entry').map(s => (s as { value: unknown }).value)), fc.anything({ maxDepth: 3 })),
  run: v => {
    decodeTaskEntry(v)
    rawEntry.check(v)
    proto.jobEntry.check(v)
    proto.workflowEntry.check(v)
    proto.registryValue.check(v)
    proto.sessionValue.check(v)
  }
}

const REPLY_MAX_BYTES = 4096
const workerReply: FuzzTarget<{ bytes: Uint8Array, cuts: number[] }> = {
  name: 'worker-reply',
  decoder: 'src/executor/worker-replies.ts ReplyLines + parseReply (a warm worker\'s stdout)',
  arbitrary: () => fc.record({ bytes: hostileBytes(seedBytes('worker-reply'), 8192), cuts: fc.array(fc.nat(), { maxLength: 6 }) }),
  run: ({ bytes, cuts }) => {
    let held = 0
    const lines = new ReplyLines({ line: l => { held = Math.max(held, l.length); parseReply(l) }, overflow: () => {} }, REPLY_MAX_BYTES)
    const points = [...new Set(cuts.map(c => c % (bytes.byteLength + 1)))].sort((a, b) => a - b)
    let from = 0
    for (const to of [...points, bytes.byteLength]) { lines.push(Buffer.from(bytes.subarray(from, to))); from = to }
    // a line handed on is at most the limit plus the chunk that ended it
    cap(held <= REPLY_MAX_BYTES + bytes.byteLength, `a reply line of ${held} bytes passed the ${REPLY_MAX_BYTES}-byte limit`)
  }
}

/** Control API bodies arrive as JSON text: mutated text and mutated values both. */
function jsonBodies (target: string, pick: (v: unknown) => unknown = v => v): fc.Arbitrary<unknown> {
  const values = seedValues(target).map(pick)
  const texts = values.map(v => new TextEncoder().encode(JSON.stringify(v)))
  // a body is JSON text: what JSON cannot carry (BigInt, typed arrays, undefined) never reaches a route
  const asJson = (v: unknown): unknown => { try { return JSON.parse(JSON.stringify(v) ?? 'null') as unknown } catch { return undefined } }
  return fc.oneof(
    { arbitrary: mutatedValue(values).map(asJson), weight: 3 },
    { arbitrary: hostileBytes(texts).map(b => { try { return JSON.parse(Buffer.from(b).toString('utf8')) as unknown } catch { return undefined } }), weight: 1 },
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 }
  )
}

const controlTask: FuzzTarget<unknown> = {
  name: 'control-task',
  decoder: 'POST /v1/tasks body: src/tasks/spec.ts normalizeSpec',
  arbitrary: () => jsonBodies('control-task'),
  run: body => { normalizeSpec(body, resolveNode) }
}

const controlJob: FuzzTarget<unknown> = {
  name: 'control-job',
  decoder: 'POST /v1/jobs body: src/jobs/request.ts normalizeJob',
  arbitrary: () => jsonBodies('control-job'),
  run: body => { normalizeJob(body, resolveNode) }
}

const controlWorkflow: FuzzTarget<unknown> = {
  name: 'control-workflow',
  decoder: 'POST /v1/workflows body: src/workflows/file.ts checkWorkflow',
  arbitrary: () => jsonBodies('control-workflow'),
  run: body => { checkWorkflow(body) }
}

const BODY_PARSERS: Record<string, (b: unknown) => unknown> = {
  stdin: parseStdinBody,
  'sync-missing': b => proto.syncMissingBody.parseUser(b, 'request'),
  'sync-read': b => proto.syncReadBody.parseUser(b, 'request'),
  'sync-submit': b => { const s = proto.syncSubmit.parseUser(b, 'sync'); if (typeof s.manifest !== 'string') checkManifest(s.manifest, false) },
  items: b => typeof b === 'string' ? parseItems(b) : parseItems(JSON.stringify(b) ?? '')
}
const controlBody: FuzzTarget<{ which: string, body: unknown }> = {
  name: 'control-body',
  decoder: 'other control API bodies: stdin (src/tasks/stdin-relay.ts), sync (proto/sync.ts, manifest-codec), job items (src/jobs/items.ts)',
  arbitrary: () => fc.record({ which: fc.constantFrom(...Object.keys(BODY_PARSERS)), body: jsonBodies('control-body', v => (v as { body: unknown }).body) }),
  run: ({ which, body }) => { BODY_PARSERS[which]?.(body) }
}

const manifestBlob: FuzzTarget<Uint8Array> = {
  name: 'manifest',
  decoder: 'src/sync/manifest-codec.ts decodeManifest (a manifest blob from a peer)',
  arbitrary: () => hostileBytes(seedBytes('manifest')),
  run: bytes => { decodeManifest(bytes, true) }
}

let configDir: string | undefined
const config: FuzzTarget<Uint8Array> = {
  name: 'config',
  decoder: 'src/config/load.ts loadConfig (the YAML config file)',
  arbitrary: () => hostileBytes(seedBytes('config')),
  run: bytes => {
    configDir ??= mkdtempSync(join(tmpdir(), 'grid-fuzz-config-'))
    const file = join(configDir, 'gridd.yaml')
    writeFileSync(file, bytes)
    loadConfig({ configFile: file, env: { GRID_DATA_DIR: configDir }, flags: {} })
  }
}

export const TARGETS: FuzzTarget<any>[] = [
  rpcFrame, rpcRequest, membership, stateRecord, yjsUpdate, wal, taskEntry, workerReply,
  controlTask, controlJob, controlWorkflow, controlBody, manifestBlob, config
]

/** Removes the temporary folders the file targets write in. */
export function cleanUp (): void {
  for (const d of [walDir, configDir]) if (d !== undefined) rmSync(d, { recursive: true, force: true })
  walDir = undefined
  configDir = undefined
}
