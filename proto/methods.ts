/** Every RPC method between daemons, by module. */
import Type from 'typebox'
import { method } from './rpc.ts'
import { PingRequestSchema, PingResponseSchema, ProbeRequestSchema, ProbeResponseSchema } from './membership.ts'

export const MemberPing = method('member.ping', PingRequestSchema, PingResponseSchema)
export const MemberProbe = method('member.probe', ProbeRequestSchema, ProbeResponseSchema)

/**
 * Notification `mesh.trim`: the sender is about to close its connections to the receiver to come back to its
 * `mesh.maxConnections` (a cluster larger than the cap). Not a failure: the receiver neither probes nor redials it soon.
 */
export const MeshTrim = method('mesh.trim', Type.Object({}), Type.Null())
