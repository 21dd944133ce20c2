// Preloaded with `node --import` to count the modules a process loads (Node's synchronous module hooks): at exit it
// writes {"total", "byPackage", "files"} (files: the paths of the files of ours it loaded, outside node_modules) to the
// file named by GRID_MODULE_COUNT_FILE. Used by the CLI start-up tests and bench/cli.
import { writeFileSync } from 'node:fs'
import { registerHooks } from 'node:module'
import { fileURLToPath } from 'node:url'

const byPackage = {}
const files = []
registerHooks({
  load (url, context, nextLoad) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
    const key = m !== null ? m[1] : url.startsWith('node:') ? 'node:' : '(own)'
    byPackage[key] = (byPackage[key] ?? 0) + 1
    if (key === '(own)' && url.startsWith('file:')) files.push(fileURLToPath(url))
    return nextLoad(url, context)
  }
})
process.on('exit', () => {
  const total = Object.values(byPackage).reduce((a, b) => a + b, 0)
  if (process.env.GRID_MODULE_COUNT_FILE !== undefined) writeFileSync(process.env.GRID_MODULE_COUNT_FILE, JSON.stringify({ total, byPackage, files }))
})
