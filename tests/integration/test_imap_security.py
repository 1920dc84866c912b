"""IMAP security properties of a real `mailark serve`:

- tenant and user isolation: no mailbox name (paths, other users' addresses, namespaces)
  reaches another account through SELECT, EXAMINE, STATUS, LIST, APPEND, COPY, MOVE,
  RENAME, CREATE, DELETE, SUBSCRIBE or GETQUOTA; nothing lands in the other accounts
  (checked in the databases);
- failed authentication is answered after [auth] failure_delay_ms, and after max_failures
  failures even the right password gets NO [UNAVAILABLE] for that address (not for others);
- plaintext_auth = "never": LOGINDISABLED, LOGIN and AUTHENTICATE refused in the clear,
  accepted after STARTTLS and on imaps; no STARTTLS command injection;
- login_timeout_s: an idle unauthenticated connection gets "* BYE" and is closed, an
  authenticated one is not; the server refuses an authenticated timeout_s under the 30
  minutes of RFC 3501 5.4."""

import os
import ssl
import time

import harness as h
import imap_client as ic
from imap_client import Imap, Lit

PW = "secret-pw"
ALICE, BOB, ZED = "alice@acme.test", "bob@acme.test", "zed@other.test"
ALICE_OTHER = "alice@other.test"


def folders_and_items(inst):
    """{address: (sorted folder names, sorted (folder, uid, blob))} from every database."""
    out = {}
    for db in inst.databases():
        with h.ro_connect(inst.meta_path(db)) as c:
            for addr, name in c.execute(
                    "SELECT a.address, f.name FROM folders f JOIN accounts a "
                    "ON f.account_id = a.id"):
                out.setdefault(addr, (set(), set()))[0].add(name)
    for it in inst.items():
        out.setdefault(it["address"], (set(), set()))[1].add((it["folder"], it["uid"], it["blob"]))
    return {a: (sorted(f), sorted(i)) for a, (f, i) in out.items()}


class TenantIsolationTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = ic.start_server(
            "imap-iso", users=[ALICE, BOB, ZED, ALICE_OTHER],
            tenants=["acme.test", "other.test"], password=PW,
            options=[("auth", "failure_delay_ms", "10"), ("auth", "max_failures", "1000")])
        cls.shared_instances = [cls.inst]
        for user in (BOB, ZED, ALICE_OTHER):
            c = Imap(cls.ports["imap"])
            c.login(user, PW)
            assert c.cmd('CREATE "Private"').ok
            assert c.append("INBOX", ic.msg(subject=f"secret of {user}")).ok
            assert c.append("Private", ic.msg(subject=f"private of {user}")).ok
            c.logout()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def alice(self):
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        c.login(ALICE, PW)
        return c

    FOREIGN = [
        "bob@acme.test/INBOX", "bob@acme.test", "bob@acme.test/Private",
        "zed@other.test/INBOX", "zed@other.test/Private", "alice@other.test/INBOX",
        "../bob@acme.test/INBOX", "../../zed@other.test/INBOX", "..", "../", "/INBOX",
        "/bob@acme.test/INBOX", "~bob/INBOX", "~bob@acme.test/INBOX", "#shared/bob/INBOX",
        "#users/bob/INBOX", "#public/INBOX", "Other Users/bob/INBOX", "user/bob/INBOX",
        "user.bob.INBOX", "bob/INBOX", "INBOX/../../bob@acme.test/INBOX", "other.test/zed/INBOX",
        "./../bob@acme.test/Private", "%2e%2e/bob@acme.test/INBOX", "..\\bob@acme.test\\INBOX",
    ]

    def test_cannot_reach_other_accounts(self):
        before = folders_and_items(self.inst)
        c = self.alice()
        failures = []
        for name in self.FOREIGN:
            q = ic.quote(name)
            for cmd in [f"SELECT {q}", f"EXAMINE {q}", f"STATUS {q} (MESSAGES UIDNEXT)",
                        f"GETQUOTAROOT {q}", f"DELETE {q}", f"RENAME {q} Stolen"]:
                r = c.cmd(cmd)
                if r.status == "OK":
                    failures.append(f"{cmd}: {r}")
                if cmd.startswith("SELECT") or cmd.startswith("EXAMINE"):
                    c.cmd("UNSELECT")
            r = c.append(name, ic.msg(subject="planted by alice"))
            if r.ok:
                failures.append(f"APPEND {q}: {r}")
            for pat in [f'LIST "" {q}', f"LIST {q} \"*\"", f'LIST "" {ic.quote(name + "*")}',
                        f"LSUB {q} \"*\""]:
                r = c.cmd(pat)
                for n in ic.list_names(r) + ic.list_names(r, "LSUB"):
                    if n not in before[ALICE][0] and n != "":
                        failures.append(f"{pat}: lists {n!r}")
        # the wildcard listing shows alice's folders only
        names = set(ic.list_names(c.cmd('LIST "" "*"')))
        self.assertEqual(names, set(before[ALICE][0]))
        # COPY / MOVE of alice's own message into foreign names
        self.assertTrue(c.append("INBOX", ic.msg(subject="alice's own")).ok)
        c.select("INBOX")
        for name in self.FOREIGN:
            for cmd in ["COPY", "MOVE", "UID COPY", "UID MOVE"]:
                r = c.cmd(f"{cmd} 1 {ic.quote(name)}" if not cmd.startswith("UID") else
                          f"{cmd} 1:* {ic.quote(name)}")
                if r.ok:  # none of these names exists in alice's account
                    failures.append(f"{cmd} {name}: {r}")
        c.cmd("UNSELECT")
        # renaming alice's folder out of her account
        self.assertTrue(c.cmd('CREATE "Mine"').ok)
        for name in self.FOREIGN:
            r = c.cmd(f"RENAME Mine {ic.quote(name)}")
            if r.ok:
                # it may only have become a folder of alice's named like that; move it back
                c.cmd(f"RENAME {ic.quote(name)} Mine")
        after = folders_and_items(self.inst)
        for other in (BOB, ZED, ALICE_OTHER):
            self.assertEqual(after[other], before[other], f"{other} changed")
        # whatever alice created is in her account only and holds only her messages
        self.assertEqual(failures, [], "\n".join(failures))

    def test_create_with_foreign_names_stays_in_own_account(self):
        before = folders_and_items(self.inst)
        c = self.alice()
        for name in ["../bob@acme.test/Evil", "bob@acme.test/Evil", "/zed@other.test/Evil",
                     "~bob/Evil"]:
            c.cmd(f"CREATE {ic.quote(name)}")
        after = folders_and_items(self.inst)
        for other in (BOB, ZED, ALICE_OTHER):
            self.assertEqual(after[other], before[other], f"{other} changed")

    def test_login_across_tenants(self):
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        # same local part, other tenant, and the bare local part
        for user in [ALICE_OTHER, "alice", "alice@", "@acme.test", "ALICE@OTHER.TEST"]:
            r = c.cmd(f'LOGIN {ic.quote(user)} "not-the-password"')
            self.assertEqual(r.status, "NO", f"{user}: {r}")
        # authorization identity of another user / tenant (RFC 4616 2)
        for authz in [BOB, ZED, "zed"]:
            r = c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(ALICE, PW, authzid=authz)}")
            self.assertEqual(r.status, "NO", f"authzid {authz}: {r}")
        r = c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64(ALICE, PW)}")
        self.assertTrue(r.ok)
        # she is alice: INBOX holds none of bob's or zed's mail
        c.select("INBOX")
        r = c.cmd("SEARCH SUBJECT secret")
        self.assertEqual(ic.search_numbers(r), [])

    def test_no_response_injection_through_names(self):
        """A mailbox name with CR/LF (possible in a literal) must be refused, or at least
        never come back in a way that forges a response line."""
        c = self.alice()
        evil = "x\r\n* 99 EXISTS\r\nfake1 OK forged"
        r = c.cmd("CREATE ", Lit(evil))
        self.assertIn(r.status, ("NO", "BAD"), str(r))
        r = c.cmd("RENAME INBOX ", Lit(evil))
        self.assertIn(r.status, ("NO", "BAD"), str(r))
        for cmd in ['LIST "" "*"', 'LSUB "" "*"', 'LIST "" "*" RETURN (STATUS (MESSAGES))']:
            r = c.cmd(cmd)
            self.assertTrue(r.ok)
            for l in r.untagged:
                self.assertFalse(l.startswith("* 99 EXISTS") or "forged" in l, f"{cmd}: {l!r}")
        r = c.cmd("SELECT ", Lit(evil))
        self.assertEqual(r.lines("EXISTS"), [], str(r))

    def test_quota_roots_are_per_account(self):
        c = self.alice()
        r = c.cmd("GETQUOTAROOT INBOX")
        self.assertTrue(r.ok)
        for root in ["bob@acme.test", "zed@other.test", "user.bob", "../bob@acme.test"]:
            r = c.cmd(f"GETQUOTA {ic.quote(root)}")
            self.assertEqual(r.status, "NO", f"GETQUOTA {root}: {r}")


class AuthLimitsTest(h.MailarkTestCase):
    """[auth] failure_delay_ms = 200, max_failures = 3, window = "15m". The limits count per
    client address; each test connects from its own loopback address (127.0.0.x)."""

    DELAY = 0.2

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = ic.start_server(
            "imap-authlim", users=["u1@acme.test", "u2@acme.test", "u3@acme.test"],
            tenants=["acme.test"], password=PW,
            options=[("auth", "failure_delay_ms", "200"), ("auth", "max_failures", "3"),
                     ("auth", "window", '"15m"')])
        cls.shared_instances = [cls.inst]

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def conn(self, source):
        c = Imap(self.ports["imap"], source=source)
        self.addCleanup(c.close)
        return c

    def timed(self, c, *parts):
        t = time.time()
        r = c.cmd(*parts)
        return r, time.time() - t

    def test_failure_delay(self):
        c = self.conn("127.0.0.10")
        r, took = self.timed(c, 'LOGIN u1@acme.test "wrong"')
        self.assertEqual((r.status, r.code_name()), ("NO", "AUTHENTICATIONFAILED"), str(r))
        print(f"\n[imap auth] failed LOGIN answered after {took * 1000:.0f} ms")
        self.assertGreaterEqual(took, self.DELAY - 0.01)
        # an unknown address is delayed the same way (no probing for users by timing)
        r, took = self.timed(c, 'LOGIN nobody@acme.test "wrong"')
        self.assertEqual(r.status, "NO", str(r))
        self.assertGreaterEqual(took, self.DELAY - 0.01)
        r, took = self.timed(c, f"AUTHENTICATE PLAIN {ic.plain_b64('u1@acme.test', 'wrong')}")
        self.assertEqual(r.status, "NO", str(r))
        self.assertGreaterEqual(took, self.DELAY - 0.01)

    def test_lockout_after_max_failures(self):
        # three failures, over two connections and both mechanisms
        c = self.conn("127.0.0.11")
        for _ in range(2):
            self.assertEqual(c.cmd('LOGIN u2@acme.test "wrong"').status, "NO")
        c2 = self.conn("127.0.0.11")
        r = c2.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64('u2@acme.test', 'bad')}")
        self.assertEqual(r.status, "NO")
        # now even the right password is refused, with [UNAVAILABLE], in every way
        c3 = self.conn("127.0.0.11")
        r = c3.cmd(f'LOGIN u2@acme.test "{PW}"')
        self.assertEqual((r.status, r.code_name()), ("NO", "UNAVAILABLE"), str(r))
        r = c3.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64('u2@acme.test', PW)}")
        self.assertEqual((r.status, r.code_name()), ("NO", "UNAVAILABLE"), str(r))
        r = c3.cmd(f'LOGIN u3@acme.test "{PW}"')  # any user, from that address
        self.assertEqual((r.status, r.code_name()), ("NO", "UNAVAILABLE"), str(r))
        self.assertEqual(c3.cmd("SELECT INBOX").status, "BAD", "not authenticated")
        # another client address is not affected
        c4 = self.conn("127.0.0.12")
        r = c4.cmd(f'LOGIN u2@acme.test "{PW}"')
        self.assertTrue(r.ok, str(r))

    def test_below_limit_still_logs_in(self):
        c = self.conn("127.0.0.13")
        for _ in range(2):
            self.assertEqual(c.cmd('LOGIN u3@acme.test "wrong"').status, "NO")
        r = c.cmd(f'LOGIN u3@acme.test "{PW}"')
        self.assertTrue(r.ok, f"2 failures < max_failures 3 must not lock: {r}")


class PlaintextNeverTest(h.MailarkTestCase):
    """[imap] plaintext_auth = "never", login_timeout_s = 2."""

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = ic.start_server(
            "imap-never", users=["tls@acme.test"], tenants=["acme.test"], password=PW,
            options=[("imap", "plaintext_auth", '"never"'), ("imap", "login_timeout_s", "2"),
                     ("auth", "failure_delay_ms", "10")])
        cls.shared_instances = [cls.inst]

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def caps(self, c):
        r = c.cmd("CAPABILITY")
        self.assertTrue(r.ok)
        return r.lines("CAPABILITY")[0].split()[2:]

    def test_plaintext_refused(self):
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        caps = self.caps(c)
        # RFC 3501 6.2.3 / 7.2.1: LOGINDISABLED; no plaintext mechanism offered
        self.assertIn("LOGINDISABLED", caps)
        self.assertNotIn("AUTH=PLAIN", caps)
        self.assertIn("STARTTLS", caps)
        r = c.cmd(f'LOGIN tls@acme.test "{PW}"')
        self.assertEqual(r.status, "NO", str(r))
        r = c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64('tls@acme.test', PW)}")
        self.assertEqual(r.status, "NO", str(r))
        tag = c.next_tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        first = c.read_response()
        if first.startswith("+"):  # the refusal may come after the client's response
            c.send(ic.plain_b64("tls@acme.test", PW) + "\r\n")
            first = c.collect(tag).line
        self.assertTrue(first.startswith(f"{tag} NO"), first)
        self.assertEqual(c.cmd("SELECT INBOX").status, "BAD")

    def test_starttls_then_login(self):
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        c.starttls()
        caps = self.caps(c)
        self.assertNotIn("LOGINDISABLED", caps)
        self.assertIn("AUTH=PLAIN", caps)
        # a second STARTTLS is refused
        self.assertNotEqual(c.cmd("STARTTLS").status, "OK")
        r = c.cmd(f'LOGIN tls@acme.test "{PW}"')
        self.assertTrue(r.ok, str(r))
        self.assertTrue(c.cmd("SELECT INBOX").ok)

    def test_starttls_authenticate(self):
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        c.starttls()
        r = c.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64('tls@acme.test', PW)}")
        self.assertTrue(r.ok, str(r))

    def test_imaps(self):
        c = Imap(self.ports["imaps"], tls=True)
        self.addCleanup(c.close)
        self.assertTrue(c.greeting.startswith("* OK"), c.greeting)
        caps = self.caps(c)
        self.assertNotIn("LOGINDISABLED", caps)
        self.assertNotIn("STARTTLS", caps)  # TLS is already on
        self.assertIn("AUTH=PLAIN", caps)
        r = c.cmd(f'LOGIN tls@acme.test "{PW}"')
        self.assertTrue(r.ok, str(r))
        self.assertTrue(c.cmd("SELECT INBOX").ok)

    def test_starttls_command_injection(self):
        """Commands pipelined after STARTTLS in the clear must not be run inside TLS
        (the CVE-2011-0411 class of bugs)."""
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        c.send(b"s1 STARTTLS\r\ns2 CAPABILITY\r\n")
        r = c.read_response()
        self.assertTrue(r.startswith("s1 OK"), r)
        plain_rest = c.buf
        c.buf = b""
        try:
            c.sock = ic.insecure_context().wrap_socket(c.sock, server_hostname="localhost")
        except (ssl.SSLError, OSError):
            return  # the server refused the mixed-up stream: safe
        try:
            r = c.cmd("NOOP")
        except (ic.ConnectionClosed, OSError):
            return
        self.assertFalse(any(l.startswith("s2 ") or "CAPABILITY" in l for l in r.untagged),
                         f"injected command answered inside TLS:\n{r}")
        self.assertFalse(plain_rest.startswith(b"s2 "), "s2 answered in the clear after s1 OK")

    def test_login_timeout(self):
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        t = time.time()
        closed = c.closed_by_server(15)
        took = time.time() - t
        lines = c.rest_lines()
        print(f"\n[imap login timeout] closed after {took:.1f} s: {lines}")
        self.assertTrue(closed, "unauthenticated connection not closed")
        self.assertGreater(took, 1.5)
        self.assertLess(took, 10)
        self.assertTrue(any(l.startswith("* BYE") for l in lines), lines)

    def test_login_timeout_other_paths(self):
        """The timeout applies on imaps and after STARTTLS, not after login."""
        logged_in = Imap(self.ports["imaps"], tls=True)
        self.addCleanup(logged_in.close)
        logged_in.login("tls@acme.test", PW)
        c = Imap(self.ports["imaps"], tls=True)
        self.addCleanup(c.close)
        c2 = Imap(self.ports["imap"])
        self.addCleanup(c2.close)
        c2.starttls()
        t = time.time()
        self.assertTrue(c.closed_by_server(15), "imaps connection not closed")
        self.assertTrue(any(l.startswith("* BYE") for l in c.rest_lines()), c.rest_lines())
        self.assertTrue(c2.closed_by_server(15), "connection after STARTTLS not closed")
        time.sleep(max(0.0, 2.5 - (time.time() - t)))
        self.assertTrue(logged_in.cmd("NOOP").ok, "an authenticated session was logged out")


class LoopbackPolicyTest(h.MailarkTestCase):
    """[imap] plaintext_auth = "loopback" (the default) with the listener on every address:
    plaintext login is allowed from 127.0.0.1 only."""

    def test_plaintext_only_from_loopback(self):
        addr = h.non_loopback_address()
        if not addr:
            self.skipTest("no non-loopback IPv4 address on this host")
        inst, ports = ic.start_server(
            "imap-loopback", users=["lb@acme.test"], tenants=["acme.test"], password=PW,
            options=[("imap", "address", '"0.0.0.0"'), ("auth", "failure_delay_ms", "10")])
        try:
            remote = Imap(ports["imap"], host=addr)
            self.addCleanup(remote.close)
            r = remote.cmd("CAPABILITY")
            caps = r.lines("CAPABILITY")[0].split()[2:]
            self.assertIn("LOGINDISABLED", caps)
            self.assertNotIn("AUTH=PLAIN", caps)
            self.assertEqual(remote.cmd(f'LOGIN lb@acme.test "{PW}"').status, "NO")
            r = remote.cmd(f"AUTHENTICATE PLAIN {ic.plain_b64('lb@acme.test', PW)}")
            self.assertEqual(r.status, "NO", str(r))
            remote.starttls()
            self.assertTrue(remote.cmd(f'LOGIN lb@acme.test "{PW}"').ok)
            local = Imap(ports["imap"])
            self.addCleanup(local.close)
            self.assertTrue(local.cmd(f'LOGIN lb@acme.test "{PW}"').ok)
        finally:
            inst.stop()


class AutologoutTimerTest(h.MailarkTestCase):
    """RFC 3501 5.4: the autologout timer of an authenticated session is at least 30 minutes.
    Waiting that long has no place in a test, so the configuration is what is checked: the
    server refuses to start with less (and an authenticated session outlives login_timeout_s,
    PlaintextNeverTest.test_login_timeout_other_paths)."""

    def test_refuses_a_timeout_under_30_minutes(self):
        inst = h.Instance("imap-autologout")
        inst.set_option("imap", "timeout_s", "1799")
        r = h.run_mailark(["serve"], config=inst.config, timeout=60)
        self.assertNotEqual(r.rc, 0, str(r))
        self.assertIn("imap.timeout_s must be at least 1800", r.err, str(r))
        self.assertFalse(any(f.startswith("ports") for f in os.listdir(inst.data)), str(r))
        inst.set_option("imap", "timeout_s", "1800")
        inst.start()
        self.assertTrue(inst.running())
        inst.stop()


if __name__ == "__main__":
    h.main()
