"""Malformed and misplaced IMAP commands against a real `mailark serve`.

Each entry of the tables is answered as RFC 3501 / RFC 9051 say (tagged BAD for syntax errors
and commands in the wrong state, NO where the command is well-formed but cannot be done),
the same connection then serves the next command, and nothing in the store changed (STATUS,
LIST and the flags compared before and after, seen from a second connection). Also: the
literal and line limits, many BADs in a row, and untagged BAD for lines without a usable tag.

Server options: [delivery] max_message_size = "100KB" (literal limit), [imap] max_line = "8KB".
"""

import re

import harness as h
import imap_client as ic
from imap_client import Imap, Lit

DOMAIN = "acme.test"
PW = "secret-pw"
USER = f"bad@{DOMAIN}"
LIMIT = 100 * 1024
MAX_LINE = 8 * 1024

BAD = ("BAD",)
NO = ("NO",)
BAD_OR_NO = ("BAD", "NO")

# (state, command, accepted statuses). state: "noauth", "auth", "selected", "examined".
# Commands are sent as raw lines (str or bytes), each with its own tag.
CASES = [
    # unknown commands, arguments missing or extra
    ("noauth", "FROBNICATE", BAD),
    ("selected", "FROBNICATE 1 2 3", BAD),
    ("selected", "NOOP extra", BAD),
    ("selected", "CAPABILITY extra", BAD),
    ("selected", "CHECK extra", BAD),
    ("selected", "CLOSE extra", BAD),
    ("selected", "EXPUNGE 1", BAD),
    ("auth", "SELECT", BAD),
    ("auth", "SELECT INBOX (FOO)", BAD),
    ("auth", "EXAMINE", BAD),
    ("auth", "CREATE", BAD),
    ("auth", "DELETE", BAD),
    ("auth", "RENAME Drafts", BAD),
    ("auth", "SUBSCRIBE", BAD),
    ("auth", "LIST", BAD),
    ("auth", 'LIST ""', BAD),
    ("auth", 'LIST (FOO) "" "*"', BAD),  # RFC 5258 3: unknown selection option
    ("auth", 'LIST "" "*" RETURN (FOO)', BAD),  # RFC 5258 3: unknown return option
    ("auth", 'LIST (RECURSIVEMATCH) "" "*"', BAD),
    ("auth", "LSUB", BAD),
    ("auth", "STATUS INBOX", BAD),
    ("auth", "STATUS INBOX ()", BAD),
    ("auth", "STATUS INBOX (MESSAGES FOO)", BAD),
    ("auth", "STATUS INBOX MESSAGES", BAD),
    ("auth", "APPEND", BAD),
    ("auth", "ENABLE", BAD),
    ("auth", "GETQUOTAROOT", BAD),
    ("auth", "GETQUOTA", BAD),
    ("auth", 'ID ("name")', BAD),
    ("auth", "ID", BAD),
    ("noauth", "LOGIN onlyuser", BAD),
    ("noauth", "LOGIN a b c", BAD),
    ("noauth", "AUTHENTICATE", BAD),
    # sequence sets (RFC 3501 9: nz-number; RFC 3501 9 seq-number: BAD for numbers above the
    # message count, and for "*" in an empty mailbox)
    ("selected", "FETCH 0 FLAGS", BAD),
    ("selected", "FETCH 1: FLAGS", BAD),
    ("selected", "FETCH :1 FLAGS", BAD),
    ("selected", "FETCH a FLAGS", BAD),
    ("selected", "FETCH 1:a FLAGS", BAD),
    ("selected", "FETCH 1,,2 FLAGS", BAD),
    ("selected", "FETCH 1,2, FLAGS", BAD),
    ("selected", "FETCH -1 FLAGS", BAD),
    ("selected", "FETCH 1.5 FLAGS", BAD),
    ("selected", "FETCH 99 FLAGS", BAD),
    ("selected", "FETCH 2:99 FLAGS", BAD),
    ("selected", "FETCH 4294967296 FLAGS", BAD),
    ("selected", "STORE 0 +FLAGS (\\Seen)", BAD),
    ("selected", "COPY 0 Drafts", BAD),
    ("selected", "UID FETCH 0 FLAGS", BAD),
    ("selected", "UID FETCH x FLAGS", BAD),
    ("selected", "SEARCH 0", BAD),
    ("selected", "SEARCH UID 0", BAD),
    ("selected", "SEARCH UID x", BAD),
    # FETCH items and sections
    ("selected", "FETCH", BAD),
    ("selected", "FETCH 1", BAD),
    ("selected", "FETCH 1 BOGUS", BAD),
    ("selected", "FETCH 1 (FLAGS BOGUS)", BAD),
    ("selected", "FETCH 1 (FLAGS", BAD),
    ("selected", "FETCH 1 FLAGS)", BAD),
    ("selected", "FETCH 1 ((FLAGS))", BAD),
    ("selected", "FETCH 1 ()", BAD),
    ("selected", "FETCH 1 BODY[", BAD),
    ("selected", "FETCH 1 BODY[FOO]", BAD),
    ("selected", "FETCH 1 BODY[HEADER.FIELDS]", BAD),
    ("selected", "FETCH 1 BODY[HEADER.FIELDS ()]", BAD),
    ("selected", "FETCH 1 BODY[1.FOO]", BAD),
    ("selected", "FETCH 1 BODY[0]", BAD),
    ("selected", "FETCH 1 BODY[1.0]", BAD),
    ("selected", "FETCH 1 BODY[MIME]", BAD),  # MIME needs a part number (RFC 3501 6.4.5)
    ("selected", "FETCH 1 BODY[]<10>", BAD),
    ("selected", "FETCH 1 BODY[]<0.0>", BAD),
    ("selected", "FETCH 1 BODY[]<a.1>", BAD),
    ("selected", "FETCH 1 BODY.PEEK", BAD),
    ("selected", "FETCH 1 (FLAGS) (CHANGEDSINCE)", BAD),
    ("selected", "FETCH 1 (FLAGS) (CHANGEDSINCE x)", BAD),
    ("selected", "FETCH 1 (FLAGS) (FOO 1)", BAD),
    # STORE
    ("selected", "STORE 1", BAD),
    ("selected", "STORE 1 +FLAGS", BAD),
    ("selected", "STORE 1 FOOFLAGS (\\Seen)", BAD),
    ("selected", "STORE 1 +FLAGS (\\Seen", BAD),
    ("selected", "STORE 1 +FLAGS (\\Foo)", BAD_OR_NO),
    # RFC 3501 2.3.2: \Recent cannot be altered by the client: refused, or ignored
    ("selected", "STORE 1 +FLAGS (\\Recent)", ("BAD", "NO", "OK")),
    ("selected", "STORE 1 +FLAGS (\\)", BAD),
    ("selected", "STORE 1 +FLAGS (a{b)", BAD),
    ("selected", "STORE 1 +FLAGS (a]b)", BAD),  # "]" is not an atom char (RFC 3501 9)
    ("selected", "STORE 1 +FLAGS (a%b)", BAD),  # nor are list wildcards
    ("selected", "STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)", BAD),
    ("selected", "STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)", BAD),
    # COPY / MOVE / UID
    ("selected", "COPY 1", BAD),
    ("selected", "MOVE 1", BAD),
    ("selected", "UID", BAD),
    ("selected", "UID FROB 1", BAD),
    ("selected", "UID EXPUNGE", BAD),
    ("selected", "UID EXPUNGE x", BAD),
    ("selected", "UID SELECT INBOX", BAD),
    # SEARCH
    ("selected", "SEARCH", BAD),
    ("selected", "SEARCH FROB", BAD),
    ("selected", "SEARCH BEFORE notadate", BAD),
    ("selected", "SEARCH BEFORE 32-Jan-2020", BAD),
    ("selected", "SEARCH SINCE 1-Foo-2020", BAD),
    ("selected", "SEARCH LARGER x", BAD),
    ("selected", "SEARCH LARGER", BAD),
    ("selected", "SEARCH (SEEN", BAD),
    ("selected", "SEARCH SEEN)", BAD),
    ("selected", "SEARCH ()", BAD),
    ("selected", "SEARCH OR SEEN", BAD),
    ("selected", "SEARCH NOT", BAD),
    ("selected", "SEARCH HEADER Subject", BAD),
    ("selected", "SEARCH CHARSET", BAD),
    ("selected", "SEARCH MODSEQ x", BAD),
    ("selected", "SEARCH RETURN (FOO) ALL", BAD),
    ("selected", "SEARCH CHARSET X-NO-SUCH-CHARSET ALL", NO),  # RFC 3501 6.4.4: NO
    # quoting and literals
    ("auth", 'CREATE "unterminated', BAD),
    ("auth", 'CREATE "bad\\qescape"', BAD),
    ("auth", b'CREATE "nul\x00inside"', BAD),
    ("auth", "CREATE {abc}", BAD),
    ("auth", "CREATE {}", BAD),
    ("auth", "CREATE {5", BAD),
    ("auth", "SELECT INBOX extra extra", BAD),
    ("auth", 'RENAME "" "x"', BAD_OR_NO),
    ("auth", 'CREATE ""', BAD_OR_NO),
    ("auth", 'CREATE "Entw\u00fcrfe"', BAD_OR_NO),  # 8-bit quoted string before UTF8=ACCEPT
    ("auth", 'CREATE "&Jjo"', BAD_OR_NO),  # invalid modified UTF-7 (unterminated)
    ("auth", 'CREATE "&AGE-"', BAD_OR_NO),  # mUTF-7 of a printable ASCII char is invalid
    ("auth", 'CREATE "&Jjo!"', BAD_OR_NO),
    # APPEND arguments (the message literal is sent only if the server asks for it)
    ("auth", 'APPEND INBOX "notadate" {5}', BAD),
    ("auth", 'APPEND INBOX "31-Feb-2020 10:00:00 +0000" {5}', BAD_OR_NO),  # no such date
    ("auth", 'APPEND INBOX "29-Feb-2023 10:00:00 +0000" {5}', BAD_OR_NO),  # not a leap year
    # date-day-fixed = (SP DIGIT) / 2DIGIT (RFC 3501 9): a bare one-digit day is not valid
    ("auth", 'APPEND INBOX "1-Jan-2020 10:00:00 +0000" {5}', BAD),
    ("auth", 'APPEND INBOX "01-jan-2020 10:00:00" {5}', BAD),  # no zone
    ("auth", 'APPEND INBOX "01-Jan-2020 25:00:00 +0000" {5}', BAD),
    ("auth", "APPEND INBOX (\\Seen {5}", BAD),
    ("auth", "APPEND INBOX (\\Foo) {5}", BAD_OR_NO),
    ("auth", "APPEND INBOX", BAD),
    ("auth", "APPEND INBOX notaliteral", BAD),
    # wrong state (RFC 3501 6: commands valid only in some states get BAD elsewhere)
    ("noauth", "SELECT INBOX", BAD),
    ("noauth", "EXAMINE INBOX", BAD),
    ("noauth", "LIST \"\" \"*\"", BAD),
    ("noauth", "STATUS INBOX (MESSAGES)", BAD),
    ("noauth", "APPEND INBOX {5}", BAD),
    ("noauth", "FETCH 1 FLAGS", BAD),
    ("noauth", "ENABLE CONDSTORE", BAD),
    ("noauth", "IDLE", BAD),
    ("noauth", "UNSELECT", BAD),
    ("auth", "FETCH 1 FLAGS", BAD),
    ("auth", "STORE 1 +FLAGS (\\Seen)", BAD),
    ("auth", "SEARCH ALL", BAD),
    ("auth", "COPY 1 Drafts", BAD),
    ("auth", "MOVE 1 Drafts", BAD),
    ("auth", "EXPUNGE", BAD),
    ("auth", "UID FETCH 1 FLAGS", BAD),
    ("auth", "CLOSE", BAD),
    ("auth", "UNSELECT", BAD),
    ("auth", "CHECK", BAD),
    ("auth", f'LOGIN "{USER}" "{PW}"', BAD),
    ("auth", "AUTHENTICATE PLAIN", BAD),
    ("auth", "STARTTLS", BAD),
    # read-only mailbox (RFC 3501 6.3.2: EXAMINE selects read-only)
    ("examined", "STORE 1 +FLAGS (\\Seen)", NO),
    ("examined", "UID STORE 1 +FLAGS (\\Seen)", NO),
    ("examined", "EXPUNGE", NO),
    ("examined", "UID EXPUNGE 1", NO),
    ("examined", "MOVE 1 Drafts", NO),
    # mailbox names that do not exist
    ("auth", "SELECT NoSuchBox", NO),
    ("auth", "DELETE NoSuchBox", NO),
    ("auth", "RENAME NoSuchBox Other", NO),
    ("auth", "STATUS NoSuchBox (MESSAGES)", NO),
    ("selected", "COPY 1 NoSuchBox", NO),
    ("selected", "MOVE 1 NoSuchBox", NO),
]


class BadInputTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = ic.start_server(
            "imap-bad", users=[USER], tenants=[DOMAIN], password=PW,
            options=[("delivery", "max_message_size", '"100KB"'),
                     ("imap", "max_line", '"8KB"'),
                     ("auth", "failure_delay_ms", "10")])
        cls.shared_instances = [cls.inst]
        cls.port = cls.ports["imap"]
        c = Imap(cls.port)
        c.login(USER, PW)
        for i in range(3):
            r = c.append("INBOX", ic.msg(subject=f"bad input {i}"), flags="\\Flagged" if i else None)
            assert r.ok, str(r)
        c.logout()
        cls.observer = Imap(cls.port)
        cls.observer.login(USER, PW)

    @classmethod
    def tearDownClass(cls):
        cls.observer.close()
        cls.inst.stop()

    # ---- helpers
    def snapshot(self):
        o = self.observer
        r = o.cmd("STATUS INBOX (MESSAGES UIDNEXT UNSEEN DELETED SIZE HIGHESTMODSEQ)")
        self.assertTrue(r.ok, str(r))
        names = ic.list_names(o.must('LIST "" "*"'))
        subs = ic.list_names(o.must('LSUB "" "*"'), "LSUB")
        o.must("EXAMINE INBOX")
        flags = {n: sorted(set(v["FLAGS"]) - {"\\Recent"})
                 for n, v in o.fetch("1:*", "(FLAGS)").items()}
        o.must("UNSELECT")
        return (r.untagged, sorted(names), sorted(subs), flags)

    def session(self, state):
        c = Imap(self.port)
        self.addCleanup(c.close)
        if state != "noauth":
            c.login(USER, PW)
        if state == "selected":
            c.select("INBOX")
        if state == "examined":
            c.select("INBOX", examine=True)
        return c

    def send_case(self, c, command, tag):
        """Sends `command`; a synchronizing literal at its end is only followed by data when
        the server sends a continuation."""
        line = command.encode() if isinstance(command, str) else command
        m = re.search(rb"\{(\d+)\}$", line)
        c.send(tag.encode() + b" " + line + b"\r\n")
        untagged = []
        while True:
            r = c.read_response()
            if r.startswith("+") and m:
                c.send(b"x" * int(m.group(1)) + b"\r\n")
                m = None
                continue
            if r.startswith("+"):  # an AUTHENTICATE exchange: cancel it
                c.send(b"*\r\n")
                continue
            if r.startswith("* "):
                untagged.append(r)
                continue
            if r.split(" ", 1)[0] == tag:
                return ic.Result(tag, r, untagged, [])
            raise AssertionError(f"unexpected response to {command!r}: {r!r}")

    # ---- the table
    def test_table(self):
        before = self.snapshot()
        sessions = {}
        failures = []
        for i, (state, command, allowed) in enumerate(CASES):
            c = sessions.get(state)
            if c is None:
                c = sessions[state] = self.session(state)
            tag = f"b{i}"
            try:
                r = self.send_case(c, command, tag)
            except (ic.ConnectionClosed, OSError) as e:
                failures.append(f"[{state}] {command!r}: connection lost ({e})")
                sessions.pop(state)
                continue
            if r.status not in allowed:
                failures.append(f"[{state}] {command!r}: expected {'/'.join(allowed)}, got {r.line!r}")
            bye = [u for u in r.untagged if u.startswith("* BYE")]
            if bye:
                failures.append(f"[{state}] {command!r}: BYE {bye}")
                sessions.pop(state)
                continue
            # the same connection serves the next command
            try:
                n = c.cmd("NOOP")
                if not n.ok:
                    failures.append(f"[{state}] {command!r}: NOOP after it answered {n.line!r}")
            except (ic.ConnectionClosed, OSError) as e:
                failures.append(f"[{state}] {command!r}: NOOP after it: connection lost ({e})")
                sessions.pop(state)
                continue
            after = self.snapshot()
            if after != before:
                failures.append(f"[{state}] {command!r} changed the store:\n  before {before}\n"
                                f"  after  {after}")
                before = after
        self.maxDiff = None
        self.assertEqual(failures, [], f"{len(failures)} of {len(CASES)} cases:\n"
                         + "\n".join(failures))

    # ---- lines without a usable tag: untagged BAD (RFC 3501 7.1.3)
    def test_invalid_tags(self):
        c = self.session("auth")
        failures = []
        for line in [b" NOOP", b"", b"+ NOOP", b"* NOOP", b"a{b NOOP", b"a(b NOOP",
                     b'a"b NOOP', b"a%b NOOP", b"a*b NOOP", b"a\x01b NOOP", b"NOOP"]:
            tag = c.next_tag()
            c.send(line + b"\r\n" + tag.encode() + b" NOOP\r\n")
            try:
                r = c.collect(tag)
            except AssertionError as e:
                # a tagged reply with some other tag: acceptable only if it is BAD
                m = re.search(r"unexpected response while waiting for \S+: '(.*)'$", str(e))
                if not m or " BAD" not in m.group(1):
                    failures.append(f"{line!r}: {e}")
                r = c.collect(tag)
                self.assertTrue(r.ok)
                continue
            if line == b"":
                # an empty line: BAD, or ignored
                bads = [u for u in r.untagged if u.startswith("* BAD")]
                if r.untagged and not bads:
                    failures.append(f"{line!r}: {r}")
            elif not any(u.startswith("* BAD") for u in r.untagged):
                failures.append(f"{line!r}: no untagged BAD:\n{r}")
            if not r.ok:
                failures.append(f"{line!r}: NOOP after it: {r.line}")
        self.assertEqual(failures, [], "\n".join(failures))

    # ---- limits
    def test_synchronizing_literal_over_limit(self):
        before = self.snapshot()
        c = self.session("auth")
        tag = c.next_tag()
        c.send(f"{tag} APPEND INBOX {{{LIMIT + 1}}}\r\n".encode())
        r = c.read_response()
        # RFC 7889 4 / RFC 9051 7.1: rejected before the continuation with NO [TOOBIG]
        self.assertTrue(r.startswith(f"{tag} NO [TOOBIG]"), r)
        self.assertTrue(c.cmd("NOOP").ok)
        self.assertEqual(self.snapshot(), before)
        # at the limit it is accepted (APPENDLIMIT is inclusive, RFC 7889 2)
        m = ic.msg(subject="at limit")
        m = m + b"x" * (LIMIT - len(m) - 2) + b"\r\n"
        self.assertEqual(len(m), LIMIT)
        r = c.append("Drafts", m)
        self.assertTrue(r.ok, str(r))
        caps = c.must("CAPABILITY").lines("CAPABILITY")[0].split()
        self.assertIn(f"APPENDLIMIT={LIMIT}", caps)

    def test_non_synchronizing_literal_over_limit(self):
        before = self.snapshot()
        c = self.session("auth")
        tag = c.next_tag()
        c.send(f"{tag} APPEND INBOX {{{LIMIT + 1}+}}\r\n".encode())
        # RFC 7888 4: the server cannot refuse the literal data it is sent; it answers
        # BYE (here with [TOOBIG]) and closes
        closed = c.closed_by_server(10)
        lines = c.rest_lines()
        self.assertTrue(closed, f"connection not closed; got {lines}")
        self.assertTrue(any(l.startswith("* BYE") for l in lines), lines)
        self.assertEqual(self.snapshot(), before)

    def test_line_too_long(self):
        before = self.snapshot()
        c = self.session("auth")
        tag = c.next_tag()
        c.send(f'{tag} LIST "" "'.encode() + b"x" * (MAX_LINE + 100) + b'"\r\n')
        c.send("n1 NOOP\r\n")
        lines = []
        while not lines or not lines[-1].startswith("n1 "):
            lines.append(c.read_response())
        self.assertTrue(lines[-1].startswith("n1 OK"), lines)
        # the tag is known (it starts the line), so the BAD is tagged (RFC 3501 7.1.3: the
        # untagged form is for errors whose command cannot be determined)
        self.assertEqual([l.split(" ", 2)[:2] for l in lines[:-1]], [[tag, "BAD"]], lines)
        # a long line split by a literal is fine: literals do not count against max_line
        name = "L" * 200
        r = c.cmd("STATUS ", Lit(name), " (MESSAGES)")
        self.assertEqual(r.status, "NO", str(r))
        self.assertEqual(self.snapshot(), before)

    def check_many_bad(self, c, command):
        """Sends `command` until the server hangs up; every answer must be a tagged BAD and
        the hang-up must be announced with an untagged BYE (RFC 3501 7.1.5)."""
        lines = []
        for i in range(100):
            tag = f"m{i}"
            try:
                c.send(f"{tag} {command}\r\n")
                while True:
                    l = c.read_response()
                    lines.append(l)
                    if l.startswith(tag + " ") or l.startswith("* BYE"):
                        break
            except (ic.ConnectionClosed, OSError):
                break
            if lines[-1].startswith("* BYE"):
                break
        tagged = [l for l in lines if not l.startswith("*")]
        self.assertTrue(all(re.match(r"^m\d+ BAD", l) for l in tagged), lines)
        self.assertLess(len(tagged), 100, "no hang-up after 100 BAD commands in a row")
        self.assertTrue(c.closed_by_server(5), "connection still open")
        self.assertTrue(any(l.startswith("* BYE") for l in lines + c.rest_lines()),
                        f"closed without BYE after {len(tagged)} BADs; last: {lines[-3:]}")

    def test_many_unknown_commands_then_bye(self):
        self.check_many_bad(self.session("auth"), "FROBNICATE")

    def test_many_bad_arguments_then_bye(self):
        self.check_many_bad(self.session("selected"), "FETCH 1 BOGUS")

    def test_many_syntax_errors_then_bye(self):
        self.check_many_bad(self.session("selected"), "FETCH 1 (FLAGS")

    def test_many_wrong_state_commands_then_bye(self):
        self.check_many_bad(self.session("noauth"), "SELECT INBOX")

    def test_bad_commands_between_good_ones_do_not_disconnect(self):
        c = self.session("selected")
        for i in range(60):
            self.assertEqual(c.cmd("FROBNICATE").status, "BAD")
            self.assertTrue(c.cmd("NOOP").ok)

    def test_idle_ended_by_something_else_than_done(self):
        c = self.session("selected")
        tag = c.next_tag()
        c.send(f"{tag} IDLE\r\n")
        self.assertTrue(c.read_response().startswith("+"))
        c.send("NOT-DONE\r\n")
        r = c.collect(tag)
        # RFC 2177 3: only DONE ends IDLE; anything else is a client error
        self.assertEqual(r.status, "BAD", str(r))
        self.assertTrue(c.cmd("NOOP").ok)

    def test_fetch_nonexistent_part(self):
        """BODY[99.TEXT] of a message without such a part: syntactically valid, so not BAD;
        RFC 3501 does not say more: an empty string or NIL, or NO."""
        c = self.session("selected")
        r = c.cmd("FETCH 1 (BODY.PEEK[99.TEXT] BODY.PEEK[99] BODY.PEEK[1.2.3])")
        self.assertIn(r.status, ("OK", "NO"), str(r))
        if r.ok:
            got = ic.fetch_map(r)[1]
            for k in ("BODY[99.TEXT]", "BODY[99]", "BODY[1.2.3]"):
                self.assertIn(got.get(k, "<missing>"), ("", None, b""), f"{k}: {r}")

    def test_nul_in_message_literal(self):
        """RFC 3501 9: literal = ... *CHAR8, CHAR8 = %x01-ff: a message with NUL needs
        literal8 (BINARY, not offered), so APPEND refuses it."""
        before = self.snapshot()
        c = self.session("auth")
        for sync in (True, False):
            r = c.cmd("APPEND INBOX ", Lit(b"From: a@remote.test\r\nSubject: nul\r\n\r\nx\x00y\r\n",
                                           sync=sync))
            self.assertIn(r.status, ("BAD", "NO"), str(r))
            self.assertTrue(c.cmd("NOOP").ok)
        self.assertEqual(self.snapshot(), before)

    def test_star_in_empty_mailbox(self):
        c = self.session("auth")
        c.select("Drafts")
        # RFC 3501 9 (seq-number): "*" in an empty mailbox is BAD for sequence numbers...
        self.assertEqual(c.cmd("FETCH * FLAGS").status, "BAD")
        self.assertEqual(c.cmd("FETCH 1:* FLAGS").status, "BAD")
        # ... while UID FETCH 1:* is fine (no messages)
        r = c.cmd("UID FETCH 1:* FLAGS")
        self.assertTrue(r.ok, str(r))
        self.assertEqual(r.lines("FETCH"), [])


if __name__ == "__main__":
    h.main()
