"""Shared helpers for mailark's black-box integration tests.

Every test file starts its own servers in a fresh temporary directory with ephemeral ports,
talks to them with real clients (raw LMTP sockets, smtplib.LMTP, swaks, the mailark CLI) and
reads the stored state back through read-only SQLite connections. Python stdlib only.

Environment:
  MAILARK_BIN       binary under test (default: build/mailark next to this tree)
  MAILARK_KEEP_TMP  set to keep the temporary directories after the run
"""

import atexit
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN_SOURCE = os.environ.get("MAILARK_BIN", os.path.join(REPO, "build", "mailark"))
KEEP_TMP = bool(os.environ.get("MAILARK_KEEP_TMP"))

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_CANTCREAT, EX_TEMPFAIL = 0, 64, 65, 67, 73, 75

_lock = threading.Lock()
_live_procs = set()  # subprocess.Popen objects of servers we started
_tmp_dirs = []
_any_failure = [False]
_binary = [None]


def _cleanup():
    with _lock:
        procs = list(_live_procs)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=10)
            except Exception:
                pass
    if _binary[0]:
        shutil.rmtree(os.path.dirname(_binary[0]), ignore_errors=True)
    if KEEP_TMP or _any_failure[0]:
        for d in _tmp_dirs:
            if os.path.exists(d):
                print(f"[harness] kept temporary directory {d}", file=sys.stderr)
        return
    for d in _tmp_dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_signal(signum, frame):
    _cleanup()
    os._exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):
        pass


def new_tmpdir(prefix="mailark-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmp_dirs.append(d)
    return d


def binary():
    """A private copy of the binary under test, so a rebuild during the run cannot swap it.

    Waits (up to 10 minutes) while the binary is missing or still being written."""
    if _binary[0]:
        return _binary[0]
    deadline = time.time() + 600
    last = None
    while True:
        try:
            st = os.stat(BIN_SOURCE)
            sig = (st.st_size, st.st_mtime_ns)
            if sig == last and st.st_size > 0:
                break
            last = sig
        except FileNotFoundError:
            last = None
        if time.time() > deadline:
            raise RuntimeError(f"binary {BIN_SOURCE} not available")
        time.sleep(1.0)
    d = new_tmpdir("mailark-bin-")
    dst = os.path.join(d, "mailark")
    shutil.copy2(BIN_SOURCE, dst)
    os.chmod(dst, 0o755)
    _binary[0] = dst
    return dst


# ---------------------------------------------------------------------------------------------
# CLI


@dataclasses.dataclass
class CliResult:
    args: list
    rc: int
    out: str
    err: str

    def __str__(self):
        return (f"$ mailark {' '.join(self.args)}\nexit {self.rc}\n--- stdout\n{self.out}"
                f"--- stderr\n{self.err}")


def run_mailark(args, config=None, input=None, timeout=300, env=None):
    """Runs `mailark ARGS` (with --config when given) and returns a CliResult."""
    cmd = [binary()]
    if config:
        cmd += ["--config", config]
    cmd += list(args)
    e = dict(os.environ)
    e.pop("MAILARK_CONFIG", None)
    if env:
        e.update(env)
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(cmd, input=input if input is not None else b"", capture_output=True,
                       timeout=timeout, env=e, cwd="/")
    return CliResult(list(args), p.returncode, p.stdout.decode(errors="replace"),
                     p.stderr.decode(errors="replace"))


# ---------------------------------------------------------------------------------------------
# A data directory and its server


_instances = []


class Instance:
    """One `mailark init` data directory plus the server that may run on it."""

    def __init__(self, name="m", root=None, init=True):
        self.root = root or new_tmpdir(f"mailark-it-{name}-")
        self.data = os.path.join(self.root, "data")
        self.config = os.path.join(self.data, "mailark.toml")
        self.log_path = os.path.join(self.root, "server.log")
        self.proc = None
        self.port = None
        self.starts = 0
        _instances.append(self)
        if init:
            self.cli("init", self.data, "--ephemeral-ports", config=False)

    # -- CLI
    def cli(self, *args, input=None, expect=0, config=True, timeout=300):
        """Runs a mailark subcommand on this instance; fails the test unless the exit code is
        `expect` (an int, a tuple of ints, or None for any)."""
        r = run_mailark(args, config=self.config if config else None, input=input, timeout=timeout)
        if expect is not None:
            ok = r.rc in expect if isinstance(expect, (tuple, list, set)) else r.rc == expect
            if not ok:
                raise AssertionError(f"unexpected exit code (wanted {expect})\n{r}")
        return r

    def add_tenant(self, domain):
        self.cli("tenant", "add", domain)

    def add_user(self, address, quota=None, db=None, password="secret-pw"):
        args = ["user", "add", address, "--password-stdin"]
        if quota is not None:
            args += ["--quota", quota]
        if db is not None:
            args += ["--db", db]
        self.cli(*args, input=password + "\n")

    def set_option(self, section, key, value):
        """Sets `key = value` (value given as a TOML literal, e.g. '"10KB"') in [section]."""
        with open(self.config) as f:
            lines = f.read().split("\n")
        out, in_section, done = [], False, False
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                if in_section and not done:
                    out.append(f"{key} = {value}")
                    done = True
                in_section = stripped == f"[{section}]"
            elif in_section and not done and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                out.append(f"{key} = {value}")
                done = True
                continue
            out.append(line)
        if not done:
            if not in_section:
                out.append(f"[{section}]")
            out.append(f"{key} = {value}")
        with open(self.config, "w") as f:
            f.write("\n".join(out))

    # -- server lifecycle
    @property
    def ports_file(self):
        return os.path.join(self.data, "ports.json")

    def start(self, timeout=60):
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        try:
            os.unlink(self.ports_file)
        except FileNotFoundError:
            pass
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"===== harness: start #{self.starts} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        self.proc = subprocess.Popen([binary(), "--config", self.config, "serve"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                                     start_new_session=True)
        log.close()
        with _lock:
            _live_procs.add(self.proc)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode} during start\n"
                                     + self.log_tail())
            try:
                with open(self.ports_file) as f:
                    ports = json.load(f)
                if "lmtp" in ports:
                    self.port = int(ports["lmtp"])
                    return self.port
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.02)
        raise AssertionError(f"no ports.json after {timeout}s\n" + self.log_tail())

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _reap(self):
        with _lock:
            _live_procs.discard(self.proc)

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._reap()
                raise AssertionError(f"server did not exit {timeout}s after SIGTERM\n"
                                     + self.log_tail())
        self._reap()
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reap()

    def log_tail(self, lines=150):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read().splitlines()
        except FileNotFoundError:
            return f"(no server log at {self.log_path})"
        return f"--- server log {self.log_path} (last {lines} lines)\n" + "\n".join(text[-lines:])

    # -- reading stored state (read-only)
    def db_dir(self, db="db1"):
        return os.path.join(self.data, "db", db)

    def meta_path(self, db="db1"):
        return os.path.join(self.db_dir(db), "meta.sqlite")

    def databases(self):
        base = os.path.join(self.data, "db")
        return sorted(d for d in os.listdir(base)
                      if os.path.exists(os.path.join(base, d, "meta.sqlite")))

    def items(self, db=None):
        """All items as dicts: address, db, folder, uid, guid, ingress, blob (hex sha256), size."""
        out = []
        for name in ([db] if db else self.databases()):
            with ro_connect(self.meta_path(name)) as c:
                rows = c.execute(
                    "SELECT a.address, f.name, i.uid, i.guid, i.ingress_id, i.blob, i.size "
                    "FROM items i JOIN folders f ON i.folder_id = f.id "
                    "JOIN accounts a ON f.account_id = a.id").fetchall()
            for addr, folder, uid, guid, ingress, blob, size in rows:
                out.append(dict(address=addr, db=name, folder=folder, uid=uid,
                                guid=bytes(guid).hex(), ingress=bytes(ingress or b"").hex(),
                                blob=bytes(blob).hex(), size=size))
        return out

    def account_usage(self):
        """address -> (used_bytes, used_items) as recorded vs (sum of sizes, count) of items."""
        res = {}
        for name in self.databases():
            with ro_connect(self.meta_path(name)) as c:
                for addr, ub, ui, sb, n in c.execute(
                        "SELECT a.address, a.used_bytes, a.used_items, "
                        "(SELECT coalesce(sum(i.size), 0) FROM items i JOIN folders f "
                        " ON i.folder_id = f.id WHERE f.account_id = a.id), "
                        "(SELECT count(*) FROM items i JOIN folders f "
                        " ON i.folder_id = f.id WHERE f.account_id = a.id) FROM accounts a"):
                    res[addr] = ((ub, ui), (sb, n))
        return res

    def ingress_ids(self):
        """Ingress ids listed by `mailark replay --list`."""
        out = self.cli("replay", "--list").out
        return re.findall(r"(?m)^\S+\s+([0-9a-f]{32})\s", out)

    def blobs_by_account(self):
        """address -> sorted list of sha256 hex of that account's items."""
        res = {}
        for it in self.items():
            res.setdefault(it["address"], []).append(it["blob"])
        for v in res.values():
            v.sort()
        return res

    def count_items(self, address):
        return sum(1 for it in self.items() if it["address"] == address)

    def blob_file(self, sha_hex, db="db1"):
        return os.path.join(self.db_dir(db), "blobs", sha_hex[:2], sha_hex)

    def blob_files(self, db="db1"):
        base = os.path.join(self.db_dir(db), "blobs")
        return sorted(f for _, _, fs in os.walk(base) for f in fs if re.fullmatch(r"[0-9a-f]{64}", f))

    def stored_blobs(self, db="db1"):
        """Every stored body: blob files plus small bodies kept inline in messages.data."""
        inline = []
        if os.path.exists(self.meta_path(db)):
            with ro_connect(self.meta_path(db)) as c:
                inline = [r[0].lower() for r in
                          c.execute("SELECT hex(blob) FROM messages WHERE data IS NOT NULL")]
        return sorted(set(self.blob_files(db)) | set(inline))

    def user_database(self, address):
        with ro_connect(os.path.join(self.data, "directory", "directory.sqlite")) as c:
            row = c.execute("SELECT database FROM users WHERE address = ?", (address,)).fetchone()
        return row[0] if row else None


class ro_connect:
    """Read-only SQLite connection as a context manager (closes on exit)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.c = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        return self.c

    def __exit__(self, *a):
        self.c.close()


def sha256_hex(data: bytes):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# LMTP


@dataclasses.dataclass
class Reply:
    code: int
    enhanced: str
    text: str
    lines: list

    def __str__(self):
        return "\n".join(self.lines)


_ENH = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


def parse_reply(lines):
    code = int(lines[-1][:3])
    rest = lines[-1][4:]
    m = _ENH.match(rest)
    return Reply(code, m.group(1) if m else "", rest[m.end():].strip() if m else rest, lines)


class ConnectionLost(Exception):
    pass


class LMTP:
    """A small raw LMTP client: exact bytes out, every reply line in."""

    def __init__(self, port, host="127.0.0.1", timeout=60, lhlo=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.greeting = self.reply()
        self.capabilities = None
        if lhlo:
            r = self.cmd("LHLO client.test")
            if r.code != 250:
                raise AssertionError(f"LHLO failed: {r}")
            self.capabilities = [l[4:] for l in r.lines]

    def send(self, data: bytes):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost(str(e)) from e

    def _line(self):
        while b"\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:
                raise ConnectionLost(str(e)) from e
            if not chunk:
                raise ConnectionLost("connection closed by server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", errors="replace")

    def reply(self):
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return parse_reply(lines)

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()

    def transaction(self, mail_from, rcpts, message, stuff=True, mail_params=""):
        """MAIL, RCPT..., DATA; returns (mail_reply, {rcpt: rcpt_reply}, {rcpt: data_reply}).
        `message` is sent dot-stuffed (unless stuff=False) and terminated with CRLF.CRLF."""
        mr = self.cmd(f"MAIL FROM:<{mail_from}>{(' ' + mail_params) if mail_params else ''}")
        rr, dr = {}, {}
        if mr.code != 250:
            return mr, rr, dr
        accepted = []
        for r in rcpts:
            rep = self.cmd(f"RCPT TO:<{r}>")
            rr[r] = rep
            if rep.code == 250:
                accepted.append(r)
        if not accepted:
            self.cmd("RSET")
            return mr, rr, dr
        d = self.cmd("DATA")
        if d.code != 354:
            raise AssertionError(f"DATA answered {d}")
        self.send(frame_data(message, stuff))
        for r in accepted:
            dr[r] = self.reply()
        return mr, rr, dr

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def dot_stuff(message: bytes) -> bytes:
    out = re.sub(rb"(?m)^\.", b"..", message)
    return out


def frame_data(message: bytes, stuff=True) -> bytes:
    body = dot_stuff(message) if stuff else message
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def smtplib_deliver(port, mail_from, rcpts, message: bytes, host="127.0.0.1"):
    """Delivers with Python's smtplib.LMTP (low-level API). Returns (rcpt_replies, data_replies)
    as dicts rcpt -> (code, text). LMTP sends one reply per accepted recipient after DATA;
    smtplib.data() returns the first, the rest are read with getreply()."""
    import smtplib
    s = smtplib.LMTP()
    s.connect(host, port)
    try:
        code, _ = s.ehlo("client.test")  # LMTP.ehlo sends LHLO
        if code != 250:
            raise AssertionError(f"LHLO answered {code}")
        code, msg = s.mail(mail_from)
        if code != 250:
            raise AssertionError(f"MAIL answered {code} {msg}")
        rr, accepted = {}, []
        for r in rcpts:
            code, msg = s.rcpt(r)
            rr[r] = (code, msg.decode(errors="replace"))
            if code == 250:
                accepted.append(r)
        dr = {}
        if accepted:
            code, msg = s.data(message)
            dr[accepted[0]] = (code, msg.decode(errors="replace"))
            for r in accepted[1:]:
                code, msg = s.getreply()
                dr[r] = (code, msg.decode(errors="replace"))
        s.quit()
        return rr, dr
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# Messages


_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        import base64
        rnd = random.Random(1234)
        _POOL = base64.b64encode(rnd.randbytes(600_000))
    return _POOL


def make_message(msgid, size, seed=0, subject=None, to="user@test", extra_headers=()):
    """A CRLF message of about `size` bytes with a unique Message-ID; deterministic for
    (msgid, size, seed)."""
    headers = ["From: Sender <sender@remote.test>",
               f"To: <{to}>",
               f"Subject: {subject or 'test message ' + msgid}",
               f"Message-ID: <{msgid}>",
               "Date: Tue, 24 Nov 2026 10:00:00 +0000",
               "MIME-Version: 1.0",
               "Content-Type: text/plain; charset=us-ascii"]
    headers += list(extra_headers)
    head = ("\r\n".join(headers) + "\r\n\r\n").encode()
    remaining = max(size - len(head), 2)
    pool = _pool()
    rnd = random.Random(f"{msgid}/{seed}")
    lines = []
    while remaining > 2:
        n = min(76, remaining - 2)
        start = rnd.randrange(0, len(pool) - n)
        lines.append(pool[start:start + n])
        remaining -= n + 2
    body = b"\r\n".join(lines) + b"\r\n"
    return head + body


# ---------------------------------------------------------------------------------------------
# unittest glue


class MailarkTestCase(unittest.TestCase):
    """Prints the logs of the servers a test used when it fails."""

    def run(self, result=None):
        result = result or self.defaultTestResult()
        first = len(_instances)
        before = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            _any_failure[0] = True
            shared = getattr(self.__class__, "shared_instances", [])
            for inst in list(shared) + _instances[first:]:
                if os.path.exists(inst.log_path):
                    print("\n" + inst.log_tail(), file=sys.stderr)
        return result


def main():
    prog = unittest.main(verbosity=2, exit=False)
    if not prog.result.wasSuccessful():
        _any_failure[0] = True
        sys.exit(1)
    sys.exit(0)


def wait_until(pred, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def non_loopback_address():
    """An IPv4 address of this host that is not loopback, or None."""
    candidates = []
    for target in ("10.255.255.255", "192.0.2.1", "8.8.8.8"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((target, 9))  # no packet is sent for a UDP connect
            candidates.append(s.getsockname()[0])
        except OSError:
            pass
        finally:
            s.close()
    try:
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    for addr in candidates:
        if not addr.startswith("127.") and addr != "0.0.0.0":
            return addr
    return None
