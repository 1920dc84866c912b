#!/usr/bin/python3
"""IMAP benchmark: mailark side by side with Dovecot 2.3.

Starts a fresh mailark and a fresh Dovecot (bench/servers.py), delivers the same
20,000-message INBOX to both over LMTP (bench/corpus.py, generated in a child process while
the delivery runs), then measures with the same client code on both servers:

  1. connect + LOGIN + SELECT INBOX + FETCH 1:* (FLAGS UID)       median of 5, fresh connection
  2. FETCH 1:* (ENVELOPE BODYSTRUCTURE)                          median of 3
  3. UID SEARCH HEADER SUBJECT <word>, UID SEARCH BODY <word>    median of 3 each
  4. APPEND of 2,000 ~4 KB messages with LITERAL+, 1 and 8 connections (msg/s)
  5. CONDSTORE resync after 1% of the flags changed in another session  median of 5
  6. memory per idle connection with 1,000 sessions that did LOGIN + SELECT INBOX

Every answer is checked (counts, UIDs, Message-IDs, search hits against the corpus and
between the servers), prints a table and writes bench/results/imap-<date>.json.

    /usr/bin/python3 bench/imap_bench.py --mailark build/mailark
    /usr/bin/python3 bench/imap_bench.py --count 2000 --idle 200     # quick check

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__

import argparse
import collections
import concurrent.futures
import dataclasses
import datetime
import json
import multiprocessing
import os
import queue
import random
import re
import resource
import statistics
import threading
import time
from email.header import decode_header, make_header
from typing import Callable, Dict, List, Optional, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus  # noqa: E402
import imap_client  # noqa: E402
import lmtp_client  # noqa: E402
import servers  # noqa: E402
from servers import DISTURBED, log, own_cpu  # noqa: E402
from imap_client import Conn, ImapError, quote  # noqa: E402

DOMAIN = "bench.test"
USER = "imapuser@" + DOMAIN
HOST = "127.0.0.1"


# --- corpus and the expected answers -------------------------------------------------------

@dataclasses.dataclass
class Meta:
    index: int
    msgid: str
    kind: str
    size: int
    subject_hit: bool
    body_hit: bool


_SUBJECT = re.compile(rb"^Subject:(.*(?:\r\n[ \t].*)*)", re.M | re.I)
_MSGID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.M | re.I)


def subject_text(header: bytes) -> str:
    """The Subject field decoded as a server should for HEADER SUBJECT: unfolded, RFC 2047
    words decoded (raw UTF-8 taken as is)."""
    m = _SUBJECT.search(header)
    if not m:
        return ""
    raw = m.group(1).replace(b"\r\n", b"").decode("utf-8", "replace").strip()
    try:
        return str(make_header(decode_header(raw)))
    except (ValueError, LookupError, UnicodeError):
        return raw


def describe(index: int, kind: str, data: bytes, subject_word: str, body_word: bytes) -> Meta:
    end = data.index(b"\r\n\r\n")
    header = data[:end + 2]
    m = _MSGID.search(header)
    if not m:
        raise servers.BenchError("corpus message %d has no Message-ID" % index)
    # BODY looks at the decoded body, never the top-level header. The word is ASCII and is
    # always in a text/plain part (7bit, 8bit or quoted-printable), so undoing QP soft line
    # breaks and =20 is enough to find it.
    body = data[end + 4:].replace(b"=\r\n", b"").replace(b"=20", b" ").lower()
    return Meta(index, m.group(1).decode("ascii", "replace"), kind, len(data),
                subject_word.casefold() in subject_text(header).casefold(),
                body_word in body)


def _producer(conn, count: int, seed: int, max_attachment: int):
    """Child process: generates the corpus and streams it to the parent."""
    try:
        for m in corpus.generate(count, seed, max_attachment):
            conn.send((m.index, m.sender, m.kind))
            conn.send_bytes(m.data)
        conn.send(None)
        conn.send(own_cpu())
    finally:
        conn.close()


# Top-level BODYSTRUCTURE type for each corpus kind.
KIND_TOP = {"plain": b"text/plain", "alternative": b"multipart/alternative",
            "newsletter": b"multipart/alternative", "invite": b"multipart/mixed",
            "mixed": b"multipart/mixed", "plain+attachments": b"multipart/mixed"}


def append_messages(n: int, size: int, seed: int) -> List[bytes]:
    """n distinct text/plain messages of exactly `size` octets (headers included)."""
    rng = random.Random(seed * 7919 + 17)
    out = []
    for i in range(n):
        head = ("From: Bench Sender <sender%d@example.com>\r\n" % (i % 97)
                + "To: %s\r\n" % USER
                + "Subject: Append test %d: %s\r\n" % (i, " ".join(rng.choices(corpus.WORDS_EN, k=5)))
                + "Date: Mon, 04 Mar 2024 %02d:%02d:%02d +0000\r\n" % (i // 3600 % 24, i // 60 % 60, i % 60)
                + "Message-ID: <append-%d.%x@bench.test>\r\n" % (i, rng.getrandbits(48))
                + "MIME-Version: 1.0\r\n"
                + "Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
                + "Content-Transfer-Encoding: 7bit\r\n\r\n").encode()
        lines, have = [], len(head)
        while have < size:
            line = " ".join(rng.choices(corpus.WORDS_EN, k=12)).encode() + b"\r\n"
            lines.append(line)
            have += len(line)
        data = head + b"".join(lines)
        data = data[:size - 2].rstrip(b"\r") + b"\r\n"
        data += b"x" * (size - len(data))  # only if rstrip removed a CR
        out.append(data)
    return out


# --- servers under test --------------------------------------------------------------------

class Target:
    """One server as the IMAP client sees it, plus what the bench learnt about its INBOX."""

    def __init__(self, name: str, server):
        self.name, self.server = name, server
        self.seq_uids: List[int] = []            # UID of sequence number k+1
        self.uid_mid: Dict[int, str] = {}        # UID -> Message-ID
        self.mid_uid: Dict[str, int] = {}
        self.structures: Dict[str, Tuple] = {}   # Message-ID -> BODYSTRUCTURE summary

    @property
    def port(self) -> int:
        return self.server.imap_port

    @property
    def pid(self) -> int:
        return self.server.pid

    def cpu(self) -> float:
        return servers.tree_cpu_seconds(self.pid)

    def connect(self, timeout: float = 600.0, bufsize: int = 1 << 16) -> Conn:
        return Conn(HOST, self.port, timeout, bufsize)

    def session(self, select: Optional[bytes] = b"SELECT INBOX") -> Tuple[Conn, List[bytes]]:
        c = self.connect()
        c.login(USER, servers.PASSWORD)
        untagged: List[bytes] = []
        if select:
            _, untagged = c.command(select)
        return c, untagged


def exists_of(untagged: List[bytes]) -> int:
    for r in untagged:
        m = re.match(rb"\* (\d+) EXISTS", r)
        if m:
            return int(m.group(1))
    return -1


def uid_set(uids: List[int]) -> bytes:
    """Compact sequence set: 1:3,7,9:12."""
    uids = sorted(uids)
    parts, i = [], 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        parts.append(b"%d" % uids[i] if i == j else b"%d:%d" % (uids[i], uids[j]))
        i = j + 1
    return b",".join(parts)


# --- setup ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Filled:
    ok: int = 0
    elapsed_s: float = 0.0
    problems: List[str] = dataclasses.field(default_factory=list)


def append_from_queue(t: Target, q: "queue.Queue[Optional[bytes]]", conns: int,
                      window: int) -> Filled:
    """APPEND every message from q (None ends it) to INBOX over `conns` sessions, each
    keeping up to `window` LITERAL+ APPENDs in flight (pipelined; answers come in order)."""
    res = Filled()
    lock = threading.Lock()

    def worker(k: int):
        pending: "collections.deque[bytes]" = collections.deque()
        ok = 0
        try:
            c, _ = t.session(select=None)
        except (ImapError, OSError) as e:
            with lock:
                res.problems.append("session %d: %s" % (k, e))
            return
        try:
            while True:
                data = q.get()
                if data is None:
                    q.put(None)
                    break
                tag = c.next_tag()
                c.send(tag, b"APPEND INBOX", literal=data)
                pending.append(tag)
                if len(pending) >= window:
                    c.finish(pending.popleft(), collect=False)
                    ok += 1
            while pending:
                c.finish(pending.popleft(), collect=False)
                ok += 1
        except (ImapError, OSError) as e:
            with lock:
                res.problems.append("session %d: %s" % (k, e))
        finally:
            c.logout()
            with lock:
                res.ok += ok

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    res.elapsed_s = time.perf_counter() - t0
    return res


def fill_inboxes(args, targets: List[Target]) -> Tuple[List[Meta], Dict]:
    """Generate the corpus in a child process and store it in every server's INBOX at once
    (args.setup_conns connections each), over IMAP APPEND (default) or LMTP. Returns the
    corpus description."""
    ctx = multiprocessing.get_context("fork")
    rx, tx = ctx.Pipe(duplex=False)
    max_att = corpus.parse_size(args.max_attachment)
    child = ctx.Process(target=_producer, args=(tx, args.count, args.seed, max_att), daemon=True)
    child.start()
    tx.close()

    queues = {t.name: queue.Queue(maxsize=256) for t in targets}
    results: Dict[str, Filled] = {}

    def deliver(t: Target):
        try:
            if args.setup_via == "lmtp":
                r = lmtp_client.run(HOST, t.server.port, queues[t.name], args.setup_conns,
                                    timeout=600)
                results[t.name] = Filled(r.transactions_ok, r.elapsed_s,
                                         (r.failures + r.connection_errors)[:5])
            else:
                results[t.name] = append_from_queue(t, queues[t.name], args.setup_conns,
                                                    args.setup_window)
        except Exception as e:  # noqa: BLE001 - reported below
            results[t.name] = Filled(problems=["%s: %s" % (type(e).__name__, e)])

    threads = {t.name: threading.Thread(target=deliver, args=(t,), daemon=True) for t in targets}
    t0 = time.monotonic()
    cpu0 = {t.name: t.cpu() for t in targets}
    own0 = own_cpu()
    for th in threads.values():
        th.start()
    metas: List[Meta] = []
    body_word = args.body_word.lower().encode()
    sizes = []
    kinds: Dict[str, int] = {}
    alive = {t.name for t in targets}
    while True:
        head = rx.recv()
        if head is None:
            break
        index, sender, kind = head
        data = rx.recv_bytes()
        metas.append(describe(index, kind, data, args.subject_word, body_word))
        sizes.append(len(data))
        kinds[kind] = kinds.get(kind, 0) + 1
        item = lmtp_client.make_job(index, sender, [USER], data) \
            if args.setup_via == "lmtp" else data
        del data
        for name in list(alive):
            while True:
                try:
                    queues[name].put(item, timeout=1.0)
                    break
                except queue.Full:
                    if not threads[name].is_alive():
                        alive.discard(name)
                        break
    for name in alive:
        queues[name].put(None)
    generator_cpu = rx.recv()
    generated_s = time.monotonic() - t0
    child.join()
    for th in threads.values():
        th.join()
    problems = []
    for t in targets:
        res = results.get(t.name) or Filled(problems=["no result"])
        if res.ok != len(metas) or res.problems:
            problems.append("%s: %d of %d stored; %s" % (t.name, res.ok, len(metas),
                                                         "; ".join(res.problems[:3])))
    if problems:
        raise servers.BenchError("setup: " + " | ".join(problems))
    sizes.sort()
    total = sum(sizes)
    info = {
        "count": len(metas), "seed": args.seed, "max_attachment": max_att, "bytes": total,
        "summary": "%d messages, %.1f MB, mean %.0f KB, median %.1f KB, max %.1f MB; %s" % (
            len(sizes), total / 1e6, total / len(sizes) / 1e3, sizes[len(sizes) // 2] / 1e3,
            sizes[-1] / 1e6, ", ".join("%s %d" % kv for kv in sorted(kinds.items()))),
        "via": args.setup_via, "connections": args.setup_conns,
        "stored_s": {name: round(r.elapsed_s, 1) for name, r in results.items()},
        "generated_s": round(generated_s, 1),
        "cpu_s": dict({t.name: round(t.cpu() - cpu0[t.name], 1) for t in targets},
                      generator=round(generator_cpu, 1), client=round(own_cpu() - own0, 1)),
    }
    return metas, info


def learn_inbox(t: Target, metas: List[Meta]) -> List[str]:
    """Untimed: sequence numbers, UIDs and Message-IDs of the INBOX, checked against the
    corpus. Later checks compare by Message-ID because the two servers number the messages
    in their own arrival order."""
    errs = []
    c, untagged = t.session()
    try:
        n = exists_of(untagged)
        if n != len(metas):
            errs.append("SELECT INBOX: %d EXISTS, expected %d" % (n, len(metas)))
        _, rs = c.command(b"FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    finally:
        c.logout()
    seq = {}
    for r in rs:
        p = imap_client.parse_fetch(r)
        if not p:
            continue
        num, items = p
        hdr = next((v for k, v in items.items() if k.startswith("BODY[")), b"") or b""
        m = _MSGID.search(hdr)
        seq[num] = (int(items["UID"]), m.group(1).decode("ascii", "replace") if m else "")
    t.seq_uids = [seq[k][0] for k in sorted(seq)]
    t.uid_mid = {uid: mid for uid, mid in seq.values()}
    t.mid_uid = {mid: uid for uid, mid in seq.values()}
    want = {m.msgid for m in metas}
    if len(seq) != len(metas) or set(t.mid_uid) != want:
        errs.append("INBOX has %d messages / %d known Message-IDs, corpus %d (missing %d)" % (
            len(seq), len(set(t.mid_uid) & want), len(metas), len(want - set(t.mid_uid))))
    if t.seq_uids != sorted(t.seq_uids) or len(set(t.seq_uids)) != len(t.seq_uids):
        errs.append("UIDs are not strictly ascending by sequence number")
    return errs


# --- measurement helpers -------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    value: float               # seconds, or msg/s, or bytes per connection
    server_cpu_s: float
    errors: List[str]
    extra: Dict


class Row:
    def __init__(self, key: str, title: str, unit: str, better: str, reps: int):
        self.key, self.title, self.unit, self.better, self.reps = key, title, unit, better, reps
        self.runs: Dict[str, List[Run]] = {}
        self.notes: List[str] = []
        self.other_cpu_s = 0.0
        self.wall_s = 0.0

    def disturbed(self) -> bool:
        """Other processes used more than 10% of the machine while the row ran."""
        return self.other_cpu_s > max(0.2, DISTURBED * self.wall_s * (os.cpu_count() or 1))

    def value(self, name: str) -> Optional[float]:
        runs = [r for r in self.runs.get(name, []) if r.value is not None]
        if not runs:
            return None
        return statistics.median(r.value for r in runs)

    def ok(self, name: str) -> bool:
        runs = self.runs.get(name, [])
        return bool(runs) and not any(r.errors for r in runs)

    def errors(self, name: str) -> List[str]:
        out = []
        for r in self.runs.get(name, []):
            out += r.errors
        return out

    def ratio(self) -> Optional[float]:
        """> 1 means mailark is better: dovecot/mailark for times and bytes,
        mailark/dovecot for rates."""
        m, d = self.value("mailark"), self.value("dovecot")
        if not m or not d:
            return None
        return m / d if self.better == "higher" else d / m

    def to_json(self) -> Dict:
        out = {"title": self.title, "unit": self.unit, "better": self.better,
               "repeats": self.reps, "ratio": round(self.ratio(), 3) if self.ratio() else None,
               "notes": self.notes, "other_cpu_s": round(self.other_cpu_s, 2),
               "wall_s": round(self.wall_s, 1), "disturbed": self.disturbed()}
        for name, runs in self.runs.items():
            out[name] = {
                "value": self.value(name), "ok": self.ok(name),
                "runs": [r.value for r in runs],
                "server_cpu_s": [round(r.server_cpu_s, 3) for r in runs],
                "errors": self.errors(name)[:20],
                "extra": [r.extra for r in runs if r.extra],
            }
        return out


class Bench:
    def __init__(self, args, targets: List[Target], metas: List[Meta]):
        self.args, self.targets, self.metas = args, targets, metas
        self.rows: List[Row] = []

    def ours(self) -> float:
        return own_cpu() + sum(t.cpu() for t in self.targets)

    def measure(self, row: Row, fn: Callable[[Target, int], Tuple[Optional[float], List[str], Dict]]):
        """Runs fn(target, rep) row.reps times per server, interleaved (mailark, dovecot,
        mailark, ...). fn returns (value, errors, extra) and times only what the row is
        about. Server CPU is taken over the whole call."""
        self.rows.append(row)
        waited, load = servers.wait_for_quiet(self.ours, self.args.quiet_wait)
        if load >= 0.15:
            row.notes.append("other processes used %.2f CPUs before the row started" % load)
        f0 = servers.foreign_cpu_seconds(self.ours)
        w0 = time.monotonic()
        for rep in range(row.reps):
            for t in self.targets:
                cpu0 = t.cpu()
                try:
                    value, errs, extra = fn(t, rep)
                except (ImapError, OSError, servers.BenchError) as e:
                    value, errs, extra = None, ["%s: %s" % (type(e).__name__, e)], {}
                row.runs.setdefault(t.name, []).append(Run(value, t.cpu() - cpu0, errs, extra))
        row.other_cpu_s = max(0.0, servers.foreign_cpu_seconds(self.ours) - f0)
        row.wall_s = time.monotonic() - w0
        if row.disturbed():
            row.notes.append("other processes used %.1f CPU s during the row's %.0f s" % (
                row.other_cpu_s, row.wall_s))
        parts = []
        for t in self.targets:
            v = row.value(t.name)
            parts.append("%s %s%s" % (t.name, fmt_value(v, row.unit),
                                      "" if row.ok(t.name) else " (CHECK FAILED)"))
        log("  %-44s %s" % (row.title, ", ".join(parts)))
        for t in self.targets:
            for e in row.errors(t.name)[:3]:
                log("     %s: %s" % (t.name, e))

    # Row 1 ---------------------------------------------------------------------------------
    def row_login_fetch_flags(self, t: Target, rep: int):
        t0 = time.perf_counter()
        c = t.connect()
        c.login(USER, servers.PASSWORD)
        _, sel = c.command(b"SELECT INBOX")
        _, rs = c.command(b"FETCH 1:* (FLAGS UID)")
        el = time.perf_counter() - t0
        c.logout()
        errs = []
        if exists_of(sel) != len(self.metas):
            errs.append("SELECT: %d EXISTS" % exists_of(sel))
        uids = []
        for r in rs:
            m = re.match(rb"\* \d+ FETCH \(.*UID (\d+)", r)
            if m and b"FLAGS (" in r:
                uids.append(int(m.group(1)))
        if uids != t.seq_uids:
            errs.append("FETCH returned %d lines with FLAGS and UID (expected %d in UID order)"
                        % (len(uids), len(t.seq_uids)))
        return el, errs, {"lines": len(uids)}

    # Row 2 ---------------------------------------------------------------------------------
    def row_envelope_bodystructure(self, t: Target, rep: int):
        c, _ = t.session()
        t0 = time.perf_counter()
        _, rs = c.command(b"FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
        el = time.perf_counter() - t0
        c.logout()
        errs = []
        n = sum(1 for r in rs if r.startswith(b"* ") and b" FETCH (" in r[:20])
        if n != len(self.metas):
            errs.append("FETCH returned %d responses, expected %d" % (n, len(self.metas)))
        if rep == self.args.repeat_fetch - 1 or rep == 0:
            errs += self.check_structures(t, rs)
        return el, errs, {"responses": n, "bytes": sum(len(r) for r in rs)}

    def check_structures(self, t: Target, rs: List[bytes]) -> List[str]:
        """Full parse: ENVELOPE's Message-ID is the message's, BODYSTRUCTURE's top-level type
        matches what the corpus generated; leaf types are kept for comparing the servers."""
        kinds = {m.msgid: m.kind for m in self.metas}
        bad_env = bad_top = missing = 0
        first_bad = ""
        for r in rs:
            try:
                p = imap_client.parse_fetch(r)
            except (IndexError, ValueError) as e:
                missing += 1
                first_bad = first_bad or "unparsable response %r (%s)" % (r[:120], e)
                continue
            if not p:
                continue
            num, items = p
            env, bs = items.get("ENVELOPE"), items.get("BODYSTRUCTURE")
            if not isinstance(env, list) or not isinstance(bs, list) or num > len(t.seq_uids):
                missing += 1
                continue
            mid = t.uid_mid.get(t.seq_uids[num - 1], "")
            if len(env) < 10 or (env[9] or b"").decode("ascii", "replace") != mid:
                bad_env += 1
                first_bad = first_bad or "seq %d: envelope Message-ID %r, header says %r" % (
                    num, env[9] if len(env) >= 10 else env, mid)
            top, leaves = structure_summary(bs)
            t.structures[mid] = (top, leaves)
            if KIND_TOP.get(kinds.get(mid, ""), top) != top:
                bad_top += 1
                first_bad = first_bad or "seq %d: BODYSTRUCTURE %s for a %s message" % (
                    num, top.decode(), kinds.get(mid))
        errs = []
        if bad_env or bad_top or missing:
            errs.append("%d wrong envelope Message-IDs, %d wrong top-level types, %d without "
                        "ENVELOPE+BODYSTRUCTURE; first: %s" % (bad_env, bad_top, missing, first_bad))
        return errs

    # Row 3 ---------------------------------------------------------------------------------
    def search_row(self, criteria: bytes, expected: Set[str]):
        def fn(t: Target, rep: int):
            c, _ = t.session()
            t0 = time.perf_counter()
            _, rs = c.command(b"UID SEARCH " + criteria)
            el = time.perf_counter() - t0
            c.logout()
            uids: List[int] = []
            for r in rs:
                if r.upper().startswith(b"* SEARCH"):
                    uids += [int(x) for x in r[8:].split()]
            got = {t.uid_mid.get(u, "?uid%d" % u) for u in uids}
            errs = []
            if got != expected or len(uids) != len(got):
                errs.append("%d hits, expected %d (%d missing, %d extra)" % (
                    len(uids), len(expected), len(expected - got), len(got - expected)))
            return el, errs, {"hits": len(uids), "hit_ids": sorted(got) if errs else None}
        return fn

    # Row 4 ---------------------------------------------------------------------------------
    def append_row(self, messages: List[bytes], conns: int):
        def fn(t: Target, rep: int):
            folder = "bench-append-%dc-%d" % (conns, rep)
            admin, _ = t.session(select=None)
            admin.command(b"CREATE " + quote(folder))
            sessions = []
            try:
                for _ in range(conns):
                    c, _ = t.session(select=None)
                    caps = c.capabilities()
                    if "LITERAL+" not in [x.upper() for x in caps]:
                        raise ImapError("no LITERAL+ in CAPABILITY")
                    sessions.append(c)
                share = [messages[k::conns] for k in range(conns)]
                oks = [0] * conns
                errors: List[str] = []
                barrier = threading.Barrier(conns + 1)
                cmd = b"APPEND " + quote(folder)

                def worker(k: int):
                    c = sessions[k]
                    barrier.wait()
                    try:
                        for data in share[k]:
                            c.command(cmd, literal=data, collect=False)
                            oks[k] += 1
                    except (ImapError, OSError) as e:
                        errors.append("connection %d: %s" % (k, e))

                threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
                for th in threads:
                    th.start()
                barrier.wait()
                t0 = time.perf_counter()
                for th in threads:
                    th.join()
                el = time.perf_counter() - t0
            finally:
                for c in sessions:
                    c.logout()
            _, st = admin.command(b"STATUS " + quote(folder) + b" (MESSAGES)")
            admin.logout()
            m = re.search(rb"MESSAGES (\d+)", b"".join(st))
            stored = int(m.group(1)) if m else -1
            errs = errors[:3]
            if sum(oks) != len(messages) or stored != len(messages):
                errs.append("%d APPENDs answered OK, STATUS says %d messages, expected %d" % (
                    sum(oks), stored, len(messages)))
            return (sum(oks) / el if el else None), errs, {"elapsed_s": round(el, 3),
                                                            "stored": stored}
        return fn

    # Row 5 ---------------------------------------------------------------------------------
    def condstore_prepare(self, t: Target, changed_mids: List[str]) -> Tuple[int, Set[int], List[str]]:
        """Session 1 learns HIGHESTMODSEQ; session 2 flags the chosen messages."""
        errs = []
        c, sel = t.session(b"SELECT INBOX (CONDSTORE)")
        m = imap_client.response_code(sel, b"", b"HIGHESTMODSEQ")
        c.logout()
        if not m:
            return 0, set(), ["SELECT (CONDSTORE) reported no HIGHESTMODSEQ"]
        modseq = int(m)
        uids = sorted(t.mid_uid[mid] for mid in changed_mids)
        c2, _ = t.session()
        _, flags = c2.command(b"UID FETCH " + uid_set(uids) + b" (FLAGS)")
        if any(b"\\Flagged" in r for r in flags):
            errs.append("some chosen messages were already \\Flagged")
        c2.command(b"UID STORE " + uid_set(uids) + b" +FLAGS.SILENT (\\Flagged)")
        c2.logout()
        return modseq, set(uids), errs

    def condstore_row(self, prepared: Dict[str, Tuple[int, Set[int], List[str]]]):
        def fn(t: Target, rep: int):
            modseq, changed, perrs = prepared[t.name]
            c, _ = t.session(select=None)
            t0 = time.perf_counter()
            _, sel = c.command(b"SELECT INBOX (CONDSTORE)")
            _, rs = c.command(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % modseq)
            el = time.perf_counter() - t0
            c.logout()
            got, unflagged = set(), 0
            for r in rs:
                m = re.match(rb"\* \d+ FETCH \(.*UID (\d+)", r)
                if m:
                    got.add(int(m.group(1)))
                    if b"\\Flagged" not in r:
                        unflagged += 1
            errs = list(perrs) if rep == 0 else []
            if got != changed or unflagged:
                errs.append("CHANGEDSINCE %d returned %d messages (%d of the %d changed, %d "
                            "without \\Flagged)" % (modseq, len(got), len(got & changed),
                                                    len(changed), unflagged))
            return el, errs, {"returned": len(got), "modseq": modseq} if rep == 0 else {}
        return fn

    # Row 6 ---------------------------------------------------------------------------------
    def idle_row(self, n: int):
        """Memory per idle session. Figures, each after the server settled:
        m0: after one session came and went (lazily started helpers such as Dovecot's auth
            process are then part of the baseline);
        m1: after a warm-up of 4 x --idle-parallel sessions opened concurrently and closed
            (what concurrent logins leave behind, e.g. password-hashing scratch memory
            kept by the allocator);
        m2: with the n sessions open;  m3: after they logged out.
        The row's value is (m2 - m0) / n; (m2 - m1) / n is row 6b."""
        def fn(t: Target, rep: int):
            # PSS for both: a page of mailark's database file mapped by several SQLite reader
            # connections is one page of memory, but VmRSS counts it once per mapping.
            key = "pss_bytes"
            errors: List[str] = []
            lock = threading.Lock()

            def open_one(k: int) -> Optional[Conn]:
                try:
                    c = t.connect(timeout=300, bufsize=4096)
                    c.login(USER, servers.PASSWORD)
                    _, sel = c.command(b"SELECT INBOX")
                    if exists_of(sel) != len(self.metas):
                        raise ImapError("SELECT: %d EXISTS" % exists_of(sel))
                    return c
                except (ImapError, OSError) as e:
                    with lock:
                        errors.append("session %d: %s" % (k, e))
                    return None

            def open_many(count: int) -> List[Conn]:
                with concurrent.futures.ThreadPoolExecutor(self.args.idle_parallel) as pool:
                    return [c for c in pool.map(open_one, range(count)) if c]

            def close_all(conns: List[Conn], baseline: Dict[str, int]):
                for c in conns:
                    try:
                        c.send(c.next_tag(), b"LOGOUT")
                    except OSError:
                        pass
                for c in conns:
                    c.close()
                self.wait_settled(t, baseline)
                time.sleep(1.0)

            c, _ = t.session()
            c.logout()
            time.sleep(1.0)
            m0 = self.server_memory(t)
            close_all(open_many(4 * self.args.idle_parallel), m0)
            m1 = self.server_memory(t)
            t0 = time.perf_counter()
            conns = open_many(n)
            open_s = time.perf_counter() - t0
            time.sleep(2.0)
            m2 = self.server_memory(t)
            # Every session must still be there and answer.
            alive = 0
            for c in conns:
                try:
                    c.command(b"NOOP")
                    alive += 1
                except (ImapError, OSError):
                    pass
            close_all(conns, m0)
            m3 = self.server_memory(t)
            errs = errors[:3]
            if len(conns) != n or alive != n:
                errs.append("%d of %d sessions opened, %d answered NOOP afterwards" % (
                    len(conns), n, alive))
            return (m2[key] - m0[key]) / n, errs, {
                "m0_baseline": m0, "m1_after_warmup": m1, "m2_open": m2, "m3_closed": m3,
                "per_session_after_warmup": (m2[key] - m1[key]) / n,
                "warmup_retained_bytes": m1[key] - m0[key],
                "retained_after_close_bytes": m3[key] - m0[key],
                "open_s": round(open_s, 1), "measure": key}
        return fn

    @staticmethod
    def server_memory(t: Target) -> Dict[str, int]:
        mem = servers.tree_memory(t.pid)
        if t.name == "mailark":
            mem["rss_bytes"] = servers.vm_rss(t.pid)
        return mem

    @staticmethod
    def wait_settled(t: Target, before: Dict[str, int], limit_s: float = 60.0):
        """After the logouts: wait until Dovecot's per-session processes are gone."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            if servers.tree_memory(t.pid)["processes"] <= before["processes"] + 2:
                return
            time.sleep(0.5)


# --- report --------------------------------------------------------------------------------

def fmt_value(v: Optional[float], unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return "%.3f s" % v if v < 10 else "%.1f s" % v
    if unit == "msg/s":
        return "%.0f msg/s" % v
    if unit == "bytes":
        return "%.1f KB" % (v / 1024)
    return "%g %s" % (v, unit)


def print_table(rows: List[Row]):
    head = "%-46s | %15s | %15s | %s" % ("row", "mailark", "dovecot",
                                         "ratio (>1: mailark better)")
    log(head)
    log("-" * len(head))
    for row in sorted(rows, key=lambda r: r.title):
        cells = []
        for n in ("mailark", "dovecot"):
            if n not in row.runs:
                cells.append("skipped")
                continue
            mark = "" if row.ok(n) else " !"
            cells.append(fmt_value(row.value(n), row.unit) + mark)
        r = row.ratio()
        log("%-46s | %15s | %15s | %s%s" % (row.title, cells[0], cells[1],
                                            "%.2fx" % r if r else "-",
                                            " ~" if row.disturbed() else ""))


def print_details(rows: List[Row]):
    log()
    log("details: every run in order (value / server CPU s for the whole run incl. login)")
    for row in rows:
        for n, runs in row.runs.items():
            log("  %-44s %-8s %s" % (row.title[:44], n, "  ".join(
                "%s/%.2f" % (fmt_value(r.value, row.unit).split()[0], r.server_cpu_s)
                for r in runs)))
        for note in row.notes:
            log("  %-44s note: %s" % (row.title[:44], note))


# --- main ----------------------------------------------------------------------------------

def raise_fd_limit(want: int = 65536) -> Tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new in ((max(hard, want), max(hard, want)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, new)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main() -> int:
    ap = argparse.ArgumentParser(description="IMAP benchmark: mailark vs Dovecot")
    ap.add_argument("--mailark", default=os.path.join(HERE, "..", "build", "mailark"),
                    help="mailark binary (default build/mailark)")
    ap.add_argument("--count", type=int, default=20000, help="messages in the INBOX")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed")
    ap.add_argument("--max-attachment", default="8M",
                    help="largest attachment before base64 (default 8M, as the LMTP bench)")
    ap.add_argument("--subject-word", default="April",
                    help="HEADER SUBJECT search word (default April: ~1.1%% of messages)")
    ap.add_argument("--body-word", default="Bob Smith",
                    help="BODY search string (default 'Bob Smith': ~1%% of messages)")
    ap.add_argument("--repeat-login", type=int, default=5, help="runs of row 1 (default 5)")
    ap.add_argument("--repeat-fetch", type=int, default=3, help="runs of row 2 (default 3)")
    ap.add_argument("--repeat-search", type=int, default=3, help="runs of row 3 (default 3)")
    ap.add_argument("--repeat-condstore", type=int, default=5, help="runs of row 5 (default 5)")
    ap.add_argument("--changed", type=int, default=None,
                    help="messages whose flags change for row 5 (default 1%% of --count)")
    ap.add_argument("--append-count", type=int, default=2000)
    ap.add_argument("--append-size", type=int, default=4096)
    ap.add_argument("--append-conns", type=int, default=8)
    ap.add_argument("--idle", type=int, default=1000, help="idle sessions for row 6")
    ap.add_argument("--idle-parallel", type=int, default=16,
                    help="sessions being opened at once in row 6 (default 16)")
    ap.add_argument("--setup-via", choices=["append", "lmtp"], default="append",
                    help="how the INBOX is filled: IMAP APPEND with LITERAL+, pipelined "
                         "(default), or LMTP delivery")
    ap.add_argument("--setup-conns", type=int, default=4,
                    help="connections per server while filling the INBOX (default 4)")
    ap.add_argument("--setup-window", type=int, default=8,
                    help="APPENDs in flight per connection while filling (default 8)")
    ap.add_argument("--dovecot-format", choices=["sdbox", "mdbox", "maildir"], default="sdbox",
                    help="Dovecot mail_location format (default sdbox)")
    ap.add_argument("--dovecot-password", choices=["same", "plain"], default="same",
                    help="'same': Dovecot verifies the argon2id hash mailark stored (equal "
                         "LOGIN cost); 'plain': {PLAIN} (default same)")
    ap.add_argument("--no-restart", action="store_true",
                    help="do not restart both servers before the idle-connection row")
    ap.add_argument("--rows", default="1,2,3,4,5,6",
                    help="which rows to run (default all: 1,2,3,4,5,6)")
    ap.add_argument("--servers", default="mailark,dovecot")
    ap.add_argument("--workdir", default=None,
                    help="where the data directories go (default $TMPDIR or /tmp); a real disk")
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--quiet-wait", type=float, default=5.0,
                    help="before each row, wait up to this many seconds for other processes "
                         "to leave the CPUs idle (default 5)")
    args = ap.parse_args()
    if args.changed is None:
        args.changed = max(1, args.count // 100)
    which = [s.strip() for s in args.servers.split(",") if s.strip()]
    return servers.in_scratch_dir(args.workdir, "mailark-imap-bench-", args.keep,
                                  lambda workdir, root: bench(args, which, workdir, root))


def bench(args, which: List[str], workdir: str, root: str) -> int:
    started = datetime.datetime.now()
    t_start = time.monotonic()
    fd_soft, fd_hard = raise_fd_limit()
    binary = None
    if "mailark" in which:
        args.mailark = os.path.abspath(args.mailark)
        binary = servers.snapshot_binary(args.mailark, root)
        if not binary:
            log("error: mailark binary %s not found or not runnable (build it with `make build`)"
                % args.mailark)
            return 2
    if "dovecot" in which:
        missing = servers.Dovecot.available(imap=True)
        if missing:
            log("error: " + missing)
            return 2
    if servers.fs_type(workdir) in ("tmpfs", "ramfs"):
        log("warning: %s is %s: fsync is free there" % (workdir, servers.fs_type(workdir)))

    log("IMAP benchmark  %s" % started.strftime("%Y-%m-%d %H:%M:%S"))
    machine = servers.describe_machine(workdir, {"fd_limit": fd_soft})
    mversion = servers.mailark_version(binary) if binary else None
    msha = servers.sha256_file(binary)[:16] if binary else None
    dversion = servers.Dovecot.version() if "dovecot" in which else None
    if mversion:
        log("mailark: %s (%s, sha256 %s..., copied for the whole run), [server] "
            "max_connections = %d" % (mversion, args.mailark, msha, max(2000, args.idle + 100)))
    if dversion:
        log("dovecot: %s, mail_location=%s:~/mail, mail_fsync=optimized (default), imap process "
            "and client limits raised for %d sessions" % (dversion, args.dovecot_format,
                                                          args.idle + 100))

    # Servers ------------------------------------------------------------------------------
    targets: List[Target] = []
    users = [USER]
    mk = dv = None
    if "mailark" in which:
        mk = servers.Mailark(binary, os.path.join(root, "m"), DOMAIN, users,
                             settings={"server": {"max_connections": max(2000, args.idle + 100)}})
        os.makedirs(mk.root)
    if "dovecot" in which:
        dv_root = os.path.join(root, "d")
        os.makedirs(dv_root)
    password_note = "{PLAIN}"
    errors: List[str] = []
    result: Dict = {}
    try:
        if mk:
            mk.setup()
            mk.start()
            imap_client.wait_for_greeting(HOST, mk.imap_port)
            targets.append(Target("mailark", mk))
        if "dovecot" in which:
            passwords = None
            if args.dovecot_password == "same" and mk:
                h = mk.password_hash(USER)
                if h and h.startswith("$argon2id$"):
                    passwords = {USER: "{ARGON2ID}" + h}
                    password_note = "{ARGON2ID} (the hash mailark stored: %s)" % h.split("$")[3]
            dv = servers.Dovecot(dv_root, DOMAIN, users, args.dovecot_format, imap=True,
                                 passwords=passwords, imap_process_limit=args.idle + 100)
            dv.setup()
            dv.start()
            imap_client.wait_for_greeting(HOST, dv.imap_port)
            targets.append(Target("dovecot", dv))
            log("dovecot passdb: passwd-file, password %s" % password_note)

        # Setup: the same INBOX on both ---------------------------------------------------
        t = time.monotonic()
        log("setup: generating %d messages and storing them in the INBOX of %s over %s "
            "(%d connections each) ..." % (
                args.count, " and ".join(x.name for x in targets),
                "LMTP" if args.setup_via == "lmtp" else "IMAP APPEND (LITERAL+, pipelined)",
                args.setup_conns))
        metas, corpus_info = fill_inboxes(args, targets)
        setup_s = time.monotonic() - t
        log("setup: %s" % corpus_info["summary"])
        log("setup: %.0f s (generated in %.0f s; stored in %s; CPU s: %s)" % (
            setup_s, corpus_info["generated_s"],
            ", ".join("%s %.0f s" % kv for kv in corpus_info["stored_s"].items()),
            ", ".join("%s %.0f" % kv for kv in corpus_info["cpu_s"].items())))
        os.sync()
        for tg in targets:
            errs = learn_inbox(tg, metas)
            if errs:
                raise servers.BenchError("%s INBOX check: %s" % (tg.name, "; ".join(errs)))
        subject_hits = {m.msgid for m in metas if m.subject_hit}
        body_hits = {m.msgid for m in metas if m.body_hit}
        log("expected hits (from the corpus): HEADER SUBJECT %r %d (%.2f%%), BODY %r %d (%.2f%%)"
            % (args.subject_word, len(subject_hits), 100.0 * len(subject_hits) / len(metas),
               args.body_word, len(body_hits), 100.0 * len(body_hits) / len(metas)))

        b = Bench(args, targets, metas)
        rows = set(args.rows.split(","))
        log("rows:")
        if "1" in rows:
            b.measure(Row("login", "1 login+SELECT+FETCH 1:* (FLAGS UID)", "s", "lower",
                          args.repeat_login), b.row_login_fetch_flags)
        if "2" in rows:
            b.measure(Row("envelope", "2 FETCH 1:* (ENVELOPE BODYSTRUCTURE)", "s", "lower",
                          args.repeat_fetch), b.row_envelope_bodystructure)
        if "3" in rows:
            b.measure(Row("search_subject", "3a UID SEARCH HEADER SUBJECT %s" % args.subject_word,
                          "s", "lower", args.repeat_search),
                      b.search_row(b"HEADER SUBJECT " + quote(args.subject_word), subject_hits))
            b.measure(Row("search_body", "3b UID SEARCH BODY %s" % args.body_word, "s", "lower",
                          args.repeat_search),
                      b.search_row(b"BODY " + quote(args.body_word), body_hits))
        if "5" in rows:
            changed = random.Random(args.seed).sample(sorted(m.msgid for m in metas),
                                                      min(args.changed, len(metas)))
            prepared = {tg.name: b.condstore_prepare(tg, changed) for tg in targets}
            b.measure(Row("condstore", "5 CONDSTORE resync (%d changed)" % len(changed), "s",
                          "lower", args.repeat_condstore), b.condstore_row(prepared))
        if "4" in rows:
            messages = append_messages(args.append_count, args.append_size, args.seed)
            b.measure(Row("append_1", "4a APPEND %d x %d B, 1 conn" % (
                args.append_count, args.append_size), "msg/s", "higher", 1),
                b.append_row(messages, 1))
            b.measure(Row("append_n", "4b APPEND %d x %d B, %d conns" % (
                args.append_count, args.append_size, args.append_conns), "msg/s", "higher", 1),
                b.append_row(messages, args.append_conns))
        if "6" in rows:
            if not args.no_restart:
                # A fresh process on both sides, so that the "before" figure is not inflated
                # by what the earlier rows left in the allocator (mailark) or in lingering
                # processes (Dovecot).
                for tg in targets:
                    tg.server.stop()
                    tg.server.start()
                    imap_client.wait_for_greeting(HOST, tg.port)
            row6 = Row("idle", "6 memory per idle session (%d)" % args.idle, "bytes", "lower", 1)
            b.measure(row6, b.idle_row(args.idle))
            # The same sessions, counted from after the concurrent-login warm-up.
            row6b = Row("idle_after_warmup", "6b ... counted after a login warm-up", "bytes",
                        "lower", 1)
            for name, runs in row6.runs.items():
                row6b.runs[name] = [Run(r.extra.get("per_session_after_warmup"), 0.0, [], {})
                                    for r in runs]
            b.rows.append(row6b)
            for name, runs in row6.runs.items():
                for r in runs:
                    if r.extra:
                        log("     %s: warm-up of %d concurrent logins left %+.1f MB; %.1f MB "
                            "still held after all sessions closed; opening took %.0f s" % (
                                name, 4 * args.idle_parallel,
                                r.extra["warmup_retained_bytes"] / 2**20,
                                r.extra["retained_after_close_bytes"] / 2**20,
                                r.extra["open_s"]))

        # Cross-server checks ------------------------------------------------------------
        if len(targets) == 2:
            a, d = targets
            diff = [mid for mid in a.structures if mid in d.structures
                    and a.structures[mid] != d.structures[mid]]
            if diff:
                errors.append("BODYSTRUCTURE leaf types differ between the servers for %d "
                              "messages, e.g. %s: %r vs %r" % (
                                  len(diff), diff[0], a.structures[diff[0]], d.structures[diff[0]]))
            for row in b.rows:
                if row.key.startswith("search"):
                    hits = {n: [r.extra.get("hits") for r in runs] for n, runs in row.runs.items()}
                    if len({h for v in hits.values() for h in v}) > 1:
                        errors.append("%s: hit counts differ: %r" % (row.title, hits))
        for row in b.rows:
            for tg in targets:
                if not row.ok(tg.name):
                    errors.append("%s / %s: %s" % (row.title, tg.name,
                                                   "; ".join(row.errors(tg.name)[:2])))

        # Report --------------------------------------------------------------------------
        total_s = time.monotonic() - t_start
        log()
        log("== IMAP, INBOX of %d messages (%.1f MB), nproc %d ==" % (
            len(metas), corpus_info["bytes"] / 1e6, os.cpu_count()))
        print_table(b.rows)
        print_details(b.rows)
        log()
        log("ratio: dovecot/mailark for times and memory, mailark/dovecot for msg/s; >1 means "
            "mailark is better. '!' = a check failed (wrong answer); see the errors below. "
            "'~' = other processes used over %d%% of the CPUs during the row (figures skewed)."
            % (DISTURBED * 100))
        log("Times are medians of the runs; row 1 includes connect and LOGIN (argon2id on both "
            "servers unless --dovecot-password plain); rows 2, 3 and 5 time only the commands "
            "named, after an untimed LOGIN. Row 6: increase of the PSS sum over all the server's "
            "processes (one for mailark), per session (PSS counts a shared or multiply mapped "
            "page once).")
        for tg in targets:
            for p in tg.server.problems()[:5]:
                log("log %s: %s" % (tg.name, p))
        if errors:
            log("CHECKS FAILED:")
            for e in errors:
                log("  " + e)
        else:
            log("all checks passed (counts, UIDs, Message-IDs, structures, search hits, "
                "CHANGEDSINCE, APPEND counts, live idle sessions; as far as the rows ran)")
        log("total runtime %.0f s (setup %.0f s)" % (total_s, setup_s))

        result = {
            "benchmark": "imap",
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round(total_s, 1),
            "setup_s": round(setup_s, 1),
            "machine": dict(machine, bench_max_rss_bytes=resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss * 1024),
            "mailark": {"binary": args.mailark, "version": mversion, "sha256_prefix": msha,
                        "max_connections": max(2000, args.idle + 100)} if binary else None,
            "dovecot": {"version": dversion, "mail_location": args.dovecot_format,
                        "mail_fsync": "optimized", "password": password_note,
                        "imap_process_limit": args.idle + 100} if dversion else None,
            "corpus": corpus_info,
            "expected_hits": {"subject_word": args.subject_word, "subject": len(subject_hits),
                              "body_word": args.body_word, "body": len(body_hits)},
            "rows": {row.key: row.to_json() for row in b.rows},
            "all_verified": not errors,
            "errors": errors,
            "log_problems": {tg.name: tg.server.problems() for tg in targets},
        }
    except (servers.BenchError, ImapError, lmtp_client.LmtpError, OSError) as e:
        log("FAILED: %s: %s" % (type(e).__name__, e))
        for tg in targets:
            for p in tg.server.log_tail(10):
                log("log %s: %s" % (tg.name, p))
        errors.append(str(e))
        result = {"benchmark": "imap", "started": started.isoformat(timespec="seconds"),
                  "machine": machine, "all_verified": False, "errors": errors}
    finally:
        for srv in (mk, dv):
            if srv:
                try:
                    srv.stop()
                except servers.BenchError as e:
                    errors.append(str(e))
                    log("stop: %s" % e)

    os.makedirs(args.results_dir, exist_ok=True)
    out = os.path.join(args.results_dir, "imap-%s.json" % started.strftime("%Y%m%d-%H%M%S"))
    with open(out, "w") as f:
        json.dump(result, f, indent=2, default=str)
    log("results: %s" % out)
    return 0 if not errors else 1


def structure_summary(bs) -> Tuple[bytes, Tuple[bytes, ...]]:
    """(top-level type/subtype, leaf type/subtypes in order) of a parsed BODYSTRUCTURE."""
    def is_multi(x):
        return isinstance(x, list) and x and isinstance(x[0], list)

    def leaves(x) -> List[bytes]:
        if is_multi(x):
            out = []
            for p in x:
                if not isinstance(p, list):
                    break
                out += leaves(p)
            return out
        return [((x[0] or b"") + b"/" + (x[1] or b"")).lower()]

    if is_multi(bs):
        k = 0
        while k < len(bs) and isinstance(bs[k], list):
            k += 1
        top = b"multipart/" + ((bs[k] if k < len(bs) else b"") or b"").lower()
    else:
        top = ((bs[0] or b"") + b"/" + (bs[1] or b"")).lower()
    return top, tuple(leaves(bs))


if __name__ == "__main__":
    sys.exit(main())
