/**
 * The far side of tests/unit/rpc-stall.test.ts, in its own process (so its event loop runs while the test's stalls):
 * a real libp2p node with gridd's RPC service that answers test.delayedEcho after the delay asked. It prints its address,
 * and exits when its stdin closes (the test ended, or died).
 * Run by Node with --experimental-transform-types.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { RpcService } from '../../src/mesh/index.ts'
import { createMeshNode } from '../../src/mesh/node.ts'
import { DelayedEcho } from './rpc-stall-method.ts'

const node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), psk: null, listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], maxConnections: 10, version: 'test', onUpgradeFailure: () => {} })
await node.start()
const rpc = new RpcService({ libp2p: node, logger: pino({ level: 'silent' }), registry: new Registry() })
rpc.handle(DelayedEcho, async req => { await new Promise(resolve => setTimeout(resolve, req.delayMs)); return { n: req.n } })
await rpc.start()
process.stdout.write(`${node.getMultiaddrs()[0]?.toString() ?? ''}\n`)
process.stdin.resume()
process.stdin.on('end', () => { void rpc.stop().then(async () => { await node.stop() }).finally(() => process.exit(0)) })
