// Writes the control API's OpenAPI 3.1 document, generated from the route table (proto/api-routes.ts) and its
// TypeBox schemas, to docs/openapi.json (or the path given). tests/unit/openapi.test.ts fails when the committed file
// differs from what this writes: run it after changing a route or a schema.
//
// Usage: npm run openapi [-- OUT]   (it builds first; this script reads dist/)
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const out = process.argv[2] ?? `${ROOT}docs/openapi.json`
const { openApiText } = await import(`${ROOT}dist/src/control/openapi.js`)
const text = openApiText()
writeFileSync(out, text)
console.log(`wrote ${out} (${text.length} bytes)`)
