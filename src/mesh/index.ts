/**
 * mesh: this node's place in the libp2p network.
 *
 * Owns the persisted identity key, the swarm key, the libp2p node (TCP, pnet, Noise, yamux, identify, ping, a
 * private kad-dht, gossipsub), bootstrap and DHT rendezvous, gradual dialling of known members, gossip publish and
 * subscribe with validation, and request/response with deadlines and size limits. It must not interpret what other
 * modules send: payloads are bytes (gossip) or schema-checked messages (RPC).
 */
export { Mesh, type MeshInit, type MeshComponents, type MeshEvents, type GossipHandler, type GossipValidator, type GossipVerdict, type GossipSource } from './mesh.ts'
export {
  RpcService, type RpcContext, type RpcHandler, type NotifyHandler, type RequestOptions, type RpcNetwork, type RpcComponents, type RpcInit
} from './rpc.ts'
export { loadOrCreateIdentity, IDENTITY_FILE } from './identity.ts'
export { loadSwarmKey, type SwarmKey } from './swarm-key.ts'
