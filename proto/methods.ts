/** Every RPC method between daemons, by module. */
import { method } from './rpc.ts'
import { PingRequestSchema, PingResponseSchema, ProbeRequestSchema, ProbeResponseSchema } from './membership.ts'

export const MemberPing = method('member.ping', PingRequestSchema, PingResponseSchema)
export const MemberProbe = method('member.probe', ProbeRequestSchema, ProbeResponseSchema)
