// One process at a time per embedded store: two PGlite instances on one directory would corrupt it.
// Node has no flock, so the lock is a file naming its owner (pid, and on Linux the boot id and the
// process start time, so a pid reused after a reboot or container restart is not mistaken for the owner).
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

const heldInThisProcess = new Set<string>();

interface Owner {
  pid: number;
  boot: string;
  start: string;
}

function readProc(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Process start time in clock ticks since boot (field 22 of /proc/PID/stat), '' when unknown. */
function startTime(pid: number): string {
  const stat = readProc(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? '';
}

function currentOwner(): Owner {
  return {
    pid: process.pid,
    boot: readProc('/proc/sys/kernel/random/boot_id'),
    start: startTime(process.pid),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie has exited (its files are closed) but is still signalable until reaped, which an
  // orphan's new parent (PID 1 in a container, often) may never do.
  const stat = readProc(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

function ownerStillHolds(path: string, owner: Owner): boolean {
  if (owner.pid === process.pid) return heldInThisProcess.has(path);
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0 || !isAlive(owner.pid)) return false;
  const me = currentOwner();
  if (owner.boot && me.boot && owner.boot !== me.boot) return false;
  if (owner.start && me.start) return startTime(owner.pid) === owner.start;
  return true;
}

function parseOwner(text: string): Owner {
  const [pid = '', boot = '', start = ''] = text.trim().split(/\s+/);
  return { pid: Number(pid), boot, start };
}

/** Take the lock at `path` or throw naming the process that holds it; returns the release function. */
export function lockDataDir(path: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = parseOwner(readProc(path));
      if (ownerStillHolds(path, owner)) {
        throw new Error(`the embedded store is in use by process ${owner.pid} (lock file ${path})`, {
          cause: err,
        });
      }
      // A stale lock left by a process that died: remove it and try again.
      try {
        unlinkSync(path);
      } catch (unlinkErr) {
        if ((unlinkErr as NodeJS.ErrnoException).code !== 'ENOENT') throw unlinkErr;
      }
      continue;
    }
    try {
      const me = currentOwner();
      writeSync(fd, `${me.pid} ${me.boot} ${me.start}\n`);
    } finally {
      closeSync(fd);
    }
    heldInThisProcess.add(path);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      heldInThisProcess.delete(path);
      try {
        unlinkSync(path);
      } catch {
        // already gone: nothing to release
      }
    };
  }
  throw new Error(`could not take the embedded store lock ${path}`);
}
