/** How a deploy run authenticates to a host (its key or ssh-agent) and checks the host's key against known_hosts. */
import { readFileSync } from 'node:fs'
import ssh2, { type AgentAuthMethod, type PublicKeyAuthMethod } from 'ssh2'
import { HostKeyChangedError, HostKeyUnknownError, SshKeyError, type DeployError } from './errors.ts'
import { defaultIdentities } from './inventory.ts'
import { fingerprint, keyTypeOf, type KnownHosts } from './known-hosts.ts'
import type { SshTarget } from './ssh.ts'

const { utils } = ssh2

/** null when the key is the known one; else the error that says what is wrong and how to fix it. */
export function checkHostKey (known: KnownHosts, file: string, lookup: string, t: SshTarget, key: Buffer): DeployError | null {
  const v = known.check(lookup, key)
  const fp = `${keyTypeOf(key)} ${fingerprint(key)}`
  const scan = t.hostKeyAlias === null
    ? `ssh-keyscan ${t.port === 22 ? '' : `-p ${t.port} `}${t.host} >> ${file}`
    : `ssh-keyscan ${t.port === 22 ? '' : `-p ${t.port} `}${t.host} | sed 's/^[^ ]*/${lookup}/' >> ${file}`
  switch (v.verdict) {
    case 'ok': return null
    case 'unknown':
      return new HostKeyUnknownError(`host key of ${lookup} is not in ${known.files.length === 0 ? `${file} (no known_hosts file found)` : known.files.join(', ')}; it offered ${fp}. If that fingerprint is right (check it on the host: ssh-keygen -lf /etc/ssh/ssh_host_${keyTypeOf(key).replace(/^ssh-|-sha2-nistp\d+$/g, '')}_key.pub), add it: ${scan}, or connect once with ssh; pass --known-hosts FILE to use another file${v.certAuthority ? ' (known_hosts only has a @cert-authority line for it; host certificates are not supported)' : ''}`)
    case 'revoked':
      return new HostKeyChangedError(`host key of ${lookup} (${fp}) is marked @revoked in ${v.entry.file}:${v.entry.line}; refusing to connect`)
    case 'changed': {
      const at = v.known.map(e => `${e.file}:${e.line} (${e.keyType})`).join(', ')
      return new HostKeyChangedError(`host key of ${lookup} has CHANGED: it offered ${fp}, but ${at} says otherwise. This can be an attack, or the host was reinstalled; if you trust the new key, remove the old one (ssh-keygen -R '${lookup}' -f ${v.known[0]?.file ?? file}) and add the new one (${scan})`)
    }
  }
}

interface Auth {
  methods: Array<PublicKeyAuthMethod | AgentAuthMethod>
  /** What was offered, for the message when the host refuses all of it. */
  offered: string
}

/** The key named by the inventory; else ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa (unencrypted ones). */
export function authMethods (t: SshTarget, env: NodeJS.ProcessEnv): Auth {
  if (t.key !== null) {
    return { methods: [{ type: 'publickey', username: t.user, key: readKey(t.key, true) as Buffer }], offered: `key ${t.key}` }
  }
  const methods: Array<PublicKeyAuthMethod | AgentAuthMethod> = []
  const offered: string[] = []
  const agent = env.SSH_AUTH_SOCK
  if (agent !== undefined && agent !== '') {
    methods.push({ type: 'agent', username: t.user, agent })
    offered.push('ssh-agent')
  }
  for (const file of defaultIdentities(env)) {
    const key = readKey(file, false)
    if (key !== null) { methods.push({ type: 'publickey', username: t.user, key }); offered.push(file) }
  }
  if (methods.length === 0) throw new SshKeyError(`${t.label}: no usable SSH key: name one with key: in the inventory, or load yours into ssh-agent`)
  return { methods, offered: offered.join(', ') }
}

/** Reads and checks a private key; an unusable named key is an error, an unusable default key is skipped. */
function readKey (file: string, named: boolean): Buffer | null {
  let buf: Buffer
  try {
    buf = readFileSync(file)
  } catch (err) {
    if (!named) return null
    throw new SshKeyError(`cannot read the SSH key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  const parsed = utils.parseKey(buf)
  if (parsed instanceof Error) {
    if (!named) return null
    if (/encrypted|passphrase/i.test(parsed.message)) throw new SshKeyError(`the SSH key ${file} is encrypted: load it into ssh-agent (ssh-add ${file}) and leave key out of the inventory`)
    throw new SshKeyError(`${file} is not a private key ssh2 can use: ${parsed.message}`)
  }
  const one = Array.isArray(parsed) ? parsed[0] : parsed
  if (one === undefined || !one.isPrivateKey()) {
    if (!named) return null
    throw new SshKeyError(`${file} holds a public key; name the private key (the file without .pub)`)
  }
  return buf
}
