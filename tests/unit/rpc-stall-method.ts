import Type from 'typebox'
import { method } from '../../proto/index.ts'

/** Answers with `n` after `delayMs` (tests/unit/rpc-stall.test.ts and its peer process). */
export const DelayedEcho = method('test.delayedEcho', Type.Object({ n: Type.Integer(), delayMs: Type.Integer() }), Type.Object({ n: Type.Integer() }))
