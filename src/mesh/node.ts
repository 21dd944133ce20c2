/**
 * Builds the libp2p node: TCP, the private network (swarm key), Noise, yamux, identify, ping, a private kad-dht and
 * gossipsub, with the settings that matter on one machine or behind one NAT (see shared/LIBP2P-FACTS.md).
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import type { ComponentLogger, ConnectionGater, Libp2p, Logger as Libp2pLogger, PrivateKey } from '@libp2p/interface'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { defaultLogger } from '@libp2p/logger'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { DHT_PROTOCOL, HEARTBEAT_MAX_BYTES, RPC_MAX_FRAME_BYTES } from '../../proto/index.ts'
import { joinHeadroom } from './constants.ts'
import { INBOUND_PENDING_MAX, INBOUND_UPGRADE_TIMEOUT_MS, type InboundGuard } from './inbound-guard.ts'
import type { PeerConduct } from './misbehaviour.ts'
import { guardSwarmKeyCipher } from './pnet-guard.ts'

export interface MeshServices {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  [key: string]: unknown
}

export type MeshLibp2p = Libp2p<MeshServices>

export interface NodeOptions {
  privateKey: PrivateKey
  /** The swarm key file's bytes, or null in the insecure lab mode. */
  psk: Uint8Array | null
  listen: string[]
  announce: string[]
  maxConnections: number
  version: string
  /** Called for libp2p's own error logs about failed connection upgrades (wrong swarm key, not a grid node). */
  onUpgradeFailure: (info: { direction: string, remoteAddr: string, error: string }) => void
  /** Keeps inbound connections that have not finished their handshake few (inbound-guard.ts). */
  inboundGuard?: InboundGuard
  /** Refuses banned peers (connection gater) and scores misbehaving ones down in gossipsub (misbehaviour.ts). */
  conduct?: Pick<PeerConduct, 'isBanned' | 'gossipScore'>
}

/**
 * Gossipsub's mesh sized for a cluster whose members all connect to one another, not for a public swarm (its defaults
 * are D 6, Dlo 4, Dhi 12, Dlazy 6, gossip factor 0.25): an author's heartbeat already goes to every connected member
 * (flood publish), so each copy a mesh peer forwards is a spare, and each IHAVE a repair. Four mesh peers keep spares
 * for a lost link at a third fewer forwarded copies than six from 7 members up (every copy costs a Noise frame and a
 * socket write at both ends), and two lazy peers a second are gossiped the ids of recent messages instead of six.
 * The wire protocol is unchanged: members with other settings interoperate.
 */
const GOSSIP_MESH = { D: 4, Dlo: 3, Dhi: 6, Dout: 2, Dscore: 2, Dlazy: 2, gossipFactor: 0.1 } as const

/** Timeouts and limits chosen for a cluster on a LAN (the reasons are in shared/LIBP2P-FACTS.md). */
const DIAL_TIMEOUT_MS = 6_000

export async function createMeshNode (opts: NodeOptions): Promise<MeshLibp2p> {
  if (opts.psk !== null) guardSwarmKeyCipher()
  return await createLibp2p<MeshServices>({
    start: false,
    privateKey: opts.privateKey,
    nodeInfo: { name: 'gridd', version: opts.version },
    logger: upgradeFailureLogger(opts.onUpgradeFailure, opts.inboundGuard),
    addresses: { listen: opts.listen, announce: opts.announce },
    transports: [tcp()],
    ...(opts.psk === null ? {} : { connectionProtector: preSharedKey({ psk: opts.psk }) }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({
      streamOptions: {
        // our RPC frames go up to RPC_MAX_FRAME_BYTES; the default 4 MiB read buffer would abort the stream
        maxReadBufferLength: RPC_MAX_FRAME_BYTES * 2 + 64,
        // streams are long-lived and kept busy by our own probes; the default closes idle ones after 120 s
        inactivityTimeout: 0
      }
    })],
    connectionManager: {
      // past mesh.maxConnections by a headroom, so a newcomer can join through a member at the cap: libp2p refuses at
      // its own limit before the handshake, whoever dials; the dial loop trims back to the cap (constants.ts)
      maxConnections: opts.maxConnections + joinHeadroom(opts.maxConnections),
      dialTimeout: DIAL_TIMEOUT_MS,
      // every node of a cluster may sit behind one address (one test machine, one NAT): the default of 5 new
      // connections per second per IP refuses a cluster that starts at once; the swarm key already gates who connects
      inboundConnectionThreshold: 200,
      // above the guard's own cap, which evicts silent connections first: libp2p refuses a new one outright when this
      // is reached, whoever it comes from
      maxIncomingPendingConnections: INBOUND_PENDING_MAX * 2,
      // a connection that has not finished swarm key, Noise and yamux by then is dropped (libp2p's default: 10 s)
      inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT_MS,
      maxParallelDials: 64
    },
    ...(opts.inboundGuard === undefined ? {} : { connectionGater: gaterOf(opts.inboundGuard, opts.conduct) }),
    // off: membership's SWIM probes already ping every peer in turn and measure the round trip, and the monitor's
    // habit of aborting a connection whose ping is late, then re-dialling (Noise handshakes, identify), fed a storm
    // that kept a 20-daemon test machine saturated. Membership is the failure detector; it hangs up on dead peers.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        // our own protocol id: this DHT never joins, nor answers, the public one
        protocol: DHT_PROTOCOL,
        // a LAN DHT: every node is a server, and private addresses are kept (both needed, else the table stays empty)
        clientMode: false,
        peerInfoMapper: passthroughMapper,
        logPrefix: 'grid:dht',
        metricsPrefix: 'grid_dht'
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        fallbackToFloodsub: false,
        // every message is signed by its author and checked by each receiver (the library does both): the only
        // topic is the heartbeat topic, and membership accepts a heartbeat or notice only from the node it speaks for
        // (issue 17). Without signatures a relay could forge any member's heartbeat. The cost, one signature a second
        // per node and a check per node per message, is measured in the README (Membership, signed heartbeats).
        // State updates are not gossiped (they travel on the RPC streams), so this does not touch them.
        globalSignaturePolicy: 'StrictSign',
        // a message reaches a node once from its author and again from each mesh peer that forwards it; without a
        // fast id every copy has its signature checked before the seen-cache finds it a duplicate (most of an idle
        // daemon's crypto time). The library caches this id only after a copy passed its check, so a forged copy
        // cannot shadow the real message
        fastMsgIdFn: exactMessageId,
        maxInboundDataLength: HEARTBEAT_MAX_BYTES + 1024,
        scoreParams: {
          // many daemons share one IP on a test machine or behind a NAT; colocation must not empty the mesh
          IPColocationFactorWeight: 0,
          // each strike of a peer's (bad frames, invalid gossip) lowers its score; a banned one is graylisted
          appSpecificScore: (peer: string) => opts.conduct?.gossipScore(peer) ?? 0
        },
        // messages arrive at most once a second per node per topic; process them as they come
        messageProcessingConcurrency: 64,
        ...GOSSIP_MESH
      })
    }
  })
}

/** A gossip message's identity as sent: author, sequence number and signature (which binds the data), as text. */
export function exactMessageId (msg: { topic: string, from?: Uint8Array, seqno?: Uint8Array, signature?: Uint8Array }): string {
  const b64 = (u?: Uint8Array): string => u === undefined ? '' : Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64')
  return `${msg.topic}|${b64(msg.from)}|${b64(msg.seqno)}|${b64(msg.signature)}`
}

function gaterOf (guard: InboundGuard, conduct: Pick<PeerConduct, 'isBanned'> | undefined): ConnectionGater {
  const banned = (peer: { toString: () => string }): boolean => conduct?.isBanned(peer.toString()) ?? false
  return {
    denyInboundConnection: conn => guard.denyInboundConnection(conn),
    // a banned peer is refused once its identity is known (after Noise), and never dialled
    denyInboundEncryptedConnection: (peer, conn) => guard.denyInboundEncryptedConnection(peer, conn) || banned(peer),
    denyDialPeer: peer => banned(peer)
  }
}

/**
 * libp2p logs through the `debug` module (silent unless DEBUG is set). We keep that, and also report the errors a
 * user must see: a failed connection upgrade is what a wrong swarm key looks like from the other side, and the
 * connection manager's refusals of inbound connections go to the inbound guard's rate-limited line.
 */
function upgradeFailureLogger (onFailure: NodeOptions['onUpgradeFailure'], guard?: InboundGuard): ComponentLogger {
  const base = defaultLogger()
  const wrap = (inner: Libp2pLogger): Libp2pLogger => {
    const log = ((formatter: unknown, ...args: unknown[]) => {
      inner(formatter, ...args)
      // the connection manager's refusals ('connection from %a refused - <why>') are debug lines: the guard counts them
      if (guard !== undefined && typeof formatter === 'string' && formatter.startsWith('connection from %a refused')) {
        try { guard.refusedByLibp2p(String(args[0]), formatter.slice(formatter.indexOf(' - ') + 3).replace(/ %s$/, '')) } catch {}
      }
    }) as Libp2pLogger
    log.error = (formatter: unknown, ...args: unknown[]) => {
      inner.error(formatter, ...args)
      if (typeof formatter === 'string' && formatter.startsWith('failed to upgrade')) {
        try {
          onFailure({
            direction: String(args[0]),
            remoteAddr: String(args[2]),
            error: args[3] instanceof Error ? `${args[3].name}: ${args[3].message}` : String(args[3])
          })
        } catch { /* never let reporting break libp2p */ }
      }
    }
    log.trace = (formatter: unknown, ...args: unknown[]) => { inner.trace(formatter, ...args) }
    log.enabled = inner.enabled
    log.newScope = (name: string) => wrap(inner.newScope(name))
    return log
  }
  return { forComponent: (name: string) => wrap(base.forComponent(name)) }
}
