#!/usr/bin/python3
"""Backup benchmark: mailark's own backups side by side with restic and borg (Debian).

In one run, on one generated store (default 100,000 messages, ~2.5 GB, over 200 accounts,
one of them holding ~200 MB), every tool backs up the same database files and is timed on:

  1. full backup
  2. incremental backup after 1% new mail (LMTP) and flag changes on 1% of the messages (IMAP)
  3. restore of the whole database
  4. restore of one ~200 MB account (restic and borg have no per-account restore: their
     figure is the whole-store restore, which is what the issue compares against)
  5. verify every byte of the repository (`backup verify --read-data`,
     `restic check --read-data`, `borg check --verify-data`)

mailark uses its own CLI (`backup run`, `restore`, `backup verify`); restic and borg back up
the database folder (DIR/db/db1: meta.sqlite and blobs/). The server is stopped during every
timed operation, so all three read consistent files, and the page cache is dropped before
each one when the kernel allows it. Prints a table (time, repository size, ratios, the
issue's targets) and writes bench/results/backup-<date>.json.

    /usr/bin/python3 bench/backup_bench.py --mailark build/mailark
    /usr/bin/python3 bench/backup_bench.py --scale 0.05        # quick check, ~1/20 of the data

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__

import argparse
import bisect
import datetime
import json
import os
import queue
import random
import re
import shutil
import subprocess
import threading
import time
import tomllib
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus  # noqa: E402
import imap_client  # noqa: E402
import lmtp_client  # noqa: E402
import servers  # noqa: E402
from servers import DISTURBED, log, own_cpu  # noqa: E402
from imap_client import Conn, ImapError  # noqa: E402

DOMAIN = "backup.test"
HOST = "127.0.0.1"
DB = "db1"
PASSPHRASE = "bench-backup-passphrase"
TOOLS = ("mailark", "restic", "borg")


def fmt_bytes(b: Optional[float]) -> str:
    if b is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(b) >= div:
            return "%.2f %s" % (b / div, unit)
    return "%d B" % b


def parse_size(text: str) -> int:
    """'805.0 KiB' / '2.1 GiB' / '12 B' (mailark's output) -> bytes."""
    m = re.match(r"\s*([\d.]+)\s*([KMGT]?i?B)", text)
    if not m:
        return 0
    mult = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
            "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}.get(m.group(2), 1)
    return int(float(m.group(1)) * mult)


# --- the store: sizes, accounts and message bytes ------------------------------------------

KB = 1024


def regular_size(rng: random.Random) -> Tuple[int, bool]:
    """(size, has attachment): 99% text mail of 5-60 KB, skewed small (median ~12 KB, mean
    ~18 KB), 1% with an attachment, 100 KB-2 MB log-uniform (mean ~640 KB)."""
    if rng.random() < 0.01:
        return int(100 * KB * 20 ** rng.random()), True
    return int(5 * KB * 12 ** (rng.random() ** 1.5)), False


def heavy_sizes(rng: random.Random, n: int, total: int) -> List[Tuple[int, bool]]:
    """n sizes for the big account: 40% with attachments, then scaled so they add up to total."""
    raw = []
    for _ in range(n):
        if rng.random() < 0.4:
            raw.append((100 * KB * 20 ** rng.random(), True))
        else:
            raw.append((5 * KB * 12 ** (rng.random() ** 1.5), False))
    f = total / sum(s for s, _ in raw)
    return [(max(2 * KB, int(s * f)), att) for s, att in raw]


def plan_store(messages: int, accounts: int, big_bytes: int, seed: int) -> List[Tuple[int, int, bool]]:
    """[(account, size, attachment)] in delivery order. Account 0 is the big one: it gets its
    share of the messages (messages // accounts) but big_bytes in all; the others share the
    rest round robin with regular sizes. Deterministic from the seed."""
    rng = random.Random(seed * 7919 + 1)
    share = max(1, messages // accounts)
    out = [(0, s, a) for s, a in heavy_sizes(rng, share, big_bytes)]
    for i in range(messages - share):
        s, a = regular_size(rng)
        out.append((1 + i % (accounts - 1), s, a))
    rng.shuffle(out)
    return out


def plan_new_mail(count: int, accounts: int, seed: int) -> List[Tuple[int, int, bool]]:
    """The 1% new mail: regular sizes, round robin over every account (the big one too)."""
    rng = random.Random(seed * 7919 + 2)
    out = []
    for i in range(count):
        s, a = regular_size(rng)
        out.append((i % accounts, s, a))
    rng.shuffle(out)
    return out


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_TABLE = bytes(_B64[i % 64] for i in range(256))


def b64_noise(n: int) -> bytes:
    """About n bytes of base64 text (76-character CRLF lines) that decodes to random bytes:
    like a real attachment it does not compress much (zstd keeps ~75%), and no two messages
    share content that a deduplicating backup could find."""
    lines = max(1, n // 78)
    buf = bytearray(os.urandom(lines * 78).translate(_B64_TABLE))
    buf[76::78] = b"\r" * lines
    buf[77::78] = b"\n" * lines
    return bytes(buf)


ATTACHMENTS = (("application/pdf", "report-%d.pdf"), ("image/jpeg", "photo-%d.jpg"),
               ("application/zip", "files-%d.zip"),
               ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "draft-%d.docx"))


class MailFactory:
    """Builds one message of about a given size: headers, a text/plain part of English words
    (compressible, sliced from a 4 MB pool at a random line) and a base64 part of random
    bytes: an attachment, or for plain mail an inline image making up about 2/3 of it."""

    def __init__(self, seed: int):
        rng = random.Random(seed * 7919 + 3)
        lines, total = [], 0
        while total < 4 << 20:
            line = " ".join(rng.choices(corpus.WORDS_EN, k=rng.randint(7, 12)))
            lines.append(line.encode())
            total += len(line) + 2
        self.pool = b"\r\n".join(lines) + b"\r\n"
        self.starts = [0]
        for line in lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 2)

    def text(self, rng: random.Random, n: int) -> bytes:
        n = max(200, min(n, len(self.pool) // 2))
        start = self.starts[rng.randrange(bisect.bisect_left(self.starts, len(self.pool) - n))]
        chunk = self.pool[start:start + n]
        return chunk[:chunk.rfind(b"\r\n") + 2]

    def message(self, tag: str, index: int, rcpt: str, size: int, attachment: bool,
                rng: random.Random) -> bytes:
        boundary = "=_mk%s%d_%08x" % (tag, index, rng.getrandbits(32))
        words = self.text(rng, 300).split(b"\r\n")[0][:60].decode()
        head = ("From: Sender %d <sender%d@example.org>\r\n" % (index % 307, index % 307)
                + "To: <%s>\r\n" % rcpt
                + "Subject: %s (%s %d)\r\n" % (words, tag, index)
                + "Date: Mon, 04 Mar 2024 %02d:%02d:%02d +0000\r\n" % (
                    index // 3600 % 24, index // 60 % 60, index % 60)
                + "Message-ID: <bk-%s-%d.%012x@%s>\r\n" % (tag, index, rng.getrandbits(48), DOMAIN)
                + "MIME-Version: 1.0\r\n"
                + "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n" % boundary
                + "--%s\r\n" % boundary
                + "Content-Type: text/plain; charset=us-ascii\r\n"
                + "Content-Transfer-Encoding: 7bit\r\n\r\n").encode()
        if attachment:
            kind, name = ATTACHMENTS[index % len(ATTACHMENTS)]
            text = self.text(rng, rng.randint(1000, 4000))
            part = ("--%s\r\nContent-Type: %s; name=\"%s\"\r\n"
                    "Content-Disposition: attachment; filename=\"%s\"\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n" % (
                        boundary, kind, name % index, name % index)).encode()
        else:
            text = self.text(rng, size // 3)
            part = ("--%s\r\nContent-Type: image/png; name=\"image%d.png\"\r\n"
                    "Content-Disposition: inline; filename=\"image%d.png\"\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n" % (boundary, index, index)).encode()
        tail = ("--%s--\r\n" % boundary).encode()
        fill = size - len(head) - len(text) - len(part) - len(tail)
        return head + text + part + b64_noise(max(78, fill)) + tail


def deliver(port: int, plan: List[Tuple[int, int, bool]], users: List[str], factory: MailFactory,
            tag: str, seed: int, conns: int) -> Tuple[lmtp_client.RunResult, int, float]:
    """Generate the planned messages in a thread and deliver them over `conns` LMTP
    connections while they are generated. Returns (result, bytes generated, producer CPU s)."""
    q: "queue.Queue[Optional[lmtp_client.Job]]" = queue.Queue(maxsize=256)
    produced = [0, 0.0]

    def producer():
        rng = random.Random(seed * 7919 + (4 if tag == "s" else 5))
        t0 = time.thread_time()
        try:
            for i, (acct, size, att) in enumerate(plan):
                data = factory.message(tag, i, users[acct], size, att, rng)
                produced[0] += len(data)
                q.put(lmtp_client.make_job(i, "sender%d@example.org" % (i % 307), [users[acct]],
                                           data))
        finally:
            produced[1] = time.thread_time() - t0
            q.put(None)

    th = threading.Thread(target=producer, daemon=True)
    th.start()
    res = lmtp_client.run(HOST, port, q, conns, timeout=600)
    th.join()
    return res, produced[0], produced[1]


# --- timed commands -------------------------------------------------------------------------

def drop_caches() -> bool:
    """sync, then drop the page cache, dentries and inodes. False when not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class Runner:
    """Runs the timed commands: waits for a quiet machine, drops the page cache, and records
    wall time, the command's CPU (user, sys), peak RSS, blocks read and written (wait4) and
    the CPU other processes used meanwhile."""

    def __init__(self, args, root: str):
        self.args, self.root = args, root
        self.drop_ok: Optional[bool] = None
        self.n = 0

    def run(self, cmd: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
            timed: bool = True) -> Dict:
        self.n += 1
        out_path = os.path.join(self.root, "cmd-%03d.out" % self.n)
        err_path = os.path.join(self.root, "cmd-%03d.err" % self.n)
        rec: Dict = {"cmd": " ".join(cmd)}
        if timed:
            waited, load = servers.wait_for_quiet(own_cpu, self.args.quiet_wait)
            rec["quiet_wait_s"] = round(waited, 1)
            if load >= 0.15:
                rec["note"] = "other processes used %.2f CPUs before it started" % load
            if not self.args.no_drop_caches:
                ok = drop_caches()
                self.drop_ok = ok if self.drop_ok is None else (self.drop_ok and ok)
                rec["cache_dropped"] = ok
        full_env = dict(os.environ)
        full_env.update(env or {})
        busy0, _ = servers.system_busy_seconds()
        kern0 = servers.kernel_threads_cpu_seconds()
        own0 = own_cpu()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 env=full_env, cwd=cwd)
            _, status, ru = os.wait4(p.pid, 0)
            elapsed = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        busy1, _ = servers.system_busy_seconds()
        kern1 = servers.kernel_threads_cpu_seconds()
        cpu = ru.ru_utime + ru.ru_stime
        foreign = (busy1 - busy0) - (kern1 - kern0) - (own_cpu() - own0) - cpu
        with open(out_path, "rb") as f:
            stdout = f.read().decode("utf-8", "replace")
        with open(err_path, "rb") as f:
            stderr = f.read().decode("utf-8", "replace")
        os.unlink(out_path)
        os.unlink(err_path)
        rec.update({
            "rc": p.returncode, "elapsed_s": round(elapsed, 3),
            "cpu_user_s": round(ru.ru_utime, 2), "cpu_sys_s": round(ru.ru_stime, 2),
            "max_rss_bytes": ru.ru_maxrss * 1024,
            "read_bytes": ru.ru_inblock * 512, "written_bytes": ru.ru_oublock * 512,
            "other_cpu_s": round(max(0.0, foreign), 2),
            "disturbed": foreign > max(0.2, DISTURBED * os.cpu_count() * elapsed),
            "stdout": stdout, "stderr": stderr,
        })
        return rec


def du(path: str) -> int:
    return servers._du(path) if os.path.exists(path) else 0


def tree_files(path: str) -> Dict[str, int]:
    """relative path -> size of every regular file under path."""
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            full = os.path.join(dirpath, f)
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = st.st_size
    return out


def compare_trees(src: str, copy: str, seed: int) -> List[str]:
    """Differences between the source folder and a restored copy: file names and sizes of
    every file, contents of meta.sqlite and of 30 sampled blob files (SHA-256)."""
    a, b = tree_files(src), tree_files(copy)
    errs = []
    if a.keys() != b.keys():
        errs.append("%d files missing, %d extra" % (len(a.keys() - b.keys()), len(b.keys() - a.keys())))
    diff = [k for k in a.keys() & b.keys() if a[k] != b[k]]
    if diff:
        errs.append("%d files differ in size (e.g. %s)" % (len(diff), diff[0]))
    blobs = sorted(k for k in a.keys() & b.keys() if k.startswith("blobs/"))
    sample = ["meta.sqlite"] + random.Random(seed).sample(blobs, min(30, len(blobs)))
    for k in sample:
        if k in a and k in b and servers.sha256_file(os.path.join(src, k)) != \
                servers.sha256_file(os.path.join(copy, k)):
            errs.append("content of %s differs" % k)
    return errs


# --- the three tools ----------------------------------------------------------------------

class MailarkTool:
    def __init__(self, srv: servers.Mailark, runner: Runner):
        self.srv, self.runner = srv, runner

    @property
    def repo(self) -> str:
        return os.path.join(self.srv.dir, "backup")

    def cli(self, *args, timed: bool = True) -> Dict:
        return self.runner.run([self.srv.binary, "-c", self.srv.conf] + list(args), timed=timed)

    def backup(self, *extra: str) -> Dict:
        rec = self.cli("backup", "run", "--db", DB, *extra)
        m = re.search(r"(\S+): base backup (\w+) at journal (\d+) in (\S+): (\d+) accounts, "
                      r"(\d+) items, ([\d.]+ \w+); (\d+) new messages, (\d+) verified, "
                      r"([\d.]+ \w+) uploaded, (\d+) journal records archived, ([\d.]+) s; "
                      r"(full|incremental)",
                      rec["stdout"])
        if m:
            rec["summary"] = m.group(0)
            rec.update({"backup_id": m.group(2), "seq": int(m.group(3)),
                        "accounts": int(m.group(5)), "items": int(m.group(6)),
                        "size_bytes": parse_size(m.group(7)), "new_messages": int(m.group(8)),
                        "verified": int(m.group(9)), "uploaded_bytes": parse_size(m.group(10)),
                        "journal_records": int(m.group(11)), "reported_s": float(m.group(12)),
                        "kind": m.group(13)})
        return rec

    def restore_db(self, into: str) -> Dict:
        return self._restored(self.cli("restore", "--db", DB, "--into", into))

    def restore_user(self, user: str, seq: int) -> Dict:
        return self._restored(self.cli("restore", "--user", user, "--seq", str(seq)))

    @staticmethod
    def _restored(rec: Dict) -> Dict:
        m = re.search(r"total restored: (\d+) items, ([\d.]+ \w+)(?:, (\d+) skipped)?", rec["stdout"])
        if m:
            rec.update({"items": int(m.group(1)), "restored_bytes": parse_size(m.group(2)),
                        "skipped": int(m.group(3) or 0), "summary": m.group(0)})
        first = rec["stdout"].splitlines()[:1]
        if first:
            rec["first_line"] = first[0]
        return rec

    def verify(self) -> Dict:
        rec = self.cli("backup", "verify", "--read-data")
        rec["summary"] = rec["stdout"].strip().splitlines()[-1] if rec["stdout"].strip() else ""
        m = re.search(r"([\d.]+ \w+) read", rec["summary"])
        if m:
            rec["read_reported_bytes"] = parse_size(m.group(1))
        return rec


class ResticTool:
    def __init__(self, root: str, runner: Runner):
        self.root, self.runner = root, runner
        self.repo = os.path.join(root, "restic-repo")
        pw = os.path.join(root, "restic-password")
        with open(pw, "w") as f:
            f.write(PASSPHRASE + "\n")
        self.env = {"RESTIC_REPOSITORY": self.repo, "RESTIC_PASSWORD_FILE": pw,
                    "RESTIC_CACHE_DIR": os.path.join(root, "restic-cache")}

    @staticmethod
    def version() -> str:
        try:
            return subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    def run(self, *args, timed: bool = True, cwd: Optional[str] = None) -> Dict:
        return self.runner.run(["restic"] + list(args), env=self.env, timed=timed, cwd=cwd)

    def init(self) -> Dict:
        return self.run("init", timed=False)

    def backup(self, path: str) -> Dict:
        rec = self.run("backup", "--json", "--host", "bench", path)
        for line in reversed(rec["stdout"].splitlines()):
            if '"summary"' in line:
                try:
                    s = json.loads(line)
                except ValueError:
                    continue
                rec["summary_json"] = s
                rec.update({"files": s.get("total_files_processed"),
                            "bytes_processed": s.get("total_bytes_processed"),
                            "uploaded_bytes": s.get("data_added"),
                            "files_new": s.get("files_new"), "files_changed": s.get("files_changed"),
                            "files_unmodified": s.get("files_unmodified")})
                break
        rec["stdout"] = "\n".join(l for l in rec["stdout"].splitlines() if '"status"' not in l)
        return rec

    def restore(self, target: str) -> Dict:
        return self.run("restore", "latest", "--target", target)

    def verify(self) -> Dict:
        rec = self.run("check", "--read-data")
        rec["summary"] = rec["stdout"].strip().splitlines()[-1] if rec["stdout"].strip() else ""
        return rec


class BorgTool:
    def __init__(self, root: str, runner: Runner, compression: str):
        self.root, self.runner, self.compression = root, runner, compression
        self.repo = os.path.join(root, "borg-repo")
        self.env = {"BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": os.path.join(root, "borg-home"),
                    "BORG_DISPLAY_PASSPHRASE": "no", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    @staticmethod
    def version() -> str:
        try:
            return subprocess.run(["borg", "--version"], capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    def run(self, *args, timed: bool = True, cwd: Optional[str] = None) -> Dict:
        return self.runner.run(["borg"] + list(args), env=self.env, timed=timed, cwd=cwd)

    def init(self) -> Dict:
        return self.run("init", "--encryption=repokey", self.repo, timed=False)

    def backup(self, name: str, path: str) -> Dict:
        rec = self.run("create", "--json", "--compression", self.compression,
                       "%s::%s" % (self.repo, name), path)
        try:
            s = json.loads(rec["stdout"])
            st = s["archive"]["stats"]
            rec.update({"files": st.get("nfiles"), "bytes_processed": st.get("original_size"),
                        "uploaded_bytes": st.get("deduplicated_size"),
                        "compressed_bytes": st.get("compressed_size")})
        except (ValueError, KeyError, TypeError):
            pass
        return rec

    def restore(self, name: str, target: str) -> Dict:
        os.makedirs(target, exist_ok=True)
        return self.run("extract", "%s::%s" % (self.repo, name), cwd=target)

    def verify(self) -> Dict:
        rec = self.run("check", "--verify-data", self.repo)
        return rec


# --- IMAP steps (server running, not timed) --------------------------------------------------

def seq_set(nums: List[int]) -> bytes:
    nums = sorted(set(nums))
    parts, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(b"%d" % nums[i] if i == j else b"%d:%d" % (nums[i], nums[j]))
        i = j + 1
    return b",".join(parts)


def exists_of(untagged: List[bytes]) -> int:
    for r in untagged:
        m = re.match(rb"\* (\d+) EXISTS", r)
        if m:
            return int(m.group(1))
    return -1


def change_flags(port: int, users: List[str], picks: Dict[int, List[int]], threads: int = 4) -> Tuple[int, List[str]]:
    """Set \\Seen on the given INBOX sequence numbers of each account (one session per
    account). Returns (FETCH responses seen, problems)."""
    done, problems = [0], []
    lock = threading.Lock()
    work = queue.Queue()
    for acct, seqs in picks.items():
        work.put((acct, seqs))

    def worker():
        while True:
            try:
                acct, seqs = work.get_nowait()
            except queue.Empty:
                return
            try:
                c = Conn(HOST, port)
                c.login(users[acct], servers.PASSWORD)
                c.command(b"SELECT INBOX")
                _, untagged = c.command(b"STORE " + seq_set(seqs) + b" +FLAGS (\\Seen)")
                c.logout()
                with lock:
                    done[0] += sum(1 for r in untagged if b" FETCH " in r)
            except (ImapError, OSError) as e:
                with lock:
                    problems.append("%s: %s" % (users[acct], e))

    ths = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return done[0], problems


def folders_with_mail(c: Conn) -> Dict[str, int]:
    _, untagged = c.command(b'LIST "" "*"')
    names = []
    for r in untagged:
        m = re.match(rb'\* LIST \([^)]*\) (?:"[^"]*"|NIL) (.*)\r\n', r)
        if m:
            name = m.group(1)
            if name.startswith(b'"'):
                name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
            names.append(name.decode("utf-8", "replace"))
    out = {}
    for n in names:
        _, st = c.command(b"STATUS " + imap_client.quote(n) + b" (MESSAGES)")
        for r in st:
            m = re.search(rb"MESSAGES (\d+)", r)
            if m:
                out[n] = int(m.group(1))
    return out


def account_messages(port: int, user: str) -> Dict[str, int]:
    c = Conn(HOST, port)
    try:
        c.login(user, servers.PASSWORD)
        return folders_with_mail(c)
    finally:
        c.logout()


def empty_account(port: int, user: str) -> int:
    """Delete every message in every folder of the account (\\Deleted + EXPUNGE). Returns how
    many were expunged."""
    c = Conn(HOST, port)
    gone = 0
    try:
        c.login(user, servers.PASSWORD)
        for name, n in folders_with_mail(c).items():
            if n <= 0:
                continue
            c.command(b"SELECT " + imap_client.quote(name))
            c.command(b"UID STORE 1:* +FLAGS.SILENT (\\Deleted)")
            _, untagged = c.command(b"EXPUNGE")
            gone += sum(1 for r in untagged if r.rstrip().endswith(b"EXPUNGE"))
    finally:
        c.logout()
    return gone


def db_stats(srv: servers.Mailark) -> Dict[str, int]:
    """db1's row of `mailark stats` (server stopped)."""
    out = srv._cli("stats").stdout
    lines = [l.split() for l in out.splitlines() if l.strip()]
    header = [h.upper() for h in lines[0]]
    for row in lines[1:]:
        if row and row[0] == DB and len(row) == len(header):
            return {h.lower(): int(v) for h, v in zip(header[1:], row[1:]) if v.isdigit()}
    raise servers.BenchError("no %s row in `mailark stats`: %s" % (DB, out.strip()))


# --- the run ----------------------------------------------------------------------------------

ROWS = (
    ("full", "1 full backup"),
    ("incremental", "2 incremental (1% new mail + 1% flags)"),
    ("restore_all", "3 restore whole database"),
    ("restore_account", "4 restore one account"),
    ("verify", "5 verify every byte"),
)
# The targets: (row, compared tool, minimum ratio tool time / mailark time).
TARGETS = (("full", "restic", 1.0, "full backup faster than restic"),
           ("incremental", "restic", 10.0, "incremental at least 10x faster than restic"),
           ("restore_account", "restic", 10.0,
            "one-account restore at least 10x faster than restic restoring the whole store"))


class Bench:
    def __init__(self, args, root: str, binary: str):
        self.args, self.root, self.binary = args, root, binary
        self.runner = Runner(args, root)
        self.rows: Dict[str, Dict[str, Dict]] = {k: {} for k, _ in ROWS}
        self.repo_sizes: Dict[str, Dict[str, int]] = {t: {} for t in TOOLS}
        self.errors: List[str] = []
        self.info: Dict = {}
        self.diagnostics: Dict[str, Dict] = {}

    def check(self, cond: bool, what: str, rec: Optional[Dict] = None):
        if not cond:
            self.errors.append(what)
            if rec is not None:
                rec.setdefault("errors", []).append(what)
                rec["ok"] = False
            log("     CHECK FAILED: " + what)

    def record(self, row: str, tool: str, rec: Dict):
        rec.setdefault("ok", True)
        if rec["rc"] != 0:
            self.check(False, "%s %s: exit %d: %s" % (tool, row, rec["rc"],
                                                       (rec["stderr"] or rec["stdout"]).strip()[-400:]), rec)
        self.rows[row][tool] = rec
        extra = rec.get("summary") or ""
        log("     %-7s %8.1f s  CPU %6.1f s  read %9s  written %9s%s%s" % (
            tool, rec["elapsed_s"], rec["cpu_user_s"] + rec["cpu_sys_s"], fmt_bytes(rec["read_bytes"]),
            fmt_bytes(rec["written_bytes"]), "  ~" if rec["disturbed"] else "",
            ("\n             " + extra) if extra else ""))

    def set_backup_enabled(self, on: bool):
        servers.set_toml_key(self.mk.conf, "backup", "enabled", on)

    def start_server(self):
        # The server's journal archiver would ship every new message to the repository as it
        # arrives, so the timed `backup run` would find it all there already. Backups are off
        # while the server runs and on for the CLI, so mailark's backup does all of its work
        # inside the timed command, like restic and borg.
        self.set_backup_enabled(False)
        self.mk.start()
        imap_client.wait_for_greeting(HOST, self.mk.imap_port)

    def stop_server(self):
        self.mk.stop()
        self.set_backup_enabled(True)

    def run(self) -> None:
        args = self.args
        tools = self.tools
        self.users = ["user%d@%s" % (i, DOMAIN) for i in range(args.accounts)]
        self.mk = servers.Mailark(self.binary, os.path.join(self.root, "m"), DOMAIN, self.users,
                                  settings={"backup": {"base_interval": "off"}})
        os.makedirs(self.mk.root)
        mk = MailarkTool(self.mk, self.runner)
        db_dir = os.path.join(self.mk.dir, "db", DB)

        # Store ------------------------------------------------------------------------------
        t = time.monotonic()
        self.mk.setup()
        log("setup: mailark init, %d accounts (%.0f s)" % (args.accounts, time.monotonic() - t))
        plan = plan_store(args.messages, args.accounts, args.big_bytes, args.seed)
        planned = sum(s for _, s, _ in plan)
        big_planned = sum(s for a, s, _ in plan if a == 0)
        log("store: %d messages, ~%s planned (%s in %s), delivering over %d LMTP connections ..." % (
            len(plan), fmt_bytes(planned), fmt_bytes(big_planned), self.users[0], args.conns))
        free = shutil.disk_usage(self.root).free
        if free < planned * 7:
            log("warning: %s free in %s; the run needs about %s (7x the store)" % (
                fmt_bytes(free), self.root, fmt_bytes(planned * 7)))
        factory = MailFactory(args.seed)
        self.start_server()
        cpu0 = servers.tree_cpu_seconds(self.mk.pid)
        res, gen_bytes, gen_cpu = deliver(self.mk.port, plan, self.users, factory, "s", args.seed,
                                          args.conns)
        srv_cpu = servers.tree_cpu_seconds(self.mk.pid) - cpu0
        sizes = sorted(len_ for _, len_, _ in plan)
        self.info["store"] = {
            "messages": len(plan), "accounts": args.accounts, "bytes": gen_bytes,
            "big_account": self.users[0], "big_account_messages": sum(1 for a, _, _ in plan if a == 0),
            "big_account_bytes_planned": big_planned,
            "attachments": sum(1 for _, _, a in plan if a),
            "size_median": sizes[len(sizes) // 2], "size_max": sizes[-1],
            "delivered": res.transactions_ok, "elapsed_s": round(res.elapsed_s, 1),
            "msg_per_s": round(res.transactions_ok / res.elapsed_s, 1) if res.elapsed_s else None,
            "mb_per_s": round(res.bytes_ok / 1e6 / res.elapsed_s, 1) if res.elapsed_s else None,
            "server_cpu_s": round(srv_cpu, 1), "generator_cpu_s": round(gen_cpu, 1),
            "connections": args.conns}
        s = self.info["store"]
        log("store: %d of %d delivered, %s (median %s, max %s, %d with attachments) in %.0f s: "
            "%.0f msg/s, %.1f MB/s (server CPU %.0f s, generator CPU %.0f s)" % (
                res.transactions_ok, len(plan), fmt_bytes(gen_bytes), fmt_bytes(s["size_median"]),
                fmt_bytes(s["size_max"]), s["attachments"], res.elapsed_s, s["msg_per_s"],
                s["mb_per_s"], srv_cpu, gen_cpu))
        if res.failures or res.connection_errors or res.transactions_ok != len(plan):
            raise servers.BenchError("store delivery: %d of %d delivered; %s" % (
                res.transactions_ok, len(plan), "; ".join((res.failures + res.connection_errors)[:3])))
        self.stop_server()
        st = db_stats(self.mk)
        self.info["store"]["stats_before"] = st
        self.info["store"]["db_dir_bytes"] = du(db_dir)
        meta = os.path.join(db_dir, "meta.sqlite")
        blobs = tree_files(os.path.join(db_dir, "blobs"))
        self.info["store"]["meta_sqlite_bytes"] = os.path.getsize(meta)
        self.info["store"]["blob_files"] = len(blobs)
        self.info["store"]["blob_bytes"] = sum(blobs.values())
        log("store: mailark stats: %d items, %s (stored %s); %s: %s on disk = meta.sqlite %s + "
            "%d blob files %s" % (
                st.get("items", 0), fmt_bytes(st.get("bytes")), fmt_bytes(st.get("stored")), db_dir,
                fmt_bytes(self.info["store"]["db_dir_bytes"]), fmt_bytes(os.path.getsize(meta)),
                len(blobs), fmt_bytes(sum(blobs.values()))))
        self.check(st.get("items") == len(plan), "mailark stats: %s items, expected %d" % (
            st.get("items"), len(plan)))
        self.check(not os.path.exists(meta + "-wal") or os.path.getsize(meta + "-wal") == 0,
                   "meta.sqlite-wal left after the server stopped")

        restic = ResticTool(self.root, self.runner) if "restic" in tools else None
        borg = BorgTool(self.root, self.runner, args.borg_compression) if "borg" in tools else None
        for name, tool in (("restic", restic), ("borg", borg)):
            if tool:
                r = tool.init()
                if r["rc"] != 0:
                    raise servers.BenchError("%s init: %s" % (name, r["stderr"].strip()[-300:]))

        # 1. Full backup -------------------------------------------------------------------
        log("1 full backup:")
        r = mk.backup()
        self.record("full", "mailark", r)
        self.check(r.get("items") == st.get("items"), "mailark full backup: %s items, store has %s"
                   % (r.get("items"), st.get("items")), r)
        self.check(r.get("new_messages", 0) > 0,
                   "mailark full backup uploaded no new messages (were they archived before?)", r)
        self.repo_sizes["mailark"]["full"] = du(mk.repo)
        if restic:
            r = restic.backup(db_dir)
            self.record("full", "restic", r)
            self.repo_sizes["restic"]["full"] = du(restic.repo)
        if borg:
            r = borg.backup("full", db_dir)
            self.record("full", "borg", r)
            self.repo_sizes["borg"]["full"] = du(borg.repo)

        # Changes: 1% new mail, flags on 1% of the messages --------------------------------------
        n_new = max(1, args.messages // 100)
        n_flags = max(1, args.messages // 100)
        new_plan = plan_new_mail(n_new, args.accounts, args.seed)
        per_account: Dict[int, int] = {}
        for a, _, _ in plan:
            per_account[a] = per_account.get(a, 0) + 1
        rng = random.Random(args.seed * 7919 + 6)
        flat = [(a, k) for a, n in sorted(per_account.items()) for k in range(1, n + 1)]
        picks: Dict[int, List[int]] = {}
        for a, k in rng.sample(flat, min(n_flags, len(flat))):
            picks.setdefault(a, []).append(k)
        self.start_server()
        t = time.monotonic()
        res, new_bytes, _ = deliver(self.mk.port, new_plan, self.users, factory, "n", args.seed,
                                    args.conns)
        flagged, problems = change_flags(self.mk.imap_port, self.users, picks)
        big_before = account_messages(self.mk.imap_port, self.users[0])
        self.stop_server()
        self.info["changes"] = {"new_messages": res.transactions_ok, "new_bytes": new_bytes,
                                "flag_changes": flagged, "flag_accounts": len(picks),
                                "elapsed_s": round(time.monotonic() - t, 1)}
        log("changes: %d new messages (%s) over LMTP, \\Seen set on %d messages in %d accounts "
            "over IMAP (%.0f s)" % (res.transactions_ok, fmt_bytes(new_bytes), flagged, len(picks),
                                     time.monotonic() - t))
        if res.transactions_ok != len(new_plan) or res.failures or res.connection_errors:
            raise servers.BenchError("new mail: %d of %d delivered; %s" % (
                res.transactions_ok, len(new_plan), "; ".join((res.failures + res.connection_errors)[:3])))
        self.check(flagged == sum(len(v) for v in picks.values()) and not problems,
                   "flag changes: %d FETCH responses for %d changes; %s" % (
                       flagged, sum(len(v) for v in picks.values()), "; ".join(problems[:3])))
        st2 = db_stats(self.mk)
        self.info["changes"]["stats_after"] = st2

        # 2. Incremental -----------------------------------------------------------------------
        log("2 incremental backup:")
        r = mk.backup()
        self.record("incremental", "mailark", r)
        self.check(r.get("items") == st2.get("items"), "mailark incremental: %s items, store has %s"
                   % (r.get("items"), st2.get("items")), r)
        if r.get("new_messages") is not None and r["new_messages"] != n_new:
            r.setdefault("notes", []).append("%d new messages uploaded, %d delivered" % (
                r["new_messages"], n_new))
        seq = r.get("seq")
        self.repo_sizes["mailark"]["incremental"] = du(mk.repo)
        if restic:
            r = restic.backup(db_dir)
            self.record("incremental", "restic", r)
            self.repo_sizes["restic"]["incremental"] = du(restic.repo)
        if borg:
            r = borg.backup("incremental", db_dir)
            self.record("incremental", "borg", r)
            self.repo_sizes["borg"]["incremental"] = du(borg.repo)
        listing = mk.cli("backup", "list", "--db", DB, timed=False)
        self.info["backup_list"] = listing["stdout"]

        # 3. Restore of the whole database ----------------------------------------------------
        log("3 restore whole database:")
        r = mk.restore_db("restored")
        self.record("restore_all", "mailark", r)
        self.check(r.get("items") == st2.get("items"), "mailark restore --db: %s items restored, "
                   "store has %s" % (r.get("items"), st2.get("items")), r)
        r["target_bytes"] = du(os.path.join(self.mk.dir, "db", "restored"))
        if restic:
            target = os.path.join(self.root, "restic-restore")
            r = restic.restore(target)
            self.record("restore_all", "restic", r)
            copy = os.path.join(target, db_dir.lstrip("/"))
            r["target_bytes"] = du(target)
            errs = compare_trees(db_dir, copy, args.seed) if r["rc"] == 0 else ["no restore"]
            self.check(not errs, "restic restore differs from the source: " + "; ".join(errs[:3]), r)
            shutil.rmtree(target, ignore_errors=True)
        if borg:
            target = os.path.join(self.root, "borg-restore")
            r = borg.restore("incremental", target)
            self.record("restore_all", "borg", r)
            copy = os.path.join(target, db_dir.lstrip("/"))
            r["target_bytes"] = du(target)
            errs = compare_trees(db_dir, copy, args.seed) if r["rc"] == 0 else ["no restore"]
            self.check(not errs, "borg extract differs from the source: " + "; ".join(errs[:3]), r)
            shutil.rmtree(target, ignore_errors=True)

        # 5. Verify every byte (before the account is emptied; the repositories do not change) --
        log("5 verify every byte of the repository:")
        r = mk.verify()
        self.record("verify", "mailark", r)
        self.check(": ok" in r["stdout"], "mailark backup verify --read-data: %s" % r.get("summary"), r)
        if restic:
            r = restic.verify()
            self.record("verify", "restic", r)
            self.check("no errors were found" in r["stdout"], "restic check --read-data: %s"
                       % r.get("summary"), r)
        if borg:
            self.record("verify", "borg", borg.verify())

        # 4. One account -------------------------------------------------------------------
        big = self.users[0]
        big_n = sum(big_before.values())
        log("4 restore one account (%s, %d messages; restic and borg: their whole restore):" % (
            big, big_n))
        self.start_server()
        gone = empty_account(self.mk.imap_port, big)
        self.stop_server()
        self.check(gone == big_n, "emptying %s: %d expunged, %d there" % (big, gone, big_n))
        if seq is None:
            raise servers.BenchError("no journal position from the incremental backup's summary")
        r = mk.restore_user(big, seq)
        self.record("restore_account", "mailark", r)
        self.check(r.get("items") == big_n, "mailark restore --user: %s items restored, the "
                   "account had %d" % (r.get("items"), big_n), r)
        self.start_server()
        after = account_messages(self.mk.imap_port, big)
        self.stop_server()
        r["messages_after"] = sum(after.values())
        self.check(after == big_before, "after restore --user, %s has %s, before %s" % (
            big, after, big_before), r)
        for tool in ("restic", "borg"):
            if tool in self.rows["restore_all"]:
                self.rows["restore_account"][tool] = dict(self.rows["restore_all"][tool],
                                                          same_as="restore_all")
        self.info["one_account"] = {"user": big, "messages": big_n, "folders": big_before,
                                    "seq": seq}

        # Diagnostics (mailark only, not in the table): the fixed cost of an incremental and of
        # a full `backup run`, and the share of a full one's scrub (re-reading
        # 1/scrub_rotation of the bodies already backed up).
        if args.diagnostics:
            log("diagnostics: mailark `backup run` again (not in the table):")
            self.diagnostics = {}
            with open(self.mk.conf, "rb") as f:
                configured = tomllib.load(f).get("backup", {}).get("scrub_rotation", 24)
            for key, what, extra, rotation in (
                    ("after_restore", "after the account restore (its journal records)", (), None),
                    ("no_changes", "nothing changed", (), None),
                    ("full_no_changes", "--full, nothing changed, default scrub_rotation",
                     ("--full",), None),
                    ("full_no_changes_scrub_1000", "--full, nothing changed, scrub_rotation = 1000",
                     ("--full",), 1000)):
                if rotation:
                    servers.set_toml_key(self.mk.conf, "backup", "scrub_rotation", rotation)
                r = mk.backup(*extra)
                if rotation:
                    servers.set_toml_key(self.mk.conf, "backup", "scrub_rotation", configured)
                r["what"] = what
                self.diagnostics[key] = r
                log("     %-48s %6.1f s  CPU %5.1f s  read %9s%s" % (
                    what, r["elapsed_s"], r["cpu_user_s"] + r["cpu_sys_s"], fmt_bytes(r["read_bytes"]),
                    "  ~" if r["disturbed"] else ""))
                log("             " + (r.get("summary") or r["stderr"].strip()[-300:]))

    # --- report -----------------------------------------------------------------------------

    def ratio(self, row: str, tool: str) -> Optional[float]:
        m, o = self.rows[row].get("mailark"), self.rows[row].get(tool)
        if not m or not o or not m["elapsed_s"] or m["rc"] or o["rc"]:
            return None
        return o["elapsed_s"] / m["elapsed_s"]

    def row_label(self, key: str) -> str:
        st = self.info.get("store", {})
        ch = self.info.get("changes", {})
        m = self.rows[key].get("mailark", {})
        if key == "full":
            return "1 full backup (%d msgs, %s)" % (st.get("messages", 0), fmt_bytes(st.get("bytes")))
        if key == "incremental":
            return "2 incremental (+%d msgs, %d flags)" % (ch.get("new_messages", 0),
                                                           ch.get("flag_changes", 0))
        if key == "restore_all":
            return "3 restore whole database (%d items)" % m.get("items", 0)
        if key == "restore_account":
            return "4 restore one account (%d items, %s)" % (m.get("items", 0),
                                                            fmt_bytes(m.get("restored_bytes")))
        return "5 verify --read-data"

    def print_table(self) -> List[str]:
        lines = []
        head = "| operation | mailark | restic | borg | restic/mailark | borg/mailark | target |"
        lines += [head, "|---|---|---|---|---|---|---|"]
        targets = {row: (tool, need, text) for row, tool, need, text in TARGETS}
        for key, _ in ROWS:
            cells = []
            for tool in TOOLS:
                r = self.rows[key].get(tool)
                if not r:
                    cells.append("-")
                    continue
                mark = "" if r.get("ok", True) and r["rc"] == 0 else " !"
                if r.get("disturbed"):
                    mark += " ~"
                if r.get("same_as"):
                    mark += " (whole)"
                cells.append("%.1f s%s" % (r["elapsed_s"], mark))
            ratios = []
            for tool in ("restic", "borg"):
                x = self.ratio(key, tool)
                ratios.append("%.2fx" % x if x else "-")
            target = ""
            if key in targets:
                tool, need, _ = targets[key]
                x = self.ratio(key, tool)
                target = "%s/mailark >= %g: %s" % (tool, need, "-" if x is None else
                                                   ("met" if x >= need else "MISSED"))
            lines.append("| %s | %s | %s | %s |" % (self.row_label(key), " | ".join(cells),
                                                    " | ".join(ratios), target))
        for stage in ("full", "incremental"):
            cells = [fmt_bytes(self.repo_sizes[t].get(stage)) if self.repo_sizes[t] else "-"
                     for t in TOOLS]
            ratios = []
            for t in ("restic", "borg"):
                a, b = self.repo_sizes["mailark"].get(stage), self.repo_sizes[t].get(stage)
                ratios.append("%.2fx" % (b / a) if a and b else "-")
            lines.append("| repository size after %s | %s | %s | |" % (
                "full" if stage == "full" else "incremental", " | ".join(cells), " | ".join(ratios)))
        cells = []
        for t in TOOLS:
            a, b = self.repo_sizes[t].get("full"), self.repo_sizes[t].get("incremental")
            cells.append("+" + fmt_bytes(b - a) if a is not None and b is not None else "-")
        lines.append("| repository growth from the incremental | %s | | | |" % " | ".join(cells))
        for l in lines:
            log(l)
        return lines

    def print_details(self):
        log()
        log("details: wall s | CPU user+sys s | peak RSS | read / written (block I/O of the "
            "command) | other CPU s (other processes meanwhile)")
        for key, title in ROWS:
            for tool in TOOLS:
                r = self.rows[key].get(tool)
                if not r or r.get("same_as"):
                    continue
                log("  %-38s %-7s %7.1f | %6.1f | %7s | %9s / %9s | %5.1f%s" % (
                    title, tool, r["elapsed_s"], r["cpu_user_s"] + r["cpu_sys_s"],
                    fmt_bytes(r["max_rss_bytes"]), fmt_bytes(r["read_bytes"]),
                    fmt_bytes(r["written_bytes"]), r["other_cpu_s"], " ~" if r["disturbed"] else ""))
                for k in ("summary", "first_line"):
                    if r.get(k):
                        log("  %38s           %s" % ("", r[k]))
                if tool in ("restic", "borg") and r.get("uploaded_bytes") is not None:
                    log("  %38s           %s files, %s processed, %s added to the repository" % (
                        "", r.get("files"), fmt_bytes(r.get("bytes_processed")),
                        fmt_bytes(r.get("uploaded_bytes"))))
        if self.diagnostics:
            log("diagnostics (mailark `backup run` repeated after the rows; the difference "
                "between the last two is a full backup's scrub re-reading 1/scrub_rotation of "
                "the bodies):")
            for key, r in self.diagnostics.items():
                log("  %-50s %7.1f | %6.1f | %7s | %9s / %9s | %5.1f%s" % (
                    r["what"], r["elapsed_s"], r["cpu_user_s"] + r["cpu_sys_s"],
                    fmt_bytes(r["max_rss_bytes"]), fmt_bytes(r["read_bytes"]),
                    fmt_bytes(r["written_bytes"]), r["other_cpu_s"], " ~" if r["disturbed"] else ""))
                if r.get("summary"):
                    log("  %50s   %s" % ("", r["summary"]))


def main() -> int:
    ap = argparse.ArgumentParser(description="Backup benchmark: mailark vs restic and borg")
    ap.add_argument("--mailark", default=os.path.join(HERE, "..", "build", "mailark"),
                    help="mailark binary (default build/mailark)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the defaults of --messages, --accounts and --big-account "
                         "(e.g. 0.05 for a quick check)")
    ap.add_argument("--messages", type=int, default=None, help="messages in the store (100000)")
    ap.add_argument("--accounts", type=int, default=None, help="accounts (200)")
    ap.add_argument("--big-account", default=None,
                    help="size of account 0, restored alone in row 4 (default 200M)")
    ap.add_argument("--seed", type=int, default=1, help="seed for sizes, accounts and text")
    ap.add_argument("--conns", type=int, default=8, help="LMTP connections filling the store (8)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="which tools (mailark,restic,borg)")
    ap.add_argument("--borg-compression", default="lz4",
                    help="borg create --compression (default lz4, borg's default)")
    ap.add_argument("--no-diagnostics", dest="diagnostics", action="store_false",
                    help="skip the three extra mailark `backup run`s at the end (the fixed cost "
                         "and the scrub share of a backup)")
    ap.add_argument("--no-drop-caches", action="store_true",
                    help="do not drop the page cache before each timed operation")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="before each timed operation, wait up to this many seconds for other "
                         "processes to leave the CPUs idle (default 30)")
    ap.add_argument("--workdir", default=None,
                    help="where the data goes (default $TMPDIR or /tmp); a real disk")
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"),
                    help="where backup-<date>.json goes (default bench/results)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    args.messages = args.messages or max(10, int(100000 * args.scale))
    args.accounts = args.accounts or max(2, int(200 * args.scale))
    args.big_bytes = corpus.parse_size(args.big_account) if args.big_account else \
        int(200e6 * args.scale)
    if args.accounts < 2 or args.messages < args.accounts:
        ap.error("need at least 2 accounts and one message per account")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if "mailark" not in tools or any(t not in TOOLS for t in tools):
        ap.error("--tools: a list of mailark,restic,borg that includes mailark")
    for t in tools[1:]:
        if not shutil.which(t):
            log("error: %s not found (install restic and borgbackup: sh scripts/install-deps.sh "
                "--bench)" % t)
            return 2
    return servers.in_scratch_dir(args.workdir, "mailark-backup-bench-", args.keep,
                                  lambda workdir, root: bench(args, tools, workdir, root))


def bench(args, tools: List[str], workdir: str, root: str) -> int:
    started = datetime.datetime.now()
    t_start = time.monotonic()
    args.mailark = os.path.abspath(args.mailark)
    binary = servers.snapshot_binary(args.mailark, root)
    if not binary:
        log("error: mailark binary %s not found or not runnable (build it with `make build`)"
            % args.mailark)
        return 2
    if servers.fs_type(workdir) in ("tmpfs", "ramfs"):
        log("warning: %s is %s: the disk is not measured" % (workdir, servers.fs_type(workdir)))
    log("Backup benchmark  %s" % started.strftime("%Y-%m-%d %H:%M:%S"))
    machine = servers.describe_machine(workdir)
    versions = {"mailark": servers.mailark_version(binary),
                "mailark_sha256_prefix": servers.sha256_file(binary)[:16],
                "restic": ResticTool.version() if "restic" in tools else None,
                "borg": BorgTool.version() if "borg" in tools else None}
    settings = {
        "mailark": "cipher aes-256-gcm (default); message bodies are already zstd-compressed in "
                   "the store; [backup] base_interval = \"off\", journal archiver off while the "
                   "server runs (see README)",
        "restic": "repository v1: AES-256-CTR + Poly1305, no compression (restic 0.14)",
        "borg": "--encryption=repokey (AES-256-CTR + HMAC-SHA256), --compression %s"
                % args.borg_compression}
    log("mailark: %s (%s, sha256 %s..., copied for the whole run); %s" % (
        versions["mailark"], args.mailark, versions["mailark_sha256_prefix"], settings["mailark"]))
    for t in ("restic", "borg"):
        if t in tools:
            log("%s: %s; %s" % (t, versions[t], settings[t]))
    log("plan: %d messages over %d accounts, account 0 ~%s; %s" % (
        args.messages, args.accounts, fmt_bytes(args.big_bytes),
        "page cache dropped before each timed operation" if not args.no_drop_caches
        else "page cache NOT dropped (--no-drop-caches): warm runs"))

    b = Bench(args, root, binary)
    b.tools = tools
    failed = None
    try:
        b.run()
    except (servers.BenchError, ImapError, lmtp_client.LmtpError, OSError) as e:
        failed = "%s: %s" % (type(e).__name__, e)
        log("FAILED: " + failed)
        for line in b.mk.log_tail(10) if hasattr(b, "mk") else []:
            log("log mailark: " + line)
        b.errors.append(failed)
    finally:
        if hasattr(b, "mk") and b.mk.proc:
            try:
                b.mk.stop()
            except servers.BenchError as e:
                b.errors.append(str(e))
    if b.runner.drop_ok is False:
        log("note: the page cache could NOT be dropped (no permission): every timed operation "
            "ran with whatever the cache held")
    machine["page_cache_dropped"] = b.runner.drop_ok

    log()
    st = b.info.get("store", {})
    log("== %d messages, %s over %d accounts; restic/mailark and borg/mailark are time ratios "
        "(>1: mailark faster) ==" % (st.get("messages", 0), fmt_bytes(st.get("bytes")), args.accounts))
    table = b.print_table()
    b.print_details()
    log()
    log("Times are wall clock of the command, server stopped, %s. Row 4 for restic and borg is "
        "their whole-store restore (no per-account restore). '!' = failed or wrong result; "
        "'~' = other processes used over %d%% of the CPUs meanwhile." % (
            "page cache dropped before each" if b.runner.drop_ok else "warm page cache",
            DISTURBED * 100))
    targets = []
    for row, tool, need, text in TARGETS:
        x = b.ratio(row, tool)
        targets.append({"row": row, "against": tool, "need": need, "ratio": round(x, 3) if x else None,
                        "met": bool(x and x >= need), "text": text})
        log("target: %s: %s (%s)" % (text, "-" if x is None else ("met" if x >= need else "MISSED"),
                                     "%.2fx" % x if x else "n/a"))
    if b.errors:
        log("ERRORS:")
        for e in b.errors:
            log("  " + e)
    log("mailark log problems: %s" % (b.mk.problems()[:5] if hasattr(b, "mk") else []))

    def clean(rec: Dict) -> Dict:
        out = dict(rec)
        for k in ("stdout", "stderr"):
            if len(out.get(k, "")) > 4000:
                out[k] = out[k][:2000] + "\n...\n" + out[k][-2000:]
        return out

    os.makedirs(args.results_dir, exist_ok=True)
    out = os.path.join(args.results_dir, "backup-%s.json" % started.strftime("%Y%m%d-%H%M%S"))
    with open(out, "w") as f:
        json.dump({
            "benchmark": "backup",
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - t_start, 1),
            "machine": machine,
            "versions": versions,
            "settings": settings,
            "args": {k: v for k, v in vars(args).items()},
            "store": b.info.get("store"),
            "changes": b.info.get("changes"),
            "one_account": b.info.get("one_account"),
            "backup_list": b.info.get("backup_list"),
            "rows": {k: {t: clean(r) for t, r in b.rows[k].items()} for k, _ in ROWS},
            "diagnostics": {k: clean(r) for k, r in b.diagnostics.items()},
            "repository_bytes": b.repo_sizes,
            "targets": targets,
            "table": table,
            "all_verified": not b.errors,
            "errors": b.errors,
            "log_problems": b.mk.problems() if hasattr(b, "mk") else [],
        }, f, indent=2, default=str)
    log("results: %s (%.0f s)" % (out, time.monotonic() - t_start))
    return 0 if not b.errors else 1


if __name__ == "__main__":
    sys.exit(main())
