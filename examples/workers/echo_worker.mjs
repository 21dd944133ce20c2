#!/usr/bin/env node
// A Grid warm worker in Node: one JSON request per line on stdin, one JSON reply per line on stdout, any order.
// Request: {"id", "payload", "session", "type"}; reply: {"id", "result"} or {"id", "error"}. Ends when stdin closes.
import { createInterface } from 'node:readline'

const startup = Number(process.env.ECHO_STARTUP_SECONDS ?? 0)
if (startup > 0) await new Promise(resolve => setTimeout(resolve, startup * 1000)) // load the model here, once
let served = 0
const out = []
let scheduled = false
const flush = () => { scheduled = false; process.stdout.write(out.join('')); out.length = 0 }
for await (const line of createInterface({ input: process.stdin })) {
  if (line === '') continue
  const req = JSON.parse(line)
  served++
  const p = req.payload
  const reply = p !== null && typeof p === 'object' && p.fail !== undefined
    ? { id: req.id, error: String(p.fail) }
    : { id: req.id, result: { echo: p, pid: process.pid, served, session: req.session, gpus: process.env.CUDA_VISIBLE_DEVICES ?? '' } }
  if (p !== null && typeof p === 'object' && p.crash !== undefined) process.exit(3)
  // replies written in the same tick leave together
  out.push(JSON.stringify(reply) + '\n')
  if (!scheduled) { scheduled = true; setImmediate(flush) }
}
