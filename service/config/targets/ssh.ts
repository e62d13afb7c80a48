// SSH targets and the ssh part of a grant. The rules are judged by policy/ssh/ (pure); README "SSH"
// documents them for operators.
import Type, { type Static } from 'typebox';
import { Port, SecretRef, TargetName } from '../schema-common.js';

/** An OpenSSH public key, "type base64" (a comment after it is ignored): the target's host key. */
export const PinnedHostKey = Type.String({
  maxLength: 16_384,
  pattern:
    '^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa|rsa-sha2-(256|512)) [A-Za-z0-9+/]+={0,3}( [^\\r\\n]*)?$',
});

export const SshTarget = Type.Object(
  {
    name: TargetName,
    kind: Type.Literal('ssh'),
    host: Type.String({ minLength: 1 }),
    port: Type.Optional(Port),
    /** the account the broker logs in as; the job never sees its credentials */
    user: Type.String({ minLength: 1 }),
    /**
     * The target's host key(s), pinned: the broker refuses to connect to a server presenting any other
     * (`ssh-keyscan -t ed25519 HOST`, checked out of band). Required: there is no trust on first use.
     */
    host_key: Type.Union([PinnedHostKey, Type.Array(PinnedHostKey, { minItems: 1, maxItems: 16 })]),
    /** the broker's credential for the target, by reference: a private key (OpenSSH or PEM) … */
    private_key: Type.Optional(SecretRef),
    /** … or a password */
    password: Type.Optional(SecretRef),
    /** live ssh connections per session to this target (default 10) */
    max_connections_per_session: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);
export type SshTarget = Static<typeof SshTarget>;

/**
 * A command pattern. A plain string is a glob (`*` any run of characters, `?` one; in allow and
 * approve rules neither matches a shell metacharacter, so `make *` does not allow `make x; rm -rf ~`),
 * or a regular expression when written `/…/` (anchored; it can allow anything: write it with care).
 * The object forms say which explicitly: {exact}, {glob}, {regex}.
 */
export const CommandPattern = Type.Union([
  Type.String({ minLength: 1, maxLength: 4096 }),
  Type.Object({ exact: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
  Type.Object({ glob: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
  Type.Object({ regex: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
]);
export type CommandPattern = Static<typeof CommandPattern>;

/** A path glob: `*` and `?` stay within one path segment, `**` spans segments, `dir/**` covers dir too. */
export const PathGlob = Type.String({ minLength: 1, maxLength: 4096 });

/** `host:port`, `[v6]:port`; host a glob (case-insensitive), port a number or `*`. */
export const ForwardDestination = Type.String({
  maxLength: 300,
  pattern: '^(\\[[0-9A-Fa-f:.*?]+\\]|[^\\s:\\[\\]]+):([0-9]{1,5}|\\*)$',
});

/** An environment variable name, or a glob of names (`LC_*`). */
export const SshEnvName = Type.String({ maxLength: 200, pattern: '^[A-Za-z_*?][A-Za-z0-9_*?]*$' });

const Patterns = Type.Array(CommandPattern, { minItems: 1 });
const Paths = Type.Array(PathGlob, { minItems: 1 });

export const SshGrant = Type.Object(
  {
    /** exec requests: deny first, then approve (held for a human), then allow; anything else is denied */
    commands: Type.Optional(
      Type.Object(
        {
          allow: Type.Optional(Patterns),
          deny: Type.Optional(Patterns),
          approve: Type.Optional(Patterns),
        },
        { additionalProperties: false },
      ),
    ),
    /** SFTP (and scp, both its SFTP and legacy modes): paths that may be read / written */
    sftp: Type.Optional(
      Type.Object(
        { read: Type.Optional(Paths), write: Type.Optional(Paths) },
        { additionalProperties: false },
      ),
    ),
    /** git over ssh: repositories that may be fetched (git-upload-pack) / pushed (git-receive-pack) */
    git: Type.Optional(
      Type.Object(
        { read: Type.Optional(Paths), push: Type.Optional(Paths) },
        { additionalProperties: false },
      ),
    ),
    /** local forwarding (`ssh -L`) destinations, reached from the target host */
    forwards: Type.Optional(Type.Array(ForwardDestination, { minItems: 1 })),
    /** an interactive shell: it runs whatever is typed, so it is the whole account (default false) */
    shell: Type.Optional(Type.Boolean()),
    /** a pseudo-terminal for the shell or a command (`ssh -t`) (default false) */
    pty: Type.Optional(Type.Boolean()),
    /** environment variables the client may set (names; globs); everything else is refused */
    env: Type.Optional(Type.Array(SshEnvName, { minItems: 1 })),
    /** record what is typed (terminal input) in the session recording too (default false) */
    record_input: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type SshGrant = Static<typeof SshGrant>;
