/**
 * The control socket's connection cap. At the cap, the connection that has waited longest without a request in
 * progress (a half-sent request, an idle keep-alive) is closed to make room, so a client holding connections open
 * cannot lock gridctl out; only when every connection is serving a request is the new one refused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/** A connection, and how many requests it is serving now. */
interface Conn { busy: number }

export type ShedReason = 'evicted' | 'refused'

export class ConnectionCap {
  /** oldest first: a connection moves to the end each time it finishes a request */
  private readonly conns = new Map<Socket, Conn>()

  constructor (private readonly max: number, private readonly onShed: (reason: ShedReason) => void) {}

  get size (): number { return this.conns.size }

  /** Takes a new connection (the server's `connection` event), closing one to make room at the cap. */
  admit (socket: Socket): void {
    if (this.conns.size >= this.max) {
      let victim: Socket | undefined
      for (const [s, c] of this.conns) if (c.busy === 0) { victim = s; break }
      this.onShed(victim === undefined ? 'refused' : 'evicted')
      if (victim === undefined) { socket.destroy(); return }
      this.conns.delete(victim)
      victim.destroy()
    }
    this.conns.set(socket, { busy: 0 })
    socket.once('close', () => { this.conns.delete(socket) })
  }

  /** Marks the request's connection busy until its response ends, then as the newest idle one. */
  track (req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket
    const c = this.conns.get(socket)
    if (c === undefined) return
    c.busy++
    res.once('close', () => {
      c.busy--
      if (c.busy === 0 && this.conns.delete(socket)) this.conns.set(socket, c)
    })
  }
}
