import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ApiClient } from '../../src/cli/client.ts'
import { uploadTree } from '../../src/cli/sync-client.ts'
import { walkCacheFile } from '../../src/sync/walk-cache.ts'

/**
 * A daemon stand-in on a real Unix socket that keeps uploaded blobs by hash, checking each against its content. `json`
 * only: it answers a msgpack body as a daemon before the binary upload did (its body is not JSON).
 */
function blobDaemon (socket: string, opts: { jsonOnly: boolean, failUploads?: boolean }): Promise<{ server: Server, blobs: Map<string, Buffer>, uploads: string[] }> {
  const blobs = new Map<string, Buffer>()
  const uploads: string[] = []
  const read = async (req: IncomingMessage): Promise<Buffer> => { const parts: Buffer[] = []; for await (const c of req) parts.push(c as Buffer); return Buffer.concat(parts) }
  const answer = (res: import('node:http').ServerResponse, status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)) }
  const server = createServer((req, res) => {
    void (async () => {
      const raw = await read(req)
      const type = req.headers['content-type'] ?? ''
      if (req.url === '/v1/sync/missing') {
        const b = JSON.parse(raw.toString()) as { hashes?: string[], manifest?: string }
        if (b.manifest !== undefined) return answer(res, 400, { error: { code: 'INVALID_ARGUMENT', message: 'invalid request: manifest is not allowed' } })
        return answer(res, 200, { missing: (b.hashes ?? []).filter(h => !blobs.has(h)) })
      }
      if (req.url === '/v1/sync/blobs') {
        uploads.push(type)
        if (opts.failUploads === true) return answer(res, 503, { error: { code: 'UNAVAILABLE', message: 'the daemon is stopping' } })
        let pieces: Array<{ hash: string, data: Buffer }>
        if (type === 'application/msgpack' && !opts.jsonOnly) {
          pieces = (new Packr({ useRecords: false, mapsAsObjects: true }).unpack(raw) as { pieces: Array<{ hash: string, data: Buffer }> }).pieces
        } else {
          let b: { pieces: Array<{ hash: string, data: string }> }
          try { b = JSON.parse(raw.toString()) } catch (err) { return answer(res, 400, { error: { code: 'INVALID_ARGUMENT', message: `request body is not JSON (${(err as Error).message})` } }) }
          pieces = b.pieces.map(p => ({ hash: p.hash, data: Buffer.from(p.data, 'base64') }))
        }
        const refused: string[] = []
        for (const p of pieces) {
          if (createHash('sha256').update(p.data).digest('hex') === p.hash) blobs.set(p.hash, Buffer.from(p.data))
          else refused.push(p.hash)
        }
        return answer(res, 200, { refused })
      }
      answer(res, 404, { error: { code: 'NO_SUCH_ENDPOINT', message: `no such endpoint ${req.url ?? ''}` } })
    })()
  })
  return new Promise(resolve => { server.listen(socket, () => { resolve({ server, blobs, uploads }) }) })
}

describe('gridctl --sync upload', () => {
  let dir: string
  let server: Server | undefined
  const env = { ...process.env }
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'grid-sync-upload-'))
    process.env.XDG_CACHE_HOME = join(dir, 'cache')
    mkdirSync(join(dir, 'tree', 'sub'), { recursive: true })
    for (let i = 0; i < 40; i++) writeFileSync(join(dir, 'tree', i % 2 === 0 ? 'sub' : '', `f${i}`), `file ${i} `.repeat(i * 50 + 1))
  })
  afterEach(() => {
    server?.close()
    process.env = env
    rmSync(dir, { recursive: true, force: true })
  })

  const upload = async (socket: string): Promise<Awaited<ReturnType<typeof uploadTree>>> => await uploadTree(new ApiClient({ socket }), join(dir, 'tree'), { err: process.stderr })

  it('sends the blobs as msgpack with raw bytes', async () => {
    const d = await blobDaemon(join(dir, 'd.sock'), { jsonOnly: false })
    server = d.server
    const r = await upload(join(dir, 'd.sock'))
    expect(r.files).toBe(40)
    expect(r.sentBlobs).toBe(41) // every file and the manifest
    expect(new Set(d.uploads)).toEqual(new Set(['application/msgpack']))
    expect(d.blobs.has(r.body.manifest)).toBe(true)
  })

  it('sends a few small blobs (a changed file) as JSON, without loading msgpack', async () => {
    const d = await blobDaemon(join(dir, 'd.sock'), { jsonOnly: false })
    server = d.server
    const small = join(dir, 'small')
    mkdirSync(small)
    writeFileSync(join(small, 'train.py'), 'print(1)\n')
    const r = await uploadTree(new ApiClient({ socket: join(dir, 'd.sock') }), small, { err: process.stderr })
    expect(r.sentBlobs).toBe(2)
    expect(d.uploads).toEqual(['application/json'])
    expect(d.blobs.size).toBe(2)
  })

  it('remembers the walk once the task can be sent, and after an upload that failed', async () => {
    const walk = walkCacheFile(realpathSync(join(dir, 'tree')))
    const failing = await blobDaemon(join(dir, 'f.sock'), { jsonOnly: false, failUploads: true })
    server = failing.server
    await expect(upload(join(dir, 'f.sock'))).rejects.toMatchObject({ code: 'UNAVAILABLE' })
    expect(existsSync(walk)).toBe(true)
    rmSync(walk)
    failing.server.close()
    const d = await blobDaemon(join(dir, 'd.sock'), { jsonOnly: false })
    server = d.server
    await upload(join(dir, 'd.sock'))
    await new Promise(resolve => setImmediate(resolve))
    expect(existsSync(walk)).toBe(true)
  })

  it('falls back to base64 in JSON for a daemon that does not take msgpack, and sends every blob', async () => {
    const d = await blobDaemon(join(dir, 'd.sock'), { jsonOnly: true })
    server = d.server
    const r = await upload(join(dir, 'd.sock'))
    expect(r.sentBlobs).toBe(41)
    expect(d.blobs.size).toBe(41)
    expect(d.uploads).toContain('application/json')
    // once it has said so, the rest goes as JSON at once
    expect(d.uploads.filter(t => t === 'application/msgpack').length).toBeLessThanOrEqual(8)
  })
})
