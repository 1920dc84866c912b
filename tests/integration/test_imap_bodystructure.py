"""FETCH BODYSTRUCTURE / BODY / BODY[section] over a corpus of tricky MIME messages, APPENDed
to a real `mailark serve`.

The expected structures are literal strings written from RFC 3501 7.4.2 / RFC 9051 7.5.2 (with
RFC 2045/2046 defaults: no Content-Type means text/plain; charset=us-ascii, no
Content-Transfer-Encoding means 7bit, parts of multipart/digest default to message/rfc822).
Sizes are octets of the part body as stored; a part body ends before the CRLF that precedes
the next delimiter (RFC 2046 5.1.1). Every text body in the corpus ends with a line break, so
line counts do not depend on whether an unterminated last line counts.

What the RFCs leave open is normalised before comparing (imap_client.norm_body): the case of
types, subtypes, encodings and parameter names; Content-Language as a string or a list;
RFC 2231 parameters raw or decoded; omitted trailing extension fields."""

import imap_client as ic
import harness as h
from imap_client import Imap

DOMAIN = "acme.test"
PW = "secret-pw"


def crlf(s):
    return s.replace("\n", "\r\n").encode()


ASCII_TEXT = '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d NIL NIL NIL NIL)'
EMPTY_TEXT = ASCII_TEXT % (0, 0)

NESTED_INNER_HEADER = (
    "From: Inner <inner@remote.test>\n"
    "Subject: inner\n"
    "Date: Tue, 2 Jan 2024 11:00:00 +0100\n"
    "Message-ID: <inner@remote.test>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/alternative; boundary=\"A2\"\n"
    "\n")
NESTED_INNER_TEXT = (
    "--A2\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "plain\n"
    "\n"
    "--A2\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<b>html</b>\n"
    "\n"
    "--A2--\n")
NESTED_TEXT = (
    "preamble text\n"
    "--A1\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "See attached.\n"
    "\n"
    "--A1\n"
    "Content-Type: message/rfc822\n"
    "Content-Description: forwarded\n"
    "\n" + NESTED_INNER_HEADER + NESTED_INNER_TEXT + "\n"
    "--A1--\n"
    "epilogue\n")
NESTED = crlf(
    "From: Outer <outer@remote.test>\n"
    "To: rcpt@acme.test\n"
    "Subject: nested\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"A1\"\n"
    "\n" + NESTED_TEXT)

PDF_MIME = (
    "Content-Type: application/pdf; name=\"report.pdf\"\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=\"report.pdf\"; size=1234\n"
    "Content-ID: <pdf1@remote.test>\n"
    "Content-Description: The report\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Language: en, de\n"
    "Content-Location: http://example.test/report.pdf\n"
    "\n")
PDF_BODY = ("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\n"
            "ZW5kc3RyZWFtCmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\n")
ALT_BODY = (
    "--M2\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Hello =E2=82=AC\n"
    "\n"
    "--M2\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>Hello</p>\n"
    "\n"
    "--M2--\n")
ALT = crlf(
    "From: Sender <sender@remote.test>\n"
    "To: rcpt@acme.test\n"
    "Subject: alt in mixed\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"M1\"\n"
    "\n"
    "--M1\n"
    "Content-Type: multipart/alternative; boundary=\"M2\"\n"
    "\n" + ALT_BODY + "\n"
    "--M1\n" + PDF_MIME + PDF_BODY + "\n"
    "--M1--\n")

MISSING_CLOSE = crlf(
    "From: a@remote.test\n"
    "Subject: missing close\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"MC\"\n"
    "\n"
    "--MC\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "first part\n"
    "\n"
    "--MC\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "last part\n")

NO_BOUNDARY = crlf(
    "From: a@remote.test\n"
    "Subject: no boundary\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"NEVER\"\n"
    "\n"
    "just some text\n"
    "and more\n")

UTF8_HEADERS = (
    "From: J\u00f6rg <joerg@remote.test>\r\n"
    "To: rcpt@acme.test\r\n"
    "Subject: Gr\u00fc\u00dfe aus K\u00f6ln\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "K\u00e4se und Br\u00f6tchen\r\n"
    "zweite Zeile\r\n").encode()

EMPTY_PARTS = crlf(
    "From: a@remote.test\n"
    "Subject: empty parts\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"EP\"\n"
    "\n"
    "--EP\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "--EP\n"
    "\n"
    "--EP\n"
    "Content-Type: application/octet-stream\n"
    "\n"
    "--EP--\n")

EMPTY_BODY = crlf("From: a@remote.test\nSubject: empty body\n\n")
HEADER_ONLY = crlf("From: a@remote.test\nSubject: header only\n")

RFC2231 = crlf(
    "From: a@remote.test\n"
    "Subject: rfc2231\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"R1\"\n"
    "\n"
    "--R1\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "body\n"
    "\n"
    "--R1\n"
    "Content-Type: application/octet-stream; name*=UTF-8''%E2%82%AC%20rates.pdf\n"
    "Content-Disposition: attachment; filename*0=\"very-long-\"; filename*1=\"name.txt\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAECAwQF\n"
    "\n"
    "--R1--\n")

DISPOSITION = crlf(
    "From: a@remote.test\n"
    "Subject: disposition\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=\"iso-8859-1\"; format=flowed\n"
    "Content-Disposition: inline; filename=\"a.txt\"; creation-date=\"Wed, 12 Feb 1997 16:29:51 -0500\"\n"
    "Content-Language: fr\n"
    "Content-Location: http://example.test/a.txt\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-ID: <id1@remote.test>\n"
    "Content-Description: A description\n"
    "\n"
    "Bonjour.\n"
    "Deuxieme ligne.\n")

NO_CONTENT_TYPE = crlf("From: a@remote.test\nSubject: no content type\n\nJust text.\n")

DIGEST_MSG1 = "From: one@remote.test\nSubject: first\n\nFirst.\n"
DIGEST = crlf(
    "From: a@remote.test\n"
    "Subject: digest\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/digest; boundary=\"D1\"\n"
    "\n"
    "--D1\n"
    "\n" + DIGEST_MSG1 + "\n"
    "--D1\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "Not a message.\n"
    "\n"
    "--D1--\n")

GARBAGE_TYPE = crlf(
    "From: a@remote.test\nSubject: garbage type\nMIME-Version: 1.0\nContent-Type: garbage\n\n"
    "Text.\n")

UPPER_CASE = crlf(
    "From: a@remote.test\n"
    "Subject: upper\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/HTML; CHARSET=\"UTF-8\"; Format=flowed\n"
    "Content-Transfer-Encoding: QUOTED-PRINTABLE\n"
    "\n"
    "<p>x</p>\n")

RFC822_NO_BODY = crlf(
    "From: a@remote.test\nSubject: empty attached message\nMIME-Version: 1.0\n"
    "Content-Type: message/rfc822\n\n")

PREFIX_INNER = (
    "--frontier-inner\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "inner one\n"
    "\n"
    "--frontier-inner\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "inner two\n"
    "\n"
    "--frontier-inner--\n")
PREFIX_BOUNDARIES = crlf(
    "From: a@remote.test\n"
    "Subject: prefix boundaries\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"frontier\"\n"
    "\n"
    "--frontier\n"
    "Content-Type: multipart/alternative; boundary=\"frontier-inner\"\n"
    "\n" + PREFIX_INNER + "\n"
    "--frontier\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "outer two\n"
    "\n"
    "--frontier--\n")

FOLDED = crlf(
    "From: a@remote.test\n"
    "Subject: folded\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain;\n"
    " charset=\"utf-8\";\n"
    "\tformat=flowed\n"
    "Content-Transfer-Encoding:\n"
    " 7bit\n"
    "\n"
    "folded\n")

COMMENTS = crlf(
    "From: a@remote.test\n"
    "Subject: comments\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain (plain text); charset=us-ascii (ascii)\n"
    "\n"
    "c\n")

BARE_LF = (b"From: a@remote.test\nSubject: bare lf\nMIME-Version: 1.0\n"
           b"Content-Type: text/plain; charset=us-ascii\n\nline1\nline2\n")

GLOBAL_INNER = "From: j@remote.test\r\nSubject: \u00dcber\r\n\r\nText\r\n"
MESSAGE_GLOBAL = ("From: a@remote.test\r\nSubject: global\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: message/global\r\n\r\n" + GLOBAL_INNER).encode()

ESCAPES = crlf(
    "From: \"Doe, \\\"JJ\\\"\" <jd@remote.test>\n"
    "Subject: back\\slash \"q\"\n"
    "\n"
    "x\n")

NIL_ENVELOPE = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"

# name -> (message, BODYSTRUCTURE, {section: expected BODY[section]})
CORPUS = {
    "nested_message_in_multipart": (
        NESTED,
        '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 1 NIL NIL NIL NIL)'
        '("message" "rfc822" NIL NIL "forwarded" "7bit" 322 '
        '("Tue, 2 Jan 2024 11:00:00 +0100" "inner" (("Inner" NIL "inner" "remote.test")) '
        '(("Inner" NIL "inner" "remote.test")) (("Inner" NIL "inner" "remote.test")) '
        'NIL NIL NIL NIL "<inner@remote.test>") '
        '(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)'
        '("text" "html" ("charset" "utf-8") NIL NIL "7bit" 13 1 NIL NIL NIL NIL) '
        '"alternative" ("boundary" "A2") NIL NIL NIL) 18 NIL NIL NIL NIL) '
        '"mixed" ("boundary" "A1") NIL NIL NIL)',
        {"TEXT": crlf(NESTED_TEXT),
         "1": b"See attached.\r\n",
         "1.MIME": b"Content-Type: text/plain; charset=us-ascii\r\n\r\n",
         "2": crlf(NESTED_INNER_HEADER + NESTED_INNER_TEXT),
         "2.MIME": b"Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n",
         "2.HEADER": crlf(NESTED_INNER_HEADER),
         "2.TEXT": crlf(NESTED_INNER_TEXT),
         "2.HEADER.FIELDS (SUBJECT)": b"Subject: inner\r\n\r\n",
         "2.1": b"plain\r\n",
         "2.1.MIME": b"Content-Type: text/plain; charset=utf-8\r\n\r\n",
         "2.2": b"<b>html</b>\r\n",
         "2.2.MIME": b"Content-Type: text/html; charset=utf-8\r\n\r\n"}),
    "alternative_in_mixed_with_attachment": (
        ALT,
        '((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 17 1 NIL NIL NIL NIL)'
        '("text" "html" ("charset" "utf-8") NIL NIL "7bit" 14 1 NIL NIL NIL NIL) '
        '"alternative" ("boundary" "M2") NIL NIL NIL)'
        '("application" "pdf" ("name" "report.pdf") "<pdf1@remote.test>" "The report" "base64" '
        '116 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report.pdf" "size" "1234")) '
        '("en" "de") "http://example.test/report.pdf") '
        '"mixed" ("boundary" "M1") NIL NIL NIL)',
        {"1": crlf(ALT_BODY),
         "1.MIME": b"Content-Type: multipart/alternative; boundary=\"M2\"\r\n\r\n",
         "1.1": b"Hello =E2=82=AC\r\n",
         "1.2": b"<p>Hello</p>\r\n",
         "2": crlf(PDF_BODY),
         "2.MIME": crlf(PDF_MIME)}),
    "missing_closing_boundary": (
        MISSING_CLOSE,
        '(' + ASCII_TEXT % (12, 1) + ASCII_TEXT % (11, 1) + ' "mixed" ("boundary" "MC") NIL NIL NIL)',
        {"1": b"first part\r\n", "2": b"last part\r\n"}),
    "raw_utf8_headers": (
        UTF8_HEADERS,
        '("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 35 2 NIL NIL NIL NIL)',
        {"1": "K\u00e4se und Br\u00f6tchen\r\nzweite Zeile\r\n".encode(),
         "TEXT": "K\u00e4se und Br\u00f6tchen\r\nzweite Zeile\r\n".encode(),
         "HEADER": UTF8_HEADERS[:UTF8_HEADERS.index(b"\r\n\r\n") + 4]}),
    "empty_parts": (
        EMPTY_PARTS,
        '(' + EMPTY_TEXT + EMPTY_TEXT +
        '("application" "octet-stream" NIL NIL NIL "7bit" 0 NIL NIL NIL NIL) '
        '"mixed" ("boundary" "EP") NIL NIL NIL)',
        {"1": b"", "2": b"", "3": b"",
         "3.MIME": b"Content-Type: application/octet-stream\r\n\r\n"}),
    "empty_body": (EMPTY_BODY, EMPTY_TEXT, {"TEXT": b"", "1": b"",
                                            "HEADER": EMPTY_BODY}),
    "header_without_blank_line": (HEADER_ONLY, EMPTY_TEXT, {"TEXT": b"", "1": b""}),
    "rfc2231_parameters": (
        RFC2231,
        '(' + ASCII_TEXT % (6, 1) +
        '("application" "octet-stream" ("name*" "UTF-8\'\'%E2%82%AC%20rates.pdf") NIL NIL "base64" 10 '
        'NIL ("attachment" ("filename*0" "very-long-" "filename*1" "name.txt")) NIL NIL) '
        '"mixed" ("boundary" "R1") NIL NIL NIL)',
        {"2": b"AAECAwQF\r\n"}),
    "disposition_language_location_md5": (
        DISPOSITION,
        '("text" "plain" ("charset" "iso-8859-1" "format" "flowed") "<id1@remote.test>" '
        '"A description" "7bit" 27 2 "Q2hlY2sgSW50ZWdyaXR5IQ==" '
        '("inline" ("filename" "a.txt" "creation-date" "Wed, 12 Feb 1997 16:29:51 -0500")) '
        '"fr" "http://example.test/a.txt")',
        {"1": b"Bonjour.\r\nDeuxieme ligne.\r\n"}),
    "no_content_type": (NO_CONTENT_TYPE, ASCII_TEXT % (12, 1), {"1": b"Just text.\r\n"}),
    "digest_default_message_rfc822": (
        DIGEST,
        '(("message" "rfc822" NIL NIL NIL "7bit" 49 '
        '(NIL "first" ((NIL NIL "one" "remote.test")) ((NIL NIL "one" "remote.test")) '
        '((NIL NIL "one" "remote.test")) NIL NIL NIL NIL NIL) ' + ASCII_TEXT % (8, 1) +
        ' 4 NIL NIL NIL NIL)' + ASCII_TEXT % (16, 1) +
        ' "digest" ("boundary" "D1") NIL NIL NIL)',
        {"1": crlf(DIGEST_MSG1), "1.HEADER": b"From: one@remote.test\r\nSubject: first\r\n\r\n",
         "1.TEXT": b"First.\r\n", "1.1": b"First.\r\n", "1.MIME": b"\r\n",
         "2": b"Not a message.\r\n"}),
    "invalid_content_type": (GARBAGE_TYPE, ASCII_TEXT % (7, 1), {"1": b"Text.\r\n"}),
    "upper_case_type_and_parameters": (
        UPPER_CASE,
        '("TEXT" "HTML" ("CHARSET" "UTF-8" "FORMAT" "flowed") NIL NIL "QUOTED-PRINTABLE" 10 1 '
        'NIL NIL NIL NIL)',
        {"1": b"<p>x</p>\r\n"}),
    "message_rfc822_without_body": (
        RFC822_NO_BODY,
        '("message" "rfc822" NIL NIL NIL "7bit" 0 ' + NIL_ENVELOPE + ' ' + EMPTY_TEXT +
        ' 0 NIL NIL NIL NIL)',
        {"1": b"", "TEXT": b""}),
    "boundary_prefix_of_inner_boundary": (
        PREFIX_BOUNDARIES,
        '((' + ASCII_TEXT % (11, 1) + ASCII_TEXT % (11, 1) +
        ' "alternative" ("boundary" "frontier-inner") NIL NIL NIL)' + ASCII_TEXT % (11, 1) +
        ' "mixed" ("boundary" "frontier") NIL NIL NIL)',
        {"1": crlf(PREFIX_INNER), "1.1": b"inner one\r\n", "1.2": b"inner two\r\n",
         "2": b"outer two\r\n"}),
    "folded_content_type": (
        FOLDED,
        '("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "7bit" 8 1 NIL NIL NIL NIL)',
        {"1": b"folded\r\n"}),
    "content_type_with_comments": (COMMENTS, ASCII_TEXT % (3, 1), {"1": b"c\r\n"}),
    "bare_lf_line_ends": (BARE_LF, ASCII_TEXT % (12, 2), {"1": b"line1\nline2\n"}),
    "message_global": (
        MESSAGE_GLOBAL,
        '("message" "global" NIL NIL NIL "7bit" 45 '
        '(NIL "\u00dcber" ((NIL NIL "j" "remote.test")) ((NIL NIL "j" "remote.test")) '
        '((NIL NIL "j" "remote.test")) NIL NIL NIL NIL NIL) ' + ASCII_TEXT % (6, 1) +
        ' 4 NIL NIL NIL NIL)',
        {"1": GLOBAL_INNER.encode(), "1.TEXT": b"Text\r\n"}),
}


class BodystructureTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = ic.start_server("imap-bs", users=[f"bs@{DOMAIN}"],
                                              tenants=[DOMAIN], password=PW)
        cls.shared_instances = [cls.inst]
        c = Imap(cls.ports["imap"])
        c.login(f"bs@{DOMAIN}", PW)
        cls.seq = {}
        for i, (name, (m, _, _)) in enumerate(CORPUS.items(), start=1):
            r = c.append("INBOX", m)
            if not r.ok:
                raise AssertionError(f"APPEND of {name} failed: {r}")
            cls.seq[name] = i
        for i, (name, m) in enumerate([("no_boundary", NO_BOUNDARY), ("escapes", ESCAPES)],
                                      start=len(CORPUS) + 1):
            r = c.append("INBOX", m)
            if not r.ok:
                raise AssertionError(f"APPEND of {name} failed: {r}")
            cls.seq[name] = i
        c.logout()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def setUp(self):
        self.c = Imap(self.ports["imap"])
        self.addCleanup(self.c.close)
        self.c.login(f"bs@{DOMAIN}", PW)
        self.c.select("INBOX", examine=True)

    def fetch_one(self, n, items):
        r = self.c.cmd(f"FETCH {n} {items}")
        self.assertTrue(r.ok, str(r))
        for u in r.untagged:
            bad = ic.eight_bit_in_quoted(u)
            self.assertEqual(bad, [], f"8-bit octets in a quoted string (RFC 3501 9 'quoted' is "
                                      f"7-bit; use a literal): {u[:300]!r}")
        return ic.fetch_map(r)[n], ic.fetch_map(r, raw=True)[n]

    def test_bodystructure_corpus(self):
        failures = []
        for name, (m, want, _) in CORPUS.items():
            got, raw = self.fetch_one(self.seq[name], "(BODYSTRUCTURE)")
            try:
                exp = ic.norm_body(ic.parse(want))
            except ic.ParseError as e:
                raise AssertionError(f"bad expectation for {name}: {e}")
            act = ic.norm_body(got["BODYSTRUCTURE"])
            if act != exp:
                failures.append(f"{name}:\n  expected {want}\n  got      {raw['BODYSTRUCTURE']}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_body_corpus(self):
        """BODY is BODYSTRUCTURE without extension data (RFC 3501 7.4.2)."""
        failures = []
        for name, (m, want, _) in CORPUS.items():
            got, raw = self.fetch_one(self.seq[name], "(BODY)")
            exp = ic.norm_body(ic.strip_extensions(ic.parse(want)), pad=False)
            act = ic.norm_body(got["BODY"], pad=False)
            if act != exp or ic.has_extensions(got["BODY"]):
                failures.append(f"{name}:\n  expected {exp}\n  got      {raw['BODY']}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_sections_corpus(self):
        failures = []
        for name, (m, _, sections) in CORPUS.items():
            n = self.seq[name]
            for section, want in sections.items():
                r = self.c.cmd(f"FETCH {n} (BODY.PEEK[{section}])")
                if not r.ok:
                    failures.append(f"{name} BODY[{section}]: {r.line}")
                    continue
                got = ic.fetch_map(r).get(n, {}).get(f"BODY[{section}]".upper(), "<missing>")
                got = got.encode("utf-8", "surrogateescape") if isinstance(got, str) else got
                if got != want:
                    failures.append(f"{name} BODY[{section}]: expected {want!r}, got {got!r}")
            # the whole message comes back byte for byte
            got = self.c.fetch(str(n), "(BODY.PEEK[] RFC822.SIZE)")[n]
            if bytes(ic.text(got["BODY[]"]).encode("utf-8", "surrogateescape")) != m:
                failures.append(f"{name} BODY[] differs from the appended message")
            if got["RFC822.SIZE"] != len(m):
                failures.append(f"{name} RFC822.SIZE {got['RFC822.SIZE']} != {len(m)}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_multipart_without_boundary_in_body(self):
        """The boundary never appears: the RFCs do not say what the parts are; the answer must
        still be a valid multipart (1*body, RFC 3501 9) of type mixed with its parameter."""
        n = self.seq["no_boundary"]
        got, raw = self.fetch_one(n, "(BODYSTRUCTURE BODY)")
        bs = ic.norm_body(got["BODYSTRUCTURE"])
        self.assertTrue(isinstance(bs[0], list), raw)
        i = next(k for k, x in enumerate(bs) if not isinstance(x, list))
        self.assertGreaterEqual(i, 1)
        self.assertEqual(bs[i], "mixed")
        self.assertEqual(bs[i + 1], [("boundary", "NEVER")])
        r = self.c.cmd(f"FETCH {n} (BODY.PEEK[TEXT])")
        self.assertTrue(r.ok, str(r))
        self.assertEqual(ic.text(ic.fetch_map(r)[n]["BODY[TEXT]"]),
                         "just some text\r\nand more\r\n")

    def test_deep_nesting_and_many_parts(self):
        """Extreme but valid MIME: 150 nested multiparts, and 2000 sibling parts. The answers
        must be complete and grammatical (RFC 3501 9: body = "(" (body-type-1part /
        body-type-mpart) ")"), and the sections must address the right parts."""
        c = Imap(self.ports["imap"])
        self.addCleanup(c.close)
        c.login(f"bs@{DOMAIN}", PW)
        depth = 150
        head = "From: a@remote.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        body = "leaf\r\n"
        for i in reversed(range(depth)):
            body = (f"Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n" +
                    (body if i < depth - 1 else "Content-Type: text/plain\r\n\r\n" + body) +
                    f"\r\n--b{i}--\r\n")
        deep = (head + body).encode()
        parts = 2000
        many = (head + "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n" +
                "".join(f"--m\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n\r\n"
                        for i in range(1, parts + 1)) + "--m--\r\n").encode()
        for m in (deep, many):
            r = c.append("Drafts", m)
            self.assertTrue(r.ok, str(r))
        c.select("Drafts", examine=True)
        t = __import__("time").time()
        r = c.cmd("FETCH 1:2 (BODYSTRUCTURE BODY)")
        took = __import__("time").time() - t
        self.assertTrue(r.ok, str(r)[:500])
        got = ic.fetch_map(r)
        for n in (1, 2):
            ic.norm_body(got[n]["BODYSTRUCTURE"])  # parses as a body structure
            ic.norm_body(got[n]["BODY"])
        bs = got[2]["BODYSTRUCTURE"]
        self.assertEqual(next(i for i, x in enumerate(bs) if not isinstance(x, list)), parts)
        self.assertLess(took, 10)
        r = c.cmd(f"FETCH 2 (BODY.PEEK[{parts}] BODY.PEEK[1])")
        self.assertTrue(r.ok, str(r))
        f = ic.fetch_map(r)[2]
        self.assertEqual(ic.text(f[f"BODY[{parts}]"]), f"part {parts}\r\n")
        self.assertEqual(ic.text(f["BODY[1]"]), "part 1\r\n")
        # the deep one: a path of 1s reaches the leaf as far as the server nests
        d = got[1]["BODYSTRUCTURE"]
        level = 0
        while isinstance(d[0], list):
            d = d[0]
            level += 1
        self.assertGreaterEqual(level, 50, "nesting flattened too early")
        r = c.cmd(f"FETCH 1 (BODY.PEEK[{'.'.join(['1'] * level)}])")
        self.assertTrue(r.ok, str(r)[:300])

    def test_raw_utf8_envelope(self):
        n = self.seq["raw_utf8_headers"]
        got, raw = self.fetch_one(n, "(ENVELOPE)")  # also checks: no 8-bit quoted strings
        env = got["ENVELOPE"]
        self.assertEqual(ic.text(env[1]), "Gr\u00fc\u00dfe aus K\u00f6ln")
        name = ic.text(env[2][0][0])
        import email.header
        name = str(email.header.make_header(email.header.decode_header(name)))
        self.assertEqual(name, "J\u00f6rg")
        self.assertEqual(ic.deep_text(env[2][0][2:]), ["joerg", "remote.test"])

    def test_envelope_quoting(self):
        """Quotes and backslashes in envelope strings are escaped or sent as literals."""
        n = self.seq["escapes"]
        got, raw = self.fetch_one(n, "(ENVELOPE)")
        env = ic.deep_text(got["ENVELOPE"])
        self.assertEqual(env[1], 'back\\slash "q"', raw)
        self.assertEqual(env[2], [['Doe, "JJ"', None, "jd", "remote.test"]], raw)

    def test_utf8_accept_allows_quoted_utf8(self):
        """After ENABLE UTF8=ACCEPT, UTF-8 may be sent in quoted strings (RFC 6855 3); the
        values stay the same."""
        c = self.c
        c.cmd("UNSELECT")
        self.assertTrue(c.cmd("ENABLE UTF8=ACCEPT").ok)
        c.select("INBOX", examine=True)
        n = self.seq["raw_utf8_headers"]
        got = c.fetch(str(n), "(ENVELOPE)")[n]
        self.assertEqual(ic.text(got["ENVELOPE"][1]), "Gr\u00fc\u00dfe aus K\u00f6ln")


if __name__ == "__main__":
    h.main()
