"""The admin CLI: wrong usage fails with one `mailark: ` line on stderr, a non-zero exit and
no change; every --help works; `mailark deliver` follows sysexits and works as Postfix's
mailbox_command (LF line ends in, CRLF stored)."""

import os

import harness as h
from harness import sha256_hex, make_message

DOMAIN = "acme.test"

HELP = [[], ["init"], ["serve"], ["tenant"], ["tenant", "add"], ["tenant", "list"],
        ["tenant", "del"], ["user"], ["user", "add"], ["user", "list"], ["user", "del"],
        ["user", "passwd"], ["user", "quota"], ["db"], ["db", "add"], ["db", "list"],
        ["deliver"], ["check"], ["stats"], ["replay"], ["version"]]


class CliUsageTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        inst = cls.inst = h.Instance("cli")
        inst.add_tenant(DOMAIN)
        inst.add_tenant("empty.test")
        inst.add_user(f"alice@{DOMAIN}")

    def snapshot(self):
        return tuple(self.inst.cli(*a).out for a in
                     (["tenant", "list"], ["user", "list"], ["db", "list"], ["stats"]))

    def assertOneLineFailure(self, r):
        self.assertNotEqual(r.rc, 0, str(r))
        lines = r.err.splitlines()
        self.assertEqual(len(lines), 1, f"want exactly one line on stderr\n{r}")
        self.assertTrue(lines[0].startswith("mailark: "), str(r))
        self.assertGreater(len(lines[0]), len("mailark: ") + 5, str(r))

    def test_wrong_usage(self):
        d = self.inst.data
        cases = [
            ("no subcommand", [], None),
            ("unknown subcommand", ["frob"], None),
            ("unknown nested subcommand", ["tenant", "frob"], None),
            ("missing nested subcommand", ["user"], None),
            ("missing DOMAIN", ["tenant", "add"], None),
            ("missing ADDR", ["user", "add"], None),
            ("missing SIZE", ["user", "quota", f"alice@{DOMAIN}"], None),
            ("missing NAME", ["db", "add"], None),
            ("missing DIR", ["init"], None),
            ("unknown option", ["user", "add", f"x@{DOMAIN}", "--bogus"], None),
            ("extra argument", ["stats", "extra"], None),
            ("bad quota string", ["user", "add", f"q1@{DOMAIN}", "--quota", "12XB"], "pw\n"),
            ("negative quota", ["user", "add", f"q2@{DOMAIN}", "--quota", "-5MB"], "pw\n"),
            ("bad quota on quota", ["user", "quota", f"alice@{DOMAIN}", "lots"], None),
            ("bad address", ["user", "add", "not-an-address", "--password-stdin"], "pw\n"),
            ("two @", ["user", "add", f"a@b@{DOMAIN}", "--password-stdin"], "pw\n"),
            ("empty local part", ["user", "add", f"@{DOMAIN}", "--password-stdin"], "pw\n"),
            ("empty domain", ["user", "add", "bob@", "--password-stdin"], "pw\n"),
            ("bad domain", ["tenant", "add", "bad domain"], None),
            ("duplicate tenant", ["tenant", "add", DOMAIN], None),
            ("duplicate tenant, other case", ["tenant", "add", DOMAIN.upper()], None),
            ("duplicate user", ["user", "add", f"alice@{DOMAIN}", "--password-stdin"], "pw\n"),
            ("duplicate user, other case", ["user", "add", f"alice@{DOMAIN.upper()}",
                                            "--password-stdin"], "pw\n"),
            ("user on missing tenant", ["user", "add", "x@nosuch.test", "--password-stdin"],
             "pw\n"),
            ("user on missing database", ["user", "add", f"y@{DOMAIN}", "--db", "nodb",
                                          "--password-stdin"], "pw\n"),
            ("empty password", ["user", "add", f"z@{DOMAIN}", "--password-stdin"], ""),
            ("tenant del with users", ["tenant", "del", DOMAIN], None),
            ("tenant del unknown", ["tenant", "del", "nosuch.test"], None),
            ("user del unknown", ["user", "del", f"ghost@{DOMAIN}"], None),
            ("passwd unknown", ["user", "passwd", f"ghost@{DOMAIN}", "--password-stdin"], "pw\n"),
            ("quota unknown", ["user", "quota", f"ghost@{DOMAIN}", "1GB"], None),
            ("db add bad name", ["db", "add", "Bad/Name"], None),
            ("db add upper case", ["db", "add", "UPPER"], None),
            ("db add path", ["db", "add", "../escape"], None),
            ("db add duplicate", ["db", "add", "db1"], None),
            ("check on unknown db", ["check", "--db", "nope"], None),
            ("replay bad time", ["replay", "--since", "yesterday"], None),
            ("replay bad until", ["replay", "--since", "-1h", "--until", "later"], None),
            ("replay without --since", ["replay"], None),
            ("replay unknown user", ["replay", "--since", "-1h", "--user", f"ghost@{DOMAIN}"],
             None),
            ("deliver without --to", ["deliver"], "Subject: x\n\nx\n"),
            ("init over an existing directory", ["init", d], None),
        ]
        before = self.snapshot()
        failures = []
        for name, args, stdin in cases:
            r = self.inst.cli(*args, input=stdin, expect=None)
            try:
                self.assertOneLineFailure(r)
            except AssertionError as e:
                failures.append(f"[{name}] {e}")
        self.assertEqual(self.snapshot(), before, "a failed command changed something")
        self.assertFalse(os.path.exists(os.path.join(self.inst.data, "db", "escape")))
        self.assertEqual(failures, [], "\n\n".join(failures))

    def test_unknown_db_is_named(self):
        r = self.inst.cli("check", "--db", "nope", expect=None)
        self.assertOneLineFailure(r)
        self.assertIn("nope", r.err + r.out)

    def test_config_errors(self):
        for args in (["--config", "/nonexistent/mailark.toml", "stats"],
                     ["--config", "/nonexistent/mailark.toml", "user", "list"],
                     ["--config", "/nonexistent/mailark.toml", "serve"]):
            r = h.run_mailark(args)
            self.assertOneLineFailure(r)
            self.assertIn("/nonexistent/mailark.toml", r.err)
        # MAILARK_CONFIG is honoured, and missing both gives one line too
        r = h.run_mailark(["tenant", "list"], env={"MAILARK_CONFIG": self.inst.config})
        self.assertEqual(r.rc, 0, str(r))
        self.assertIn(DOMAIN, r.out)
        r = h.run_mailark(["tenant", "list"], env={"MAILARK_CONFIG": "/nonexistent/x.toml"})
        self.assertOneLineFailure(r)
        # a broken configuration file
        broken = os.path.join(h.new_tmpdir(), "broken.toml")
        with open(broken, "w") as f:
            f.write("data_dir = \n[lmtp\nport = 'x'\n")
        r = h.run_mailark(["--config", broken, "stats"])
        self.assertOneLineFailure(r)

    def test_every_help(self):
        for args in HELP:
            for flag in ("--help", "-h"):
                r = h.run_mailark(args + [flag])
                self.assertEqual(r.rc, 0, str(r))
                self.assertIn("Usage", r.out, str(r))
                self.assertEqual(r.err, "", str(r))

    def test_version(self):
        r = h.run_mailark(["version"])
        self.assertEqual(r.rc, 0, str(r))
        self.assertRegex(r.out, r"mailark \d+\.\d+")

    def test_successful_admin_commands(self):
        inst = h.Instance("cliok")
        inst.add_tenant("ok.test")
        inst.cli("db", "add", "db-2")
        inst.add_user("u2@ok.test", db="db-2")
        inst.add_user("u3@ok.test", db="db-2")
        inst.add_user("u1@ok.test", quota="2GB")  # goes to the least loaded database
        out = inst.cli("user", "list").out
        self.assertRegex(out, r"(?m)^u1@ok\.test\s+db1\s")
        self.assertRegex(out, r"(?m)^u2@ok\.test\s+db-2\s")
        inst.cli("user", "del", "u3@ok.test")
        inst.cli("user", "quota", "u1@ok.test", "unlimited")
        inst.cli("user", "passwd", "u1@ok.test", "--password-stdin", input="new-password\n")
        out = inst.cli("user", "list", "--tenant", "ok.test").out
        self.assertIn("u2@ok.test", out)
        inst.cli("user", "del", "u1@ok.test")
        inst.cli("user", "del", "u2@ok.test")
        self.assertNotIn("u1@ok.test", inst.cli("user", "list").out)
        inst.cli("tenant", "del", "ok.test")
        self.assertNotIn("ok.test", inst.cli("tenant", "list").out)
        self.assertIn("db-2", inst.cli("db", "list").out)
        self.assertEqual(inst.cli("check").rc, 0)


class DeliverTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        inst = cls.inst = h.Instance("deliver")
        inst.set_option("delivery", "max_message_size", '"20KB"')
        inst.add_tenant(DOMAIN)
        for u in ("alice", "bob", "carol", "dave", "erin", "frank"):
            inst.add_user(f"{u}@{DOMAIN}")
        inst.add_user(f"small@{DOMAIN}", quota="4KB")

        tmp = cls.tmp = h.Instance("delivertmp")
        tmp.set_option("delivery", "over_quota", '"temporary"')
        tmp.add_tenant(DOMAIN)
        tmp.add_user(f"small@{DOMAIN}", quota="4KB")

    def deliver(self, inst, to, data, *extra):
        args = ["deliver"]
        for t in ([to] if isinstance(to, str) else to):
            args += ["--to", t]
        return inst.cli(*args, *extra, input=data, expect=None)

    def stored(self, address, inst=None):
        return (inst or self.inst).blobs_by_account().get(address, [])

    def assertFailure(self, r, code):
        self.assertEqual(r.rc, code, str(r))
        lines = r.err.splitlines()
        self.assertTrue(lines and lines[-1].startswith("mailark: "), str(r))

    def test_failures_are_one_line(self):
        """Postfix quotes a mailbox_command's output in bounces: one clear line, no log noise."""
        cases = [(self.inst, f"ghost@{DOMAIN}", b"Subject: x\n\nx\n"),
                 (self.inst, "not-an-address", b"Subject: x\n\nx\n"),
                 (self.inst, f"small@{DOMAIN}", make_message("q1@acme.test", 6000)),
                 (self.tmp, f"small@{DOMAIN}", make_message("q2@acme.test", 6000)),
                 (self.inst, f"frank@{DOMAIN}", make_message("big1@acme.test", 30_000)),
                 (self.inst, f"frank@{DOMAIN}", b"Subject: nul\n\nab\x00cd\n")]
        bad = []
        for inst, to, data in cases:
            r = self.deliver(inst, to, data)
            lines = r.err.splitlines()
            if r.rc == 0 or len(lines) != 1 or not lines[0].startswith("mailark: "):
                bad.append(str(r))
        if bad:
            self.fail("\n\n".join(bad))

    def test_deliver_ok(self):
        msg = make_message("deliver-ok@acme.test", 2000)
        r = self.deliver(self.inst, f"alice@{DOMAIN}", msg, "--from", "s@remote.test")
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(self.stored(f"alice@{DOMAIN}"), [sha256_hex(msg)])

    def test_postfix_mailbox_command(self):
        """Postfix pipes the message with LF line ends, adds Return-Path/Delivered-To, does no
        dot-stuffing; bounces come with an empty sender."""
        text = ("Return-Path: <>\nDelivered-To: bob@acme.test\n"
                "From: MAILER-DAEMON@remote.test\nSubject: bounce\n"
                "Message-ID: <pf-1@remote.test>\n\nline one\n.\n..two dots\n"
                "From the start of a line\n\n\nlast line\n")
        r = self.deliver(self.inst, f"bob@{DOMAIN}", text.encode(), "--from", "")
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(self.stored(f"bob@{DOMAIN}"),
                         [sha256_hex(text.replace("\n", "\r\n").encode())])

    def test_mixed_line_ends(self):
        data = b"Subject: mixed\r\nX-A: 1\n\r\nbody crlf\r\nbody lf\nend\r\n"
        r = self.deliver(self.inst, f"carol@{DOMAIN}", data)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(self.stored(f"carol@{DOMAIN}"),
                         [sha256_hex(b"Subject: mixed\r\nX-A: 1\r\n\r\nbody crlf\r\nbody lf\r\n"
                                     b"end\r\n")])

    def test_plus_address(self):
        msg = make_message("deliver-plus@acme.test", 700)
        r = self.deliver(self.inst, f"dave+news@{DOMAIN}", msg)
        self.assertEqual(r.rc, 0, str(r))
        self.assertEqual(self.stored(f"dave@{DOMAIN}"), [sha256_hex(msg)])

    def test_while_server_runs(self):
        port = self.inst.start()
        try:
            msg = make_message("deliver-live@acme.test", 900)
            r = self.deliver(self.inst, f"erin@{DOMAIN}", msg)
            self.assertEqual(r.rc, 0, str(r))
            c = h.LMTP(port)
            m2 = make_message("lmtp-live@acme.test", 900)
            _, _, dr = c.transaction("s@remote.test", [f"erin@{DOMAIN}"], m2)
            c.close()
            self.assertEqual(dr[f"erin@{DOMAIN}"].code, 250)
            self.assertEqual(sorted(self.stored(f"erin@{DOMAIN}")),
                             sorted([sha256_hex(msg), sha256_hex(m2)]))
        finally:
            self.assertEqual(self.inst.stop(), 0)

    def test_second_server_on_one_data_dir_is_refused(self):
        port = self.inst.start()
        try:
            r = self.inst.cli("serve", expect=None, timeout=60)
            self.assertNotEqual(r.rc, 0, str(r))
            self.assertIn("already serving", r.err, str(r))
            # The first server goes on serving.
            h.LMTP(port).close()
        finally:
            self.assertEqual(self.inst.stop(), 0)

    def test_unknown_user_67(self):
        r = self.deliver(self.inst, f"ghost@{DOMAIN}", b"Subject: x\n\nx\n")
        self.assertFailure(r, h.EX_NOUSER)
        r = self.deliver(self.inst, "ghost@nosuch.test", b"Subject: x\n\nx\n")
        self.assertFailure(r, h.EX_NOUSER)

    def test_bad_address_64(self):
        r = self.deliver(self.inst, "not-an-address", b"Subject: x\n\nx\n")
        self.assertFailure(r, h.EX_USAGE)

    def test_over_quota_permanent_73(self):
        r = self.deliver(self.inst, f"small@{DOMAIN}", make_message("q@acme.test", 6000))
        self.assertFailure(r, h.EX_CANTCREAT)
        self.assertEqual(self.stored(f"small@{DOMAIN}"), [])

    def test_over_quota_temporary_75(self):
        r = self.deliver(self.tmp, f"small@{DOMAIN}", make_message("q@acme.test", 6000))
        self.assertFailure(r, h.EX_TEMPFAIL)
        self.assertEqual(self.stored(f"small@{DOMAIN}", self.tmp), [])

    def test_too_large_65(self):
        before = self.inst.stored_blobs()
        r = self.deliver(self.inst, f"frank@{DOMAIN}", make_message("big@acme.test", 30_000))
        self.assertFailure(r, h.EX_DATAERR)
        self.assertEqual(self.stored(f"frank@{DOMAIN}"), [])
        self.assertEqual(self.inst.stored_blobs(), before)

    def test_nul_65(self):
        r = self.deliver(self.inst, f"frank@{DOMAIN}", b"Subject: nul\n\nab\x00cd\n")
        self.assertFailure(r, h.EX_DATAERR)
        self.assertEqual(self.stored(f"frank@{DOMAIN}"), [])

    def test_missing_config_is_tempfail(self):
        """Postfix retries on 75: a missing configuration must not bounce mail."""
        r = h.run_mailark(["deliver", "--to", f"alice@{DOMAIN}"], config="/nonexistent/m.toml",
                          input=b"Subject: x\n\nx\n")
        self.assertFailure(r, h.EX_TEMPFAIL)


if __name__ == "__main__":
    h.main()
