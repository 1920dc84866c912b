"""IMAP commands against a real `mailark serve`, asserted from the RFCs: RFC 3501 (IMAP4rev1),
RFC 9051 (IMAP4rev2), and the extensions the server advertises (SASL-IR 4959, LITERAL+ 7888,
ID 2971, ENABLE 5161, IDLE 2177, NAMESPACE 2342, UNSELECT 3691, UIDPLUS 4315, MOVE 6851,
CHILDREN 3348, SPECIAL-USE 6154, LIST-EXTENDED 5258, LIST-STATUS 5819, CONDSTORE/QRESYNC 7162,
ESEARCH 4731, QUOTA 9208, STATUS=SIZE 8438, UTF8=ACCEPT 6855, APPENDLIMIT 7889).

Every test logs in as its own user (from a pool created at start), so tests are independent.
Where an RFC leaves room (text after OK, order of FETCH items or of untagged responses) the
assertions leave it too."""

import datetime
import re
import time

import harness as h
import imap_client as ic
from imap_client import Imap, Lit, parse_fetch, fetch_map, search_numbers, status_items

DOMAIN = "acme.test"
PW = "secret-pw"

DEFAULT_FOLDERS = {"INBOX": None, "Archive": "\\archive", "Drafts": "\\drafts",
                   "Junk": "\\junk", "Sent": "\\sent", "Trash": "\\trash"}
POST_LOGIN_CAPS = ("IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS "
                   "MOVE CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS CONDSTORE QRESYNC ESEARCH "
                   "QUOTA QUOTA=RES-STORAGE STATUS=SIZE UTF8=ACCEPT").split()
SYSTEM_FLAGS = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]

# A multipart message for FETCH: 1 = text/plain, 2 = multipart/alternative (2.1, 2.2),
# 3 = message/rfc822 (3.1 = its text). Every part body ends with CRLF, so the line counts are
# the same whether a trailing partial line counts or not.
FETCH_HEADER = (
    "From: Alice Example <alice@remote.test>\r\n"
    "To: Bob <bob@acme.test>, carol@acme.test\r\n"
    "Cc: \"Dave, Jr.\" <dave@remote.test>\r\n"
    "Subject: Fetch test\r\n"
    "Date: Wed, 17 Jul 1996 02:23:25 -0700\r\n"
    "Message-ID: <fetch-1@remote.test>\r\n"
    "In-Reply-To: <parent@remote.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n")
PART1_MIME = "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
PART1 = "Part one text.\r\n"
PART21 = "Alt plain.\r\n"
PART22 = "<p>Alt html</p>\r\n"
INNER_HDR = ("From: Inner <inner@remote.test>\r\nSubject: Inner message\r\n"
             "Date: Thu, 18 Jul 1996 10:00:00 +0000\r\n\r\n")
INNER_BODY = "Inner body line 1\r\nInner body line 2\r\n"
PART2_BODY = (
    "--inner\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n" + PART21 + "\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=us-ascii\r\n"
    "\r\n" + PART22 + "\r\n"
    "--inner--\r\n")
FETCH_TEXT = (
    "This is a multi-part message.\r\n"
    "--outer\r\n" + PART1_MIME + PART1 + "\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
    "\r\n" + PART2_BODY + "\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n" + INNER_HDR + INNER_BODY + "\r\n"
    "--outer--\r\n")
FETCH_MSG = (FETCH_HEADER + FETCH_TEXT).encode()


def simple(subject="hello", body="Hello world.\r\n", **kw):
    return ic.msg(subject=subject, body=body, **kw)


class ImapProtocolTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = ic.start_server(
            "imap-proto", users=[], tenants=[DOMAIN],
            options=[("auth", "failure_delay_ms", "10"), ("auth", "max_failures", "1000")])
        cls.shared_instances = [cls.inst]
        # one user per test that needs a mailbox of its own; tests that only log in share
        cls.pool = ic.UserPool(cls.inst, DOMAIN, count=58, password=PW)
        cls.shared_user, cls.shared_user2 = cls.pool.take(), cls.pool.take()
        cls.port = cls.ports["imap"]

    @classmethod
    def tearDownClass(cls):
        cls.pool.close()
        rc = cls.inst.stop()
        if rc != 0:
            raise AssertionError(f"server exit code {rc} on SIGTERM\n{cls.inst.log_tail()}")

    # ---- helpers
    def raw_conn(self, **kw):
        c = Imap(self.port, **kw)
        self.addCleanup(c.close)
        return c

    def conn(self, user=None):
        """A logged-in connection (as a fresh user unless `user` is given)."""
        user = user or self.pool.take()
        c = self.raw_conn()
        c.login(user, PW)
        c.user = user
        return c

    def assertOK(self, r, code=None):
        self.assertEqual(r.status, "OK", str(r))
        if code is not None:
            self.assertEqual(r.code_name(), code, str(r))

    def assertNO(self, r, code=None):
        self.assertEqual(r.status, "NO", str(r))
        if code is not None:
            self.assertEqual(r.code_name(), code, str(r))

    def assertBAD(self, r):
        self.assertEqual(r.status, "BAD", str(r))

    def append_all(self, c, box, messages):
        """APPENDs (message, flags, date) tuples; returns their UIDs from APPENDUID."""
        uids = []
        for m in messages:
            if isinstance(m, bytes):
                m = (m, None, None)
            r = c.append(box, m[0], flags=m[1], date=m[2])
            self.assertOK(r, "APPENDUID")
            uids.append(int(r.code.split()[2]))
        return uids

    def flags_of(self, c, seqset="1:*", uid=False):
        return {n: set(v["FLAGS"]) for n, v in c.fetch(seqset, "(FLAGS)", uid=uid).items()}

    def status(self, c, box, items="(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"):
        r = c.cmd(f"STATUS {ic.quote(box)} {items}")
        self.assertOK(r)
        return status_items(r, box)

    # =========================================================================================
    # Any state: CAPABILITY, NOOP, LOGOUT

    def test_capability_before_and_after_login(self):
        c = self.raw_conn()
        self.assertTrue(c.greeting.startswith("* OK"), c.greeting)
        r = c.cmd("CAPABILITY")
        self.assertOK(r)
        caps = r.lines("CAPABILITY")
        self.assertEqual(len(caps), 1, str(r))
        pre = caps[0].split()[2:]
        self.assertIn("IMAP4rev1", pre)
        self.assertIn("IMAP4rev2", pre)
        self.assertIn("STARTTLS", pre)  # init creates a certificate
        self.assertIn("AUTH=PLAIN", pre)  # plaintext allowed on loopback by default
        self.assertIn("SASL-IR", pre)
        self.assertNotIn("LOGINDISABLED", pre)
        c.login(self.shared_user, PW)
        r = c.cmd("CAPABILITY")
        self.assertOK(r)
        post = r.lines("CAPABILITY")[0].split()[2:]
        for cap in POST_LOGIN_CAPS:
            self.assertIn(cap, post)
        limits = [x for x in post if x.upper().startswith("APPENDLIMIT=")]
        self.assertEqual(limits, ["APPENDLIMIT=52428800"], post)  # [delivery] max_message_size 50MB
        self.assertNotIn("LOGINDISABLED", post)

    def test_noop_and_logout(self):
        c = self.raw_conn()
        self.assertOK(c.cmd("NOOP"))
        c.login(self.shared_user, PW)
        self.assertOK(c.cmd("NOOP"))
        r = c.cmd("LOGOUT")
        self.assertOK(r)
        self.assertEqual(len(r.lines("BYE")), 1, str(r))  # RFC 3501 6.1.3: BYE before the OK
        self.assertTrue(c.closed_by_server(5), "server did not close after LOGOUT")

    # =========================================================================================
    # Not authenticated: LOGIN, AUTHENTICATE

    def test_login(self):
        user = self.shared_user
        c = self.raw_conn()
        bad = c.cmd(f'LOGIN {user} "wrong password"')
        self.assertNO(bad)
        unknown = c.cmd(f'LOGIN nobody@{DOMAIN} "wrong password"')
        self.assertNO(unknown)
        # no hint whether the user exists
        self.assertEqual(bad.text, unknown.text)
        # still not authenticated
        self.assertBAD(c.cmd("SELECT INBOX"))
        self.assertOK(c.cmd(f'LOGIN "{user}" "{PW}"'))
        # LOGIN in the authenticated state is wrong (RFC 3501 6.2.3: not-authenticated only)
        self.assertBAD(c.cmd(f'LOGIN "{user}" "{PW}"'))
        self.assertOK(c.cmd("SELECT INBOX"))

    def test_login_with_literals(self):
        user = self.shared_user
        c = self.raw_conn()
        r = c.cmd("LOGIN ", Lit(user), " ", Lit(PW))
        self.assertOK(r)
        self.assertEqual(len(r.continuations), 2, str(r))
        c2 = self.raw_conn()
        r = c2.cmd("LOGIN ", Lit(user, sync=False), " ", Lit(PW, sync=False))
        self.assertOK(r)
        self.assertEqual(r.continuations, [], "LITERAL+ must not get a continuation")

    def test_login_case_insensitive_command_and_address(self):
        user = self.shared_user
        c = self.raw_conn()
        self.assertOK(c.cmd(f'login {user.upper()} "{PW}"'))

    def test_authenticate_plain_sasl_ir(self):
        user = self.shared_user
        c = self.raw_conn()
        r = c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(user, PW)}")
        self.assertOK(r)
        self.assertEqual(r.continuations, [], str(r))
        self.assertOK(c.cmd("SELECT INBOX"))

    def test_authenticate_plain_continuation(self):
        user = self.shared_user
        c = self.raw_conn()
        tag = c.next_tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        cont = c.read_response()
        # RFC 3501 7.5 / RFC 4422: an empty challenge is "+ " (or "+" with nothing)
        self.assertIn(cont, ("+ ", "+"))
        c.send(ic.plain_b64(user, PW) + "\r\n")
        r = c.collect(tag)
        self.assertOK(r)
        self.assertOK(c.cmd("SELECT INBOX"))

    def test_authenticate_with_authzid(self):
        user = self.shared_user
        c = self.raw_conn()
        self.assertOK(c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(user, PW, authzid=user)}"))
        other = self.shared_user2
        c2 = self.raw_conn()
        # authorizing as another user is not allowed for an ordinary user
        self.assertNO(c2.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(user, PW, authzid=other)}"))

    def test_authenticate_cancel_and_failures(self):
        user = self.shared_user
        c = self.raw_conn()
        tag = c.next_tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        self.assertTrue(c.read_response().startswith("+"))
        c.send("*\r\n")
        # RFC 3501 6.2.2: a cancelled exchange MUST get a tagged BAD
        self.assertBAD(c.collect(tag))
        # undecodable BASE64 -> BAD (RFC 3501 6.2.2)
        tag = c.next_tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        self.assertTrue(c.read_response().startswith("+"))
        c.send("!!!not-base64!!!\r\n")
        self.assertBAD(c.collect(tag))
        # wrong password -> NO
        self.assertNO(c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(user, 'nope')}"))
        # unsupported mechanism -> NO (RFC 3501 6.2.2 SHOULD)
        self.assertNO(c.cmd("AUTHENTICATE X-UNKNOWN-MECH"))
        # still usable
        self.assertOK(c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(user, PW)}"))
        # AUTHENTICATE when authenticated -> BAD
        self.assertBAD(c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(user, PW)}"))

    def test_authenticate_empty_initial_response(self):
        # SASL-IR (RFC 4959 3): "=" is an empty initial response; PLAIN then fails
        c = self.raw_conn()
        r = c.cmd("AUTHENTICATE PLAIN =")
        self.assertIn(r.status, ("NO", "BAD"), str(r))
        self.assertEqual(r.continuations, [], str(r))

    def test_commands_need_authentication(self):
        c = self.raw_conn()
        for cmd in ["SELECT INBOX", "LIST \"\" *", "STATUS INBOX (MESSAGES)", "CREATE foo",
                    "ENABLE CONDSTORE", "NAMESPACE", "GETQUOTAROOT INBOX"]:
            self.assertBAD(c.cmd(cmd))
        # ID is allowed in any state (RFC 2971 3)
        self.assertOK(c.cmd("ID NIL"))

    # =========================================================================================
    # SELECT / EXAMINE

    def test_select_responses(self):
        c = self.conn()
        self.append_all(c, "INBOX", [(simple("one"), "\\Seen", None), simple("two"),
                                     simple("three")])
        s = self.status(c, "INBOX", "(UIDVALIDITY)")
        r = c.select("INBOX")
        self.assertOK(r, "READ-WRITE")
        u = r.untagged
        flags = [l for l in u if l.upper().startswith("* FLAGS ")]
        self.assertEqual(len(flags), 1, str(r))
        fl = ic.parse(flags[0][len("* FLAGS "):])
        for f in SYSTEM_FLAGS:
            self.assertIn(f, fl)
        perm = [l for l in u if "[PERMANENTFLAGS " in l.upper()]
        self.assertEqual(len(perm), 1, str(r))
        pf = ic.parse(re.search(r"\[PERMANENTFLAGS (\(.*?\))\]", perm[0]).group(1))
        for f in SYSTEM_FLAGS + ["\\*"]:
            self.assertIn(f, pf)
        self.assertIn("* 3 EXISTS", u)
        self.assertIn("* 3 RECENT", u)
        self.assertTrue(any(re.match(r"^\* OK \[UNSEEN 2\]", l) for l in u), str(r))
        self.assertTrue(any(re.match(rf"^\* OK \[UIDVALIDITY {s['UIDVALIDITY']}\]", l) for l in u))
        self.assertTrue(any(re.match(r"^\* OK \[UIDNEXT 4\]", l) for l in u), str(r))
        hm = [l for l in u if re.match(r"^\* OK \[HIGHESTMODSEQ \d+\]", l)]
        self.assertEqual(len(hm), 1, str(r))
        self.assertFalse(any("[CLOSED]" in l for l in u), "CLOSED with nothing selected before")

        # another session: the messages are no longer recent
        d = self.conn(c.user)
        r = d.select("INBOX")
        self.assertIn("* 0 RECENT", r.untagged)
        r = d.select("INBOX", examine=True)
        self.assertIn("* 0 RECENT", r.untagged)
        self.assertOK(r, "READ-ONLY")

    def test_examine_keeps_recent(self):
        """RFC 3501 6.3.2: EXAMINE MUST NOT cause messages to lose the \\Recent flag."""
        c = self.conn()
        self.append_all(c, "INBOX", [simple("one"), simple("two"), simple("three")])
        e = self.conn(c.user)
        r = e.select("INBOX", examine=True)
        self.assertIn("* 3 EXISTS", r.untagged)
        self.assertIn("* 3 RECENT", r.untagged)
        self.assertOK(r, "READ-ONLY")
        r = c.select("INBOX")
        self.assertIn("* 3 RECENT", r.untagged)

    def test_select_recent_flag(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("a"), simple("b")])
        c.select("INBOX")
        fl = self.flags_of(c)
        self.assertEqual(fl, {1: {"\\Recent"}, 2: {"\\Recent"}})
        c2 = self.conn(c.user)
        c2.select("INBOX")
        self.assertEqual(self.flags_of(c2), {1: set(), 2: set()})
        self.assertOK(c2.cmd("SEARCH RECENT"))

    def test_failed_select_leaves_nothing_selected(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple()])
        c.select("INBOX")
        r = c.cmd("SELECT NoSuchFolder")
        self.assertNO(r, "NONEXISTENT")
        # RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected
        self.assertBAD(c.cmd("FETCH 1 FLAGS"))
        self.assertOK(c.cmd("SELECT INBOX"))

    def test_select_sends_closed_for_previous_mailbox(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple()])
        c.select("INBOX")
        r = c.select("Drafts")
        # RFC 7162 3.2.11: a server that advertises QRESYNC MUST send [CLOSED] when SELECT
        # closes the mailbox that was selected (RFC 9051 6.3.2 likewise)
        closed = [i for i, l in enumerate(r.untagged) if re.match(r"^\* OK \[CLOSED\]", l)]
        self.assertEqual(len(closed), 1, str(r))
        exists = [i for i, l in enumerate(r.untagged) if l.endswith(" EXISTS")]
        self.assertLess(closed[0], exists[0], "CLOSED must come before the new mailbox's data")

    def test_select_inbox_case_insensitive(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple()])
        r = c.cmd("SELECT inbox")
        self.assertOK(r)
        self.assertIn("* 1 EXISTS", r.untagged)
        r = c.cmd('EXAMINE "InBoX"')
        self.assertOK(r, "READ-ONLY")
        self.assertIn("* 1 EXISTS", r.untagged)

    def test_examine_is_read_only(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple()])
        c.select("INBOX", examine=True)
        r = c.cmd("STORE 1 +FLAGS (\\Flagged)")
        self.assertNO(r)
        r = c.cmd("FETCH 1 BODY[]")
        self.assertOK(r)
        m = fetch_map(r)
        self.assertNotIn("FLAGS", m[1], "EXAMINE: BODY[] must not set \\Seen")
        self.assertEqual(self.flags_of(c), {1: {"\\Recent"}})
        self.assertNO(c.cmd("EXPUNGE"))
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES UNSEEN)"), {"MESSAGES": 1, "UNSEEN": 1})

    # =========================================================================================
    # CREATE / DELETE / RENAME

    def test_create(self):
        c = self.conn()
        self.assertOK(c.cmd('CREATE "Projects/2024/Q1"'))
        names = ic.list_names(c.cmd('LIST "" "*"'))
        # RFC 3501 6.3.3: the server SHOULD create the superior names
        for n in ["Projects", "Projects/2024", "Projects/2024/Q1"]:
            self.assertIn(n, names)
        # trailing separator: the client will create names under it; "Plans" is created
        self.assertOK(c.cmd('CREATE "Plans/"'))
        names = ic.list_names(c.cmd('LIST "" "*"'))
        self.assertIn("Plans", names)
        self.assertNotIn("Plans/", names)
        # existing names
        self.assertNO(c.cmd('CREATE "Projects/2024"'), "ALREADYEXISTS")
        self.assertNO(c.cmd("CREATE Drafts"), "ALREADYEXISTS")
        # INBOX in any case (RFC 3501 6.3.3: it is an error to create INBOX)
        self.assertNO(c.cmd("CREATE INBOX"))
        self.assertNO(c.cmd("CREATE inbox"))
        # the new mailbox is empty and selectable
        r = c.select("Projects/2024/Q1")
        self.assertIn("* 0 EXISTS", r.untagged)
        self.assertOK(r, "READ-WRITE")

    def test_delete(self):
        c = self.conn()
        self.assertNO(c.cmd("DELETE INBOX"))
        self.assertNO(c.cmd("DELETE inbox"))
        self.assertNO(c.cmd("DELETE NoSuchFolder"), "NONEXISTENT")
        self.assertOK(c.cmd("CREATE Old"))
        self.append_all(c, "Old", [simple("old one"), simple("old two")])
        before = self.status(c, "Old", "(UIDVALIDITY UIDNEXT)")
        self.assertOK(c.cmd("DELETE Old"))
        self.assertNotIn("Old", ic.list_names(c.cmd('LIST "" "*"')))
        self.assertNO(c.cmd("SELECT Old"))
        self.assertNO(c.cmd("STATUS Old (MESSAGES)"))
        # re-created: empty, and UIDs are not reused under the same UIDVALIDITY
        self.assertOK(c.cmd("CREATE Old"))
        after = self.status(c, "Old", "(MESSAGES UIDVALIDITY UIDNEXT)")
        self.assertEqual(after["MESSAGES"], 0)
        # RFC 3501 2.3.1.1: UIDs of the old mailbox are not reused under its UIDVALIDITY
        self.assertTrue(after["UIDVALIDITY"] != before["UIDVALIDITY"]
                        or after["UIDNEXT"] >= before["UIDNEXT"], (before, after))

    def test_delete_with_children(self):
        c = self.conn()
        self.assertOK(c.cmd('CREATE "Parent/Child"'))
        self.append_all(c, "Parent", [simple("in parent")])
        self.append_all(c, "Parent/Child", [simple("in child")])
        # RFC 3501 6.3.4: deleting a name with inferiors removes its messages, the inferiors
        # stay (the name may stay as \Noselect)
        self.assertOK(c.cmd("DELETE Parent"))
        entries = {e[2]: e[0] for e in ic.list_entries(c.cmd('LIST "" "*"'))}
        self.assertIn("Parent/Child", entries)
        if "Parent" in entries:
            self.assertTrue({"\\noselect", "\\nonexistent"} & entries["Parent"], entries)
            self.assertNO(c.cmd("SELECT Parent"))
        self.assertEqual(self.status(c, "Parent/Child", "(MESSAGES)"), {"MESSAGES": 1})
        # LIST % shows the parent level because of the child (RFC 3501 6.3.8)
        top = {e[2]: e[0] for e in ic.list_entries(c.cmd('LIST "" "%"'))}
        self.assertIn("Parent", top)
        self.assertTrue({"\\noselect", "\\nonexistent"} & top["Parent"], top)
        # LIST-STATUS: no STATUS for a name that cannot be selected (RFC 5819 2)
        r = c.cmd('LIST "" "Parent*" RETURN (STATUS (MESSAGES))')
        self.assertOK(r)
        st = [l for l in r.untagged if l.startswith("* STATUS ")]
        self.assertEqual(len(st), 1, str(r))
        self.assertIn("Parent/Child", st[0])

    def test_rename_hierarchy(self):
        c = self.conn()
        self.assertOK(c.cmd('CREATE "Proj/A/Deep"'))
        self.append_all(c, "Proj/A", [simple("in a")])
        st = self.status(c, "Proj/A", "(UIDVALIDITY MESSAGES)")
        self.assertOK(c.cmd('RENAME "Proj" "Work"'))
        names = ic.list_names(c.cmd('LIST "" "*"'))
        for n in ["Work", "Work/A", "Work/A/Deep"]:
            self.assertIn(n, names)
        for n in ["Proj", "Proj/A", "Proj/A/Deep"]:
            self.assertNotIn(n, names)
        self.assertEqual(self.status(c, "Work/A", "(MESSAGES)"), {"MESSAGES": 1})
        # into a new hierarchy: superiors are created (RFC 3501 6.3.5 SHOULD)
        self.assertOK(c.cmd('RENAME "Work/A" "X/Y/A"'))
        names = ic.list_names(c.cmd('LIST "" "*"'))
        for n in ["X", "X/Y", "X/Y/A", "X/Y/A/Deep"]:
            self.assertIn(n, names)
        self.assertNotIn("Work/A", names)
        # errors
        self.assertNO(c.cmd('RENAME "Nope" "Nope2"'), "NONEXISTENT")
        self.assertNO(c.cmd('RENAME "Work" "Drafts"'), "ALREADYEXISTS")
        self.assertNO(c.cmd('RENAME "Work" "INBOX"'))
        self.assertIn("Work", ic.list_names(c.cmd('LIST "" "*"')))
        # a renamed mailbox keeps its messages (UIDVALIDITY may change, RFC 3501 6.3.5)
        self.assertEqual(self.status(c, "X/Y/A", "(MESSAGES)")["MESSAGES"], st["MESSAGES"])

    def test_rename_inbox(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("i1"), simple("i2"), simple("i3")])
        self.assertOK(c.cmd('CREATE "INBOX/Child"'))
        self.append_all(c, "INBOX/Child", [simple("child")])
        c.select("INBOX")
        c.cmd("UNSELECT")
        self.assertOK(c.cmd("RENAME INBOX OldInbox"))
        # RFC 3501 6.3.5: all messages move to the new mailbox, INBOX stays and is empty
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 0})
        self.assertEqual(self.status(c, "OldInbox", "(MESSAGES)"), {"MESSAGES": 3})
        names = ic.list_names(c.cmd('LIST "" "*"'))
        self.assertIn("INBOX", names)
        self.assertIn("OldInbox", names)
        # inferiors of INBOX are unaffected (RFC 3501 6.3.5)
        self.assertIn("INBOX/Child", names)
        self.assertNotIn("OldInbox/Child", names)
        self.assertEqual(self.status(c, "INBOX/Child", "(MESSAGES)"), {"MESSAGES": 1})
        c.select("OldInbox")
        subjects = [ic.text(v["BODY[HEADER.FIELDS (SUBJECT)]"]) for _, v in
                    sorted(c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])").items())]
        self.assertEqual(subjects, [f"Subject: i{i}\r\n\r\n" for i in (1, 2, 3)])
        # new mail still reaches INBOX
        ic.deliver(self.inst.port, c.user, simple("after rename"))
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 1})

    # =========================================================================================
    # SUBSCRIBE / UNSUBSCRIBE / LSUB

    def test_subscribe_lsub(self):
        c = self.conn()
        self.assertOK(c.cmd('CREATE "Lists/Dev"'))
        # (the server may subscribe what CREATE makes; start from a known state)
        self.assertOK(c.cmd('UNSUBSCRIBE "Lists"'))
        self.assertOK(c.cmd('SUBSCRIBE "Lists/Dev"'))
        r = c.cmd('LSUB "" "*"')
        self.assertOK(r)
        self.assertIn("Lists/Dev", ic.list_names(r, "LSUB"))
        for e in ic.list_entries(r, "LSUB"):
            self.assertEqual(e[1], "/")
        # LSUB % on a level whose name is not subscribed but has a subscribed child:
        # RFC 3501 6.3.9 returns it with \Noselect
        r = c.cmd('LSUB "" "Lists"')
        self.assertEqual(ic.list_names(r, "LSUB"), [])
        r = c.cmd('LSUB "" "%"')
        ent = {e[2]: e[0] for e in ic.list_entries(r, "LSUB")}
        self.assertIn("Lists", ent)
        self.assertIn("\\noselect", ent["Lists"])
        self.assertOK(c.cmd('UNSUBSCRIBE "Lists/Dev"'))
        self.assertNotIn("Lists/Dev", ic.list_names(c.cmd('LSUB "" "*"'), "LSUB"))
        # DELETE may or may not drop the subscription (RFC 3501 6.3.4 is silent; 6.3.6 only
        # forbids the server dropping it on its own). If it stays, LIST (SUBSCRIBED) shows it
        # as \NonExistent (RFC 5258 3.1, 3.4) and UNSUBSCRIBE must still remove it.
        self.assertOK(c.cmd('SUBSCRIBE "Lists/Dev"'))
        self.assertOK(c.cmd('DELETE "Lists/Dev"'))
        if "Lists/Dev" in ic.list_names(c.cmd('LSUB "" "*"'), "LSUB"):
            ent = {e[2]: e[0] for e in ic.list_entries(c.cmd('LIST (SUBSCRIBED) "" "*"'))}
            self.assertIn("Lists/Dev", ent)
            self.assertEqual({"\\subscribed", "\\nonexistent"} & ent["Lists/Dev"],
                             {"\\subscribed", "\\nonexistent"}, ent)
            self.assertOK(c.cmd('UNSUBSCRIBE "Lists/Dev"'))
            self.assertNotIn("Lists/Dev", ic.list_names(c.cmd('LSUB "" "*"'), "LSUB"))
        else:
            ent = {e[2] for e in ic.list_entries(c.cmd('LIST (SUBSCRIBED) "" "*"'))}
            self.assertNotIn("Lists/Dev", ent)

    # =========================================================================================
    # LIST

    def test_list_patterns(self):
        c = self.conn()
        for n in ["Work", "Work/Clients", "Work/Clients/Acme", "Home"]:
            self.assertOK(c.cmd(f'CREATE "{n}"'))
        r = c.cmd('LIST "" "*"')
        self.assertOK(r)
        ent = {e[2]: e for e in ic.list_entries(r)}
        self.assertEqual(set(ent), set(DEFAULT_FOLDERS) | {"Work", "Work/Clients",
                                                          "Work/Clients/Acme", "Home"})
        for name, e in ent.items():
            self.assertEqual(e[1], "/", name)
        # CHILDREN (RFC 3348)
        self.assertIn("\\haschildren", ent["Work"][0])
        self.assertIn("\\hasnochildren", ent["Home"][0])
        self.assertIn("\\hasnochildren", ent["Work/Clients/Acme"][0])
        # SPECIAL-USE attributes appear in LIST (RFC 6154 2)
        for name, use in DEFAULT_FOLDERS.items():
            if use:
                self.assertIn(use, ent[name][0], name)
        # % stops at the separator
        self.assertEqual(set(ic.list_names(c.cmd('LIST "" "%"'))),
                         set(DEFAULT_FOLDERS) | {"Work", "Home"})
        self.assertEqual(ic.list_names(c.cmd('LIST "" "Work/%"')), ["Work/Clients"])
        self.assertEqual(sorted(ic.list_names(c.cmd('LIST "" "Work/*"'))),
                         ["Work/Clients", "Work/Clients/Acme"])
        self.assertEqual(sorted(ic.list_names(c.cmd('LIST "" "W*"'))),
                         ["Work", "Work/Clients", "Work/Clients/Acme"])
        self.assertEqual(ic.list_names(c.cmd('LIST "" "*Acme"')), ["Work/Clients/Acme"])
        self.assertEqual(ic.list_names(c.cmd('LIST "" "%/%/Acme"')), ["Work/Clients/Acme"])
        # reference name is prefixed to the pattern (RFC 3501 6.3.8)
        self.assertEqual(ic.list_names(c.cmd('LIST "Work/" "%"')), ["Work/Clients"])
        self.assertEqual(sorted(ic.list_names(c.cmd('LIST "Work/" "*"'))),
                         ["Work/Clients", "Work/Clients/Acme"])
        self.assertEqual(ic.list_names(c.cmd('LIST "Work/Clients/" "Acme"')),
                         ["Work/Clients/Acme"])
        # INBOX matches case-insensitively and is returned as INBOX
        self.assertEqual(ic.list_names(c.cmd('LIST "" "inbox"')), ["INBOX"])
        # other names are case-sensitive
        self.assertEqual(ic.list_names(c.cmd('LIST "" "work"')), [])
        # no match: OK with nothing
        r = c.cmd('LIST "" "NoSuch*"')
        self.assertOK(r)
        self.assertEqual(r.lines("LIST"), [])

    def test_list_empty_pattern(self):
        c = self.conn(self.shared_user)
        r = c.cmd('LIST "" ""')
        self.assertOK(r)
        # RFC 3501 6.3.8: hierarchy delimiter and root name; root "" here
        self.assertEqual(r.lines("LIST"), ['* LIST (\\Noselect) "/" ""'])
        r = c.cmd('LIST "Work/" ""')
        self.assertOK(r)
        ents = ic.list_entries(r)
        self.assertEqual(len(ents), 1, str(r))
        self.assertEqual(ents[0][:2], ({"\\noselect"}, "/"))

    def test_list_extended_selection(self):
        c = self.conn()
        for n in ["Team", "Team/Sub", "Solo"]:
            self.assertOK(c.cmd(f'CREATE "{n}"'))
            c.cmd(f'UNSUBSCRIBE "{n}"')  # in case CREATE subscribed it
        self.assertOK(c.cmd('SUBSCRIBE "Team/Sub"'))
        self.assertOK(c.cmd('SUBSCRIBE "Solo"'))
        # SUBSCRIBED: only subscribed names, each with \Subscribed (RFC 5258 3.1)
        r = c.cmd('LIST (SUBSCRIBED) "" "*"')
        self.assertOK(r)
        ent = {e[2]: e for e in ic.list_entries(r)}
        self.assertIn("Team/Sub", ent)
        self.assertIn("Solo", ent)
        self.assertNotIn("Team", ent)
        for name, e in ent.items():
            self.assertIn("\\subscribed", e[0], name)
        # RECURSIVEMATCH: a parent whose child is subscribed gets CHILDINFO (RFC 5258 3.5)
        r = c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        self.assertOK(r)
        ent = {e[2]: e for e in ic.list_entries(r)}
        self.assertIn("Team", ent)
        self.assertNotIn("\\subscribed", ent["Team"][0])
        ext = ent["Team"][3]
        self.assertEqual(len(ext), 1, ent["Team"])
        self.assertEqual(str(ext[0][0]).upper(), "CHILDINFO")
        self.assertEqual([str(x).upper() for x in ext[0][1]], ["SUBSCRIBED"])
        self.assertIn("Solo", ent)
        self.assertIn("\\subscribed", ent["Solo"][0])
        self.assertNotIn("Team/Sub", ent)
        # RECURSIVEMATCH alone is BAD (RFC 5258 3)
        self.assertBAD(c.cmd('LIST (RECURSIVEMATCH) "" "%"'))
        # SPECIAL-USE selection (RFC 6154 5.1)
        r = c.cmd('LIST (SPECIAL-USE) "" "*"')
        self.assertOK(r)
        ent = {e[2]: e for e in ic.list_entries(r)}
        self.assertEqual(set(ent), {n for n, u in DEFAULT_FOLDERS.items() if u})
        for name, e in ent.items():
            self.assertIn(DEFAULT_FOLDERS[name], e[0])
        # several patterns (RFC 5258 3)
        r = c.cmd('LIST "" ("INBOX" "Team/*")')
        self.assertOK(r)
        self.assertEqual(sorted(ic.list_names(r)), ["INBOX", "Team/Sub"])

    def test_list_extended_return(self):
        c = self.conn()
        self.assertOK(c.cmd('CREATE "Box/Inner"'))
        c.cmd('UNSUBSCRIBE "Box/Inner"')  # in case CREATE subscribed it
        self.assertOK(c.cmd('SUBSCRIBE "Box"'))
        self.append_all(c, "Box", [(simple("r1"), "\\Seen", None), simple("r2"), simple("r3")])
        r = c.cmd('LIST "" "*" RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN))')
        self.assertOK(r)
        ent = {e[2]: e for e in ic.list_entries(r)}
        self.assertIn("\\haschildren", ent["Box"][0])
        self.assertIn("\\subscribed", ent["Box"][0])
        self.assertIn("\\hasnochildren", ent["Box/Inner"][0])
        self.assertNotIn("\\subscribed", ent["Box/Inner"][0])
        self.assertIn("\\sent", ent["Sent"][0])
        # RFC 5819: one STATUS per selectable mailbox, after its LIST response
        statuses = {}
        last_list = None
        for line in r.untagged:
            if line.startswith("* LIST "):
                last_list = ic.list_entries(ic.Result("x", "x OK", [line], []))[0][2]
            elif line.startswith("* STATUS "):
                vals = ic.parse_values(line[len("* STATUS "):])
                name = ic.text(vals[0])
                self.assertEqual(name, last_list, "STATUS must follow the LIST of its mailbox")
                it = vals[1]
                statuses[name] = {str(it[i]).upper(): it[i + 1] for i in range(0, len(it), 2)}
        self.assertEqual(set(statuses), set(ent))
        self.assertEqual(statuses["Box"], {"MESSAGES": 3, "UNSEEN": 2})
        self.assertEqual(statuses["Box/Inner"], {"MESSAGES": 0, "UNSEEN": 0})
        self.assertEqual(statuses["INBOX"], {"MESSAGES": 0, "UNSEEN": 0})

    # =========================================================================================
    # STATUS

    def test_status_all_items(self):
        c = self.conn()
        msgs = [(simple("s1"), "\\Seen", None), (simple("s2", body="x" * 100 + "\r\n"), None, None),
                (simple("s3"), "\\Deleted \\Seen", None), (simple("s4"), "\\Deleted", None)]
        uids = self.append_all(c, "INBOX", msgs)
        size = sum(len(m[0]) for m in msgs)
        r = c.cmd("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED "
                  "HIGHESTMODSEQ)")
        self.assertOK(r)
        st = status_items(r, "INBOX")
        self.assertEqual(set(st), {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE",
                                   "DELETED", "HIGHESTMODSEQ"})
        self.assertEqual(st["MESSAGES"], 4)
        self.assertEqual(st["RECENT"], 4)
        self.assertEqual(st["UIDNEXT"], uids[-1] + 1)
        self.assertEqual(st["UNSEEN"], 2)
        self.assertEqual(st["SIZE"], size)  # RFC 8438: sum of RFC822.SIZE
        self.assertEqual(st["DELETED"], 2)  # RFC 9051 6.3.11
        self.assertGreater(st["UIDVALIDITY"], 0)
        self.assertGreater(st["HIGHESTMODSEQ"], 0)
        # HIGHESTMODSEQ grows with a change
        c.select("INBOX")
        self.assertOK(c.cmd("STORE 2 +FLAGS (\\Flagged)"))
        c.cmd("UNSELECT")
        st2 = self.status(c, "INBOX", "(HIGHESTMODSEQ UIDVALIDITY MESSAGES)")
        self.assertGreater(st2["HIGHESTMODSEQ"], st["HIGHESTMODSEQ"])
        self.assertEqual(st2["UIDVALIDITY"], st["UIDVALIDITY"])
        # single item, other mailboxes, errors
        self.assertEqual(self.status(c, "Drafts", "(MESSAGES)"), {"MESSAGES": 0})
        self.assertNO(c.cmd("STATUS NoSuch (MESSAGES)"), "NONEXISTENT")
        self.assertBAD(c.cmd("STATUS INBOX (BOGUS)"))
        self.assertBAD(c.cmd("STATUS INBOX ()"))

    def test_status_of_selected_mailbox(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("x")])
        c.select("INBOX")
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES UIDNEXT)"),
                         {"MESSAGES": 1, "UIDNEXT": 2})

    # =========================================================================================
    # APPEND

    def test_append_flags_date_appenduid(self):
        c = self.conn()
        m = simple("appended", body="Appended body.\r\n")
        st = self.status(c, "Drafts", "(UIDVALIDITY UIDNEXT)")
        r = c.append("Drafts", m, flags="\\Seen \\Flagged $Custom",
                     date="14-Jul-2021 02:44:25 -0700")
        self.assertOK(r, "APPENDUID")
        # RFC 4315 3: APPENDUID <uidvalidity> <uid>
        self.assertEqual(r.code.split()[1:], [str(st["UIDVALIDITY"]), str(st["UIDNEXT"])])
        self.assertEqual(r.continuations and r.continuations[0][0], "+")
        c.select("Drafts")
        got = c.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")[1]
        self.assertEqual(set(got["FLAGS"]) - {"\\Recent"}, {"\\Seen", "\\Flagged", "$Custom"})
        self.assertEqual(got["RFC822.SIZE"], len(m))
        self.assertEqual(bytes(got["BODY[]"]), m)
        self.assertEqual(parse_internaldate(got["INTERNALDATE"]),
                         parse_internaldate("14-Jul-2021 02:44:25 -0700"))
        # a one-digit day with its leading space (date-day-fixed), another zone
        r = c.append("Drafts", simple("d2"), date=" 5-Feb-2003 23:59:59 +0530")
        self.assertOK(r)
        got = c.fetch("2", "(INTERNALDATE)")[2]
        self.assertEqual(parse_internaldate(got["INTERNALDATE"]),
                         parse_internaldate(" 5-Feb-2003 23:59:59 +0530"))
        # edges of the calendar: a leap day, long ago, far ahead
        for n, d in enumerate(["29-Feb-2024 12:00:00 +0000", "01-Jan-1900 00:00:00 +0000",
                               "31-Dec-2099 23:59:59 -1200", "01-Jan-1970 00:00:00 +0100"],
                              start=10):
            r = c.append("Drafts", simple(f"d{n}"), date=d)
            self.assertOK(r, "APPENDUID")
            uid = r.code.split()[2]
            got = c.fetch(uid, "(INTERNALDATE)", uid=True)
            (v,) = got.values()
            self.assertEqual(parse_internaldate(v["INTERNALDATE"]), parse_internaldate(d), d)
        # without a date: about now
        r = c.append("Drafts", simple("d3"))
        self.assertOK(r)
        (got,) = c.fetch(r.code.split()[2], "(INTERNALDATE)", uid=True).values()
        self.assertLess(abs(parse_internaldate(got["INTERNALDATE"]).timestamp() - time.time()), 300)

    def test_append_to_missing_folder(self):
        c = self.conn(self.shared_user)
        r = c.append("NoSuchFolder", simple())
        # RFC 3501 6.3.11: NO [TRYCREATE] when the mailbox does not exist
        self.assertNO(r, "TRYCREATE")
        self.assertNotIn("NoSuchFolder", ic.list_names(c.cmd('LIST "" "*"')))

    def test_append_literal_plus(self):
        c = self.conn()
        m = simple("nonsync")
        r = c.append("INBOX", m, flags="\\Draft", sync=False)
        self.assertOK(r, "APPENDUID")
        self.assertEqual(r.continuations, [], "LITERAL+ literal got a continuation")
        c.select("INBOX")
        self.assertEqual(bytes(c.fetch("1", "BODY.PEEK[]")[1]["BODY[]"]), m)

    def test_append_to_selected_mailbox_sends_exists(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("first")])
        c.select("INBOX")
        r = c.append("INBOX", simple("second"))
        self.assertOK(r)
        # RFC 3501 6.3.11: SHOULD notify the client immediately via an untagged EXISTS
        self.assertIn("* 2 EXISTS", r.untagged)
        self.assertOK(c.cmd("NOOP"))
        self.assertEqual(len(c.fetch("1:*", "UID")), 2)

    def test_append_binary_content_and_8bit(self):
        c = self.conn()
        m = ("From: a@b.test\r\nSubject: Gr\u00fc\u00dfe\r\n\r\nK\u00e4se \u20ac\r\n").encode()
        self.assertOK(c.append("INBOX", m))
        c.select("INBOX")
        self.assertEqual(bytes(c.fetch("1", "BODY.PEEK[]")[1]["BODY[]"]), m)

    # =========================================================================================
    # CHECK, CLOSE, UNSELECT, EXPUNGE

    def test_check(self):
        c = self.conn(self.shared_user)
        c.select("INBOX")
        r = c.cmd("CHECK")
        self.assertOK(r)

    def test_close_expunges_silently(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("keep"), (simple("drop"), "\\Deleted", None),
                                     simple("keep2")])
        c.select("INBOX")
        r = c.cmd("CLOSE")
        self.assertOK(r)
        self.assertEqual(r.lines("EXPUNGE"), [], "CLOSE must not send EXPUNGE (RFC 3501 6.4.2)")
        self.assertBAD(c.cmd("FETCH 1 FLAGS"))  # back in authenticated state
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 2})
        # CLOSE on an EXAMINEd mailbox does not expunge
        self.append_all(c, "INBOX", [(simple("drop2"), "\\Deleted", None)])
        c.select("INBOX", examine=True)
        self.assertOK(c.cmd("CLOSE"))
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 3})
        self.assertBAD(c.cmd("CLOSE"))  # nothing selected

    def test_unselect_does_not_expunge(self):
        c = self.conn()
        self.append_all(c, "INBOX", [(simple("del"), "\\Deleted", None), simple("b")])
        c.select("INBOX")
        r = c.cmd("UNSELECT")
        self.assertOK(r)
        self.assertEqual(r.lines("EXPUNGE"), [])
        self.assertBAD(c.cmd("FETCH 1 FLAGS"))
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES DELETED)"),
                         {"MESSAGES": 2, "DELETED": 1})
        self.assertBAD(c.cmd("UNSELECT"))  # RFC 3691: BAD when nothing is selected

    def test_expunge(self):
        c = self.conn()
        uids = self.append_all(c, "INBOX", [simple(f"e{i}") for i in range(1, 7)])
        c.select("INBOX")
        self.assertOK(c.cmd("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)"))
        r = c.cmd("EXPUNGE")
        self.assertOK(r)
        self.assertEqual(len(r.lines("EXPUNGE")), 3, str(r))
        self.assertEqual(ic.apply_expunges(uids, r.untagged), [uids[0], uids[2], uids[5]])
        got = c.fetch("1:*", "(UID)")
        self.assertEqual({k: v["UID"] for k, v in got.items()}, {1: uids[0], 2: uids[2],
                                                                3: uids[5]})
        r = c.cmd("EXPUNGE")  # nothing deleted
        self.assertOK(r)
        self.assertEqual(r.lines("EXPUNGE"), [])

    def test_expunge_raises_highestmodseq_and_logout_does_not_expunge(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("h1"), simple("h2"), simple("h3")])
        m0 = self.status(c, "INBOX", "(HIGHESTMODSEQ)")["HIGHESTMODSEQ"]
        c.select("INBOX")
        self.assertOK(c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)"))
        m1 = self.status(c, "INBOX", "(HIGHESTMODSEQ)")["HIGHESTMODSEQ"]
        self.assertGreater(m1, m0)
        self.assertOK(c.cmd("EXPUNGE"))
        # an expunge is a change QRESYNC clients must be able to see (RFC 7162 3.2.5, 3.2.10)
        m2 = self.status(c, "INBOX", "(HIGHESTMODSEQ)")["HIGHESTMODSEQ"]
        self.assertGreater(m2, m1)
        # LOGOUT leaves \Deleted messages alone (only CLOSE and EXPUNGE remove them)
        self.assertOK(c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)"))
        c.logout()
        d = self.conn(c.user)
        self.assertEqual(self.status(d, "INBOX", "(MESSAGES DELETED)"),
                         {"MESSAGES": 2, "DELETED": 1})

    def test_uid_expunge(self):
        c = self.conn()
        uids = self.append_all(c, "INBOX", [simple(f"u{i}") for i in range(1, 5)])
        c.select("INBOX")
        self.assertOK(c.cmd("STORE 1:4 +FLAGS.SILENT (\\Deleted)"))
        r = c.cmd(f"UID EXPUNGE {uids[1]}:{uids[2]}")
        self.assertOK(r)
        # RFC 4315 2.1: only the \Deleted messages with those UIDs
        self.assertEqual(ic.apply_expunges(uids, r.untagged), [uids[0], uids[3]])
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 2})
        r = c.cmd("UID EXPUNGE 999999")
        self.assertOK(r)
        self.assertEqual(r.lines("EXPUNGE"), [])

    # =========================================================================================
    # SEARCH

    def search_corpus(self, c):
        """Five messages in INBOX with different headers, dates, flags and encodings; the
        first four are seen by another session before the fifth arrives, so only the fifth is
        \\Recent for the returned session."""
        m1 = ic.msg(subject="Quarterly report", frm="Alice <alice@remote.test>",
                    to="bob@acme.test", date="Wed, 1 Jan 2020 12:00:00 +0000",
                    extra=["Cc: Carol <carol@acme.test>"], body="The numbers are in.\r\n")
        m2 = ic.msg(subject="Lunch?", frm="Dave <dave@remote.test>", to="alice@acme.test",
                    date="Mon, 15 Mar 2021 12:00:00 +0000",
                    extra=["Bcc: eve@acme.test", "X-Priority: 1"], body="Pizza at noon.\r\n")
        m3 = ic.msg(subject="=?UTF-8?Q?R=C3=A9sum=C3=A9?=", frm="bob@acme.test",
                    to="Bob <bob@acme.test>", date="Fri, 10 Jun 2022 12:00:00 +0000",
                    extra=["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                           "Content-Transfer-Encoding: base64"],
                    body="R3LDvMOfZSBhdXMgTcO8bmNoZW4K\r\n")  # "Grüße aus München\n"
        m4 = ic.msg(subject="Invoice", frm="billing@remote.test", to="alice@acme.test",
                    date="Wed, 20 Dec 2023 12:00:00 +0000",
                    extra=["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                           "Content-Transfer-Encoding: quoted-printable", "X-Priority: 5"],
                    body="Total: 100 =E2=82=AC due.\r\n" + "padding line\r\n" * 300)
        m5 = ic.msg(subject="Meeting notes", frm="carol@acme.test", to="team@acme.test",
                    date="Sun, 5 May 2024 12:00:00 +0000", body="Agenda: budget.\r\n")
        first = [(m1, "\\Seen \\Answered", "01-Jan-2020 12:00:00 +0000"),
                 (m2, "\\Flagged", "15-Mar-2021 12:00:00 +0000"),
                 (m3, "\\Draft $Work", "10-Jun-2022 12:00:00 +0000"),
                 (m4, "\\Deleted \\Seen", "20-Dec-2023 12:00:00 +0000")]
        uids = self.append_all(c, "INBOX", first)
        other = self.conn(c.user)
        other.select("INBOX")  # takes \Recent of 1-4
        other.logout()
        uids += self.append_all(c, "INBOX", [(m5, None, "05-May-2024 12:00:00 +0000")])
        c.select("INBOX")
        return [m1, m2, m3, m4, m5], uids

    def test_search_every_key(self):
        c = self.conn()
        msgs, uids = self.search_corpus(c)
        sizes = [len(m) for m in msgs]
        cases = [
            ("ALL", [1, 2, 3, 4, 5]),
            ("ANSWERED", [1]), ("UNANSWERED", [2, 3, 4, 5]),
            ("DELETED", [4]), ("UNDELETED", [1, 2, 3, 5]),
            ("DRAFT", [3]), ("UNDRAFT", [1, 2, 4, 5]),
            ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4, 5]),
            ("SEEN", [1, 4]), ("UNSEEN", [2, 3, 5]),
            ("KEYWORD $Work", [3]), ("UNKEYWORD $Work", [1, 2, 4, 5]),
            ("KEYWORD $Never", []),
            ("RECENT", [5]), ("NEW", [5]), ("OLD", [1, 2, 3, 4]),
            ("FROM alice", [1]), ("FROM DAVE", [2]), ("FROM remote.test", [1, 2, 4]),
            ("TO alice@acme.test", [2, 4]), ("TO bob", [1, 3]),
            ("CC carol", [1]), ("BCC eve", [2]), ("CC nobody", []),
            ("SUBJECT quarterly", [1]), ('SUBJECT "meeting NOTES"', [5]),
            ("SUBJECT lunch?", [2]),
            ("BODY numbers", [1]), ("BODY pizza", [2]), ("BODY quarterly", []),
            ("TEXT quarterly", [1]), ("TEXT pizza", [2]), ("TEXT X-Priority", [2, 4]),
            ('HEADER X-Priority ""', [2, 4]), ("HEADER X-Priority 5", [4]),
            ("HEADER x-priority 5", [4]), ("HEADER SUBJECT lunch", [2]),
            ('HEADER Message-ID ""', []),
            ("BEFORE 15-Mar-2021", [1]), ("ON 15-Mar-2021", [2]), ("SINCE 15-Mar-2021", [2, 3, 4, 5]),
            ("SINCE 6-May-2024", []), ("ON 1-Jan-2020", [1]),
            ("SENTBEFORE 10-Jun-2022", [1, 2]), ("SENTON 10-Jun-2022", [3]),
            ("SENTSINCE 10-Jun-2022", [3, 4, 5]),
            (f"LARGER {sizes[3] - 1}", [4]), (f"LARGER {sizes[3]}", []),
            (f"SMALLER {min(sizes) + 1}", [i + 1 for i, s in enumerate(sizes) if s == min(sizes)]),
            (f"SMALLER {sizes[3]}", [1, 2, 3, 5]),
            (f"UID {uids[1]}:{uids[2]}", [2, 3]), (f"UID {uids[4]}", [5]), ("UID 99999", []),
            ("UID *", [5]),
            ("2,4:5", [2, 4, 5]), ("*", [5]), ("3:*", [3, 4, 5]), ("*:4", [4, 5]),
            ("1:3 SEEN", [1]),
            ("NOT SEEN", [2, 3, 5]), ("NOT NOT SEEN", [1, 4]),
            ("OR SEEN FLAGGED", [1, 2, 4]), ("OR OR DRAFT FLAGGED ANSWERED", [1, 2, 3]),
            ("(SEEN ANSWERED)", [1]), ("(SEEN) (UNDELETED)", [1]),
            ("OR (FROM alice SEEN) (TO alice UNSEEN)", [1, 2]),
            ("NOT (OR SEEN DRAFT)", [2, 5]),
            ("SEEN UNSEEN", []),
        ]
        failures = []
        for key, want in cases:
            r = c.cmd(f"SEARCH {key}")
            if r.status != "OK":
                failures.append(f"SEARCH {key}: {r.line}")
                continue
            try:
                got = search_numbers(r)
            except AssertionError as e:
                failures.append(f"SEARCH {key}: {e}")
                continue
            if sorted(got) != want:
                failures.append(f"SEARCH {key}: expected {want}, got {got}")
        self.assertEqual(failures, [], "\n".join(failures))
        # UID SEARCH answers UIDs
        r = c.cmd("UID SEARCH FLAGGED")
        self.assertOK(r)
        self.assertEqual(search_numbers(r), [uids[1]])
        r = c.cmd("UID SEARCH 1:2")  # sequence numbers, answered as UIDs
        self.assertEqual(sorted(search_numbers(r)), uids[:2])
        # no match: "* SEARCH" with nothing after it
        r = c.cmd("SEARCH KEYWORD $Never")
        self.assertEqual(r.lines("SEARCH"), ["* SEARCH"])

    def test_search_charset_and_encodings(self):
        c = self.conn()
        self.search_corpus(c)
        # base64 body decoded before matching, non-ASCII key in a literal (RFC 3501 6.4.4)
        r = c.cmd("SEARCH CHARSET UTF-8 BODY ", Lit("M\u00fcnchen"))
        self.assertOK(r)
        self.assertEqual(search_numbers(r), [3])
        r = c.cmd("SEARCH CHARSET UTF-8 TEXT ", Lit("gr\u00fc\u00dfe"))
        self.assertOK(r)
        self.assertEqual(search_numbers(r), [3])
        # quoted-printable body
        r = c.cmd("SEARCH CHARSET UTF-8 BODY ", Lit("100 \u20ac"))
        self.assertOK(r)
        self.assertEqual(search_numbers(r), [4])
        # the encoded words of a header are decoded (RFC 9051 6.4.4 SHOULD)
        r = c.cmd("SEARCH CHARSET UTF-8 SUBJECT ", Lit("r\u00e9sum\u00e9"))
        self.assertOK(r)
        self.assertEqual(search_numbers(r), [3])
        # US-ASCII charset, no match in the encoded form
        r = c.cmd("SEARCH CHARSET US-ASCII BODY numbers")
        self.assertOK(r)
        self.assertEqual(search_numbers(r), [1])
        # unknown charset: NO, optionally with [BADCHARSET] (RFC 3501 6.4.4)
        r = c.cmd("SEARCH CHARSET X-UNKNOWN-CHARSET BODY x")
        self.assertNO(r)
        if r.code:
            self.assertEqual(r.code_name(), "BADCHARSET", str(r))

    def test_search_inside_nested_parts(self):
        c = self.fetch_setup()
        self.append_all(c, "INBOX", [simple("other", body="nothing here\r\n")])
        c.cmd("NOOP")
        for key, want in [("BODY \"Alt html\"", [1]), ("BODY \"Inner body line 2\"", [1]),
                          ("TEXT \"Inner message\"", [1]), ("BODY \"nothing here\"", [2]),
                          ("BODY \"Part one\"", [1])]:
            r = c.cmd(f"SEARCH {key}")
            self.assertOK(r)
            self.assertEqual(sorted(search_numbers(r)), want, key)

    def test_esearch(self):
        c = self.conn()
        _, uids = self.search_corpus(c)
        r = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN", tag="es1")
        self.assertOK(r)
        self.assertEqual(r.lines("SEARCH"), [], "ESEARCH: no SEARCH response (RFC 4731 3.1)")
        tag, uid, data = ic.esearch(r)
        self.assertEqual((tag, uid), ("es1", False))
        self.assertEqual(data["MIN"], 2)
        self.assertEqual(data["MAX"], 5)
        self.assertEqual(data["COUNT"], 3)
        self.assertEqual(ic.seq_set(data["ALL"]), [2, 3, 5])
        # RETURN () means ALL
        r = c.cmd("SEARCH RETURN () SEEN", tag="es2")
        tag, uid, data = ic.esearch(r)
        self.assertEqual(tag, "es2")
        self.assertEqual(set(data), {"ALL"})
        self.assertEqual(ic.seq_set(data["ALL"]), [1, 4])
        # only the requested items
        r = c.cmd("SEARCH RETURN (COUNT) ALL", tag="es3")
        self.assertEqual(ic.esearch(r)[2], {"COUNT": 5})
        # no match: no MIN/MAX/ALL (RFC 4731 3.1), COUNT 0
        r = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) KEYWORD $Never", tag="es4")
        self.assertOK(r)
        tag, uid, data = ic.esearch(r)
        self.assertEqual(data, {"COUNT": 0})
        # UID SEARCH: UID indicator and UIDs
        r = c.cmd("UID SEARCH RETURN (ALL MIN) FLAGGED", tag="es5")
        tag, uid, data = ic.esearch(r)
        self.assertTrue(uid, str(r))
        self.assertEqual(data["MIN"], uids[1])
        self.assertEqual(ic.seq_set(data["ALL"]), [uids[1]])
        self.assertBAD(c.cmd("SEARCH RETURN (BOGUS) ALL"))

    # =========================================================================================
    # FETCH

    def fetch_setup(self):
        c = self.conn()
        self.append_all(c, "INBOX", [(FETCH_MSG, None, "17-Jul-1996 02:44:25 -0700")])
        c.select("INBOX")
        return c

    def test_fetch_body_sections(self):
        c = self.fetch_setup()
        cases = [
            ("BODY.PEEK[]", "BODY[]", FETCH_MSG.decode()),
            ("BODY.PEEK[HEADER]", "BODY[HEADER]", FETCH_HEADER),
            ("BODY.PEEK[TEXT]", "BODY[TEXT]", FETCH_TEXT),
            ("BODY.PEEK[1]", "BODY[1]", PART1),
            ("BODY.PEEK[1.MIME]", "BODY[1.MIME]", PART1_MIME),
            ("BODY.PEEK[2]", "BODY[2]", PART2_BODY),
            ("BODY.PEEK[2.MIME]", "BODY[2.MIME]",
             "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"),
            ("BODY.PEEK[2.1]", "BODY[2.1]", PART21),
            ("BODY.PEEK[2.2]", "BODY[2.2]", PART22),
            ("BODY.PEEK[2.2.MIME]", "BODY[2.2.MIME]",
             "Content-Type: text/html; charset=us-ascii\r\n\r\n"),
            ("BODY.PEEK[3]", "BODY[3]", INNER_HDR + INNER_BODY),
            ("BODY.PEEK[3.HEADER]", "BODY[3.HEADER]", INNER_HDR),
            ("BODY.PEEK[3.TEXT]", "BODY[3.TEXT]", INNER_BODY),
            ("BODY.PEEK[3.1]", "BODY[3.1]", INNER_BODY),
            ("BODY.PEEK[3.HEADER.FIELDS (SUBJECT)]", "BODY[3.HEADER.FIELDS (SUBJECT)]",
             "Subject: Inner message\r\n\r\n"),
            ("BODY.PEEK[HEADER.FIELDS (Subject From)]", "BODY[HEADER.FIELDS (SUBJECT FROM)]",
             "From: Alice Example <alice@remote.test>\r\nSubject: Fetch test\r\n\r\n"),
            ("BODY.PEEK[HEADER.FIELDS (X-NOT-THERE)]", "BODY[HEADER.FIELDS (X-NOT-THERE)]",
             "\r\n"),
            ("BODY.PEEK[HEADER.FIELDS.NOT (Content-Type MIME-Version Message-ID In-Reply-To Cc "
             "Date)]",
             "BODY[HEADER.FIELDS.NOT (CONTENT-TYPE MIME-VERSION MESSAGE-ID IN-REPLY-TO CC DATE)]",
             "From: Alice Example <alice@remote.test>\r\n"
             "To: Bob <bob@acme.test>, carol@acme.test\r\nSubject: Fetch test\r\n\r\n"),
            ("BODY.PEEK[]<0.10>", "BODY[]<0>", FETCH_MSG[:10].decode()),
            ("BODY.PEEK[TEXT]<5.8>", "BODY[TEXT]<5>", FETCH_TEXT[5:13]),
            ("BODY.PEEK[1]<0.1000>", "BODY[1]<0>", PART1),
            ("BODY.PEEK[]<100000.10>", "BODY[]<100000>", ""),
            ("BODY.PEEK[HEADER.FIELDS (SUBJECT)]<2.5>", "BODY[HEADER.FIELDS (SUBJECT)]<2>",
             "bject"),
            ("BODY.PEEK[2.1]<4.100>", "BODY[2.1]<4>", PART21[4:]),
            ("RFC822.HEADER", "RFC822.HEADER", FETCH_HEADER),
        ]
        failures = []
        for item, name, want in cases:
            r = c.cmd(f"FETCH 1 ({item})")
            if not r.ok:
                failures.append(f"FETCH 1 ({item}): {r.line}")
                continue
            got = fetch_map(r).get(1, {})
            if name not in got:
                failures.append(f"FETCH 1 ({item}): no {name} in {list(got)}")
                continue
            v = got[name]
            v = ic.text(v) if v is not None else None
            if v != want:
                failures.append(f"FETCH 1 ({item}): expected {want!r}, got {v!r}")
        self.assertEqual(failures, [], "\n".join(failures))
        # nothing above set \Seen
        self.assertEqual(self.flags_of(c)[1] - {"\\Recent"}, set())

    def test_fetch_header_field_names_as_strings(self):
        """header-fld-name is an astring (RFC 3501 9): atom, quoted string or literal."""
        c = self.fetch_setup()
        want = "Subject: Fetch test\r\n\r\n"
        for parts in [("FETCH 1 (BODY.PEEK[HEADER.FIELDS (\"Subject\")])",),
                      ("FETCH 1 (BODY.PEEK[HEADER.FIELDS (", Lit("Subject"), ")])"),
                      ("FETCH 1 (BODY.PEEK[HEADER.FIELDS (", Lit("Subject", sync=False), ")])")]:
            r = c.cmd(*parts)
            self.assertOK(r)
            got = fetch_map(r)[1]
            vals = [v for k, v in got.items() if k.startswith("BODY[HEADER.FIELDS")]
            self.assertEqual([ic.text(v) for v in vals], [want], str(r))

    def test_fetch_seen_side_effects(self):
        c = self.fetch_setup()
        r = c.cmd("FETCH 1 (BODY[1])")
        self.assertOK(r)
        got = fetch_map(r)[1]
        self.assertEqual(ic.text(got["BODY[1]"]), PART1)
        # RFC 3501 6.4.5: \Seen is set, and the flags SHOULD be in the FETCH response
        self.assertIn("FLAGS", got, str(r))
        self.assertIn("\\Seen", got["FLAGS"])
        self.assertIn("\\Seen", self.flags_of(c)[1])
        # RFC822.TEXT and RFC822 set \Seen too; RFC822.HEADER does not
        self.assertOK(c.cmd("STORE 1 -FLAGS.SILENT (\\Seen)"))
        c.fetch("1", "RFC822.HEADER")
        self.assertNotIn("\\Seen", self.flags_of(c)[1])
        got = c.fetch("1", "RFC822.TEXT")[1]
        self.assertEqual(ic.text(got["RFC822.TEXT"]), FETCH_TEXT)
        self.assertIn("\\Seen", self.flags_of(c)[1])
        self.assertOK(c.cmd("STORE 1 -FLAGS.SILENT (\\Seen)"))
        got = c.fetch("1", "RFC822")[1]
        self.assertEqual(bytes(got["RFC822"]), FETCH_MSG)
        self.assertIn("\\Seen", self.flags_of(c)[1])

    def test_fetch_envelope_and_simple_items(self):
        c = self.fetch_setup()
        got = c.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE UID)")[1]
        self.assertEqual(set(got), {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "UID"})
        self.assertEqual(got["RFC822.SIZE"], len(FETCH_MSG))
        self.assertEqual(got["UID"], 1)
        self.assertEqual(parse_internaldate(got["INTERNALDATE"]),
                         parse_internaldate("17-Jul-1996 02:44:25 -0700"))
        self.assertRegex(got["INTERNALDATE"],
                         r"^[ 0-3][0-9]-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{4} "
                         r"\d\d:\d\d:\d\d [+-]\d{4}$")
        env = ic.deep_text(got["ENVELOPE"])
        frm = [["Alice Example", None, "alice", "remote.test"]]
        self.assertEqual(env, [
            "Wed, 17 Jul 1996 02:23:25 -0700", "Fetch test",
            frm, frm, frm,  # Sender and Reply-To default to From (RFC 3501 7.4.2)
            [["Bob", None, "bob", "acme.test"], [None, None, "carol", "acme.test"]],
            [["Dave, Jr.", None, "dave", "remote.test"]],
            None, "<parent@remote.test>", "<fetch-1@remote.test>"])

    def test_fetch_envelope_special_cases(self):
        c = self.conn()
        m = ("From: =?ISO-8859-1?Q?Andr=E9?= <andre@remote.test>\r\n"
             "Sender: Secretary <sec@remote.test>\r\n"
             "Reply-To: list@remote.test\r\n"
             "To: undisclosed-recipients:;\r\n"
             "Cc: Team: ann@acme.test, Ben <ben@acme.test>;, solo@acme.test\r\n"
             "Subject: =?UTF-8?B?w6lsw6h2ZQ==?= \"quoted\"\r\n"
             "\r\nbody\r\n").encode()
        self.append_all(c, "INBOX", [m])
        c.select("INBOX")
        env = ic.deep_text(c.fetch("1", "ENVELOPE")[1]["ENVELOPE"])
        # an encoded-word display name may be passed on re-encoded; compare it decoded
        self.assertEqual(decode_words(env[2][0][0]), "Andr\u00e9")
        env[2][0][0] = "=?ISO-8859-1?Q?Andr=E9?="
        self.assertEqual(env, [
            None,  # no Date
            "=?UTF-8?B?w6lsw6h2ZQ==?= \"quoted\"",  # not decoded (RFC 3501 7.4.2)
            [["=?ISO-8859-1?Q?Andr=E9?=", None, "andre", "remote.test"]],
            [["Secretary", None, "sec", "remote.test"]],
            [[None, None, "list", "remote.test"]],
            # groups: start (NIL NIL name NIL) ... end (NIL NIL NIL NIL)
            [[None, None, "undisclosed-recipients", None], [None, None, None, None]],
            [[None, None, "Team", None], [None, None, "ann", "acme.test"],
             ["Ben", None, "ben", "acme.test"], [None, None, None, None],
             [None, None, "solo", "acme.test"]],
            None, None, None])

    def test_fetch_repeated_and_folded_header_fields(self):
        c = self.conn()
        m = ("Received: from a.test by b.test; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
             "Received: from c.test\r\n\tby d.test; Mon, 1 Jan 2024 09:00:00 +0000\r\n"
             "From: x@remote.test\r\n"
             "Subject: a folded\r\n subject line\r\n"
             "X-Empty:\r\n"
             "\r\nbody\r\n").encode()
        self.append_all(c, "INBOX", [m])
        c.select("INBOX")
        got = c.fetch("1", "BODY.PEEK[HEADER.FIELDS (RECEIVED X-EMPTY)]")[1]
        self.assertEqual(ic.text(got["BODY[HEADER.FIELDS (RECEIVED X-EMPTY)]"]),
                         "Received: from a.test by b.test; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
                         "Received: from c.test\r\n\tby d.test; Mon, 1 Jan 2024 09:00:00 +0000\r\n"
                         "X-Empty:\r\n\r\n")
        got = c.fetch("1", "BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED FROM X-EMPTY)]")[1]
        self.assertEqual(ic.text(got["BODY[HEADER.FIELDS.NOT (RECEIVED FROM X-EMPTY)]"]),
                         "Subject: a folded\r\n subject line\r\n\r\n")
        env = ic.deep_text(c.fetch("1", "ENVELOPE")[1]["ENVELOPE"])
        self.assertEqual(env[1], "a folded subject line")  # unfolded (RFC 5322 2.2.3)
        r = c.cmd("SEARCH SUBJECT \"folded subject\"")
        self.assertEqual(search_numbers(r), [1])

    def test_fetch_body_and_bodystructure(self):
        c = self.fetch_setup()
        got = c.fetch("1", "(BODY BODYSTRUCTURE)")[1]
        inner_env = ["Thu, 18 Jul 1996 10:00:00 +0000", "Inner message",
                     [["Inner", None, "inner", "remote.test"]],
                     [["Inner", None, "inner", "remote.test"]],
                     [["Inner", None, "inner", "remote.test"]], None, None, None, None, None]
        inner_len = len(INNER_HDR + INNER_BODY)
        body = ic.parse(
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 1)'
            '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d 1)'
            '("text" "html" ("charset" "us-ascii") NIL NIL "7bit" %d 1) "alternative")'
            '("message" "rfc822" NIL NIL NIL "7bit" %d %s ("text" "plain" ("charset" "us-ascii") '
            'NIL NIL "7bit" %d 2) %d) "mixed")'
            % (len(PART1), len(PART21), len(PART22), inner_len,
               envelope_text(inner_env), len(INNER_BODY), INNER_HDR.count("\n") + 2))
        self.assertEqual(ic.norm_body(got["BODY"]), ic.norm_body(body))
        bs = ic.norm_body(got["BODYSTRUCTURE"])
        # BODYSTRUCTURE = BODY plus extension data; check the non-extension prefix and the
        # multipart parameters
        self.assertEqual(bs[3], "mixed")
        self.assertEqual(bs[4], [("boundary", "outer")])
        self.assertEqual(bs[0][:7], ["text", "plain", [("charset", "us-ascii")], None, None,
                                      "7bit", len(PART1)])
        self.assertEqual(bs[1][2], "alternative")
        self.assertEqual(bs[1][3], [("boundary", "inner")])

    def test_fetch_macros(self):
        c = self.fetch_setup()
        for macro, items in [("ALL", {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}),
                             ("FAST", {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}),
                             ("FULL", {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
                                       "BODY"})]:
            got = c.fetch("1", macro)[1]
            self.assertEqual(set(got), items, macro)
        # UID FETCH always includes UID (RFC 3501 6.4.8)
        got = c.fetch("1", "FLAGS", uid=True)[1]
        self.assertEqual(set(got), {"FLAGS", "UID"})
        self.assertEqual(got["UID"], 1)
        # UID FETCH of a missing UID: OK with nothing
        r = c.cmd("UID FETCH 999 FLAGS")
        self.assertOK(r)
        self.assertEqual(r.lines("FETCH"), [])

    def test_fetch_ranges(self):
        c = self.conn()
        uids = self.append_all(c, "INBOX", [simple(f"r{i}") for i in range(1, 6)])
        c.select("INBOX")
        self.assertEqual(sorted(c.fetch("1:*", "UID")), [1, 2, 3, 4, 5])
        self.assertEqual(sorted(c.fetch("*", "UID")), [5])
        self.assertEqual(sorted(c.fetch("4:2", "UID")), [2, 3, 4])
        self.assertEqual(sorted(c.fetch("1,3,5", "UID")), [1, 3, 5])
        self.assertEqual(sorted(c.fetch("*:4", "UID")), [4, 5])
        got = c.fetch(f"{uids[1]}:{uids[3]}", "FLAGS", uid=True)
        self.assertEqual(sorted(v["UID"] for v in got.values()), uids[1:4])
        # UID range beyond the last UID includes the last message (RFC 3501 6.4.8: n:* )
        got = c.fetch(f"{uids[4] + 100}:*", "FLAGS", uid=True)
        self.assertEqual([v["UID"] for v in got.values()], [uids[4]])

    # =========================================================================================
    # STORE

    def test_store(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("s1"), simple("s2"), simple("s3")])
        c.select("INBOX")
        r = c.cmd("STORE 1 +FLAGS (\\Flagged \\Seen)")
        self.assertOK(r)
        got = fetch_map(r)
        self.assertEqual(set(got[1]["FLAGS"]) - {"\\Recent"}, {"\\Flagged", "\\Seen"})
        r = c.cmd("STORE 1 -FLAGS (\\Seen)")
        self.assertEqual(set(fetch_map(r)[1]["FLAGS"]) - {"\\Recent"}, {"\\Flagged"})
        r = c.cmd("STORE 2 FLAGS (\\Answered $Label1 $Label2)")
        self.assertEqual(set(fetch_map(r)[2]["FLAGS"]) - {"\\Recent"},
                         {"\\Answered", "$Label1", "$Label2"})
        r = c.cmd("STORE 2 -FLAGS ($Label1)")
        self.assertEqual(set(fetch_map(r)[2]["FLAGS"]) - {"\\Recent"}, {"\\Answered", "$Label2"})
        # .SILENT: no FETCH (RFC 3501 6.4.6)
        r = c.cmd("STORE 3 +FLAGS.SILENT (\\Draft)")
        self.assertOK(r)
        self.assertEqual(r.lines("FETCH"), [])
        r = c.cmd("STORE 2:3 FLAGS.SILENT ()")
        self.assertOK(r)
        self.assertEqual(r.lines("FETCH"), [])
        # flag names are case-insensitive; keywords keep one spelling
        self.assertOK(c.cmd("STORE 3 +FLAGS (\\SEEN)"))
        fl = {k: v - {"\\Recent"} for k, v in self.flags_of(c).items()}
        self.assertEqual(fl, {1: {"\\Flagged"}, 2: set(), 3: {"\\Seen"}})
        # the flags persist for another session
        c2 = self.conn(c.user)
        c2.select("INBOX")
        self.assertEqual(self.flags_of(c2), {1: {"\\Flagged"}, 2: set(), 3: {"\\Seen"}})
        # UID STORE includes UID in its FETCH responses (RFC 3501 6.4.8)
        r = c.cmd("UID STORE 2 +FLAGS ($Junk)")
        self.assertOK(r)
        got = fetch_map(r)[2]
        self.assertEqual(got["UID"], 2)
        self.assertEqual(set(got["FLAGS"]) - {"\\Recent"}, {"$Junk"})
        # a keyword that was used appears in FLAGS of a new SELECT? (not required) -- but
        # PERMANENTFLAGS keeps \* so new keywords can be set
        r = c.select("INBOX")
        self.assertTrue(any("\\*" in l for l in r.untagged if "PERMANENTFLAGS" in l))

    # =========================================================================================
    # COPY / MOVE

    def test_copy(self):
        c = self.conn()
        uids = self.append_all(c, "INBOX", [(simple("c1"), "\\Flagged", "01-Feb-2020 10:00:00 +0000"),
                                            simple("c2"), simple("c3")])
        st = self.status(c, "Archive", "(UIDVALIDITY UIDNEXT)")
        c.select("INBOX")
        r = c.cmd("COPY 1:2 Archive")
        self.assertOK(r, "COPYUID")
        # RFC 4315 3: COPYUID <uidvalidity> <source uids> <dest uids>
        _, v, src, dst = r.code.split()
        self.assertEqual(int(v), st["UIDVALIDITY"])
        self.assertEqual(ic.seq_set(src), uids[:2])
        self.assertEqual(ic.seq_set(dst), [st["UIDNEXT"], st["UIDNEXT"] + 1])
        r = c.cmd(f"UID COPY {uids[2]} Archive")
        self.assertOK(r, "COPYUID")
        _, v, src, dst = r.code.split()
        self.assertEqual(ic.seq_set(src), [uids[2]])
        self.assertEqual(ic.seq_set(dst), [st["UIDNEXT"] + 2])
        # the source is unchanged
        self.assertEqual(len(c.fetch("1:*", "UID")), 3)
        # flags and internal date preserved (RFC 3501 6.4.7 SHOULD)
        c.select("Archive")
        got = c.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
        self.assertIn("\\Flagged", got["FLAGS"])
        self.assertEqual(parse_internaldate(got["INTERNALDATE"]),
                         parse_internaldate("01-Feb-2020 10:00:00 +0000"))
        self.assertEqual(ic.text(got["BODY[HEADER.FIELDS (SUBJECT)]"]), "Subject: c1\r\n\r\n")
        # COPY into the selected mailbox itself: a new message with a new UID (RFC 3501 6.4.7)
        c.select("INBOX")
        r = c.cmd("COPY 1 INBOX")
        self.assertOK(r, "COPYUID")
        self.assertEqual(ic.seq_set(r.code.split()[3]), [uids[2] + 1])
        r = c.cmd("NOOP")
        self.assertEqual(len(c.fetch("1:*", "UID")), 4)
        # missing destination -> NO [TRYCREATE]
        self.assertNO(c.cmd("COPY 1 NoSuchFolder"), "TRYCREATE")
        # UID COPY of UIDs that do not exist: OK, nothing copied (no COPYUID needed)
        r = c.cmd("UID COPY 9999 Archive")
        self.assertOK(r)
        self.assertEqual(self.status(c, "Archive", "(MESSAGES)"), {"MESSAGES": 3})

    def test_move(self):
        c = self.conn()
        uids = self.append_all(c, "INBOX", [simple(f"m{i}") for i in range(1, 5)])
        st = self.status(c, "Trash", "(UIDVALIDITY UIDNEXT)")
        c.select("INBOX")
        r = c.cmd("MOVE 2 Trash")
        self.assertOK(r)
        # RFC 6851 3.3: COPYUID in an untagged OK before the EXPUNGE (SHOULD)
        copyuid = [i for i, l in enumerate(r.untagged) if l.startswith("* OK [COPYUID ")]
        expunge = [i for i, l in enumerate(r.untagged) if l.endswith(" EXPUNGE")]
        self.assertEqual(len(copyuid), 1, str(r))
        self.assertEqual(expunge and len(expunge), 1, str(r))
        self.assertLess(copyuid[0], expunge[0])
        code = re.match(r"^\* OK \[(COPYUID [^\]]*)\]", r.untagged[copyuid[0]]).group(1).split()
        self.assertEqual(code[1:], [str(st["UIDVALIDITY"]), str(uids[1]), str(st["UIDNEXT"])])
        self.assertEqual(ic.apply_expunges(uids, r.untagged), [uids[0], uids[2], uids[3]])
        # UID MOVE of several
        r = c.cmd(f"UID MOVE {uids[2]}:{uids[3]} Trash")
        self.assertOK(r)
        self.assertEqual(ic.apply_expunges([uids[0], uids[2], uids[3]], r.untagged), [uids[0]])
        self.assertEqual(self.status(c, "Trash", "(MESSAGES)"), {"MESSAGES": 3})
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 1})
        # missing destination
        self.assertNO(c.cmd("MOVE 1 NoSuchFolder"), "TRYCREATE")
        self.assertEqual(len(c.fetch("1:*", "UID")), 1)

    def test_move_to_same_mailbox_keeps_message(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("self")])
        c.select("INBOX")
        r = c.cmd("MOVE 1 INBOX")
        # whatever the answer, the message must still be in INBOX exactly once
        self.assertIn(r.status, ("OK", "NO"), str(r))
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 1})

    # =========================================================================================
    # Pipelining, quoting, large messages

    def test_pipelining(self):
        """Several commands in one write (RFC 3501 5.5); answers in order, each tagged."""
        c = self.conn()
        m = simple("piped")
        c.send(b"p1 NOOP\r\n"
               b"p2 APPEND INBOX {%d+}\r\n%s\r\n"
               b"p3 APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n"
               b"p4 SELECT INBOX\r\n"
               b"p5 FETCH 1:* (UID FLAGS)\r\n"
               b"p6 STATUS Drafts (MESSAGES)\r\n" % (len(m), m, len(m), m))
        results = [c.collect(f"p{i}") for i in range(1, 7)]
        for r in results:
            self.assertOK(r)
        self.assertIn("* 2 EXISTS", results[3].untagged)
        got = fetch_map(results[4])
        self.assertEqual(sorted(got), [1, 2])
        self.assertIn("\\Seen", got[2]["FLAGS"])

    def test_login_quoted_escapes_and_literals(self):
        user = f"quote{time.time_ns() % 10**9}@{DOMAIN}"
        pw = 'p"a\\ss w{0}rd'
        self.inst.add_user(user, password=pw)
        c = self.raw_conn()
        self.assertOK(c.cmd(f"LOGIN {ic.quote(user)} {ic.quote(pw)}"))
        c2 = self.raw_conn()
        self.assertOK(c2.cmd("LOGIN ", Lit(user), " ", Lit(pw)))
        c3 = self.raw_conn()
        self.assertOK(c3.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(user, pw)}"))
        c4 = self.raw_conn()
        self.assertNO(c4.cmd(f"LOGIN {ic.quote(user)} {ic.quote(pw[:-1])}"))

    def test_large_message_roundtrip(self):
        c = self.conn()
        m = h.make_message("large@client.test", 300_000)
        r = c.append("INBOX", m)
        self.assertOK(r, "APPENDUID")
        c.select("INBOX")
        got = c.fetch("1", "(RFC822.SIZE BODY.PEEK[])")[1]
        self.assertEqual(got["RFC822.SIZE"], len(m))
        self.assertEqual(bytes(got["BODY[]"]), m)
        for start, count in [(0, 1), (65535, 3), (65536, 100), (len(m) - 5, 100),
                             (200_000, 70_000)]:
            got = c.fetch("1", f"BODY.PEEK[]<{start}.{count}>")[1]
            self.assertEqual(bytes(ic.text(got[f"BODY[]<{start}>"]).encode("utf-8", "surrogateescape")),
                             m[start:start + count], (start, count))
        hdr_end = m.index(b"\r\n\r\n") + 4
        got = c.fetch("1", "(BODY.PEEK[TEXT]<0.20> BODY.PEEK[HEADER])")[1]
        self.assertEqual(ic.text(got["BODY[TEXT]<0>"]).encode(), m[hdr_end:hdr_end + 20])
        self.assertEqual(ic.text(got["BODY[HEADER]"]).encode(), m[:hdr_end])

    def test_many_messages_fetch_in_order(self):
        c = self.conn()
        n = 300
        data = b"".join(b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(mm), mm)
                        for i, mm in enumerate(simple(f"bulk {i}") for i in range(n)))
        c.send(data)
        for i in range(n):
            self.assertOK(c.collect(f"a{i}"))
        c.select("INBOX")
        r = c.must("FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        seqs = [parse_fetch(u)[0] for u in r.lines("FETCH")]
        self.assertEqual(seqs, list(range(1, n + 1)))
        got = fetch_map(r)
        for i in range(1, n + 1):
            self.assertEqual(got[i]["UID"], i)
            self.assertEqual(ic.text(got[i]["BODY[HEADER.FIELDS (SUBJECT)]"]),
                             f"Subject: bulk {i - 1}\r\n\r\n")
        r = c.must("SEARCH SUBJECT \"bulk 299\"")
        self.assertEqual(sorted(search_numbers(r)), [300])
        r = c.must("SEARCH SUBJECT \"bulk 29\"")  # substring: 29 and 290-299
        self.assertEqual(sorted(search_numbers(r)), [30] + list(range(291, 301)))

    # =========================================================================================
    # NAMESPACE, ID, ENABLE

    def test_namespace_id_enable(self):
        c = self.conn(self.shared_user)
        r = c.cmd("NAMESPACE")
        self.assertOK(r)
        self.assertEqual(r.lines("NAMESPACE"), ['* NAMESPACE (("" "/")) NIL NIL'])
        r = c.cmd('ID ("name" "imap-test" "version" "1.0")')
        self.assertOK(r)
        ids = r.lines("ID")
        self.assertEqual(len(ids), 1, str(r))
        v = ic.parse(ids[0][len("* ID "):])
        self.assertTrue(v is None or (isinstance(v, list) and len(v) % 2 == 0), ids)
        r = c.cmd("ENABLE CONDSTORE")
        self.assertOK(r)
        self.assertEqual(r.lines("ENABLED"), ["* ENABLED CONDSTORE"])
        # unknown capabilities are not listed (RFC 5161 3.1)
        r = c.cmd("ENABLE X-NO-SUCH-EXTENSION")
        self.assertOK(r)
        self.assertEqual([l.rstrip() for l in r.lines("ENABLED")], ["* ENABLED"])
        self.assertBAD(c.cmd("ENABLE"))

    # =========================================================================================
    # CONDSTORE (RFC 7162)

    def test_condstore(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple(f"cs{i}") for i in range(1, 5)])
        r = c.select("INBOX", params=" (CONDSTORE)")
        hms = int(re.search(r"\[HIGHESTMODSEQ (\d+)\]", str(r)).group(1))
        got = c.fetch("1:*", "(MODSEQ)")
        mods = {n: v["MODSEQ"][0] for n, v in got.items()}
        self.assertEqual(set(mods), {1, 2, 3, 4})
        self.assertEqual(max(mods.values()), hms)
        # STORE: FETCH responses carry UID and MODSEQ once CONDSTORE is on (RFC 7162 3.1)
        r = c.cmd("STORE 2 +FLAGS (\\Flagged)")
        self.assertOK(r)
        f = fetch_map(r)[2]
        self.assertIn("MODSEQ", f, str(r))
        m2 = f["MODSEQ"][0]
        self.assertGreater(m2, hms)
        # CHANGEDSINCE: only messages changed after the given mod-sequence, with MODSEQ
        got = c.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {hms})")
        self.assertEqual(list(got), [2])
        self.assertEqual(got[2]["MODSEQ"], [m2])
        got = c.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {m2})")
        self.assertEqual(got, {})
        # UNCHANGEDSINCE: message 2 changed since hms, message 3 did not
        r = c.cmd(f"STORE 2:3 (UNCHANGEDSINCE {hms}) +FLAGS (\\Seen)")
        self.assertOK(r, "MODIFIED")
        self.assertEqual(ic.seq_set(r.code.split()[1]), [2])
        fl = self.flags_of(c)
        self.assertNotIn("\\Seen", fl[2])
        self.assertIn("\\Seen", fl[3])
        # UNCHANGEDSINCE 0 always fails (RFC 7162 3.1.3)
        r = c.cmd("STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Answered)")
        self.assertOK(r, "MODIFIED")
        self.assertNotIn("\\Answered", self.flags_of(c)[1])
        # UID STORE ... [MODIFIED] lists UIDs
        r = c.cmd(f"UID STORE 2 (UNCHANGEDSINCE {hms}) +FLAGS (\\Seen)")
        self.assertOK(r, "MODIFIED")
        self.assertEqual(ic.seq_set(r.code.split()[1]), [2])
        # SEARCH MODSEQ: matches and the highest mod-sequence of the matches (RFC 7162 3.1.5)
        r = c.cmd(f"SEARCH MODSEQ {m2}")
        self.assertOK(r)
        line = r.lines("SEARCH")[0]
        m = re.match(r"^\* SEARCH ([\d ]+) \(MODSEQ (\d+)\)$", line)
        self.assertTrue(m, line)
        nums = sorted(int(x) for x in m.group(1).split())
        self.assertEqual(nums, [2, 3])
        top = max(v["MODSEQ"][0] for v in c.fetch("2:3", "(MODSEQ)").values())
        self.assertEqual(int(m.group(2)), top)
        r = c.cmd("SEARCH MODSEQ 99999999")
        self.assertEqual(r.lines("SEARCH"), ["* SEARCH"])
        # STATUS HIGHESTMODSEQ follows
        st = self.status(c, "INBOX", "(HIGHESTMODSEQ)")
        self.assertEqual(st["HIGHESTMODSEQ"], top)

    def test_condstore_store_response_has_uid_and_modseq(self):
        """RFC 7162 3.1: once CONDSTORE is enabled, the server MUST include both UID and
        mod-sequence in all subsequent untagged FETCH responses caused by STORE."""
        c = self.conn()
        self.append_all(c, "INBOX", [simple("x"), simple("y")])
        c.select("INBOX", params=" (CONDSTORE)")
        r = c.cmd("STORE 2 +FLAGS (\\Flagged)")
        self.assertOK(r)
        f = fetch_map(r)[2]
        self.assertIn("MODSEQ", f, str(r))
        self.assertIn("UID", f, str(r))
        self.assertEqual(f["UID"], 2)

    def test_condstore_enable_then_fetch_modseq_and_store_response(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("x")])
        r = c.cmd("ENABLE CONDSTORE")
        self.assertEqual(r.lines("ENABLED"), ["* ENABLED CONDSTORE"])
        r = c.select("INBOX")
        self.assertTrue(any(re.match(r"^\* OK \[HIGHESTMODSEQ \d+\]", l) for l in r.untagged))
        r = c.cmd("STORE 1 FLAGS (\\Seen)")
        f = fetch_map(r)[1]
        self.assertIn("MODSEQ", f, str(r))
        # a FETCH that sets \Seen implicitly also reports MODSEQ (RFC 7162 3.1)
        self.assertOK(c.cmd("STORE 1 -FLAGS.SILENT (\\Seen)"))
        r = c.cmd("FETCH 1 (BODY[TEXT])")
        f = fetch_map(r)[1]
        self.assertIn("\\Seen", f.get("FLAGS", []), str(r))
        self.assertIn("MODSEQ", f, str(r))

    # =========================================================================================
    # QRESYNC (RFC 7162 3.2)

    def test_qresync(self):
        c = self.conn()
        uids = self.append_all(c, "INBOX", [simple(f"q{i}") for i in range(1, 6)])
        st = self.status(c, "INBOX", "(UIDVALIDITY HIGHESTMODSEQ)")
        v, m0 = st["UIDVALIDITY"], st["HIGHESTMODSEQ"]
        # without ENABLE QRESYNC the SELECT parameter is BAD (RFC 7162 3.2.5)
        self.assertBAD(c.cmd(f"SELECT INBOX (QRESYNC ({v} {m0}))"))
        # another session changes things: expunge uid 2, flag uid 4
        o = self.conn(c.user)
        o.select("INBOX")
        self.assertOK(o.cmd(f"UID STORE {uids[1]} +FLAGS.SILENT (\\Deleted)"))
        self.assertOK(o.cmd(f"UID EXPUNGE {uids[1]}"))
        self.assertOK(o.cmd(f"UID STORE {uids[3]} +FLAGS.SILENT (\\Flagged)"))
        o.logout()

        r = c.cmd("ENABLE QRESYNC")
        self.assertOK(r)
        self.assertEqual(len(r.lines("ENABLED")), 1)
        self.assertIn("QRESYNC", r.lines("ENABLED")[0].split())
        r = c.cmd(f"SELECT INBOX (QRESYNC ({v} {m0} 1:{uids[-1]}))")
        self.assertOK(r)
        self.assertIn("* 4 EXISTS", r.untagged)
        van = ic.vanished(r, earlier=True)
        self.assertIn(uids[1], van, str(r))
        for u in (uids[0], uids[2], uids[3], uids[4]):
            self.assertNotIn(u, van)
        self.assertEqual(ic.vanished(r, earlier=False), [])
        changed = fetch_map(r)
        self.assertEqual([f["UID"] for f in changed.values()], [uids[3]], str(r))
        (seq, f), = changed.items()
        self.assertEqual(seq, 3)
        self.assertIn("\\Flagged", f["FLAGS"])
        self.assertIn("MODSEQ", f)
        # UID FETCH ... (CHANGEDSINCE m VANISHED)
        r = c.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
        self.assertOK(r)
        self.assertIn(uids[1], ic.vanished(r, earlier=True))
        self.assertEqual([f["UID"] for f in fetch_map(r).values()], [uids[3]])
        # VANISHED modifier needs UID FETCH and CHANGEDSINCE (RFC 7162 3.2.6)
        self.assertBAD(c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)"))
        self.assertBAD(c.cmd("UID FETCH 1:* (FLAGS) (VANISHED)"))
        # with QRESYNC on, EXPUNGE answers VANISHED instead of EXPUNGE (RFC 7162 3.2.10)
        self.assertOK(c.cmd(f"UID STORE {uids[0]} +FLAGS.SILENT (\\Deleted)"))
        r = c.cmd("EXPUNGE")
        self.assertOK(r)
        self.assertEqual(r.lines("EXPUNGE"), [])
        self.assertEqual(ic.vanished(r, earlier=False), [uids[0]])
        # MOVE too answers VANISHED (RFC 6851 4.3 with RFC 7162)
        r = c.cmd(f"UID MOVE {uids[2]} Archive")
        self.assertOK(r)
        self.assertEqual(r.lines("EXPUNGE"), [], str(r))
        self.assertEqual(ic.vanished(r, earlier=False), [uids[2]], str(r))
        self.assertTrue(any(l.startswith("* OK [COPYUID ") for l in r.untagged) or
                        r.code_name() == "COPYUID", str(r))
        # a stale UIDVALIDITY: plain SELECT, no VANISHED or FETCH
        r = c.cmd(f"SELECT INBOX (QRESYNC ({v + 1} {m0}))")
        self.assertOK(r)
        self.assertEqual(ic.vanished(r), [])
        self.assertEqual(r.lines("FETCH"), [])
        # the previous mailbox closed with [CLOSED] (RFC 7162 3.2.11)
        self.assertTrue(any(l.startswith("* OK [CLOSED]") for l in r.untagged), str(r))

    # =========================================================================================
    # QUOTA (RFC 9208)

    def test_quota_none(self):
        c = self.conn(self.shared_user)
        r = c.cmd("GETQUOTAROOT INBOX")
        self.assertOK(r)
        roots = r.lines("QUOTAROOT")
        self.assertEqual(len(roots), 1, str(r))
        self.assertEqual(ic.deep_text(ic.parse_values(roots[0][len("* QUOTAROOT "):])), ["INBOX"])
        self.assertEqual(r.lines("QUOTA"), [])
        self.assertNO(c.cmd('SETQUOTA "" (STORAGE 100)'))

    def test_quota_limit(self):
        user = self.pool.take(quota="1MB")
        c = self.conn(user)
        m = simple("q", body="y" * 3000 + "\r\n")
        self.append_all(c, "INBOX", [m])
        r = c.cmd("GETQUOTAROOT INBOX")
        self.assertOK(r)
        roots = r.lines("QUOTAROOT")
        self.assertEqual(len(roots), 1, str(r))
        vals = ic.deep_text(ic.parse_values(roots[0][len("* QUOTAROOT "):]))
        self.assertEqual(vals[0], "INBOX")
        self.assertEqual(len(vals), 2, str(r))
        root = vals[1]
        quotas = r.lines("QUOTA")
        self.assertEqual(len(quotas), 1, str(r))
        q = ic.deep_text(ic.parse_values(quotas[0][len("* QUOTA "):]))
        self.assertEqual(q[0], root)
        self.assertEqual(q[1][0].upper(), "STORAGE")
        # units of 1024 octets (RFC 9208 5.1)
        self.assertIn(int(q[1][1]), (len(m) // 1024, (len(m) + 1023) // 1024))
        self.assertEqual(int(q[1][2]), 1024)
        r = c.cmd(f"GETQUOTA {ic.quote(root)}")
        self.assertOK(r)
        self.assertEqual(len(r.lines("QUOTA")), 1)
        self.assertEqual(r.lines("QUOTA")[0], quotas[0])
        self.assertNO(c.cmd(f"SETQUOTA {ic.quote(root)} (STORAGE 100)"))
        self.assertNO(c.cmd('GETQUOTA "no-such-root"'))
        self.assertNO(c.cmd("GETQUOTAROOT NoSuchFolder"))

    def test_over_quota(self):
        user = self.pool.take(quota="8KB")
        c = self.conn(user)
        big = simple("big", body="z" * 5000 + "\r\n")
        self.append_all(c, "INBOX", [big])
        # RFC 9208 4.3 / RFC 5530: APPEND over quota -> NO [OVERQUOTA]
        r = c.append("INBOX", big)
        self.assertNO(r, "OVERQUOTA")
        c.select("INBOX")
        r = c.cmd("COPY 1 Archive")
        self.assertNO(r, "OVERQUOTA")
        self.assertEqual(self.status(c, "Archive", "(MESSAGES)"), {"MESSAGES": 0})
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES)"), {"MESSAGES": 1})

    # =========================================================================================
    # Mailbox names: modified UTF-7, UTF8=ACCEPT

    def test_mutf7_names(self):
        c = self.conn()
        self.assertOK(c.cmd('CREATE "Entw&APw-rfe"'))
        self.assertOK(c.cmd('CREATE "A&-B"'))
        self.assertOK(c.cmd('CREATE "&ZeVnLIqe-"'))  # 日本語
        names = ic.list_names(c.cmd('LIST "" "*"'))
        for n in ["Entw&APw-rfe", "A&-B", "&ZeVnLIqe-"]:
            self.assertIn(n, names)
        self.append_all(c, "Entw&APw-rfe", [simple("draft")])
        self.assertEqual(self.status(c, "Entw&APw-rfe", "(MESSAGES)"), {"MESSAGES": 1})
        c.select("Entw&APw-rfe")
        c.cmd("UNSELECT")
        # UTF8=ACCEPT: names in UTF-8 (RFC 6855 3)
        r = c.cmd("ENABLE UTF8=ACCEPT")
        self.assertOK(r)
        self.assertEqual(r.lines("ENABLED"), ["* ENABLED UTF8=ACCEPT"])
        names = ic.list_names(c.cmd('LIST "" "*"'))
        for n in ["Entw\u00fcrfe", "A&B", "\u65e5\u672c\u8a9e"]:
            self.assertIn(n, names)
        self.assertNotIn("Entw&APw-rfe", names)
        self.assertEqual(self.status(c, "Entw\u00fcrfe", "(MESSAGES)"), {"MESSAGES": 1})
        self.assertOK(c.cmd('CREATE "\u00dcbersicht/M\u00e4rz"'))
        # a connection without UTF8=ACCEPT sees the mUTF-7 form
        c2 = self.conn(c.user)
        names = ic.list_names(c2.cmd('LIST "" "*"'))
        self.assertIn("&ANw-bersicht/M&AOQ-rz", names)
        self.assertIn("&ANw-bersicht", names)
        # with UTF8=ACCEPT on, names are UTF-8: "&" is just a character (RFC 6855 3)
        self.assertOK(c.cmd('CREATE "A&APw-B"'))
        self.assertIn("A&APw-B", ic.list_names(c.cmd('LIST "" "A*"')))
        self.assertNotIn("A\u00fcB", ic.list_names(c.cmd('LIST "" "A*"')))
        self.assertIn("A&-APw-B", ic.list_names(c2.cmd('LIST "" "A*"')))

    # =========================================================================================
    # IMAP4rev2 (RFC 9051)

    def test_imap4rev2_enabled(self):
        c = self.conn()
        self.append_all(c, "INBOX", [simple("r1"), (simple("r2"), "\\Seen", None), simple("r3")])
        r = c.cmd("ENABLE IMAP4rev2")
        self.assertOK(r)
        self.assertEqual([l.upper() for l in r.lines("ENABLED")], ["* ENABLED IMAP4REV2"])
        r = c.select("INBOX")
        # no RECENT response, no \Recent flag (RFC 9051 removed both)
        self.assertEqual(r.lines("RECENT"), [], str(r))
        self.assertIn("* 3 EXISTS", r.untagged)
        # SELECT returns a LIST response with the mailbox name (RFC 9051 6.3.2)
        lists = r.lines("LIST")
        self.assertEqual(len(lists), 1, str(r))
        self.assertEqual(ic.list_entries(r)[0][2], "INBOX")
        for v in c.fetch("1:*", "FLAGS").values():
            self.assertNotIn("\\Recent", v["FLAGS"])
        # SEARCH is answered with ESEARCH (RFC 9051 6.4.4)
        r = c.cmd("SEARCH UNSEEN", tag="r2s")
        self.assertOK(r)
        self.assertEqual(r.lines("SEARCH"), [])
        tag, uid, data = ic.esearch(r)
        self.assertEqual((tag, uid), ("r2s", False))
        self.assertEqual(ic.seq_set(data["ALL"]), [1, 3])
        r = c.cmd("UID SEARCH ALL", tag="r2u")
        tag, uid, data = ic.esearch(r)
        self.assertTrue(uid)
        self.assertEqual(ic.seq_set(data["ALL"]), [1, 2, 3])
        r = c.cmd("SEARCH KEYWORD $Nope", tag="r2n")
        self.assertOK(r)
        self.assertEqual(ic.esearch(r)[2], {})
        # STATUS has no RECENT in rev2... a rev2 server may still accept it; DELETED works
        self.assertEqual(self.status(c, "INBOX", "(MESSAGES DELETED)"),
                         {"MESSAGES": 3, "DELETED": 0})
        # new mail: EXISTS, and still no RECENT
        ic.deliver(self.inst.port, c.user, simple("rev2 new"))
        r = c.cmd("NOOP")
        self.assertIn("* 4 EXISTS", r.untagged)
        self.assertEqual(r.lines("RECENT"), [], str(r))
        self.assertNotIn("\\Recent", c.fetch("4", "FLAGS")[4]["FLAGS"])

    def test_imap4rev2_select_sends_closed(self):
        c = self.conn()
        self.assertOK(c.cmd("ENABLE IMAP4rev2"))
        c.select("INBOX")
        # RFC 9051 6.3.2: SELECT while a mailbox is selected answers OK [CLOSED] first
        r = c.select("Drafts")
        self.assertTrue(any(l.startswith("* OK [CLOSED]") for l in r.untagged), str(r))


class RestartTest(h.MailarkTestCase):
    """The client contract survives a server restart: UIDVALIDITY, UIDs, UIDNEXT, flags,
    HIGHESTMODSEQ (ARCHITECTURE invariant 5, RFC 3501 2.3.1.1, RFC 7162 3.1.2.1)."""

    def test_state_after_restart(self):
        inst, ports = ic.start_server("imap-restart", users=[f"r@{DOMAIN}"], tenants=[DOMAIN],
                                      password=PW)
        c = Imap(ports["imap"])
        c.login(f"r@{DOMAIN}", PW)
        for i in range(3):
            self.assertTrue(c.append("INBOX", simple(f"r{i}")).ok)
        c.select("INBOX")
        self.assertTrue(c.cmd("STORE 2 +FLAGS (\\Flagged $Kw)").ok)
        self.assertTrue(c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").ok)
        self.assertTrue(c.cmd("EXPUNGE").ok)
        self.assertTrue(c.cmd('CREATE "Keep/Me"').ok)
        before = c.must("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ UNSEEN)")
        flags = {n: v for n, v in c.fetch("1:*", "(UID FLAGS)").items()}
        names = sorted(ic.list_names(c.must('LIST "" "*"')))
        c.logout()
        self.assertEqual(inst.stop(), 0)
        inst.start()
        with open(inst.ports_file) as f:
            import json
            ports = json.load(f)
        c = Imap(ports["imap"])
        self.addCleanup(c.close)
        c.login(f"r@{DOMAIN}", PW)
        after = c.must("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ UNSEEN)")
        self.assertEqual(status_items(after), status_items(before))
        c.select("INBOX")
        got = {n: v for n, v in c.fetch("1:*", "(UID FLAGS)").items()}
        self.assertEqual({n: (v["UID"], set(v["FLAGS"]) - {"\\Recent"}) for n, v in got.items()},
                         {n: (v["UID"], set(v["FLAGS"]) - {"\\Recent"}) for n, v in flags.items()})
        self.assertEqual(sorted(ic.list_names(c.must('LIST "" "*"'))), names)
        # a new message continues the UIDs
        r = c.append("INBOX", simple("after restart"))
        self.assertEqual(int(r.code.split()[2]), status_items(before)["UIDNEXT"])
        c.logout()
        self.assertEqual(inst.stop(), 0)


def decode_words(s):
    """RFC 2047 encoded words decoded."""
    import email.header
    return str(email.header.make_header(email.header.decode_header(s)))


def parse_internaldate(s):
    return datetime.datetime.strptime(s.strip(), "%d-%b-%Y %H:%M:%S %z")


def envelope_text(env):
    """Serialises a parsed ENVELOPE (strings, None, lists) as IMAP text."""
    if env is None:
        return "NIL"
    if isinstance(env, list):
        return "(" + " ".join(envelope_text(x) for x in env) + ")"
    return ic.quote(env)


if __name__ == "__main__":
    h.main()
