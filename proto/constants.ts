/** Protocol ids, topic names and frame limits. Changing any of these breaks compatibility with running peers. */

/**
 * Request/response between two daemons: one long-lived multiplexed stream per peer pair. 2.0.0: frames travel as
 * msgpack arrays of named fields' values (1.0.0 sent maps with one-letter keys); a 1.0.0 peer and a 2.0.0 peer do not
 * negotiate a stream, and the node that tries says so in its log.
 */
export const RPC_PROTOCOL = '/grid/rpc/2.0.0'

/** Our private Kademlia DHT: its own protocol id so it never joins (or answers) the public IPFS DHT. */
export const DHT_PROTOCOL = '/grid/kad/1.0.0'

/**
 * Gossip topics are namespaced by cluster name, so two clusters sharing a swarm key still do not mix. Version 2:
 * messages are signed by their author (gossipsub StrictSign), and version 1 sent them unsigned; each side drops the
 * other's as invalid, so a new topic keeps a mixed cluster from penalising its own members: old and new daemons
 * simply do not hear each other's heartbeats.
 */
export const heartbeatTopic = (cluster: string): string => `grid/${cluster}/heartbeat/2`

/** The DHT rendezvous key every member provides: sha256 of this string. */
export const rendezvousKey = (cluster: string): string => `grid/${cluster}/members/1`

/**
 * Largest RPC frame accepted or sent. State catch-up is the largest message; past this it is split.
 * libp2p aborts a stream with more unread than its read buffer, so the stream's buffer is raised to match.
 */
export const RPC_MAX_FRAME_BYTES = 16 * 1024 * 1024

/** Largest heartbeat or membership notice; a real one is a few hundred bytes. */
export const HEARTBEAT_MAX_BYTES = 8 * 1024

/** Largest batch of state updates pushed at once; larger local changes are sent as several (or fetched by catch-up). */
export const STATE_BATCH_MAX_BYTES = 512 * 1024

/**
 * Largest signed state record (one writer update): a writer never makes a bigger one (an entry is at most
 * STATE_ENTRY_MAX_BYTES and a new generation's snapshot is split), and a peer's bigger one is refused. Together with
 * STATE_SYNC_CHUNK_BYTES it keeps every catch-up answer far below RPC_MAX_FRAME_BYTES, whatever a document's size.
 */
export const STATE_RECORD_MAX_BYTES = 4 * 1024 * 1024
/** Largest entry value a node writes (as JSON): a record holds at least one whole entry. */
export const STATE_ENTRY_MAX_BYTES = 2 * 1024 * 1024
/** A catch-up answer carries at most this many bytes of records (or one record, if alone bigger); `more` asks again. */
export const STATE_SYNC_CHUNK_BYTES = 4 * 1024 * 1024

/** Version of the wire contracts in this file; carried in heartbeats so mixed versions can be seen. */
export const WIRE_VERSION = 1
