"""A small LMTP client for benchmarks (RFC 2033 with PIPELINING).

Messages are pre-encoded into `Job`s (envelope commands and the dot-stuffed CRLF body ending
in "<CRLF>.<CRLF>") before timing starts, so a transaction costs the client two sendall()
calls and a few readline()s. Each connection runs in its own thread; the threads spend
their time in socket calls, which release the GIL, so one Python process keeps 16
connections busy while using a small share of a core.

Per transaction the client sends MAIL FROM, every RCPT TO and DATA in one write, waits for
their replies (354 for DATA), sends the body and then reads one reply per accepted
recipient, as LMTP requires.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import socket
import threading
import time
from typing import List, Optional, Sequence, Tuple, Union


@dataclasses.dataclass
class Job:
    index: int
    size: int                 # message size in octets, before dot-stuffing
    recipients: Tuple[str, ...]
    sender: bytes             # reverse-path for MAIL FROM
    rcpt_data: bytes          # RCPT TO... + DATA, CRLF terminated
    payload: bytes            # dot-stuffed message + ".\r\n"


def dot_stuff(data: bytes) -> bytes:
    """The DATA payload: CRLF lines, a leading '.' doubled on every line, then '.' CRLF."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def make_job(index: int, sender: str, recipients: Sequence[str], data: bytes) -> Job:
    env = [b"RCPT TO:<%s>\r\n" % r.encode() for r in recipients]
    env.append(b"DATA\r\n")
    return Job(index, len(data), tuple(recipients), sender.encode(), b"".join(env),
               dot_stuff(data))


class LmtpError(Exception):
    pass


@dataclasses.dataclass
class RunResult:
    connections: int
    elapsed_s: float = 0.0
    transactions_ok: int = 0        # messages for which every recipient got 250
    deliveries_ok: int = 0          # recipients that got 250 after DATA
    bytes_ok: int = 0               # message octets of fully delivered messages
    failures: List[str] = dataclasses.field(default_factory=list)
    latencies_s: List[float] = dataclasses.field(default_factory=list)
    connection_errors: List[str] = dataclasses.field(default_factory=list)


class _Conn:
    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb", buffering=65536)
        self.size_param = False
        self.body_param = False

    def reply(self, lines: Optional[List[bytes]] = None) -> Tuple[int, str]:
        """One (possibly multi-line) reply: code and the text of its last line."""
        while True:
            line = self.rfile.readline(4096)
            if not line:
                raise LmtpError("connection closed by server")
            if len(line) < 4 or not line[:3].isdigit():
                raise LmtpError("bad reply line %r" % line[:100])
            if lines is not None:
                lines.append(line[4:].strip().upper())
            if line[3:4] != b"-":
                return int(line[:3]), line.decode("utf-8", "replace").rstrip("\r\n")

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


def _greet(conn: _Conn, name: str):
    code, text = conn.reply()
    if code != 220:
        raise LmtpError("greeting: " + text)
    conn.sock.sendall(b"LHLO %s\r\n" % name.encode())
    caps: List[bytes] = []
    code, text = conn.reply(caps)
    if code != 250:
        raise LmtpError("LHLO: " + text)
    # Use SIZE= and BODY= only when the server advertises them (Dovecot has no SIZE).
    conn.size_param = any(c == b"SIZE" or c.startswith(b"SIZE ") for c in caps)
    conn.body_param = b"8BITMIME" in caps


def _transaction(conn: _Conn, job: Job, res: RunResult, lock: threading.Lock):
    t0 = time.perf_counter()
    mail = b"MAIL FROM:<" + job.sender + b">"
    if conn.size_param:
        mail += b" SIZE=%d" % job.size
    if conn.body_param:
        mail += b" BODY=8BITMIME"
    conn.sock.sendall(mail + b"\r\n" + job.rcpt_data)
    problems = []
    code, text = conn.reply()
    mail_ok = code == 250
    if not mail_ok:
        problems.append("MAIL: " + text)
    accepted = 0
    for r in job.recipients:
        code, text = conn.reply()
        if code == 250:
            accepted += 1
        else:
            problems.append("RCPT %s: %s" % (r, text))
    code, text = conn.reply()
    delivered = 0
    if code == 354:
        conn.sock.sendall(job.payload)
        for _ in range(accepted):
            code, text = conn.reply()
            if code == 250:
                delivered += 1
            else:
                problems.append("DATA: " + text)
    else:
        problems.append("DATA: " + text)
        conn.sock.sendall(b"RSET\r\n")
        conn.reply()
    elapsed = time.perf_counter() - t0
    with lock:
        res.deliveries_ok += delivered
        res.latencies_s.append(elapsed)
        if delivered == len(job.recipients):
            res.transactions_ok += 1
            res.bytes_ok += job.size
        if problems:
            res.failures.append("message %d: %s" % (job.index, "; ".join(problems)))


def run(host: str, port: int, jobs: Union[Sequence[Job], "queue.Queue[Optional[Job]]"],
        connections: int, timeout: float = 300.0, on_start=None) -> RunResult:
    """Deliver every job once over `connections` parallel connections. Connections are
    opened and greeted before the clock starts; the clock stops when the last reply is read.
    `on_start` is called right before the clock starts (to start samplers).
    `jobs` may also be a queue.Queue that a producer fills while the run goes on, ending
    with None (for setting up a mailbox while the corpus is still being generated)."""
    res = RunResult(connections)
    lock = threading.Lock()
    counter = itertools.count()

    if isinstance(jobs, queue.Queue):
        def take() -> Optional[Job]:
            job = jobs.get()
            if job is None:
                jobs.put(None)  # the other connections see the end too
            return job
    else:
        def take() -> Optional[Job]:
            i = next(counter)
            return jobs[i] if i < len(jobs) else None
    ready = threading.Barrier(connections + 1)
    conns: List[Optional[_Conn]] = [None] * connections

    def worker(k: int):
        conn = None
        try:
            conn = _Conn(host, port, timeout)
            _greet(conn, "bench-client-%d" % k)
        except (OSError, LmtpError) as e:
            with lock:
                res.connection_errors.append("connection %d setup: %s" % (k, e))
            if conn:
                conn.close()
            conn = None
        conns[k] = conn
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        if conn is None:
            return
        try:
            while True:
                job = take()
                if job is None:
                    break
                _transaction(conn, job, res, lock)
            conn.sock.sendall(b"QUIT\r\n")
            conn.reply()
        except (OSError, LmtpError) as e:
            with lock:
                res.connection_errors.append("connection %d: %s" % (k, e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    if on_start:
        on_start()
    ready.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    res.elapsed_s = time.perf_counter() - t0
    return res


def wait_for_greeting(host: str, port: int, deadline_s: float = 30.0) -> None:
    """Block until the server answers 220 on (host, port)."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            c = _Conn(host, port, 5.0)
            try:
                code, text = c.reply()
                if code == 220:
                    c.sock.sendall(b"QUIT\r\n")
                    return
                last = text
            finally:
                c.close()
        except (OSError, LmtpError) as e:
            last = str(e)
        time.sleep(0.05)
    raise LmtpError("no LMTP greeting on %s:%d within %.0f s (%s)" % (host, port, deadline_s, last))
