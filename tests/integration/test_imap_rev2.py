"""IMAP4rev2 features beyond the rev1 suite (RFC 9051): BINARY (RFC 3516) and SEARCHRES
(RFC 5182) with exact responses, and the rev2 session after ENABLE IMAP4rev2."""

import unittest

import imap_client as ic
from imap_client import Lit

DOMAIN = "rev2.test"
PW = "secret-pw"

MULTIPART = (
    b"From: a@b.test\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo=\r\n world\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQ=\r\n"
    b"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n"
    b"--XX--\r\n")


def simple(subject):
    return (f"From: a@b.test\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n").encode()


class Rev2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.users = [f"u{i}@{DOMAIN}" for i in range(4)]
        cls.inst, cls.ports = ic.start_server("imap-rev2", users=cls.users, tenants=[DOMAIN],
                                              password=PW)

    @classmethod
    def tearDownClass(cls):
        rc = cls.inst.stop()
        if rc != 0:
            raise AssertionError(f"server exited {rc}")

    def conn(self, user):
        c = ic.Imap(self.ports["imap"])
        c.login(user, PW)
        return c

    def test_binary_fetch(self):
        c = self.conn(self.users[0])
        self.assertIn("BINARY", c.cmd("CAPABILITY").untagged[0].split())
        c.must("APPEND INBOX ", Lit(MULTIPART))
        c.select("INBOX")
        r = c.must("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2]<1.2>)")
        self.assertEqual(r.untagged, [
            "* 1 FETCH (BINARY[1] {12}\r\nh\u00e9llo world BINARY.SIZE[2] 5 "
            "BINARY[2]<1> {2}\r\n\x01\x02)"])
        # NUL in the decoded content: literal8 (RFC 3516 4.2)
        r = c.must("FETCH 1 (BINARY.PEEK[2])")
        self.assertEqual(r.untagged, ["* 1 FETCH (BINARY[2] ~{5}\r\n\x00\x01\x02\x03\x04)"])
        # an encoding the server cannot undo
        r = c.cmd("FETCH 1 (BINARY.PEEK[3])")
        self.assertEqual((r.status, r.code_name()), ("NO", "UNKNOWN-CTE"), str(r))
        # BINARY (not PEEK) sets \Seen; BINARY[] is the message as it is
        r = c.must("FETCH 1 (BINARY[])")
        self.assertIn("\\Seen", str(r))
        self.assertIn("{%d}" % len(MULTIPART), str(r))
        # only part numbers are allowed
        self.assertEqual(c.cmd("FETCH 1 (BINARY[1.MIME])").status, "BAD")
        self.assertEqual(c.cmd("FETCH 1 (BINARY.SIZE[1]<0.5>)").status, "BAD")
        # APPEND with literal8 keeps NUL bytes; a plain literal may not carry them
        with_nul = b"Subject: nul\r\n\r\na\x00b\r\n"
        r = c.cmd("APPEND INBOX ~", Lit(with_nul))
        self.assertEqual(r.status, "OK", str(r))
        self.assertEqual(c.cmd("APPEND INBOX ", Lit(with_nul)).status, "BAD")
        r = c.must("FETCH 2 (BINARY.PEEK[])")
        self.assertEqual(r.untagged, ["* 2 FETCH (BINARY[] ~{%d}\r\n%s)" % (
            len(with_nul), with_nul.decode("latin-1"))])

    def test_searchres(self):
        c = self.conn(self.users[1])
        self.assertIn("SEARCHRES", c.cmd("CAPABILITY").untagged[0].split())
        for s in ("alpha", "beta", "alpha two", "gamma", "alpha three"):
            c.must("APPEND INBOX ", Lit(simple(s)))
        c.select("INBOX")
        # "$" before any SAVE is the empty set
        r = c.must("UID FETCH $ (FLAGS)")
        self.assertEqual(r.untagged, [])
        # SAVE alone: no untagged reply, then "$" names the matches
        r = c.must("SEARCH RETURN (SAVE) SUBJECT alpha")
        self.assertEqual(r.untagged, [])
        r = c.must("FETCH $ (UID)")
        self.assertEqual(r.untagged, ["* 1 FETCH (UID 1)", "* 3 FETCH (UID 3)", "* 5 FETCH (UID 5)"])
        r = c.must("UID SEARCH $ NOT SUBJECT two")
        self.assertEqual(r.untagged, ["* SEARCH 1 5"])
        # STORE and COPY take "$" too
        c.must("STORE $ +FLAGS.SILENT (\\Flagged)")
        self.assertEqual(c.must("SEARCH FLAGGED").untagged, ["* SEARCH 1 3 5"])
        r = c.must("COPY $ Archive")
        self.assertEqual(r.code, "COPYUID %s 1,3,5 1:3" % r.code.split()[1], str(r))
        # SAVE MIN keeps only the lowest match
        r = c.must("SEARCH RETURN (SAVE MIN) SUBJECT alpha")
        self.assertEqual(r.untagged, [f'* ESEARCH (TAG "{r.tag}") MIN 1'])
        self.assertEqual(c.must("UID SEARCH $").untagged, ["* SEARCH 1"])
        # "$" must stand alone
        self.assertEqual(c.cmd("FETCH $,2 (UID)").status, "BAD")
        # a failed SAVE (unknown charset) empties "$"
        r = c.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R SUBJECT alpha")
        self.assertEqual(r.status, "NO")
        self.assertEqual(c.must("UID SEARCH $").untagged, ["* SEARCH"])
        # SELECT forgets it
        c.must("SEARCH RETURN (SAVE) ALL")
        c.select("INBOX")
        self.assertEqual(c.must("UID SEARCH $").untagged, ["* SEARCH"])

    def test_rev2_session(self):
        c = self.conn(self.users[2])
        c.must("APPEND INBOX ", Lit(simple("one")))
        r = c.must("ENABLE IMAP4rev2")
        self.assertEqual(r.untagged, ["* ENABLED IMAP4REV2"])
        r = c.select("INBOX")
        # no RECENT and no UNSEEN in rev2 (RFC 9051 7.3.2 / 6.3.2); a LIST reply for the name
        self.assertFalse([l for l in r.untagged if l.endswith(" RECENT")], str(r))
        self.assertFalse([l for l in r.untagged if "[UNSEEN" in l], str(r))
        self.assertIn('* LIST () "/" "INBOX"', r.untagged)
        # SEARCH answers ESEARCH
        r = c.must("SEARCH ALL")
        self.assertEqual(r.untagged, [f'* ESEARCH (TAG "{r.tag}") ALL 1'])
        r = c.must("UID SEARCH SUBJECT nothing-like-this")
        self.assertEqual(r.untagged, [f'* ESEARCH (TAG "{r.tag}") UID'])
        # no \Recent in FLAGS
        r = c.must("FETCH 1 (FLAGS)")
        self.assertEqual(r.untagged, ["* 1 FETCH (FLAGS ())"])
        # mailbox names are UTF-8, not modified UTF-7
        c.must('CREATE "Entwürfe"')
        r = c.must('LIST "" "Entw*"')
        self.assertEqual(r.untagged, ['* LIST (\\HasNoChildren) "/" "Entwürfe"'])
        # STATUS SIZE and DELETED (RFC 9051 6.3.11)
        c.must("STORE 1 +FLAGS (\\Deleted)")
        size = len(simple("one"))
        r = c.must("STATUS INBOX (MESSAGES SIZE DELETED)")
        self.assertEqual(r.untagged, [f'* STATUS "INBOX" (MESSAGES 1 SIZE {size} DELETED 1)'])

    def test_list_wildcards_and_renamed_selection(self):
        c = self.conn(self.users[3])
        for name in ("a/b/c", "a/x", "ab"):
            c.must(f'CREATE "{name}"')
        # '*' then '%': "*/%" matches every name with at least one separator (RFC 3501 6.3.8)
        r = c.must('LIST "" "*/%"')
        names = sorted(l.rsplit(" ", 1)[1].strip('"') for l in r.untagged)
        self.assertEqual(names, ["a/b", "a/b/c", "a/x"])
        r = c.must('LIST "" "a/%"')
        names = sorted(l.rsplit(" ", 1)[1].strip('"') for l in r.untagged)
        self.assertEqual(names, ["a/b", "a/x"])
        # another session renames the selected folder: this one follows it by identity
        c.must("APPEND ab ", Lit(simple("in ab")))
        c.select("ab")
        other = self.conn(self.users[3])
        other.must("RENAME ab ab2")
        r = c.must("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn("Subject: in ab", str(r))
        # ... and a folder deleted and created again under the same name is not the same
        # folder: the session ends instead of acting on the new one
        other.must("DELETE ab2")
        other.must("CREATE ab2")
        c.send(b"z1 STORE 1 +FLAGS (\\Deleted)\r\n")
        self.assertTrue(c.closed_by_server())
        self.assertIn(b"* BYE Selected mailbox was deleted", bytes(c.buf))
        self.assertNotIn(b"z1 OK", bytes(c.buf))
        # nothing in the new folder was touched
        other.select("ab2")
        self.assertEqual(other.must("SEARCH DELETED").untagged, ["* SEARCH"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
