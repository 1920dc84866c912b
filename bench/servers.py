"""The servers under test (mailark, Dovecot and Radicale), each in a fresh temporary
directory, and a sampler for the memory and CPU of a server's whole process tree."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import pwd
import grp
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import lmtp_client

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")

# Every bench user has this password on both servers.
PASSWORD = "bench-password"


# A row counts as disturbed when other processes used more than this share of the machine.
DISTURBED = 0.10


class BenchError(Exception):
    pass


def log(msg: str = ""):
    print(msg, flush=True)


def describe_machine(workdir: str, extra: Optional[Dict[str, object]] = None) -> Dict[str, object]:
    """What a result file records about the machine, logged as one line (with `extra`, e.g.
    the fd limit, appended)."""
    machine: Dict[str, object] = {
        "cpus": os.cpu_count(), "cpu": cpu_model(), "kernel": platform.release(),
        "ram_bytes": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
        "workdir": workdir, "workdir_fs": fs_type(workdir),
        "python": platform.python_version()}
    machine.update(extra or {})
    line = "machine: nproc %d (%s), %.1f GB RAM, kernel %s, data on %s (%s)" % (
        machine["cpus"], machine["cpu"], machine["ram_bytes"] / 1e9, machine["kernel"], workdir,
        machine["workdir_fs"])
    for k, v in (extra or {}).items():
        line += ", %s %s" % (k.replace("_", " "), v)
    log(line)
    return machine


def in_scratch_dir(workdir: Optional[str], prefix: str, keep: bool,
                   fn: Callable[[str, str], int]) -> int:
    """fn(workdir, root) with root a new directory under workdir (default $TMPDIR or /tmp),
    removed afterwards unless `keep`."""
    workdir = workdir or tempfile.gettempdir()
    root = tempfile.mkdtemp(prefix=prefix, dir=workdir)
    try:
        return fn(workdir, root)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log("data kept in %s" % root)


def own_cpu() -> float:
    """CPU seconds (user + system) this bench process has used."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --- process tree sampling ----------------------------------------------------------------

def _proc_table() -> Dict[int, Tuple[int, int, int, int]]:
    """pid -> (ppid, rss_bytes, cpu_ticks (utime+stime), child_cpu_ticks (cutime+cstime))."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        # rest[0] is field 3 (state) of proc(5): ppid=4, utime=14, stime=15, cutime=16,
        # cstime=17, rss=24.
        table[int(name)] = (int(rest[1]), int(rest[21]) * PAGE,
                            int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]))
    return table


def _tree(table, root: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for pid, row in table.items():
        children.setdefault(row[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def _pss(pid: int) -> int:
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _status_kb(pid: int, field: str) -> int:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def vm_hwm(pid: int) -> int:
    return _status_kb(pid, "VmHWM:")


def vm_rss(pid: int) -> int:
    """Current resident set size of one process (VmRSS), in bytes."""
    return _status_kb(pid, "VmRSS:")


def tree_memory(root: int) -> Dict[str, int]:
    """Sum of PSS (shared pages counted once over all processes) and of RSS over the process
    tree under root, and how many processes it has."""
    table = _proc_table()
    pids = _tree(table, root)
    return {"pss_bytes": sum(_pss(p) for p in pids),
            "rss_bytes": sum(table[p][1] for p in pids), "processes": len(pids)}


def tree_cpu_seconds(root: int) -> float:
    """CPU time used so far by the process tree under root: live processes plus the children
    root has already reaped."""
    table = _proc_table()
    pids = _tree(table, root)
    ticks = sum(table[p][2] for p in pids)
    if root in table:
        ticks += table[root][3]
    return ticks / TICK


def system_busy_seconds() -> Tuple[float, float]:
    """(CPU seconds all CPUs spent in user and system mode since boot, steal seconds), from
    /proc/stat. Interrupt time, idle and iowait are left out."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    return (fields[0] + fields[1] + fields[2]) / TICK, fields[7] / TICK


def kernel_threads_cpu_seconds() -> float:
    """CPU seconds of kernel threads (writeback, journalling, ...), which do I/O work on the
    server's behalf and so are not 'other load'."""
    table = _proc_table()
    return sum(row[2] for pid, row in table.items() if pid == 2 or row[0] == 2) / TICK


def foreign_cpu_seconds(ours) -> float:
    """A counter of CPU seconds used by user processes that are not ours: everything busy,
    minus kernel threads, minus ours() (this process and the server tree)."""
    busy, _ = system_busy_seconds()
    return busy - kernel_threads_cpu_seconds() - ours()


def wait_for_quiet(ours, max_wait_s: float, threshold: float = 0.15) -> Tuple[float, float]:
    """Wait (at most max_wait_s) until other processes use less than `threshold` of one CPU
    over a 1 s window. Returns (seconds waited, other load in the last window, in CPUs)."""
    t0 = time.monotonic()
    load = 0.0
    while True:
        f0, w0 = foreign_cpu_seconds(ours), time.monotonic()
        time.sleep(1.0)
        f1, w1 = foreign_cpu_seconds(ours), time.monotonic()
        load = max(0.0, f1 - f0) / (w1 - w0)
        if load < threshold or time.monotonic() - t0 >= max_wait_s:
            return time.monotonic() - t0, load


class TreeSampler:
    """Samples, every `interval` seconds, the sum of RSS over the process tree under `root`
    (and every `pss_every`-th sample the sum of PSS, which counts shared pages once)."""

    def __init__(self, root: int, interval: float = 0.1, pss_every: int = 5):
        self.root, self.interval, self.pss_every = root, interval, pss_every
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.hwm_sum_at_end = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._sample()
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._sample(final=True)

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, final: bool = False):
        table = _proc_table()
        pids = _tree(table, self.root)
        self.samples += 1
        self.peak_rss = max(self.peak_rss, sum(table[p][1] for p in pids))
        self.peak_procs = max(self.peak_procs, len(pids))
        if final or self.samples % self.pss_every == 0:
            self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in pids))
        if final:
            self.hwm_sum_at_end = sum(vm_hwm(p) for p in pids)


# --- machine and binary --------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def fs_type(path: str) -> str:
    """File system type of the mount holding path, from /proc/mounts."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                mnt = fields[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, fields[2]
    except OSError:
        pass
    return kind


def mailark_version(binary: str) -> str:
    try:
        return subprocess.run([binary, "version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def snapshot_binary(path: str, dest_dir: str, wait_s: int = 180) -> Optional[str]:
    """Copy the mailark binary into dest_dir and return the copy's path. Every run then uses
    the same build even if build/mailark is replaced (or briefly missing) during a rebuild.
    Waits for the file to exist and stay unchanged for 2 s, and checks the copy runs."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            st = os.stat(path)
            time.sleep(2)
            st2 = os.stat(path)
            if (st.st_mtime_ns, st.st_size) != (st2.st_mtime_ns, st2.st_size):
                continue
            copy = os.path.join(dest_dir, "mailark")
            shutil.copy2(path, copy)
            if os.stat(path).st_mtime_ns != st2.st_mtime_ns:
                continue
            if subprocess.run([copy, "version"], capture_output=True, timeout=30).returncode == 0:
                return copy
        except (OSError, subprocess.TimeoutExpired):
            pass
        time.sleep(1)
    return None


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- helpers -------------------------------------------------------------------------------

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _run(cmd: List[str], **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise BenchError("%s failed (exit %d): %s" % (" ".join(cmd[:4]), p.returncode,
                                                       (p.stderr or p.stdout).strip()[-500:]))
    return p


class DiedEarly(Exception):
    pass


def _stop_process(proc: subprocess.Popen, grace_s: float = 60.0) -> Optional[int]:
    """SIGTERM and wait. Raises DiedEarly(exit code) if the process was already gone."""
    if proc.poll() is not None:
        raise DiedEarly(proc.returncode)
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BenchError("pid %d did not stop within %.0f s of SIGTERM; killed" % (proc.pid, grace_s))


def _exit_text(rc: int) -> str:
    if rc < 0:
        try:
            return "died of signal %d (%s)" % (-rc, signal.Signals(-rc).name)
        except ValueError:
            return "died of signal %d" % -rc
    return "exited with status %d" % rc


def _stop_server(proc: subprocess.Popen, name: str, clean=(0, None)):
    """SIGTERM and wait (_stop_process); a server that had died already, or that exits with
    a status other than `clean`, fails the bench."""
    try:
        rc = _stop_process(proc)
    except DiedEarly as e:
        raise BenchError("%s %s before it was stopped" % (name, _exit_text(e.args[0])))
    if rc not in clean:
        raise BenchError("%s %s after SIGTERM" % (name, _exit_text(rc)))


def _log_tail(path: str, n: int) -> List[str]:
    try:
        with open(path, errors="replace") as f:
            return [l.rstrip() for l in f.readlines()[-n:]]
    except OSError:
        return []


def _log_problems(path: str, pattern: str, limit: int = 20) -> List[str]:
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if re.search(pattern, line):
                    out.append(line.rstrip())
    except OSError:
        pass
    if len(out) > limit:
        out = out[:limit] + ["... and %d more" % (len(out) - limit)]
    return out


# --- mailark -------------------------------------------------------------------------------

def set_toml_key(path: str, section: str, key: str, value) -> None:
    """Set `key = value` in [section] of a TOML file like the one `mailark init` writes:
    replaces the key's line inside that section, or adds it right after the section header
    (adding the section at the end when it is missing). Values: int, bool or str."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = json.dumps(str(value))
    with open(path) as f:
        lines = f.read().split("\n")
    current, header_at = "", None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip()
            if current == section:
                header_at = i
            continue
        if current == section and re.match(r"%s\s*=" % re.escape(key), stripped):
            lines[i] = "%s = %s" % (key, text)
            break
    else:
        if header_at is None:
            lines += ["", "[%s]" % section, "%s = %s" % (key, text)]
        else:
            lines.insert(header_at + 1, "%s = %s" % (key, text))
    with open(path, "w") as f:
        f.write("\n".join(lines))


class Mailark:
    name = "mailark"

    def __init__(self, binary: str, root: str, domain: str, users: List[str],
                 settings: Optional[Dict[str, Dict[str, object]]] = None):
        """settings: {section: {key: value}} written into mailark.toml after `init`, e.g.
        {"server": {"max_connections": 2000}}; everything else keeps init's defaults."""
        self.binary = os.path.abspath(binary)
        self.root = root
        self.dir = os.path.join(root, "mailark")
        self.conf = os.path.join(self.dir, "mailark.toml")
        self.log_path = os.path.join(root, "mailark.log")
        self.domain, self.users = domain, users
        self.settings = settings or {}
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0          # LMTP
        self.ports: Dict[str, int] = {}   # every listener, from ports.json
        self.hwm = 0

    def _cli(self, *args, input=None) -> subprocess.CompletedProcess:
        return _run([self.binary, "-c", self.conf] + list(args), input=input)

    def setup(self):
        _run([self.binary, "init", self.dir, "--ephemeral-ports"])
        for section, keys in self.settings.items():
            for key, value in keys.items():
                set_toml_key(self.conf, section, key, value)
        self._cli("tenant", "add", self.domain)
        for u in self.users:
            self._cli("user", "add", u, "--password-stdin", input=PASSWORD + "\n")

    def password_hash(self, user: str) -> Optional[str]:
        """The stored password hash of user (argon2id, PHC string), read from the directory
        database that `init` creates at its default path; None if it cannot be read."""
        import sqlite3
        path = os.path.join(self.dir, "directory", "directory.sqlite")
        try:
            db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
            try:
                row = db.execute("SELECT password_hash FROM users WHERE address = ?",
                                 (user,)).fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def start(self):
        ports = os.path.join(self.dir, "ports.json")
        if os.path.exists(ports):
            os.unlink(ports)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf, "serve"], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.root)
        log.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise BenchError("mailark serve exited with %d: %s" % (
                    self.proc.returncode, " | ".join(_log_problems(self.log_path, ".")[-5:])))
            try:
                with open(ports) as f:
                    self.ports = {k: int(v) for k, v in json.load(f).items()}
                self.port = self.ports["lmtp"]
                break
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        else:
            raise BenchError("mailark wrote no ports.json within 30 s")
        lmtp_client.wait_for_greeting("127.0.0.1", self.port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def imap_port(self) -> int:
        return self.ports.get("imap", 0)

    def before_stop(self):
        self.hwm = vm_hwm(self.pid)

    def stop(self):
        if self.proc:
            proc, self.proc = self.proc, None
            _stop_server(proc, "mailark serve")

    def stored(self) -> Dict[str, int]:
        """Items and bytes according to `mailark stats` (run after the server stopped)."""
        out = self._cli("stats").stdout
        lines = [l.split() for l in out.splitlines() if l.strip()]
        header = [h.upper() for h in lines[0]]
        items_col, bytes_col = header.index("ITEMS"), header.index("BYTES")
        items = bytes_ = 0
        for row in lines[1:]:
            if len(row) == len(header) and row[items_col].isdigit():
                items += int(row[items_col])
                bytes_ += int(row[bytes_col])
        return {"messages": items, "bytes": bytes_, "raw": out.strip()}

    def problems(self) -> List[str]:
        return _log_problems(self.log_path, r"\b(warn|warning|error|fatal|critical)\b", 30)

    def log_tail(self, n: int) -> List[str]:
        return _log_tail(self.log_path, n)

    def disk_usage(self) -> int:
        return _du(self.dir)


def _du(path: str) -> int:
    """Allocated bytes under path, counting hard-linked files once (Dovecot's sdbox links
    one message file into several mailboxes)."""
    total, seen = 0, set()
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


# --- Dovecot --------------------------------------------------------------------------------

DOVECOT_CONF = """\
# Generated by mailark bench/servers.py for one benchmark run. Everything lives under
# {root}; the server listens on 127.0.0.1 only.
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailark-bench-{port}
protocols = {protocols}
listen = 127.0.0.1
ssl = no
log_path = {root}/dovecot.log
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {first_uid}
first_valid_gid = {first_gid}
mail_uid = {uid}
mail_gid = {gid}
# Dovecot's own high-performance format; see bench/README.md for the choice.
mail_location = {fmt}:~/mail
# Durability: Dovecot's defaults, spelled out. "optimized" fsyncs message data before the
# LMTP reply (like mailark, which always fsyncs before acknowledging).
mail_fsync = optimized
postmaster_address = postmaster@{domain}
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
  default_fields = uid={uid} gid={gid} home={root}/home/%d/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
{extra}"""

# Added to DOVECOT_CONF when the IMAP server is wanted (bench/imap_bench.py). Only the limits
# that would stop 1000+ concurrent sessions of one user from 127.0.0.1 are raised; the rest is
# Dovecot's default: imap-login in high-security mode (one login process per connection until
# the login is done, then the connection passes to a new imap process, one per session).
DOVECOT_IMAP_CONF = """\
# IMAP: 127.0.0.1 only, no TLS (plaintext LOGIN is allowed because the client is local).
default_process_limit = {process_limit}
# Processes such as log, anvil, stats and auth serve every imap process at once.
default_client_limit = {client_limit}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_limit = {process_limit}
}}
service imap {{
  process_limit = {process_limit}
}}
protocol imap {{
  # Default 10: the bench opens up to 1000 sessions of one user from one address.
  mail_max_userip_connections = {process_limit}
}}
"""


class Dovecot:
    name = "dovecot"

    def __init__(self, root: str, domain: str, users: List[str], fmt: str, imap: bool = False,
                 passwords: Optional[Dict[str, str]] = None, imap_process_limit: int = 2100):
        """imap: also run the IMAP server (imap_port), with process and client limits for
        imap_process_limit concurrent sessions. passwords: user -> passwd-file password
        field with its scheme, e.g. "{ARGON2ID}$argon2id$..."; default {PLAIN}."""
        self.root = os.path.join(root, "dovecot")
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.domain, self.users, self.fmt = domain, users, fmt
        self.imap, self.imap_process_limit = imap, imap_process_limit
        self.passwords = passwords or {}
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0          # LMTP
        self.imap_port = 0
        self.hwm = 0
        self._provisioned = False

    @staticmethod
    def available(imap: bool = False) -> Optional[str]:
        """None when dovecot and its LMTP (and IMAP) server are installed, else what is
        missing."""
        if not shutil.which("dovecot") or not shutil.which("doveadm"):
            return "dovecot not found (install dovecot-core dovecot-lmtpd dovecot-imapd: " \
                   "sh scripts/install-deps.sh --bench)"
        if not os.path.exists("/usr/lib/dovecot/lmtp"):
            return "Dovecot LMTP server missing (install dovecot-lmtpd)"
        if imap and not os.path.exists("/usr/lib/dovecot/imap"):
            return "Dovecot IMAP server missing (install dovecot-imapd)"
        return None

    @staticmethod
    def version() -> str:
        try:
            return subprocess.run(["dovecot", "--version"], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return "?"

    def _identity(self):
        """Mail processes run as an unprivileged user: Dovecot refuses mail access as
        UID 0 (first_valid_uid), so as root the mail user is `nobody`."""
        if os.getuid() == 0:
            mail = pwd.getpwnam("nobody")
            internal = "dovecot" if _user_exists("dovecot") else "nobody"
            login = "dovenull" if _user_exists("dovenull") else "nobody"
            return dict(uid=mail.pw_uid, gid=mail.pw_gid, internal_user=internal,
                        internal_group=grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name,
                        login_user=login)
        me = pwd.getpwuid(os.getuid())
        return dict(uid=me.pw_uid, gid=me.pw_gid, internal_user=me.pw_name,
                    internal_group=grp.getgrgid(me.pw_gid).gr_name, login_user=me.pw_name)

    def setup(self):
        ident = self._identity()
        os.makedirs(self.root)
        for d in ("run", "state", "home"):
            os.makedirs(os.path.join(self.root, d))
        home = os.path.join(self.root, "home")
        if os.getuid() == 0:
            # The mail user must be able to reach and write its homes.
            p = self.root
            while p and p != "/":
                st = os.stat(p)
                if not st.st_mode & 0o001:
                    os.chmod(p, st.st_mode | 0o011)
                p = os.path.dirname(p)
            os.chown(home, ident["uid"], ident["gid"])
        self.port = free_port()
        extra = ""
        if self.imap:
            self.imap_port = free_port()
            extra = DOVECOT_IMAP_CONF.format(imap_port=self.imap_port,
                                             process_limit=self.imap_process_limit,
                                             client_limit=4 * self.imap_process_limit)
        with open(os.path.join(self.root, "users"), "w") as f:
            for u in self.users:
                f.write("%s:%s:::::\n" % (u, self.passwords.get(u, "{PLAIN}" + PASSWORD)))
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(root=self.root, port=self.port, fmt=self.fmt,
                                        domain=self.domain,
                                        protocols="lmtp imap" if self.imap else "lmtp",
                                        extra=extra,
                                        first_uid=min(ident["uid"], 500) or 1,
                                        first_gid=min(ident["gid"], 1) or 1, **ident))

    def start(self):
        log = open(os.path.join(self.root, "dovecot.stdout"), "ab")
        self.proc = subprocess.Popen(["dovecot", "-c", self.conf, "-F"], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.root)
        log.close()
        try:
            lmtp_client.wait_for_greeting("127.0.0.1", self.port)
        except lmtp_client.LmtpError:
            if self.proc.poll() is not None:
                with open(os.path.join(self.root, "dovecot.stdout"), errors="replace") as f:
                    out = f.read()[-800:]
                raise BenchError("dovecot exited with %d: %s %s" % (
                    self.proc.returncode, out, " | ".join(self.problems()[-5:])))
            raise
        # Provision every mailbox before the clock starts, as `mailark user add` does:
        # doveadm opens (and so creates) each user's INBOX. Without this, concurrent first
        # deliveries to a new user can race in mailbox creation (seen with Dovecot 2.3.19:
        # "Mailbox already exists" and an fcntl EDEADLK panic with 3 recipients/message).
        # A restart of an instance that already has mail only checks the users are there.
        st = self.stored_live()
        if st["users"] != len(self.users) or (st["messages"] != 0 and not self._provisioned):
            raise BenchError("dovecot provisioning: %r" % st)
        self._provisioned = True

    @property
    def pid(self) -> int:
        return self.proc.pid

    def before_stop(self):
        self.hwm = vm_hwm(self.pid)

    def stored_live(self) -> Dict[str, int]:
        """Messages in every user's INBOX, from doveadm (needs the server running)."""
        p = _run(["doveadm", "-c", self.conf, "-f", "tab", "mailbox", "status", "-A",
                  "messages vsize", "INBOX"])
        lines = p.stdout.strip().splitlines()
        header = lines[0].split("\t")
        mi, vi = header.index("messages"), header.index("vsize")
        msgs = vsize = 0
        users = 0
        for line in lines[1:]:
            cols = line.split("\t")
            msgs += int(cols[mi])
            vsize += int(cols[vi])
            users += 1
        return {"messages": msgs, "bytes": vsize, "users": users}

    def stop(self):
        if self.proc:
            proc, self.proc = self.proc, None
            _stop_server(proc, "dovecot")

    def problems(self) -> List[str]:
        return [l for l in _log_problems(self.log_path, r"(Error|Fatal|Panic|Warning):", 30)
                if "Killed with signal 15" not in l]

    def log_tail(self, n: int) -> List[str]:
        return _log_tail(self.log_path, n)

    def disk_usage(self) -> int:
        return _du(os.path.join(self.root, "home"))


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# --- Radicale (CalDAV peer for bench/dav_bench.py) -----------------------------------------

RADICALE_CONF = """\
# Generated by mailark bench/servers.py for one benchmark run. Everything lives under
# {root}; the server listens on 127.0.0.1 only.
[server]
hosts = 127.0.0.1:{port}
# Default 8; raised so that the bench's 8 connections are never queued by the server.
max_connections = {max_connections}
[auth]
# Every request carries Basic credentials that are checked, as in mailark.
type = htpasswd
htpasswd_filename = {root}/users
htpasswd_encryption = plain
[rights]
type = owner_only
[storage]
type = multifilesystem
filesystem_folder = {root}/collections
# Radicale fsyncs every change before answering (its internal default, which a config file
# cannot change), as mailark does.
[web]
type = none
[logging]
level = warning
mask_passwords = True
"""


class Radicale:
    """Radicale 3 (Debian's python3-radicale) with filesystem storage and htpasswd (plain)
    authentication; users are the local parts of the given addresses."""
    name = "radicale"

    def __init__(self, root: str, users: List[str], max_connections: int = 20):
        self.root = os.path.join(root, "radicale")
        self.conf = os.path.join(self.root, "radicale.conf")
        self.log_path = os.path.join(self.root, "radicale.log")
        self.users = users
        self.max_connections = max_connections
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.hwm = 0

    @staticmethod
    def available() -> Optional[str]:
        """None when Radicale can be run with the system Python, else what is missing."""
        p = subprocess.run(["/usr/bin/python3", "-c", "import radicale"], capture_output=True)
        if p.returncode != 0:
            return "radicale not found (install radicale: sh scripts/install-deps.sh --bench)"
        return None

    @staticmethod
    def version() -> str:
        try:
            return subprocess.run(["/usr/bin/python3", "-c",
                                   "import radicale; print(radicale.VERSION)"],
                                  capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    def setup(self):
        os.makedirs(os.path.join(self.root, "collections"))
        self.port = free_port()
        with open(os.path.join(self.root, "users"), "w") as f:
            for u in self.users:
                f.write("%s:%s\n" % (u, PASSWORD))
        with open(self.conf, "w") as f:
            f.write(RADICALE_CONF.format(root=self.root, port=self.port,
                                         max_connections=self.max_connections))

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["/usr/bin/python3", "-m", "radicale", "--config",
                                      self.conf], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.root)
        log.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise BenchError("radicale exited with %d: %s" % (
                    self.proc.returncode, " | ".join(self.log_tail(5))))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise BenchError("radicale did not listen on port %d within 30 s" % self.port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def before_stop(self):
        self.hwm = vm_hwm(self.pid)

    def stop(self):
        if self.proc:
            proc, self.proc = self.proc, None
            # Radicale's server exits with status 0 on SIGTERM; a Python interpreter killed
            # by the signal's default action reports -15, which is a clean stop too.
            _stop_server(proc, "radicale", clean=(0, None, -signal.SIGTERM))

    def problems(self) -> List[str]:
        return _log_problems(self.log_path, r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", 30)

    def log_tail(self, n: int) -> List[str]:
        return _log_tail(self.log_path, n)

    def disk_usage(self) -> int:
        return _du(os.path.join(self.root, "collections"))
