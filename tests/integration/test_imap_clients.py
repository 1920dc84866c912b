"""IMAP with real clients against a real `mailark serve`.

mbsync (isync 1.4) keeps a Maildir in two-way sync with the server over imap (plaintext on
loopback), imaps and STARTTLS: mail arrives over LMTP, folders and messages are changed on both
sides, and after each sync both sides must hold the same folders, messages (bytes) and flags; a
sync with nothing to do must change nothing. curl's imap:// and imaps:// URLs list, fetch (whole
messages, sections, partial), search and append. The server side is read back with imaplib
through EXAMINE and BODY.PEEK, which change nothing.

Failures carry the client's own trace: mbsync runs with -V -Dn (every IMAP command and answer),
curl with -v. Needs the Debian packages isync and curl (scripts/install-deps.sh).
"""

import calendar
import collections
import contextlib
import datetime
import hashlib
import imaplib
import json
import os
import re
import shutil
import subprocess
import time

import harness as h
from harness import LMTP, make_message

DOMAIN = "imap.test"
MBSYNC = shutil.which("mbsync")
CURL = shutil.which("curl")

SYSTEM_FLAGS = {f.lower(): f for f in
                ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent"]}
# Maildir info letters as mbsync 1.4 maps them (P = $Forwarded is new in 1.4)
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "P": "$Forwarded", "R": "\\Answered",
                 "S": "\\Seen", "T": "\\Deleted"}
NBULK = 30  # plain deliveries besides the special ones, in each mbsync scenario
DEFAULT_FOLDERS = ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
# commands that change the server; a sync with nothing to do must send none of them
WRITE_COMMANDS = {"APPEND", "STORE", "EXPUNGE", "CREATE", "DELETE", "RENAME", "MOVE", "COPY",
                  "SUBSCRIBE", "UNSUBSCRIBE", "SETQUOTA"}


ServerMsg = collections.namedtuple("ServerMsg", "flags body date")  # date: INTERNALDATE, epoch s


def epoch(text):
    """An IMAP date-time ("04-Mar-2021 05:06:07 +0100") as seconds since the epoch."""
    return int(datetime.datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())


def utc(y, mo, d, hh, mm, ss):
    return calendar.timegm((y, mo, d, hh, mm, ss, 0, 0, 0))


def sha(data: bytes):
    return hashlib.sha256(data).hexdigest()


def imap_quote(name: str):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def norm_flags(words):
    """Flag words as a sorted tuple; system flags in canonical case, \\Recent left out."""
    out = set()
    for w in words:
        w = w.decode() if isinstance(w, bytes) else w
        w = SYSTEM_FLAGS.get(w.lower(), w)
        if w != "\\Recent":
            out.add(w)
    return tuple(sorted(out))


def crlf(data: bytes):
    """mbsync stores Maildir messages with LF line ends; IMAP carries CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def lf(data: bytes):
    return data.replace(b"\r\n", b"\n")


_TUID = re.compile(rb"(?m)^X-TUID: [^\r\n]*\r?\n")


def strip_tuid(data: bytes):
    """mbsync adds an 'X-TUID: <12 chars>' line at the end of the header of every message it
    copies (either direction) to find it again after an interrupted sync; it is not the
    server's doing."""
    m = re.search(rb"\r?\n\r?\n", data)
    end = m.end() if m else len(data)
    return _TUID.sub(b"", data[:end], count=1) + data[end:]


def new_server(name):
    inst = h.Instance(name)
    inst.set_option("auth", "failure_delay_ms", "100")
    inst.add_tenant(DOMAIN)
    inst.start()
    with open(inst.ports_file) as f:
        ports = {k: int(v) for k, v in json.load(f).items()}
    for k in ("imap", "imaps", "lmtp"):
        assert k in ports, f"no {k} port in ports.json: {ports}"
    return inst, ports


def cert_path(inst):
    """The self-signed pair 'mailark init' writes: [tls] cert = "tls/cert.pem" in data_dir."""
    path = os.path.join(inst.data, "tls", "cert.pem")
    assert os.path.exists(path), f"no server certificate at {path}"
    return path


def deliver(port, user, messages):
    c = LMTP(port)
    try:
        for m in messages:
            _, rr, dr = c.transaction("sender@remote.test", [user], m)
            got = dr.get(user) or rr.get(user)
            if got is None or got.code != 250:
                raise AssertionError(f"LMTP delivery to {user} failed: {got}")
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# imaplib, read-only snapshots


_LIST_RE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:NIL|"(?:[^"\\]|\\.)*") (?P<name>.+)$')


def _unquote(raw: bytes):
    if raw.startswith(b'"') and raw.endswith(b'"'):
        return re.sub(rb"\\(.)", rb"\1", raw[1:-1])
    return raw


class Imap:
    """An imaplib session that fails loudly on anything but OK."""

    def __init__(self, port, user, password):
        self.c = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        self.ok(self.c.login(user, password), "LOGIN")

    @staticmethod
    def ok(res, what):
        typ, data = res
        if typ != "OK":
            raise AssertionError(f"IMAP {what} answered {typ} {data}")
        return data

    def close(self):
        try:
            self.c.logout()
        except Exception:
            pass

    def folders(self):
        """Selectable mailbox names as the server spells them (modified UTF-7)."""
        out = []
        for item in self.ok(self.c.list('""', "*"), "LIST"):
            if item is None:
                continue
            if isinstance(item, tuple):  # name sent as a literal
                attrs = re.match(rb"^\(([^)]*)\)", item[0]).group(1)
                name = item[1]
            else:
                m = _LIST_RE.match(item)
                assert m, f"unparsable LIST reply {item!r}"
                attrs, name = m.group("attrs"), _unquote(m.group("name"))
            if re.search(rb"(?i)\\(noselect|nonexistent)\b", attrs):
                continue
            out.append(name.decode())
        return out

    def create(self, name):
        self.ok(self.c.create(imap_quote(name)), f"CREATE {name}")

    def append(self, folder, flags, message, date=None):
        """date: an IMAP date-time string, or None for the server's clock."""
        self.ok(self.c.append(imap_quote(folder), flags or None,
                              f'"{date}"' if date else None, message), f"APPEND {folder}")

    def select(self, folder, readonly=False):
        return int(self.ok(self.c.select(imap_quote(folder), readonly=readonly),
                           f"SELECT {folder}")[0])

    def uid(self, *args):
        return self.ok(self.c.uid(*args), "UID " + " ".join(args))

    def _code(self, name):
        v = self.c.untagged_responses.get(name)
        return int(v[-1]) if v else None

    def mailbox(self, folder):
        """EXAMINE folder -> dict(uidvalidity, uidnext, highestmodseq, msgs={uid: ServerMsg})."""
        exists = self.select(folder, readonly=True)
        info = dict(uidvalidity=self._code("UIDVALIDITY"), uidnext=self._code("UIDNEXT"),
                    highestmodseq=self._code("HIGHESTMODSEQ"), msgs={})
        if exists:
            flags, dates = {}, {}
            for line in self.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE)"):
                if not isinstance(line, bytes):
                    continue
                mu = re.search(rb"\bUID (\d+)", line)
                mf = re.search(rb"\bFLAGS \(([^)]*)\)", line)
                md = re.search(rb'\bINTERNALDATE "([^"]*)"', line)
                assert mu and mf and md, f"FETCH (UID FLAGS INTERNALDATE) reply {line!r}"
                flags[int(mu.group(1))] = norm_flags(mf.group(1).split())
                dates[int(mu.group(1))] = epoch(md.group(1).decode())
            assert len(flags) == exists, (
                f"{folder}: EXISTS {exists} but FETCH 1:* returned {len(flags)} messages")
            for u, f in sorted(flags.items()):
                data = self.uid("FETCH", str(u), "(BODY.PEEK[])")
                bodies = [x[1] for x in data if isinstance(x, tuple)]
                assert len(bodies) == 1, f"{folder} UID {u}: FETCH BODY.PEEK[] gave {data!r}"
                info["msgs"][u] = ServerMsg(f, bodies[0], dates[u])
        self.c.close()
        return info

    def state(self):
        """Every selectable folder -> mailbox()."""
        return {name: self.mailbox(name) for name in self.folders()}


# ---------------------------------------------------------------------------------------------
# Maildir as mbsync 1.4 writes it (SubFolders Verbatim, UIDs in the file names: ",U=<uid>")


def maildir_folders(root):
    out = {}
    for dirpath, dirnames, _ in os.walk(root):
        if {"cur", "new", "tmp"} <= set(dirnames):
            out[os.path.relpath(dirpath, root)] = dirpath
    return out


def maildir_state(root):
    """folder -> list of dict(path, uid (None before the first upload), flags, body, mtime)."""
    out = {}
    for folder, path in maildir_folders(root).items():
        msgs = []
        for sub in ("new", "cur"):
            for fn in sorted(os.listdir(os.path.join(path, sub))):
                base, sep, info = fn.partition(":2,")
                m = re.search(r",U=(\d+)", base)
                with open(os.path.join(path, sub, fn), "rb") as f:
                    body = f.read()
                    mtime = int(os.fstat(f.fileno()).st_mtime)
                msgs.append(dict(path=os.path.join(path, sub, fn), mtime=mtime,
                                 uid=int(m.group(1)) if m else None,
                                 flags=norm_flags(MAILDIR_FLAGS.get(ch, "?" + ch) for ch in info),
                                 body=body))
        out[folder] = msgs
    return out


def mbsync_state(folder_dir):
    """.mbsyncstate (SyncState *): header 'Key value' lines, an empty line, then one
    'far-uid near-uid flags' line per paired message."""
    with open(os.path.join(folder_dir, ".mbsyncstate")) as f:
        head, _, body = f.read().partition("\n\n")
    st = {k: int(v) for k, v in (l.split() for l in head.splitlines() if l.strip())}
    st["pairs"] = []
    for line in body.splitlines():
        far, near, *flags = line.split(" ")
        st["pairs"].append((int(far), int(near), "".join(flags)))
    return st


def tree_snapshot(root):
    """Every file under root (messages, .uidvalidity, .mbsyncstate) -> sha256 of its bytes."""
    snap = {}
    for dirpath, dirnames, files in os.walk(root):
        for d in dirnames:
            snap[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for fn in files:
            p = os.path.join(dirpath, fn)
            with open(p, "rb") as f:
                snap[os.path.relpath(p, root)] = sha(f.read())
    return snap


def set_maildir_flags(path, letters):
    """What a mail reader does: new flags in the info part, and the file moves to cur/."""
    folder = os.path.dirname(os.path.dirname(path))
    base = os.path.basename(path).partition(":2,")[0]
    dst = os.path.join(folder, "cur", base + ":2," + "".join(sorted(letters)))
    os.rename(path, dst)
    return dst


_local_serial = [0]


def add_maildir_message(folder_dir, body, letters="", mtime=None):
    """Delivers like a Maildir writer: tmp/ first, then new/ (or cur/ when flagged). mbsync
    takes the file's mtime as the arrival date."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(folder_dir, sub), exist_ok=True)
    _local_serial[0] += 1
    fn = f"{int(time.time())}.P{os.getpid()}Q{_local_serial[0]}.testhost:2,{letters}"
    tmp = os.path.join(folder_dir, "tmp", fn)
    with open(tmp, "wb") as f:
        f.write(body)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.rename(tmp, os.path.join(folder_dir, "cur" if letters else "new", fn))


# ---------------------------------------------------------------------------------------------


class MbsyncTest(h.MailarkTestCase):
    """mbsync two-way sync; one user per transport on one server."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        assert MBSYNC, "mbsync not installed: run scripts/install-deps.sh (Debian package isync)"
        cls.inst, cls.ports = new_server("mbsync")
        cls.shared_instances = [cls.inst]
        cls.version = subprocess.run([MBSYNC, "--version"], capture_output=True,
                                     text=True).stdout.strip()

    @classmethod
    def tearDownClass(cls):
        rc = cls.inst.stop()
        if rc != 0:
            raise AssertionError(f"server exit code {rc} on SIGTERM\n{cls.inst.log_tail()}")

    # -- mbsync runs

    def write_config(self, mode, user, password):
        port = self.ports["imaps" if mode == "IMAPS" else "imap"]
        tls = ""
        if mode != "None":
            tls = f"CertificateFile {cert_path(self.inst)}\nSystemCertificates no\n"
        self.rc = os.path.join(self.dir, "mbsyncrc")
        with open(self.rc, "w") as f:
            f.write(f"""IMAPAccount server
Host 127.0.0.1
Port {port}
User {user}
Pass {password}
SSLType {mode}
{tls}Timeout 20

IMAPStore far
Account server

MaildirStore near
Path {self.maildir}/
Inbox {self.maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
CopyArrivalDate yes
SyncState *
""")

    def mbsync(self, label):
        """Runs `mbsync -V -Dn -a`; fails unless it exits 0 without complaints.
        Returns the IMAP commands it sent."""
        env = dict(os.environ, HOME=self.dir)
        t0 = time.time()
        p = subprocess.run([MBSYNC, "-V", "-Dn", "-c", self.rc, "-a"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60, env=env, cwd=self.dir)
        out = p.stdout.decode(errors="replace")
        with open(os.path.join(self.dir, f"mbsync-{label}.log"), "w") as f:
            f.write(out)
        self.runs.append((label, p.returncode, time.time() - t0, out))
        sent_re = r"^(?:\(\d+ in progress\) )?>>> \d+ (.*?)\r?$"  # -Dn: a command sent
        sent = re.findall(sent_re, out, re.M)
        complaints = [l for l in out.splitlines()
                      if not re.match(sent_re, l) and not l.startswith(("* ", "+ "))
                      and not re.match(r"\d+ (OK|NO|BAD)\b", l)
                      and re.search(r"(?i)\b(error|warning|fail|unexpected|malformed|bogus)", l)]
        with self.context(f"mbsync run '{label}'"):
            self.assertEqual(p.returncode, 0, "mbsync exit code")
            self.assertEqual(complaints, [], "mbsync complained")
        return sent

    def mbsync_logs(self, lines=250):
        out = [f"--- {self.version}; config {self.rc}"]
        for label, rc, took, text in self.runs:
            tail = text.splitlines()
            cut = f" (last {lines} of {len(tail)} lines)" if len(tail) > lines else ""
            out.append(f"--- mbsync -V -Dn, run '{label}': exit {rc}, {took:.1f}s{cut}")
            out += tail[-lines:]
        return "\n".join(out)

    @contextlib.contextmanager
    def context(self, what):
        try:
            yield
        except AssertionError as e:
            raise AssertionError(f"{what}: {e}\n{self.mbsync_logs()}") from None

    # -- views

    def label(self, body, local=False):
        """A readable name for a message body, without mbsync's X-TUID line and, for the
        Maildir's copy, with CRLF line ends restored."""
        name = self.names.get(sha(crlf(strip_tuid(body)) if local else strip_tuid(body)))
        return name or f"?{len(body)}B:{body[:80]!r}"

    def server_view(self, state):
        return {f: sorted((self.label(x.body), x.flags) for x in mb["msgs"].values())
                for f, mb in state.items()}

    def expected_view(self, expected):
        return {f: sorted((name, norm_flags(fl)) for name, fl in msgs)
                for f, msgs in expected.items()}

    def assert_converged(self, expected, what):
        """Server and Maildir both hold exactly `expected` ({folder: [(name, flags)]}), with the
        same UID for each message on both sides. Returns (server state, maildir state)."""
        im = Imap(self.ports["imap"], self.user, self.password)
        try:
            server = im.state()
        finally:
            im.close()
        local = maildir_state(self.maildir)
        with self.context(what):
            self.assertEqual(self.server_view(server), self.expected_view(expected),
                             "server folders / messages / flags")
            self.assertEqual(sorted(local), sorted(server), "Maildir folders vs server folders")
            for folder, msgs in local.items():
                no_uid = [m["path"] for m in msgs if m["uid"] is None]
                self.assertEqual(no_uid, [], f"{folder}: local messages never synced")
                # Maildir UIDs are mbsync's own; .mbsyncstate pairs them with the server's
                st = mbsync_state(os.path.join(self.maildir, folder))
                self.assertEqual(st["FarUidValidity"], server[folder]["uidvalidity"],
                                 f"{folder}: UIDVALIDITY in .mbsyncstate vs server")
                far_of = {near: far for far, near, _ in st["pairs"]}
                self.assertEqual(sorted(far_of), sorted(m["uid"] for m in msgs),
                                 f"{folder}: .mbsyncstate pairs vs Maildir UIDs")
                lv = {far_of[m["uid"]]: (self.label(m["body"], True), m["flags"]) for m in msgs}
                sv = {u: (self.label(x.body), x.flags) for u, x in server[folder]["msgs"].items()}
                self.assertEqual(lv, sv, f"{folder}: Maildir {{server UID: (message, flags)}} "
                                 "vs server")
                for m in msgs:  # byte for byte, but for the LF line ends and X-TUID of mbsync
                    far = server[folder]["msgs"][far_of[m["uid"]]]
                    self.assertEqual(crlf(strip_tuid(m["body"])), strip_tuid(far.body),
                                     f"{folder} UID {far_of[m['uid']]}: bytes differ")
                    self.assertNotIn(b"\r", m["body"].replace(b"\r\n", b""))
                    # CopyArrivalDate: file mtime = INTERNALDATE
                    self.assertEqual(m["mtime"], far.date, f"{folder} UID {far_of[m['uid']]} "
                                     f"({self.label(far.body)}): Maildir mtime vs INTERNALDATE")
            for folder, mb in server.items():  # what the server had first is unchanged
                for u, x in mb["msgs"].items():
                    name = self.label(x.body)
                    if name in self.server_originals:
                        self.assertEqual(x.body, self.originals[name],
                                         f"server {folder} UID {u} ({name}) is not the original")
                    if name in self.dates:
                        self.assertEqual(x.date, self.dates[name],
                                         f"server {folder} UID {u} ({name}): INTERNALDATE")
            tmp = [os.path.join(p, "tmp", x) for p in maildir_folders(self.maildir).values()
                   for x in os.listdir(os.path.join(p, "tmp"))]
            self.assertEqual(tmp, [], "files left in tmp/")
        return server, local

    def local_file(self, local, folder, name):
        hits = [m["path"] for m in local[folder] if self.label(m["body"], True) == name]
        self.assertEqual(len(hits), 1, f"{name} in local {folder}: {hits}")
        return hits[0]

    @staticmethod
    def uid_of(server, folder, body):
        hits = [u for u, x in server[folder]["msgs"].items() if x.body == body]
        assert len(hits) == 1, f"message not exactly once in server {folder}: {hits}"
        return hits[0]

    # -- the scenario

    def scenario(self, mode):
        self.runs = []
        self.rc = None
        self.dir = h.new_tmpdir(f"mailark-mbsync-{mode.lower()}-")
        self.maildir = os.path.join(self.dir, "Mail")
        os.makedirs(self.maildir)
        self.user = f"sync-{mode.lower()}@{DOMAIN}"
        self.password = f"pw-{mode.lower()}-7"
        self.inst.add_user(self.user, password=self.password)
        t = mode.lower()

        m = {
            "m0": make_message(f"{t}-m0@client.test", 900, to=self.user),
            "m1": ("From: =?UTF-8?Q?J=C3=BCrgen?= <j@remote.test>\r\nTo: <%s>\r\n"
                   "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <%s-m1@client.test>\r\n"
                   "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln — 東京\r\n"
                   % (self.user, t)).encode(),
            "m2": (b"From: dots@remote.test\r\nSubject: dots and From lines\r\nMessage-ID: <"
                   + t.encode() + b"-m2@client.test>\r\n\r\n.\r\n..two\r\nFrom the start\r\n"
                   b">From quoted\r\n\r\n\r\nend\r\n"),
            "m3": make_message(f"{t}-m3@client.test", 150_000, to=self.user),
            "m4": make_message(f"{t}-m4@client.test", 700, to=self.user),
            "m5": make_message(f"{t}-m5@client.test", 1200, to=self.user),
            "big": make_message(f"{t}-big@client.test", 3_000_000, to=self.user),
            # appended on the server
            "A": make_message(f"{t}-A@client.test", 600, subject="A in Work, seen"),
            "B": make_message(f"{t}-B@client.test", 650, subject="B in Work, flagged answered"),
            "C": make_message(f"{t}-C@client.test", 700, subject="C appended later"),
            "D": make_message(f"{t}-D@client.test", 500, subject="D draft in Work/Sub"),
            "H": make_message(f"{t}-H@client.test", 800, subject="H appended to INBOX"),
            # written into the Maildir
            "E": make_message(f"{t}-E@client.test", 550, subject="E local in Work/Sub"),
            "F": make_message(f"{t}-F@client.test", 560, subject="F local in Projects 2026"),
            "G": make_message(f"{t}-G@client.test", 570, subject="G local in a new folder"),
        }
        bulk = [f"n{i:02}" for i in range(NBULK)]  # plain deliveries, many changed below
        for i, n in enumerate(bulk):
            m[n] = make_message(f"{t}-{n}@client.test", 300 + 397 * i, to=self.user)
        self.names = {sha(b): n for n, b in m.items()}
        self.originals = m
        self.server_originals = {n for n in m if n not in ("E", "F", "G")}
        self.dates = {"A": utc(2021, 3, 4, 4, 6, 7), "B": utc(2020, 1, 1, 8, 30, 0),
                      "D": utc(2024, 2, 29, 23, 59, 59), "C": utc(2022, 7, 1, 22, 0, 0),
                      "E": utc(2018, 5, 6, 7, 8, 9), "F": utc(2019, 12, 31, 23, 59, 59),
                      "G": utc(2023, 10, 29, 1, 30, 0)}

        # mail arrives; folders and flagged messages exist on the server only
        inbox = [f"m{i}" for i in range(6)] + ["big"] + bulk
        deliver(self.ports["lmtp"], self.user, [m[n] for n in inbox])
        im = Imap(self.ports["imap"], self.user, self.password)
        try:
            for folder in ["Work", "Work/Sub", "Projects 2026", "Caf&AOk-"]:  # Caf&AOk- = Café
                im.create(folder)
            im.append("Work", "(\\Seen)", m["A"], "04-Mar-2021 05:06:07 +0100")
            im.append("Work", "(\\Flagged \\Answered)", m["B"], " 1-Jan-2020 00:00:00 -0830")
            im.append("Work/Sub", "(\\Draft)", m["D"], "29-Feb-2024 23:59:59 +0000")
        finally:
            im.close()
        self.write_config(mode, self.user, self.password)
        # expected state: folder -> {message: flags}
        want = {f: {} for f in DEFAULT_FOLDERS + ["Work", "Work/Sub", "Projects 2026",
                                                   "Caf&AOk-"]}
        want["INBOX"] = {n: () for n in inbox}
        want["Work"] = {"A": ["\\Seen"], "B": ["\\Flagged", "\\Answered"]}
        want["Work/Sub"] = {"D": ["\\Draft"]}

        def expected():
            return {f: list(msgs.items()) for f, msgs in want.items()}

        # -- sync 1: the server's folders and messages come down
        self.mbsync("1 initial")
        server, local = self.assert_converged(expected(), "after sync 1")
        for f in ["INBOX", "Work/Sub", "Caf&AOk-", "Projects 2026"]:
            self.assertTrue(os.path.isdir(os.path.join(self.maildir, f, "cur")), f)

        # -- changes on both sides
        # Maildir: a mail reader renames files for flags, deletes files, writes new ones
        def local_flags(folder, name, letters):
            set_maildir_flags(self.local_file(local, folder, name), letters)

        local_flags("INBOX", "m0", "S")
        want["INBOX"]["m0"] = ["\\Seen"]
        for n in ["m1", "n12", "n13"]:
            os.unlink(self.local_file(local, "INBOX", n))
            del want["INBOX"][n]
        local_flags("Work", "A", "ST")  # marked deleted: expunged on both sides
        del want["Work"]["A"]
        local_flags("Work/Sub", "D", "")  # \Draft taken off
        want["Work/Sub"]["D"] = ()
        local_flags("INBOX", "n07", "S")  # the server flags n07 too: both flags survive
        want["INBOX"]["n07"] = ["\\Seen", "\\Flagged"]
        local_flags("INBOX", "n09", "P")  # P = $Forwarded
        want["INBOX"]["n09"] = ["$Forwarded"]
        local_flags("INBOX", "n10", "RS")
        want["INBOX"]["n10"] = ["\\Answered", "\\Seen"]
        add_maildir_message(os.path.join(self.maildir, "Work", "Sub"), lf(m["E"]), "",
                            self.dates["E"])
        want["Work/Sub"]["E"] = ()
        add_maildir_message(os.path.join(self.maildir, "Projects 2026"), lf(m["F"]), "S",
                            self.dates["F"])
        want["Projects 2026"]["F"] = ["\\Seen"]
        add_maildir_message(os.path.join(self.maildir, "Work", "LocalChild"), lf(m["G"]), "F",
                            self.dates["G"])  # a new folder, created on the server by mbsync
        want["Work/LocalChild"] = {"G": ["\\Flagged"]}

        # server, over IMAP
        def uids(folder, *names):
            return ",".join(str(self.uid_of(server, folder, m[n])) for n in names)

        im = Imap(self.ports["imap"], self.user, self.password)
        try:
            im.select("INBOX")
            im.uid("STORE", uids("INBOX", "m2", "n07"), "+FLAGS", "(\\Flagged)")
            want["INBOX"]["m2"] = ["\\Flagged"]
            im.uid("STORE", uids("INBOX", "n08"), "+FLAGS", "($Forwarded)")
            want["INBOX"]["n08"] = ["$Forwarded"]
            im.uid("STORE", uids("INBOX", "n11"), "+FLAGS", "(\\Seen \\Answered \\Draft)")
            want["INBOX"]["n11"] = ["\\Seen", "\\Answered", "\\Draft"]
            im.uid("MOVE", uids("INBOX", "m3"), imap_quote("Projects 2026"))
            want["Projects 2026"]["m3"] = want["INBOX"].pop("m3")
            im.uid("MOVE", uids("INBOX", "n15", "n16"), "Work")
            want["Work"]["n15"] = want["INBOX"].pop("n15")
            want["Work"]["n16"] = want["INBOX"].pop("n16")
            im.uid("STORE", uids("INBOX", "m4", "n14"), "+FLAGS", "(\\Deleted)")
            im.ok(im.c.expunge(), "EXPUNGE")
            del want["INBOX"]["m4"], want["INBOX"]["n14"]
            im.uid("STORE", uids("INBOX", "n05"), "+FLAGS", "(\\Deleted)")  # left unexpunged:
            del want["INBOX"]["n05"]  # mbsync (Expunge Both) removes it on both sides
            im.select("Work")
            im.uid("STORE", uids("Work", "B"), "-FLAGS", "(\\Answered)")
            want["Work"]["B"] = ["\\Flagged"]
            im.c.close()
            im.append("Work", "(\\Seen)", m["C"], "02-Jul-2022 00:00:00 +0200")
            want["Work"]["C"] = ["\\Seen"]
            im.append("INBOX", "", m["H"])
            want["INBOX"]["H"] = ()
        finally:
            im.close()

        # -- sync 2: both sides converge
        sent = self.mbsync("2 both sides changed")
        self.assert_converged(expected(), "after sync 2")
        with self.context("sync 2"):
            self.assertTrue(any(re.match(r'(?i)CREATE "?Work/LocalChild"?$', c) for c in sent),
                            "mbsync did not create Work/LocalChild on the server")

        # -- sync 3: nothing to do, nothing changes on either side
        im = Imap(self.ports["imap"], self.user, self.password)
        try:
            before_server = im.state()
        finally:
            im.close()
        before_local = tree_snapshot(self.maildir)
        sent = self.mbsync("3 nothing to do")
        im = Imap(self.ports["imap"], self.user, self.password)
        try:
            after_server = im.state()
        finally:
            im.close()
        after_local = tree_snapshot(self.maildir)
        with self.context("sync 3 (nothing to do)"):
            writes = [c for c in sent if c.split()[0].upper() in WRITE_COMMANDS or
                      (c.split()[0].upper() == "UID" and c.split()[1].upper() in WRITE_COMMANDS)]
            self.assertEqual(writes, [], "mbsync changed the server")
            self.assertEqual(after_server, before_server,
                             "server state (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, messages, flags)")
            self.assertEqual(after_local, before_local, "Maildir files")
        self.assert_converged(expected(), "after sync 3")

    def test_plaintext_loopback(self):
        self.scenario("None")

    def test_imaps(self):
        self.scenario("IMAPS")

    def test_starttls(self):
        self.scenario("STARTTLS")
        self.assertTrue(any(re.search(r"(?m)^>>> \d+ STARTTLS\r?$", out) for *_, out in self.runs),
                        "mbsync did not use STARTTLS\n" + self.mbsync_logs(60))


# ---------------------------------------------------------------------------------------------

MULTIPART = (b"From: mp@remote.test\r\nSubject: multipart\r\nMessage-ID: <mp@client.test>\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n"
             b"preamble\r\n--BOUND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
             b"part one\r\n--BOUND\r\nContent-Type: application/octet-stream\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--BOUND--\r\n"
             b"epilogue\r\n")


class CurlTest(h.MailarkTestCase):
    """curl's IMAP URLs (RFC 5092) against one mailbox:
    INBOX UID 2 = x1 "hello world", 3 = x2 "foo report", 4 = x3 "another foo", 5 = multipart
    (UID 1 was expunged, so UIDs and sequence numbers differ by one);
    Work: w1 (\\Seen), w2; Work/Sub; "Projects 2026"."""

    USER = f"carol@{DOMAIN}"
    PASSWORD = "pw-carol-3"

    @classmethod
    def setUpClass(cls):
        assert CURL, "curl not installed: run scripts/install-deps.sh"
        cls.inst, cls.ports = new_server("curl")
        cls.shared_instances = [cls.inst]
        cls.inst.add_user(cls.USER, password=cls.PASSWORD)
        cls.cert = cert_path(cls.inst)
        cls.x = [make_message("x0@client.test", 500, subject="expunged before the tests"),
                 make_message("x1@client.test", 1500, subject="hello world"),
                 make_message("x2@client.test", 900, subject="foo report"),
                 make_message("x3@client.test", 800, subject="another foo")]
        cls.w = [make_message("w1@client.test", 400, subject="work one"),
                 make_message("w2@client.test", 450, subject="work two")]
        deliver(cls.ports["lmtp"], cls.USER, cls.x + [MULTIPART])
        im = Imap(cls.ports["imap"], cls.USER, cls.PASSWORD)
        try:
            for f in ["Work", "Work/Sub", "Projects 2026"]:
                im.create(f)
            im.append("Work", "(\\Seen)", cls.w[0])
            im.append("Work", "", cls.w[1])
            im.select("Work")  # a read-write SELECT claims \Recent: later sessions see none
            im.c.close()
            im.select("INBOX")
            im.uid("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
            im.ok(im.c.expunge(), "EXPUNGE")
            got = im.uid("FETCH", "1:*", "(UID)")
        finally:
            im.close()
        uids = sorted(int(re.search(rb"UID (\d+)", x).group(1)) for x in got)
        assert uids == [2, 3, 4, 5], f"unexpected INBOX UIDs {uids}"

    @classmethod
    def tearDownClass(cls):
        rc = cls.inst.stop()
        if rc != 0:
            raise AssertionError(f"server exit code {rc} on SIGTERM\n{cls.inst.log_tail()}")

    def curl(self, url, *args, rc=0, user=None):
        """curl -v URL ARGS; fails (with curl's protocol trace) unless the exit code is rc."""
        cmd = [CURL, "-q", "-sS", "-v", "--max-time", "20",
               "-u", user or f"{self.USER}:{self.PASSWORD}", *args, url]
        p = subprocess.run(cmd, capture_output=True, timeout=40)
        p.trace = (f"$ {' '.join(cmd)}\nexit {p.returncode}\n--- curl -v\n"
                   + p.stderr.decode(errors="replace"))
        self.assertEqual(p.returncode, rc, p.trace)
        return p

    def assertOutput(self, p, expected: bytes):
        self.assertEqual(p.stdout, expected, p.trace)

    def url(self, path="", scheme="imap", host="127.0.0.1"):
        port = self.ports["imaps" if scheme == "imaps" else "imap"]
        return f"{scheme}://{host}:{port}/{path}"

    def imap(self):
        im = Imap(self.ports["imap"], self.USER, self.PASSWORD)
        self.addCleanup(im.close)
        return im

    LIST_ALL = (b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
                b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
                b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
                b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
                b'* LIST (\\HasNoChildren) "/" "Projects 2026"\r\n'
                b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
                b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n'
                b'* LIST (\\HasChildren) "/" "Work"\r\n'
                b'* LIST (\\HasNoChildren) "/" "Work/Sub"\r\n')

    # ---- list

    def test_list(self):
        """imap://host/ sends LIST "" *."""
        self.assertOutput(self.curl(self.url()), self.LIST_ALL)

    def test_list_under_folder(self):
        """imap://host/Work/ sends LIST "Work" * (reference + pattern = Work*)."""
        self.assertOutput(self.curl(self.url("Work/")),
                          b'* LIST (\\HasChildren) "/" "Work"\r\n'
                          b'* LIST (\\HasNoChildren) "/" "Work/Sub"\r\n')

    # ---- fetch

    def test_fetch_by_uid(self):
        self.assertOutput(self.curl(self.url("INBOX;UID=2")), self.x[1])

    def test_fetch_by_uid_with_uidvalidity(self):
        im = self.imap()
        im.select("INBOX", readonly=True)
        uidvalidity = im._code("UIDVALIDITY")
        self.assertOutput(self.curl(self.url(f"INBOX;UIDVALIDITY={uidvalidity};UID=3")), self.x[2])

    def test_fetch_sets_seen(self):
        """A FETCH of BODY[] (not BODY.PEEK[]) sets \\Seen (RFC 3501 6.4.5); only x3 is
        fetched here."""
        im = self.imap()
        im.select("INBOX", readonly=True)
        before = im.uid("FETCH", "4", "(FLAGS)")
        im.c.close()
        self.assertNotIn(b"\\Seen", before[0])
        self.assertOutput(self.curl(self.url("INBOX;UID=4")), self.x[3])
        im.select("INBOX", readonly=True)
        after = im.uid("FETCH", "4", "(FLAGS)")
        self.assertIn(b"\\Seen", after[0])

    def test_fetch_by_sequence_number_header_field(self):
        """MAILINDEX=2 is sequence number 2 = UID 3."""
        p = self.curl(self.url("INBOX;MAILINDEX=2;SECTION=HEADER.FIELDS%20(SUBJECT)"))
        self.assertOutput(p, b"Subject: foo report\r\n\r\n")

    def test_fetch_text_partial(self):
        head, _, body = self.x[1].partition(b"\r\n\r\n")
        self.assertOutput(self.curl(self.url("INBOX;UID=2;SECTION=TEXT;PARTIAL=0.20")), body[:20])
        self.assertOutput(self.curl(self.url("INBOX;UID=2;SECTION=TEXT;PARTIAL=10.5")),
                          body[10:15])
        self.assertOutput(self.curl(self.url("INBOX;UID=2;SECTION=HEADER")), head + b"\r\n\r\n")

    def test_fetch_part_of_single_part_message(self):
        """BODY[1] of a non-multipart message is its body (RFC 3501 6.4.5)."""
        body = self.x[2].partition(b"\r\n\r\n")[2]
        self.assertOutput(self.curl(self.url("INBOX;UID=3;SECTION=1")), body)

    def test_fetch_mime_parts(self):
        self.assertOutput(self.curl(self.url("INBOX;UID=5")), MULTIPART)
        self.assertOutput(self.curl(self.url("INBOX;UID=5;SECTION=1")), b"part one")
        self.assertOutput(self.curl(self.url("INBOX;UID=5;SECTION=2")), b"AAECAwQFBgcICQ==")
        self.assertOutput(self.curl(self.url("INBOX;UID=5;SECTION=2.MIME")),
                          b"Content-Type: application/octet-stream\r\n"
                          b"Content-Transfer-Encoding: base64\r\n\r\n")

    def test_fetch_missing_message(self):
        """UID FETCH of a UID that does not exist is OK with no data; FETCH of a sequence number
        beyond EXISTS an error: either way no output, curl exit 78 (CURLE_REMOTE_FILE_NOT_FOUND)."""
        for path in ["INBOX;UID=99", "INBOX;MAILINDEX=99"]:
            p = self.curl(self.url(path), rc=78)
            self.assertEqual(p.stdout, b"", p.trace)

    # ---- search and other custom commands

    def test_uid_search(self):
        p = self.curl(self.url("INBOX"), "-X", "UID SEARCH SUBJECT foo")
        self.assertOutput(p, b"* SEARCH 3 4\r\n")

    def test_search_url_query(self):
        """imap://host/INBOX?SUBJECT%20foo sends SEARCH SUBJECT foo: sequence numbers."""
        self.assertOutput(self.curl(self.url("INBOX?SUBJECT%20foo")), b"* SEARCH 2 3\r\n")

    def test_search_no_match(self):
        p = self.curl(self.url("INBOX"), "-X", "UID SEARCH SUBJECT nothing-like-this")
        self.assertOutput(p, b"* SEARCH\r\n")

    def test_status(self):
        p = self.curl(self.url(), "-X", "STATUS Work (MESSAGES UIDNEXT UNSEEN)")
        self.assertOutput(p, b'* STATUS "Work" (MESSAGES 2 UIDNEXT 3 UNSEEN 1)\r\n')

    def test_custom_fetch(self):
        p = self.curl(self.url("Work"), "-X", "FETCH 1:* (FLAGS)")
        self.assertOutput(p, b"* 1 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (FLAGS ())\r\n")

    # ---- append (upload)

    def upload(self, folder_url, body):
        d = h.new_tmpdir("mailark-curl-")
        path = os.path.join(d, "upload.eml")
        with open(path, "wb") as f:
            f.write(body)
        return self.curl(self.url(folder_url), "-T", path)

    def test_append_upload(self):
        body = make_message("upload@client.test", 3000, subject="uploaded with curl")
        p = self.upload("Work/Sub", body)
        self.assertEqual(p.stdout, b"", p.trace)
        self.assertRegex(p.stderr.decode(errors="replace"), r"(?m)^< A\d+ OK \[APPENDUID \d+ 1\]")
        mb = self.imap().mailbox("Work/Sub")
        # curl appends with (\Seen)
        self.assertEqual([(x.flags, x.body) for x in mb["msgs"].values()],
                         [(("\\Seen",), body)], p.trace)

    def test_append_and_fetch_folder_with_space(self):
        body = make_message("space@client.test", 1000, subject="in a folder with a space")
        self.upload("Projects%202026", body)
        self.assertOutput(self.curl(self.url("Projects%202026;UID=1")), body)

    # ---- TLS

    def test_imaps_localhost_cacert(self):
        port = self.ports["imaps"]
        p = self.curl(self.url("INBOX;UID=2", "imaps", "localhost"), "--cacert", self.cert,
                      "--resolve", f"localhost:{port}:127.0.0.1")
        self.assertOutput(p, self.x[1])
        p = self.curl(self.url("", "imaps", "localhost"), "--cacert", self.cert,
                      "--resolve", f"localhost:{port}:127.0.0.1")
        self.assertOutput(p, self.LIST_ALL)

    def test_imaps_ip_address(self):
        """The certificate names 127.0.0.1 too."""
        p = self.curl(self.url("", "imaps"), "--cacert", self.cert)
        self.assertOutput(p, self.LIST_ALL)

    def test_imaps_certificate_is_checked(self):
        """Without the certificate, or under a name it does not carry, curl refuses (exit 60):
        the checks above are real."""
        port = self.ports["imaps"]
        self.curl(self.url("", "imaps"), rc=60)
        self.curl(self.url("", "imaps", "wrong.test"), "--cacert", self.cert,
                  "--resolve", f"wrong.test:{port}:127.0.0.1", rc=60)

    def test_starttls(self):
        port = self.ports["imap"]
        p = self.curl(self.url("", "imap", "localhost"), "--ssl-reqd", "--cacert", self.cert,
                      "--resolve", f"localhost:{port}:127.0.0.1")
        self.assertOutput(p, self.LIST_ALL)
        self.assertRegex(p.stderr.decode(errors="replace"), r"(?m)^> A\d+ STARTTLS\r?$")

    # ---- authentication

    def test_sasl_authzid(self):
        """AUTHENTICATE PLAIN with an authorization identity: the login's own is accepted,
        another one refused."""
        p = self.curl(self.url("Work/"), "--sasl-authzid", self.USER)
        self.assertOutput(p, b'* LIST (\\HasChildren) "/" "Work"\r\n'
                             b'* LIST (\\HasNoChildren) "/" "Work/Sub"\r\n')
        p = self.curl(self.url(), "--sasl-authzid", f"other@{DOMAIN}", rc=67)
        self.assertEqual(p.stdout, b"", p.trace)

    def test_wrong_password(self):
        p = self.curl(self.url(), user=f"{self.USER}:wrong-password", rc=67)  # CURLE_LOGIN_DENIED
        self.assertEqual(p.stdout, b"", p.trace)


if __name__ == "__main__":
    h.main()
