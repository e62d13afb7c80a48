// The SFTP subsystem, proxied request by request between the client's channel and the upstream's.
// Each request that names a path is read (sftp-packets.ts) and judged (policy/ssh decideSftp) before
// its bytes go upstream unchanged; a refused one is answered here with SSH_FX_PERMISSION_DENIED and
// the reason, once the refusal is recorded. Requests on handles (READ, WRITE, READDIR, FSTAT, …) pass
// through: the handle's OPEN was judged, and the upstream server enforces how it was opened (a file
// opened for reading cannot be written). FSETSTAT is judged as a write of the handle's path.
//
// Transcript: one event per file or directory handle (open to close: path, mode, bytes each way,
// duration), one per changing request (mkdir, rmdir, remove, rename, symlink, setstat), one per
// refusal. Queries (stat, realpath, readlink, statvfs) allowed are not recorded.
//
// Flow control: a write to either side that returns false pauses the other side until 'drain'.
import type { Duplex } from 'node:stream';
import type { Decision } from '../../policy/decision.js';
import type { SftpRequest } from '../../policy/ssh/decide.js';
import {
  dataLength,
  filterVersion,
  FX,
  FXF,
  FXP,
  handleOf,
  PacketError,
  PacketReader,
  packetId,
  packetType,
  SftpStreamFramer,
  statusCode,
  statusPacket,
} from './sftp-packets.js';

/** What one finished SFTP operation reports to the transcript. */
export interface SftpOutcome {
  request: SftpRequest;
  /** the server's status code (0 = OK), or null when the channel ended before a reply */
  status: number | null;
  bytes_read: number;
  bytes_written: number;
  duration_ms: number;
}

export interface SftpHooks {
  /** the policy's judgement (pure) */
  judge(request: SftpRequest): Decision;
  /** a refusal: resolves once it is recorded (the client hears of it only then); rejects: end the channel */
  refused(request: SftpRequest, decision: Decision): Promise<void>;
  /** an allowed operation completed (recorded in the background) */
  completed(outcome: SftpOutcome): void;
  /** the subsystem failed (malformed traffic, recorder failure): the channel is closed */
  failed(message: string): void;
}

interface OpenHandle {
  request: SftpRequest & { op: 'open' | 'list' };
  path: string;
  startedAt: number;
  bytesRead: number;
  bytesWritten: number;
}

type Pending =
  | { kind: 'open'; request: SftpRequest & { op: 'open' | 'list' }; startedAt: number }
  | { kind: 'read'; handle: OpenHandle | undefined }
  | { kind: 'close'; handle: string }
  | { kind: 'change'; request: SftpRequest; startedAt: number };

const DENIED_PREFIX = 'hoop: ';

export class SftpProxy {
  readonly #client: Duplex;
  readonly #upstream: Duplex;
  readonly #hooks: SftpHooks;
  readonly #fromClient: SftpStreamFramer;
  readonly #fromUpstream: SftpStreamFramer;
  readonly #handles = new Map<string, OpenHandle>();
  readonly #pending = new Map<number, Pending>();
  #failed = false;
  #ended = false;

  constructor(client: Duplex, upstream: Duplex, hooks: SftpHooks) {
    this.#client = client;
    this.#upstream = upstream;
    this.#hooks = hooks;
    this.#fromClient = new SftpStreamFramer('client', {
      head: (head) => this.#onRequest(head),
      out: (bytes) => {
        if (!this.#upstream.write(bytes)) this.#client.pause();
      },
    });
    this.#fromUpstream = new SftpStreamFramer('server', {
      head: (head) => this.#onResponse(head),
      out: (bytes) => {
        if (!this.#client.write(bytes)) this.#upstream.pause();
      },
    });
    client.on('data', (chunk: Buffer) => this.#onClient(chunk));
    upstream.on('data', (chunk: Buffer) => this.#onUpstream(chunk));
    client.on('drain', () => upstream.resume());
    upstream.on('drain', () => client.resume());
    // the client's EOF goes upstream; the server's end is the channel owner's (it relays the exit status)
    client.on('end', () => upstream.end());
    client.resume();
    upstream.resume();
  }

  /** Record what is still open (the channel ended without CLOSE). */
  finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    const now = performance.now();
    for (const h of this.#handles.values()) this.#completeHandle(h, null, now);
    this.#handles.clear();
  }

  #fail(message: string): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#hooks.failed(message);
  }

  /** A packet of the broker's own to the client, between the server's packets. */
  #toClient(packet: Buffer): void {
    this.#fromUpstream.inject(packet);
  }

  #onClient(chunk: Buffer): void {
    if (this.#failed) return;
    const err = this.#fromClient.push(chunk);
    if (err) this.#fail(`client sent a malformed SFTP stream: ${err.message}`);
  }

  /** A request's head (the whole request but for WRITE's data): whether it goes upstream. */
  #onRequest(packet: Buffer): boolean {
    if (this.#failed) return false;
    try {
      return this.#request(packet);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      const id = packetId(packet);
      // A request the rules cannot read is refused like a denied one, without going upstream.
      if (id >= 0) this.#toClient(statusPacket(id, FX.BAD_MESSAGE, `${DENIED_PREFIX}${err.message}`));
      else this.#fail(`client sent a malformed SFTP packet: ${err.message}`);
      return false;
    }
  }

  /** true: the request goes upstream as it came; false: answered (or refused) here. */
  #request(packet: Buffer): boolean {
    const type = packetType(packet);
    if (type === FXP.INIT) return true;
    const r = new PacketReader(packet, 5);
    const id = r.u32();
    switch (type) {
      case FXP.READ: {
        const handle = this.#handles.get(r.bytes().toString('hex'));
        this.#pending.set(id, { kind: 'read', handle });
        return true;
      }
      case FXP.WRITE: {
        const handle = this.#handles.get(r.bytes().toString('hex'));
        r.u64();
        if (handle) handle.bytesWritten += r.u32();
        return true;
      }
      case FXP.READDIR:
      case FXP.FSTAT:
        return true;
      case FXP.CLOSE:
        this.#pending.set(id, { kind: 'close', handle: r.bytes().toString('hex') });
        return true;
      case FXP.OPEN: {
        const path = r.text();
        const flags = r.u32();
        const writes = (flags & (FXF.WRITE | FXF.APPEND | FXF.CREAT | FXF.TRUNC)) !== 0;
        const mode = !writes
          ? 'read'
          : flags & FXF.READ
            ? 'read-write'
            : flags & FXF.APPEND && !(flags & FXF.TRUNC)
              ? 'append'
              : 'write';
        return this.#judged(id, packet, { op: 'open', path, mode }, 'open');
      }
      case FXP.OPENDIR:
        return this.#judged(id, packet, { op: 'list', path: r.text() }, 'open');
      case FXP.LSTAT:
      case FXP.STAT:
        return this.#judged(id, packet, { op: 'stat', path: r.text() }, 'query');
      case FXP.REALPATH:
        return this.#judged(id, packet, { op: 'realpath', path: r.text() }, 'query');
      case FXP.READLINK:
        return this.#judged(id, packet, { op: 'readlink', path: r.text() }, 'query');
      case FXP.SETSTAT:
        return this.#judged(id, packet, { op: 'setstat', path: r.text() }, 'change');
      case FXP.FSETSTAT: {
        const handle = this.#handles.get(r.bytes().toString('hex'));
        if (!handle) return true; // the server answers: invalid handle
        return this.#judged(id, packet, { op: 'setstat', path: handle.path }, 'change');
      }
      case FXP.REMOVE:
        return this.#judged(id, packet, { op: 'remove', path: r.text() }, 'change');
      case FXP.MKDIR:
        return this.#judged(id, packet, { op: 'mkdir', path: r.text() }, 'change');
      case FXP.RMDIR:
        return this.#judged(id, packet, { op: 'rmdir', path: r.text() }, 'change');
      case FXP.RENAME: {
        const path = r.text();
        return this.#judged(id, packet, { op: 'rename', path, target_path: r.text() }, 'change');
      }
      case FXP.SYMLINK: {
        // OpenSSH sends (and its server reads) the link's target first, then the link's own path
        const target = r.text();
        return this.#judged(id, packet, { op: 'symlink', path: r.text(), target_path: target }, 'change');
      }
      case FXP.EXTENDED:
        return this.#extended(id, packet, r);
      default:
        this.#toClient(
          statusPacket(id, FX.OP_UNSUPPORTED, `${DENIED_PREFIX}SFTP request type ${type} is not supported`),
        );
        return false;
    }
  }

  #extended(id: number, packet: Buffer, r: PacketReader): boolean {
    const name = r.bytes().toString('latin1');
    switch (name) {
      case 'posix-rename@openssh.com': {
        const path = r.text();
        return this.#judged(id, packet, { op: 'rename', path, target_path: r.text() }, 'change');
      }
      case 'hardlink@openssh.com': {
        const target = r.text();
        return this.#judged(id, packet, { op: 'hardlink', path: r.text(), target_path: target }, 'change');
      }
      case 'lsetstat@openssh.com':
        return this.#judged(id, packet, { op: 'setstat', path: r.text() }, 'change');
      case 'statvfs@openssh.com':
        return this.#judged(id, packet, { op: 'statvfs', path: r.text() }, 'query');
      case 'expand-path@openssh.com':
        return this.#judged(id, packet, { op: 'realpath', path: r.text() }, 'query');
      case 'fstatvfs@openssh.com':
      case 'fsync@openssh.com':
      case 'limits@openssh.com':
        return true;
      default: {
        this.#toClient(
          statusPacket(
            id,
            FX.OP_UNSUPPORTED,
            `${DENIED_PREFIX}SFTP extension ${JSON.stringify(name)} is not supported`,
          ),
        );
        return false;
      }
    }
  }

  #judged(id: number, _packet: Buffer, request: SftpRequest, what: 'open' | 'query' | 'change'): boolean {
    const decision = this.#hooks.judge(request);
    if (decision.effect !== 'allow') {
      const message = `${DENIED_PREFIX}${decision.reasons[0] ?? 'refused by policy'}`;
      this.#hooks.refused(request, decision).then(
        () => {
          if (!this.#failed) this.#toClient(statusPacket(id, FX.PERMISSION_DENIED, message));
        },
        () => this.#fail('the refusal could not be recorded'),
      );
      return false;
    }
    const startedAt = performance.now();
    if (what === 'open')
      this.#pending.set(id, {
        kind: 'open',
        request: request as SftpRequest & { op: 'open' | 'list' },
        startedAt,
      });
    else if (what === 'change') this.#pending.set(id, { kind: 'change', request, startedAt });
    return true;
  }

  #onUpstream(chunk: Buffer): void {
    if (this.#failed) return;
    const err = this.#fromUpstream.push(chunk);
    if (err) this.#fail(`the server sent a malformed SFTP stream: ${err.message}`);
  }

  /** A response's head (the whole response but for DATA's data): whether it goes on as it came. */
  #onResponse(packet: Buffer): boolean {
    if (this.#failed) return false;
    const type = packetType(packet);
    if (type === FXP.VERSION) {
      try {
        this.#toClient(filterVersion(packet));
      } catch {
        this.#fail('the server sent a malformed VERSION');
      }
      return false;
    }
    const id = packetId(packet);
    const pending = this.#pending.get(id);
    if (pending) {
      this.#pending.delete(id);
      this.#reply(pending, type, packet);
    }
    return true;
  }

  #reply(pending: Pending, type: number, packet: Buffer): void {
    const now = performance.now();
    switch (pending.kind) {
      case 'read':
        if (pending.handle && type === FXP.DATA) pending.handle.bytesRead += dataLength(packet);
        return;
      case 'open': {
        const handle = type === FXP.HANDLE ? handleOf(packet) : null;
        if (handle === null) {
          // refused upstream (no such file, permission): recorded as tried
          this.#hooks.completed({
            request: pending.request,
            status: type === FXP.STATUS ? statusCode(packet) : FX.FAILURE,
            bytes_read: 0,
            bytes_written: 0,
            duration_ms: now - pending.startedAt,
          });
          return;
        }
        this.#handles.set(handle, {
          request: pending.request,
          path: pending.request.path,
          startedAt: pending.startedAt,
          bytesRead: 0,
          bytesWritten: 0,
        });
        return;
      }
      case 'close': {
        const h = this.#handles.get(pending.handle);
        if (!h) return;
        this.#handles.delete(pending.handle);
        this.#completeHandle(h, type === FXP.STATUS ? statusCode(packet) : FX.FAILURE, now);
        return;
      }
      case 'change':
        this.#hooks.completed({
          request: pending.request,
          status: type === FXP.STATUS ? statusCode(packet) : FX.OK,
          bytes_read: 0,
          bytes_written: 0,
          duration_ms: now - pending.startedAt,
        });
    }
  }

  #completeHandle(h: OpenHandle, status: number | null, now: number): void {
    this.#hooks.completed({
      request: h.request,
      status,
      bytes_read: h.bytesRead,
      bytes_written: h.bytesWritten,
      duration_ms: now - h.startedAt,
    });
  }
}
