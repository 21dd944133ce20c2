/**
 * The tested shell blocks of a guide: fenced blocks whose info string is `sh tested` (```sh tested), in file order,
 * with the line of their opening fence. Plain ```sh blocks are shown, not run.
 */
export interface GuideBlock {
  /** 1-based line of the opening fence */
  line: number
  code: string
}

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/

/** Whether a fence's info string marks a tested shell block. */
export function isTested (info: string): boolean {
  return info.trim().split(/\s+/).join(' ') === 'sh tested'
}

/** Every fenced block, tested or not, with its info string (CommonMark fences: ``` or ~~~, closed by a longer or equal run). */
export function fencedBlocks (text: string): Array<GuideBlock & { info: string }> {
  const lines = text.split('\n')
  const out: Array<GuideBlock & { info: string }> = []
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] as string)
    if (open === null) continue
    const fence = open[1] as string
    const info = (open[2] as string).trim()
    if (fence[0] === '`' && info.includes('`')) continue
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j] as string)
      if (close !== null && (close[1] as string)[0] === fence[0] && (close[1] as string).length >= fence.length) break
      body.push(lines[j] as string)
    }
    out.push({ line: i + 1, info, code: body.join('\n') + '\n' })
    i = j
  }
  return out
}

export function testedBlocks (text: string): GuideBlock[] {
  return fencedBlocks(text).filter(b => isTested(b.info)).map(({ line, code }) => ({ line, code }))
}
