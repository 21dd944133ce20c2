/**
 * Shell completion scripts for gridctl, generated from its command table (commands/index.ts): every command, its
 * subcommands and options, and what a value or a first argument is (a node name, a task id, a session id: the
 * script asks the local daemon through `gridctl completion --values KIND`; an output format; a file). Loaded only by
 * `gridctl completion`, so no other command pays for it.
 */
import type { Command } from './command.ts'

/** What a flag's value or a command's first argument is. */
export type ValueKind = 'node' | 'task' | 'session' | 'job' | 'workflow' | 'format' | 'file' | 'none'
/** The kinds the script fetches from the daemon. */
export const LIVE_KINDS = ['node', 'task', 'session', 'job', 'workflow'] as const
export type LiveKind = typeof LIVE_KINDS[number]

export interface FlagSpec { long: string, short?: string, takesValue: boolean, value: ValueKind, help: string }
export interface CommandSpec {
  /** ['nodes', 'get'] */
  path: string[]
  summary: string
  flags: FlagSpec[]
  subcommands: string[]
  /** what its first argument is; 'command' for `run -- CMD` */
  positional: ValueKind | 'command'
}

const FORMATS = ['table', 'json', 'markdown']
/** gridctl's global flags (run-gridctl.ts), accepted before and after the command. */
export const GLOBAL_FLAGS: FlagSpec[] = [
  { long: 'socket', takesValue: true, value: 'file', help: 'control socket' },
  { long: 'output', short: 'o', takesValue: true, value: 'format', help: 'table, json or markdown' },
  { long: 'help', short: 'h', takesValue: false, value: 'none', help: 'help for gridctl or for a command' },
  { long: 'version', takesValue: false, value: 'none', help: 'print the version' }
]

/** Option names whose values are of a known kind (by the house's naming: --node N, --owner NODE, --cwd DIR...). */
function optionKind (name: string): ValueKind {
  if (name === 'node' || name === 'owner') return 'node'
  if (name === 'session') return 'session'
  if (/^(inventory|package|known-hosts|cwd|config|file|sync|gridd)$/.test(name)) return 'file'
  return 'none'
}

/** The first argument's kind, read from the usage line's first placeholder after the command (`task ID`, `drain [NODE]`). */
export function positionalKind (cmd: Command, path: string[]): ValueKind | 'command' {
  if (cmd.trailingCommand === true) return 'command'
  const first = cmd.usage.split(' | ')[0] ?? ''
  const rest = first.startsWith(path.join(' ')) ? first.slice(path.join(' ').length) : first
  // flags and their placeholders out ([--state STATE], -i INVENTORY), then the first placeholder left
  const m = /^\[?([A-Z][A-Z0-9_|]*)/.exec(rest.replace(/\[-[^\]]*\]/g, ' ').replace(/(^|\s)--?[a-z][\w-]*( [A-Z][\w|]*)?/g, ' ').trim())
  if (m === null) return 'none'
  const p = (m[1] as string).split('|')
  if (p.some(x => x === 'NODE' || x === 'NAME')) return 'node'
  if (p.includes('FILE') || p.includes('INVENTORY')) return 'file'
  if (p.includes('ID')) return path[0] === 'sessions' ? 'session' : path[0] === 'job' ? 'job' : path[0] === 'workflow' ? 'workflow' : 'task'
  return 'none'
}

function specOf (cmd: Command, parents: string[]): CommandSpec {
  const path = [...parents, cmd.name]
  const flags: FlagSpec[] = Object.entries(cmd.options ?? {}).map(([name, o]) => ({
    long: name,
    ...(o.short === undefined ? {} : { short: o.short }),
    takesValue: o.type === 'string',
    value: o.type === 'string' ? optionKind(name) : 'none',
    help: cmd.optionHelp?.[name] ?? ''
  }))
  return { path, summary: cmd.summary, flags, subcommands: (cmd.subcommands ?? []).map(s => s.name), positional: positionalKind(cmd, path) }
}

/** Every command and subcommand of the table, parents first. */
export function commandSpecs (commands: Command[]): CommandSpec[] {
  return commands.flatMap(c => [specOf(c, []), ...(c.subcommands ?? []).map(s => specOf(s, [c.name]))])
}

const sq = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`
const flagWords = (f: FlagSpec): string[] => [`--${f.long}`, ...(f.short === undefined ? [] : [`-${f.short}`])]

/** bash (and zsh, through bashcompinit): one function that reads the line and a table of every command. */
export function bashScript (specs: CommandSpec[], version: string): string {
  const top = specs.filter(s => s.path.length === 1).map(s => s.path[0] as string)
  const cases = specs.map(s => {
    const all = s.flags.flatMap(flagWords)
    const withValue = s.flags.filter(f => f.takesValue).flatMap(flagWords)
    return `    ${sq(s.path.join(' '))}) subs=${sq(s.subcommands.join(' '))}; flags=${sq(all.join(' '))}; vflags=${sq(withValue.join(' '))}; pos=${s.positional} ;;`
  })
  const kinds = [
    ...specs.flatMap(s => s.flags.filter(f => f.takesValue && f.value !== 'none').flatMap(f => flagWords(f).map(w => `    ${sq(`${s.path.join(' ')} ${w}`)}) echo ${f.value} ;;`))),
    ...GLOBAL_FLAGS.filter(f => f.takesValue).flatMap(f => flagWords(f).map(w => `    *${sq(` ${w}`)}) echo ${f.value} ;;`))
  ]
  const gflags = GLOBAL_FLAGS.flatMap(flagWords).join(' ')
  const gvflags = GLOBAL_FLAGS.filter(f => f.takesValue).flatMap(flagWords).join(' ')
  return `# bash completion for gridctl ${version}, generated by \`gridctl completion bash\` from its command table.
# Now:        source <(gridctl completion bash)
# For good:   gridctl completion bash > ~/.local/share/bash-completion/completions/gridctl
# Node names, task, session, job and workflow ids come from the local daemon (gridctl completion --values KIND).

_gridctl_commands=${sq(top.join(' '))}

# sets subs (subcommands), flags, vflags (the flags that take a value) and pos (what the first argument is)
_gridctl_spec() {
  subs=; flags=; vflags=; pos=none
  case "$1" in
${cases.join('\n')}
  esac
}

# what the value of flag $2 of command $1 is
_gridctl_kind() {
  case "$1 $2" in
${kinds.join('\n')}
    *) echo none ;;
  esac
}

_gridctl_values() {
  command gridctl \${_gridctl_socket:+--socket "$_gridctl_socket"} completion --values "$1" 2>/dev/null
}

# completes the current word as a value of kind $1, or as one of the words $2
_gridctl_complete_kind() {
  case "$1" in
    node|task|session|job|workflow) COMPREPLY=($(compgen -W "$2 $(_gridctl_values "$1")" -- "$cur")) ;;
    format) COMPREPLY=($(compgen -W ${sq(FORMATS.join(' '))} -- "$cur")) ;;
    file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$2" -- "$cur")) ;;
  esac
}

_gridctl() {
  # zsh (bashcompinit) numbers COMP_WORDS from 1
  local o=0; [ -n "\${ZSH_VERSION:-}" ] && o=1
  local cur="\${COMP_WORDS[COMP_CWORD+o]}" prev= cmd= sub= dashdash= npos=0 i w subs flags vflags pos _gridctl_socket=
  local gflags=${sq(gflags)} gvflags=${sq(gvflags)}
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1+o]}"
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i+o]}"
    if [ -n "$dashdash" ]; then npos=$((npos + 1)); continue; fi
    case "$w" in
      --) dashdash=1; continue ;;
      --socket) _gridctl_socket="\${COMP_WORDS[i+1+o]}"; i=$((i + 1)); continue ;;
      -o|--output) i=$((i + 1)); continue ;;
      -*) _gridctl_spec "$cmd\${sub:+ $sub}"; case " $vflags " in *" $w "*) i=$((i + 1)) ;; esac; continue ;;
    esac
    if [ -z "$cmd" ]; then
      cmd="$w"
    elif [ -z "$sub" ] && [ "$npos" = 0 ]; then
      _gridctl_spec "$cmd"
      case " $subs " in *" $w "*) sub="$w" ;; *) npos=$((npos + 1)) ;; esac
    else
      npos=$((npos + 1))
    fi
  done
  _gridctl_spec "$cmd\${sub:+ $sub}"
  if [ -n "$dashdash" ]; then
    # after --: the program to run, then its arguments
    if [ "$npos" = 0 ]; then COMPREPLY=($(compgen -c -- "$cur" | sort -u)); else _gridctl_complete_kind file; fi
    return 0
  fi
  case " $vflags $gvflags " in
    *" $prev "*) [ -n "$prev" ] && { _gridctl_complete_kind "$(_gridctl_kind "$cmd\${sub:+ $sub}" "$prev")"; return 0; } ;;
  esac
  case "$cur" in
    -*) COMPREPLY=($(compgen -W "$flags $gflags" -- "$cur")); return 0 ;;
  esac
  if [ -z "$cmd" ]; then COMPREPLY=($(compgen -W "$_gridctl_commands" -- "$cur")); return 0; fi
  [ "$npos" = 0 ] || return 0
  if [ -z "$sub" ] && [ -n "$subs" ]; then _gridctl_complete_kind "$pos" "$subs"; return 0; fi
  [ "$pos" = command ] || _gridctl_complete_kind "$pos"
  return 0
}

complete -F _gridctl gridctl
`
}

/** zsh: the bash script through zsh's bash-completion emulation. */
export function zshScript (specs: CommandSpec[], version: string): string {
  return `#compdef gridctl
# zsh completion for gridctl ${version} (the bash script, through zsh's bashcompinit).
# Now:        source <(gridctl completion zsh)
# For good:   gridctl completion zsh > "\${fpath[1]}/_gridctl"
autoload -U +X compinit && { (( $+functions[compdef] )) || compinit; }
autoload -U +X bashcompinit && bashcompinit
${bashScript(specs, version).split('\n').filter(l => !l.startsWith('# ')).join('\n')}`
}

/** fish: one `complete` line per command, subcommand, flag and live value. */
export function fishScript (specs: CommandSpec[], version: string): string {
  const fq = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
  const valueArgs = (k: ValueKind): string => (LIVE_KINDS as readonly string[]).includes(k)
    ? ` -x -a ${fq(`(__gridctl_values ${k})`)}`
    : k === 'format' ? ` -x -a ${fq(FORMATS.join(' '))}` : k === 'file' ? ' -r -F' : ' -x'
  const flagLine = (cond: string, f: FlagSpec): string =>
    `complete -c gridctl -n ${fq(cond)} -l ${f.long}${f.short === undefined ? '' : ` -s ${f.short}`}${f.takesValue ? valueArgs(f.value) : ''}${f.help === '' ? '' : ` -d ${fq(f.help)}`}`
  const lines = [
    `# fish completion for gridctl ${version}, generated by \`gridctl completion fish\` from its command table.`,
    '# Now:        gridctl completion fish | source',
    '# For good:   gridctl completion fish > ~/.config/fish/completions/gridctl.fish',
    'function __gridctl_values',
    '    command -q gridctl; and command gridctl completion --values $argv[1] 2>/dev/null',
    'end',
    'complete -c gridctl -f',
    ...GLOBAL_FLAGS.map(f => flagLine('true', f))
  ]
  for (const s of specs) {
    const [parent, sub] = s.path as [string, string | undefined]
    if (sub === undefined) {
      lines.push(`complete -c gridctl -n '__fish_use_subcommand' -a ${parent} -d ${fq(s.summary)}`)
    } else {
      const siblings = specs.filter(x => x.path[0] === parent && x.path.length === 2).map(x => x.path[1]).join(' ')
      lines.push(`complete -c gridctl -n ${fq(`__fish_seen_subcommand_from ${parent}; and not __fish_seen_subcommand_from ${siblings}`)} -a ${sub} -d ${fq(s.summary)}`)
    }
    const siblings = s.subcommands.join(' ')
    const cond = sub === undefined
      ? `__fish_seen_subcommand_from ${parent}${siblings === '' ? '' : `; and not __fish_seen_subcommand_from ${siblings}`}`
      : `__fish_seen_subcommand_from ${parent}; and __fish_seen_subcommand_from ${sub}`
    for (const f of s.flags) lines.push(flagLine(cond, f))
    if (s.positional === 'command') lines.push(`complete -c gridctl -n ${fq(`${cond}; and contains -- -- (commandline -opc)`)} -a '(__fish_complete_subcommand --fcs-skip=1)'`)
    else if (s.positional !== 'none') lines.push(`complete -c gridctl -n ${fq(cond)}${valueArgs(s.positional).replace(' -x', '').replace(' -r', '')}`)
  }
  return lines.join('\n') + '\n'
}

export const SHELLS = { bash: bashScript, zsh: zshScript, fish: fishScript } as const
export type Shell = keyof typeof SHELLS
