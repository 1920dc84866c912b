"""LMTP delivery (RFC 2033) against a real `mailark serve`: real clients (smtplib.LMTP, swaks,
raw sockets), per-recipient replies, bad input, durability-visible state, SIGTERM."""

import os
import re
import signal
import socket
import subprocess
import time

import harness as h
from harness import LMTP, sha256_hex, make_message

DOMAIN = "acme.test"


def ingress_records(inst):
    """How many records the ingress cache holds (from `replay --list`)."""
    r = inst.cli("replay", "--list")
    m = re.search(r"cache holds (\d+) records", r.out)
    assert m, f"unexpected replay --list output\n{r}"
    return int(m.group(1))


class LmtpTest(h.MailarkTestCase):
    """Runs on one server with default limits; each test uses its own users."""

    @classmethod
    def setUpClass(cls):
        cls.inst = h.Instance("lmtp")
        cls.shared_instances = [cls.inst]
        cls.inst.add_tenant(DOMAIN)
        cls.inst.add_tenant("other.test")
        cls.inst.add_user("alice@acme.test")
        cls.inst.add_user("zed@other.test")
        cls.port = cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.inst.stop()
        if rc != 0:
            raise AssertionError(f"server exit code {rc} on SIGTERM\n{cls.inst.log_tail()}")

    _serial = 0

    def fresh(self, name, quota=None):
        """A new user for this test only (created while the server runs)."""
        LmtpTest._serial += 1
        addr = f"{name}{LmtpTest._serial}@{DOMAIN}"
        self.inst.add_user(addr, quota=quota)
        return addr

    def conn(self, **kw):
        c = LMTP(self.port, **kw)
        self.addCleanup(c.close)
        return c

    def stored(self, address):
        return self.inst.blobs_by_account().get(address, [])

    def assertReply(self, reply, code, enhanced):
        self.assertEqual((reply.code, reply.enhanced), (code, enhanced), f"reply was: {reply}")

    # ---- greeting and capabilities

    def test_greeting_and_lhlo(self):
        c = self.conn(lhlo=False)
        self.assertEqual(c.greeting.code, 220, str(c.greeting))
        self.assertIn("LMTP", c.greeting.lines[0])
        r = c.cmd("LHLO client.test")
        self.assertEqual(r.code, 250)
        caps = [l[4:].upper() for l in r.lines[1:]]
        for cap in ["PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME"]:
            self.assertIn(cap, caps)
        self.assertTrue(any(re.fullmatch(r"SIZE \d+", x) for x in caps), caps)

    def test_mail_before_lhlo(self):
        c = self.conn(lhlo=False)
        self.assertReply(c.cmd("MAIL FROM:<a@remote.test>"), 503, "5.5.1")

    # ---- delivery with real clients

    def test_smtplib_multi_recipient(self):
        rcpts = [self.fresh("multi"), self.fresh("multi"), self.fresh("multi")]
        msg = make_message("smtplib-multi@client.test", 3000)
        rr, dr = h.smtplib_deliver(self.port, "sender@remote.test", rcpts, msg)
        for r in rcpts:
            self.assertEqual(rr[r][0], 250, rr[r])
            self.assertTrue(rr[r][1].startswith("2.1.5"), rr[r])
            self.assertEqual(dr[r][0], 250, dr)
            self.assertTrue(dr[r][1].startswith("2.0.0"), dr[r])
        for r in rcpts:
            self.assertEqual(self.stored(r), [sha256_hex(msg)], r)

    def test_smtplib_mixed_known_and_unknown_recipients(self):
        a, b = self.fresh("mixed"), self.fresh("mixed")
        rcpts = [a, f"nobody@{DOMAIN}", b]
        msg = make_message("smtplib-mixed@client.test", 800)
        rr, dr = h.smtplib_deliver(self.port, "sender@remote.test", rcpts, msg)
        self.assertEqual(rr[f"nobody@{DOMAIN}"][0], 550)
        self.assertTrue(rr[f"nobody@{DOMAIN}"][1].startswith("5.1.1"), rr)
        self.assertEqual(set(dr), {a, b})
        for r in dr:
            self.assertEqual(dr[r][0], 250, dr)
        self.assertEqual(self.stored(a), [sha256_hex(msg)])
        self.assertEqual(self.stored(b), [sha256_hex(msg)])

    def test_raw_one_reply_per_recipient_in_order(self):
        c = self.conn()
        rcpts = [self.fresh("order"), self.fresh("order"), "zed@other.test"]
        before = self.stored("zed@other.test")
        msg = make_message("raw-multi@client.test", 5000)
        mr, rr, dr = c.transaction("sender@remote.test", rcpts, msg)
        self.assertReply(mr, 250, "2.1.0")
        for r in rcpts:
            self.assertReply(rr[r], 250, "2.1.5")
            self.assertReply(dr[r], 250, "2.0.0")
            self.assertIn(f"<{r}>", dr[r].text)  # replies name their recipient, in RCPT order
        # nothing more is pending: the next command gets its own reply
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        for r in rcpts[:2]:
            self.assertEqual(self.stored(r), [sha256_hex(msg)])
        self.assertEqual(sorted(self.stored(rcpts[2])), sorted(before + [sha256_hex(msg)]))

    def test_same_recipient_twice(self):
        c = self.conn()
        r = self.fresh("twice")
        msg = make_message("twice@client.test", 700)
        c.cmd("MAIL FROM:<sender@remote.test>")
        self.assertEqual(c.cmd(f"RCPT TO:<{r}>").code, 250)
        second = c.cmd(f"RCPT TO:<{r}>")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(h.frame_data(msg))
        replies = [c.reply() for _ in range(2 if second.code == 250 else 1)]
        self.assertTrue(all(x.code == 250 for x in replies), replies)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)], "one copy per mailbox")

    def test_null_sender_accepted(self):
        c = self.conn()
        r = self.fresh("bounce")
        msg = make_message("bounce@client.test", 400)
        mr, rr, dr = c.transaction("", [r], msg)
        self.assertReply(mr, 250, "2.1.0")
        self.assertReply(dr[r], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)])

    def test_swaks(self):
        a, b = self.fresh("swaks"), self.fresh("swaks")
        b_tagged = b.replace("@", "+lists@")
        body = ("From: swaks <swaks@remote.test>\nTo: ivan\nSubject: via swaks\n"
                "Message-ID: <swaks-1@client.test>\n\nHello from swaks.\n.leading dot\nbye\n")
        d = h.new_tmpdir("mailark-swaks-")
        path = os.path.join(d, "msg.eml")
        with open(path, "w") as f:
            f.write(body)
        p = subprocess.run(["swaks", "--protocol", "LMTP", "--server", "127.0.0.1", "--port",
                            str(self.port), "--from", "swaks@remote.test", "--to",
                            f"{a},{b_tagged}", "--data", path, "--helo", "client.test",
                            "--timeout", "30"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, rf"<-\s+250 2\.0\.0 <{re.escape(a)}>")
        self.assertRegex(p.stdout, rf"<-\s+250 2\.0\.0 <{re.escape(b)}>")
        # swaks sends the file with CRLF line ends, dot-stuffed, and ends it with an empty line
        sent = body.replace("\n", "\r\n").encode() + b"\r\n"
        self.assertEqual(self.stored(a), [sha256_hex(sent)])
        self.assertEqual(self.stored(b), [sha256_hex(sent)])

    def test_swaks_unknown_recipient(self):
        p = subprocess.run(["swaks", "--protocol", "LMTP", "--server", "127.0.0.1", "--port",
                            str(self.port), "--from", "swaks@remote.test", "--to",
                            f"ghost@{DOMAIN}", "--timeout", "30"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"<\*\* +550 5\.1\.1")

    # ---- addressing

    def test_plus_addressing(self):
        c = self.conn()
        r = self.fresh("plus")
        tagged = r.replace("@", "+tag@")
        msg = make_message("plus@client.test", 600)
        mr, rr, dr = c.transaction("sender@remote.test", [tagged], msg)
        self.assertReply(rr[tagged], 250, "2.1.5")
        self.assertReply(dr[tagged], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)])
        self.assertNotIn(tagged, self.inst.blobs_by_account())
        # an unknown base address stays unknown with a tag
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<ghost+tag@{DOMAIN}>"), 550, "5.1.1")

    def test_domain_is_case_insensitive(self):
        c = self.conn()
        r = self.fresh("case")
        mixed = r.split("@")[0] + "@ACME.Test"
        msg = make_message("case@client.test", 600)
        mr, rr, dr = c.transaction("sender@remote.test", [mixed], msg)
        self.assertReply(rr[mixed], 250, "2.1.5")
        self.assertReply(dr[mixed], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)])

    def test_local_part_case(self):
        """An accepted RCPT in another case must land in the one account it names."""
        c = self.conn()
        r = self.fresh("upper")
        upper = r.split("@")[0].upper() + "@" + DOMAIN
        msg = make_message("upper@client.test", 600)
        mr, rr, dr = c.transaction("sender@remote.test", [upper], msg)
        if rr[upper].code == 250:
            self.assertReply(dr[upper], 250, "2.0.0")
            self.assertEqual(self.stored(r), [sha256_hex(msg)])
        else:
            self.assertReply(rr[upper], 550, "5.1.1")
        self.assertNotIn(upper, self.inst.blobs_by_account())

    def test_user_deleted_and_added_while_running(self):
        c = self.conn()
        r = self.fresh("churn")
        m1 = make_message("churn-1@client.test", 500)
        _, _, dr = c.transaction("sender@remote.test", [r], m1)
        self.assertReply(dr[r], 250, "2.0.0")
        self.inst.cli("user", "del", r)
        _, rr, _ = c.transaction("sender@remote.test", [r], m1)
        self.assertReply(rr[r], 550, "5.1.1")
        self.inst.add_user(r)
        m2 = make_message("churn-2@client.test", 500)
        _, _, dr = c.transaction("sender@remote.test", [r], m2)
        self.assertReply(dr[r], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(m2)], "a re-added user starts empty")

    def test_unknown_user_and_domain(self):
        c = self.conn()
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test>"), 250, "2.1.0")
        self.assertReply(c.cmd(f"RCPT TO:<nobody@{DOMAIN}>"), 550, "5.1.1")
        self.assertReply(c.cmd("RCPT TO:<alice@unknown-domain.test>"), 550, "5.1.1")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")  # no valid recipients

    def test_bad_address_syntax(self):
        c = self.conn()
        self.assertReply(c.cmd("MAIL FROM:sender@remote.test"), 501, "5.1.7")
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<>"), 501, "5.1.3")
        self.assertReply(c.cmd(f"RCPT TO:alice@{DOMAIN}"), 501, "5.1.3")

    # ---- quota

    def test_over_quota_permanent(self):
        q, other = self.fresh("quota", quota="10KB"), self.fresh("roomy")
        c = self.conn()
        m1 = make_message("quota-1@client.test", 9000)
        _, _, dr = c.transaction("sender@remote.test", [q], m1)
        self.assertReply(dr[q], 250, "2.0.0")
        # 9000 + 3000 > 10 KiB: rejected for that recipient only
        m2 = make_message("quota-2@client.test", 3000)
        _, rr, dr = c.transaction("sender@remote.test", [q, other], m2)
        got = dr.get(q) or rr[q]  # a full mailbox may be refused at RCPT or after DATA
        self.assertReply(got, 552, "5.2.2")
        self.assertReply(dr[other], 250, "2.0.0")
        self.assertEqual(self.stored(q), [sha256_hex(m1)])
        self.assertEqual(self.stored(other), [sha256_hex(m2)])
        # a message that still fits is accepted
        m3 = make_message("quota-3@client.test", 500)
        _, _, dr = c.transaction("sender@remote.test", [q], m3)
        self.assertReply(dr[q], 250, "2.0.0")
        self.assertEqual(sorted(self.stored(q)), sorted([sha256_hex(m1), sha256_hex(m3)]))

    # ---- size

    def test_size_parameter(self):
        c = self.conn()
        limit = int(next(x for x in c.capabilities if x.startswith("SIZE")).split()[1])
        self.assertEqual(limit, 50 * 1024 * 1024)
        self.assertReply(c.cmd(f"MAIL FROM:<sender@remote.test> SIZE={limit + 1}"), 552, "5.3.4")
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test> SIZE=abc"), 501, "5.5.4")
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test> SIZE=1000"), 250, "2.1.0")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd(f"MAIL FROM:<sender@remote.test> SIZE={limit}"), 250, "2.1.0")

    # ---- data transparency, NUL, bare LF

    def test_dot_stuffing_round_trip(self):
        c = self.conn()
        r = self.fresh("dots")
        msg = (b"Subject: dots\r\nMessage-ID: <dots@client.test>\r\n\r\n.\r\n..\r\n.leading\r\n"
               b"...three\r\nend .\r\n")
        _, _, dr = c.transaction("sender@remote.test", [r], msg)
        self.assertReply(dr[r], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)])

    def test_8bit_utf8_body_exact(self):
        c = self.conn()
        r = self.fresh("utf")
        msg = ("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <8bit@client.test>\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
               "\r\nGrüße aus Köln — 東京\r\n").encode()
        _, _, dr = c.transaction("sender@remote.test", [r], msg, mail_params="BODY=8BITMIME")
        self.assertReply(dr[r], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)])

    def test_empty_message(self):
        c = self.conn()
        r = self.fresh("empty")
        c.cmd("MAIL FROM:<sender@remote.test>")
        c.cmd(f"RCPT TO:<{r}>")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b".\r\n")
        rep = c.reply()
        if rep.code == 250:
            self.assertEqual(rep.enhanced, "2.0.0")
            self.assertEqual(self.stored(r), [sha256_hex(b"")])
        else:
            self.assertEqual(rep.code // 100, 5, str(rep))
            self.assertEqual(self.stored(r), [])
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_long_text_line_exact(self):
        """A 100 000-byte line is beyond RFC 5321's 1000, but either stored exactly or
        refused as a whole, never cut."""
        c = self.conn()
        r = self.fresh("longline")
        msg = b"Subject: long line\r\nMessage-ID: <ll@client.test>\r\n\r\n" + b"x" * 100_000 + b"\r\n"
        _, _, dr = c.transaction("sender@remote.test", [r], msg)
        if dr[r].code == 250:
            self.assertEqual(self.stored(r), [sha256_hex(msg)])
        else:
            self.assertEqual(dr[r].code // 100, 5, str(dr[r]))
            self.assertEqual(self.stored(r), [])

    def test_large_message_exact(self):
        c = self.conn()
        r = self.fresh("large")
        msg = make_message("large@client.test", 8_000_000)
        _, _, dr = c.transaction("sender@remote.test", [r], msg)
        self.assertReply(dr[r], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)])

    def test_nul_rejected_nothing_stored(self):
        c = self.conn()
        rcpts = [self.fresh("nul"), self.fresh("nul")]
        records = ingress_records(self.inst)
        msg = b"Subject: nul\r\nMessage-ID: <nul@client.test>\r\n\r\nbefore\x00after\r\n"
        _, rr, dr = c.transaction("sender@remote.test", rcpts, msg)
        for r in rcpts:
            self.assertReply(dr[r], 554, "5.6.0")
        for r in rcpts:
            self.assertEqual(self.stored(r), [])
        self.assertEqual(ingress_records(self.inst), records, "rejected message in ingress cache")
        # the session goes on
        ok = make_message("after-nul@client.test", 300)
        _, _, dr = c.transaction("sender@remote.test", rcpts[:1], ok)
        self.assertReply(dr[rcpts[0]], 250, "2.0.0")
        self.assertEqual(self.stored(rcpts[0]), [sha256_hex(ok)])

    def test_bare_lf_normalized(self):
        c = self.conn()
        r = self.fresh("barelf")
        c.cmd("MAIL FROM:<sender@remote.test>")
        self.assertReply(c.cmd(f"RCPT TO:<{r}>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA").code, 354)
        raw = (b"Subject: bare lf\nMessage-ID: <barelf@client.test>\n\nline one\nline two\r\n"
               b"line three\n\nlast\r\n.\r\n")
        c.send(raw)
        self.assertReply(c.reply(), 250, "2.0.0")
        expected = (b"Subject: bare lf\r\nMessage-ID: <barelf@client.test>\r\n\r\nline one\r\n"
                    b"line two\r\nline three\r\n\r\nlast\r\n")
        self.assertEqual(self.stored(r), [sha256_hex(expected)])

    SMUGGLE = (b"Subject: smuggle\r\nMessage-ID: <smuggle@client.test>\r\n\r\nharmless\n.\r\n"
               b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@acme.test>\r\n"
               b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")

    def smuggle(self):
        c = self.conn()
        r = self.fresh("smuggle")
        c.cmd("MAIL FROM:<sender@remote.test>")
        self.assertReply(c.cmd(f"RCPT TO:<{r}>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(self.SMUGGLE)
        self.assertReply(c.reply(), 250, "2.0.0")
        # exactly one reply: the next reply is NOOP's
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        return r

    def test_bare_lf_dot_is_not_end_of_data(self):
        """SMTP smuggling: "\n.\r\n" must not end the message."""
        victim = "alice@acme.test"
        victim_before = self.stored(victim)
        r = self.smuggle()
        self.assertEqual(len(self.stored(r)), 1)
        self.assertEqual(self.stored(victim), victim_before, "smuggled message was delivered")

    def test_bare_lf_dot_line_is_kept_as_content(self):
        """The "." line after a bare LF is content: stored as a "." line, CRLF-normalized."""
        r = self.smuggle()
        expected = (b"Subject: smuggle\r\nMessage-ID: <smuggle@client.test>\r\n\r\nharmless\r\n.\r\n"
                    b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@acme.test>\r\n"
                    b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n")
        self.assertEqual(self.stored(r), [sha256_hex(expected)])

    # ---- command errors

    def test_long_command_line(self):
        c = self.conn()
        r = self.fresh("long")
        self.assertReply(c.cmd("NOOP " + "x" * 3000), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertReply(c.cmd("MAIL FROM:<" + "a" * 5000 + "@remote.test>"), 500, "5.5.2")
        # a transaction still works afterwards
        msg = make_message("after-long@client.test", 400)
        mr, rr, dr = c.transaction("sender@remote.test", [r], msg)
        self.assertReply(mr, 250, "2.1.0")
        self.assertReply(dr[r], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(msg)])

    def test_very_long_command_line_without_newline_for_a_while(self):
        c = self.conn()
        c.send(b"NOOP " + b"y" * 200_000)
        time.sleep(0.2)
        c.send(b"\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_long_line_inside_transaction_keeps_state(self):
        c = self.conn()
        r = self.fresh("longtx")
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<" + "b" * 4000 + f"@{DOMAIN}>"), 500, "5.5.2")
        self.assertReply(c.cmd(f"RCPT TO:<{r}>"), 250, "2.1.5")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")

    def test_helo_and_ehlo_rejected(self):
        c = self.conn(lhlo=False)
        self.assertReply(c.cmd("HELO client.test"), 500, "5.5.1")
        self.assertReply(c.cmd("EHLO client.test"), 500, "5.5.1")
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test>"), 503, "5.5.1")
        self.assertEqual(c.cmd("LHLO client.test").code, 250)

    def test_unknown_command(self):
        c = self.conn()
        self.assertReply(c.cmd("FROB"), 500, "5.5.1")
        self.assertReply(c.cmd("STARTTLSX now"), 500, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_sequence_errors(self):
        c = self.conn()
        self.assertReply(c.cmd("RCPT TO:<alice@acme.test>"), 503, "5.5.1")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")  # DATA without RCPT
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test>"), 503, "5.5.1")  # nested MAIL
        self.assertReply(c.cmd("RCPT TO:<alice@acme.test>"), 250, "2.1.5")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")  # RSET cleared the transaction

    def test_unsupported_parameters(self):
        c = self.conn()
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test> FOO=bar"), 555, "5.5.4")
        self.assertReply(c.cmd("MAIL FROM:<sender@remote.test> BODY=8BITMIME"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<alice@acme.test> NOTIFY=NEVER"), 555, "5.5.4")

    def test_quit(self):
        c = self.conn()
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        c.sock.settimeout(10)
        self.assertEqual(c.sock.recv(100), b"", "server did not close after QUIT")

    # ---- connection handling

    def test_connection_dropped_mid_data(self):
        r = self.fresh("drop")
        records = ingress_records(self.inst)
        c = LMTP(self.port)
        c.cmd("MAIL FROM:<sender@remote.test>")
        self.assertReply(c.cmd(f"RCPT TO:<{r}>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA").code, 354)
        msg = make_message("dropped@client.test", 50_000)
        c.send(msg[:30_000])
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        time.sleep(1.0)
        self.assertEqual(self.stored(r), [])
        self.assertEqual(ingress_records(self.inst), records)
        # the server still serves
        ok = make_message("after-drop@client.test", 700)
        c2 = self.conn()
        _, _, dr = c2.transaction("sender@remote.test", [r], ok)
        self.assertReply(dr[r], 250, "2.0.0")
        self.assertEqual(self.stored(r), [sha256_hex(ok)])

    def test_connection_dropped_after_dot_cr(self):
        """Everything but the final LF of the end marker: not a complete message."""
        r = self.fresh("dropcr")
        c = LMTP(self.port)
        self.addCleanup(c.close)
        c.cmd("MAIL FROM:<sender@remote.test>")
        c.cmd(f"RCPT TO:<{r}>")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: almost\r\n\r\nbody\r\n.\r")
        time.sleep(0.2)
        c.close()
        time.sleep(0.5)
        self.assertEqual(self.stored(r), [])

    def test_connection_reset_mid_data(self):
        r = self.fresh("reset")
        c = LMTP(self.port)
        c.cmd("MAIL FROM:<sender@remote.test>")
        c.cmd(f"RCPT TO:<{r}>")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: reset\r\n\r\nsome text\r\n")
        # RST instead of FIN
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        time.sleep(0.5)
        self.assertEqual(self.stored(r), [])
        self.assertEqual(self.conn().cmd("NOOP").code, 250)

    def test_pipelining(self):
        c = self.conn()
        a, b = self.fresh("pipe"), self.fresh("pipe")
        rcpts = [a, f"ghost@{DOMAIN}", b]
        msg = make_message("pipelined@client.test", 2000)
        c.send(b"MAIL FROM:<sender@remote.test>\r\n" +
               b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts) + b"DATA\r\n")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 550, "5.1.1")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertEqual(c.reply().code, 354)
        # message, then the next commands in the same write
        c.send(h.frame_data(msg) + b"RSET\r\nNOOP\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.0.0")  # RSET
        self.assertReply(c.reply(), 250, "2.0.0")  # NOOP
        self.assertEqual(self.stored(a), [sha256_hex(msg)])
        self.assertEqual(self.stored(b), [sha256_hex(msg)])

    def test_pipelined_transactions_back_to_back(self):
        c = self.conn()
        r = self.fresh("b2b")
        msgs = [make_message(f"pipe-{i}@client.test", 300 + 100 * i) for i in range(5)]
        replies = []
        for m in msgs:  # each DATA waits for 354 as RFC 2920 requires
            c.send(f"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<{r}>\r\nDATA\r\n".encode())
            replies += [c.reply(), c.reply(), c.reply()]
            c.send(h.frame_data(m))
            replies.append(c.reply())
        self.assertEqual([x.code for x in replies], [250, 250, 354, 250] * 5)
        self.assertEqual(sorted(self.stored(r)), sorted(sha256_hex(m) for m in msgs))

    def test_many_idle_connections(self):
        conns = [self.conn() for _ in range(30)]
        for c in conns:
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0")


class SmallLimitTest(h.MailarkTestCase):
    """max_message_size = 10KB."""

    LIMIT = 10 * 1024

    @classmethod
    def setUpClass(cls):
        cls.inst = h.Instance("small")
        cls.shared_instances = [cls.inst]
        cls.inst.set_option("delivery", "max_message_size", '"10KB"')
        cls.inst.add_tenant(DOMAIN)
        for u in ["alice", "bob", "carol"]:
            cls.inst.add_user(f"{u}@{DOMAIN}")
        cls.port = cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def assertReply(self, reply, code, enhanced):
        self.assertEqual((reply.code, reply.enhanced), (code, enhanced), f"reply was: {reply}")

    def test_size_advertised(self):
        c = LMTP(self.port)
        self.addCleanup(c.close)
        self.assertIn(f"SIZE {self.LIMIT}", [x.upper() for x in c.capabilities])

    def test_size_parameter_over_limit(self):
        c = LMTP(self.port)
        self.addCleanup(c.close)
        self.assertReply(c.cmd(f"MAIL FROM:<s@remote.test> SIZE={self.LIMIT + 1}"), 552, "5.3.4")
        self.assertReply(c.cmd(f"MAIL FROM:<s@remote.test> SIZE={self.LIMIT}"), 250, "2.1.0")

    def test_oversize_message_rejected_per_recipient(self):
        rcpts = [f"alice@{DOMAIN}", f"bob@{DOMAIN}"]
        c = LMTP(self.port)
        self.addCleanup(c.close)
        records = ingress_records(self.inst)
        blob_files = self.inst.stored_blobs()
        msg = make_message("big@client.test", 3 * self.LIMIT)
        mr, rr, dr = c.transaction("s@remote.test", rcpts, msg)  # no SIZE= given
        for r in rcpts:
            self.assertReply(rr[r], 250, "2.1.5")
            self.assertReply(dr[r], 552, "5.3.4")
        self.assertEqual(self.inst.blobs_by_account().get(rcpts[0], []), [])
        self.assertEqual(self.inst.blobs_by_account().get(rcpts[1], []), [])
        self.assertEqual(self.inst.stored_blobs(), blob_files)
        self.assertEqual(ingress_records(self.inst), records)
        # the session continues
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_limit_boundary(self):
        r = f"carol@{DOMAIN}"
        c = LMTP(self.port)
        self.addCleanup(c.close)
        exact = make_message("exact@client.test", self.LIMIT)
        self.assertEqual(len(exact), self.LIMIT)
        over = make_message("over@client.test", self.LIMIT + 1)
        self.assertEqual(len(over), self.LIMIT + 1)
        _, _, dr = c.transaction("s@remote.test", [r], exact)
        self.assertReply(dr[r], 250, "2.0.0")
        _, _, dr = c.transaction("s@remote.test", [r], over)
        self.assertReply(dr[r], 552, "5.3.4")
        self.assertEqual(self.inst.blobs_by_account().get(r), [sha256_hex(exact)])


class TemporaryQuotaTest(h.MailarkTestCase):
    """[delivery] over_quota = "temporary"."""

    def test_over_quota_temporary(self):
        inst = h.Instance("tmpquota")
        inst.set_option("delivery", "over_quota", '"temporary"')
        inst.add_tenant(DOMAIN)
        inst.add_user(f"full@{DOMAIN}", quota="4KB")
        inst.add_user(f"roomy@{DOMAIN}")
        port = inst.start()
        try:
            c = LMTP(port)
            self.addCleanup(c.close)
            m1 = make_message("t1@client.test", 3500)
            _, _, dr = c.transaction("s@remote.test", [f"full@{DOMAIN}"], m1)
            self.assertEqual(dr[f"full@{DOMAIN}"].code, 250)
            m2 = make_message("t2@client.test", 1500)
            _, rr, dr = c.transaction("s@remote.test", [f"full@{DOMAIN}", f"roomy@{DOMAIN}"], m2)
            got = dr.get(f"full@{DOMAIN}") or rr[f"full@{DOMAIN}"]
            self.assertEqual((got.code, got.enhanced), (452, "4.2.2"), str(got))
            self.assertEqual(dr[f"roomy@{DOMAIN}"].code, 250)
            blobs = inst.blobs_by_account()
            self.assertEqual(blobs[f"full@{DOMAIN}"], [sha256_hex(m1)])
            self.assertEqual(blobs[f"roomy@{DOMAIN}"], [sha256_hex(m2)])
            c.close()
        finally:
            self.assertEqual(inst.stop(), 0)


class LimitsTest(h.MailarkTestCase):
    """[lmtp] timeout_s = 2, [server] max_connections = 3."""

    @classmethod
    def setUpClass(cls):
        cls.inst = h.Instance("limits")
        cls.shared_instances = [cls.inst]
        cls.inst.set_option("lmtp", "timeout_s", "2")
        cls.inst.set_option("server", "max_connections", "3")
        cls.inst.add_tenant(DOMAIN)
        cls.inst.add_user(f"slow@{DOMAIN}")
        cls.port = cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def wait_closed(self, c, limit):
        """Reads until the server closes; returns (replies, seconds)."""
        t0 = time.time()
        c.sock.settimeout(limit)
        replies = []
        try:
            while True:
                replies.append(c.reply())
        except h.ConnectionLost:
            pass
        return replies, time.time() - t0

    def test_idle_timeout(self):
        time.sleep(0.5)  # connections closed by the previous test must be gone (limit is 3)
        c = LMTP(self.port)
        self.addCleanup(c.close)
        replies, took = self.wait_closed(c, 15)
        self.assertLess(took, 10, "idle connection not closed after timeout_s = 2")
        self.assertEqual([(r.code, r.enhanced) for r in replies], [(421, "4.4.2")],
                         [str(r) for r in replies])

    def test_stalled_data_times_out_and_stores_nothing(self):
        c = LMTP(self.port)
        self.addCleanup(c.close)
        c.cmd("MAIL FROM:<s@remote.test>")
        self.assertEqual(c.cmd(f"RCPT TO:<slow@{DOMAIN}>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: stalled\r\n\r\nhalf a messa")
        replies, took = self.wait_closed(c, 15)
        self.assertLess(took, 10, "stalled DATA not timed out after timeout_s = 2")
        self.assertEqual(self.inst.blobs_by_account().get(f"slow@{DOMAIN}", []), [])

    def test_connection_limit(self):
        time.sleep(0.5)
        held = [LMTP(self.port) for _ in range(3)]
        for c in held:
            self.addCleanup(c.close)
        extra = None
        try:
            extra = LMTP(self.port, lhlo=False, timeout=10)
            greeting = extra.greeting
        except h.ConnectionLost:
            greeting = None
        finally:
            if extra:
                extra.close()
        self.assertIsNotNone(greeting, "connection over the limit closed without a reply")
        self.assertEqual((greeting.code, greeting.enhanced), (421, "4.3.2"), str(greeting))
        # the held connections still work; a slot frees up when one closes
        self.assertEqual(held[0].cmd("NOOP").code, 250)
        held[0].cmd("QUIT")
        held[0].close()
        time.sleep(0.3)
        c = LMTP(self.port)
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("NOOP").code, 250)


class ShutdownTest(h.MailarkTestCase):

    def test_sigterm_with_idle_and_in_flight_connections(self):
        inst = h.Instance("term")
        inst.add_tenant(DOMAIN)
        inst.add_user(f"alice@{DOMAIN}")
        port = inst.start()
        idle_lhlo = [LMTP(port) for _ in range(3)]
        idle_greeted = [LMTP(port, lhlo=False) for _ in range(2)]
        in_mail = LMTP(port)
        busy = LMTP(port)
        for c in idle_lhlo + idle_greeted + [in_mail, busy]:
            self.addCleanup(c.close)
        self.assertEqual(in_mail.cmd("MAIL FROM:<s@remote.test>").code, 250)
        busy.cmd("MAIL FROM:<s@remote.test>")
        self.assertEqual(busy.cmd(f"RCPT TO:<alice@{DOMAIN}>").code, 250)
        self.assertEqual(busy.cmd("DATA").code, 354)
        msg = make_message("inflight@client.test", 20_000)
        framed = h.frame_data(msg)
        busy.send(framed[:10_000])
        time.sleep(0.2)

        inst.proc.send_signal(signal.SIGTERM)
        for c in idle_lhlo + idle_greeted:
            r = c.reply()
            self.assertEqual((r.code, r.enhanced), (421, "4.3.2"), str(r))
            c.sock.settimeout(10)
            self.assertEqual(c.sock.recv(10), b"", "connection not closed after 421")
        # new connections are no longer accepted
        time.sleep(0.3)
        refused = False
        try:
            probe = LMTP(port, timeout=5, lhlo=False)
            refused = probe.greeting.code == 421
            probe.close()
        except (OSError, h.ConnectionLost):
            refused = True
        self.assertTrue(refused, "server accepted a new connection after SIGTERM")
        # the in-flight message is finished and acknowledged
        busy.send(framed[10_000:])
        r = busy.reply()
        self.assertEqual((r.code, r.enhanced), (250, "2.0.0"), str(r))
        try:
            r = in_mail.reply()
            self.assertEqual(r.code, 421, str(r))
        except h.ConnectionLost:
            pass
        rc = inst.proc.wait(timeout=40)
        inst.stop()
        self.assertEqual(rc, 0, inst.log_tail())
        self.assertEqual(inst.blobs_by_account().get(f"alice@{DOMAIN}"), [sha256_hex(msg)])
        r = inst.cli("check")
        self.assertIn("db1: ok", r.out)

    def test_sigterm_idle_server_exits_zero(self):
        inst = h.Instance("term2")
        inst.start()
        time.sleep(0.5)
        t = time.time()
        self.assertEqual(inst.stop(timeout=30), 0, inst.log_tail())
        self.assertLess(time.time() - t, 10)

    def test_sigterm_right_after_ports_json(self):
        """ports.json is the readiness signal: a SIGTERM right after it must be a clean stop."""
        inst = h.Instance("term3")
        codes = []
        for _ in range(20):
            inst.start()
            codes.append(inst.stop(timeout=30))
        self.assertEqual(codes, [0] * 20, inst.log_tail(20))


if __name__ == "__main__":
    h.main()
