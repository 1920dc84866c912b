"""Bad input to mailark's CalDAV/CardDAV server, and the boundaries it must hold:

- invalid iCalendar and vCard (syntax, structure, two UIDs in one object, METHOD, bytes that
  are not UTF-8) -> 403 with the RFC's precondition; resources over max_resource_size -> 403
  max-resource-size, bodies over the HTTP limit -> 413;
- malformed XML, DOCTYPEs (billion laughs, external entities), deep nesting in PROPFIND,
  PROPPATCH, REPORT, MKCALENDAR and MKCOL -> 400; invalid filters and collations;
- paths: %2e%2e, "..", %2F, NUL, bad escapes, invalid UTF-8 -> refused;
- other users' principals and collections, in the same tenant and in another -> 403
  need-privileges, also through multiget hrefs;
- authentication: failures answered after [auth] failure_delay_ms and counted per client
  address (503 with Retry-After beyond max_failures); plaintext_auth = "never" refuses
  passwords over http while https works; "loopback" refuses them from other addresses.

After every bad request the stored state is compared with the state before (every user's
listings with ETags, sync tokens, collections, and the items table) and the server must still
answer."""

import http.client as http_client
import json
import os
import socket
import ssl
import time

import dav_client as dc
import harness as h
from dav_client import PW, c, card, d

ALICE, BOB = "alice@acme.test", "bob@acme.test"
ZED, ALICE_OTHER = "zed@other.test", "alice@other.test"
USERS = (ALICE, BOB, ZED, ALICE_OTHER)
OTHERS = (BOB, ZED, ALICE_OTHER)


def ics(*lines):
    return ("\r\n".join(lines) + "\r\n").encode()


HEAD = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN"]
EV = ["BEGIN:VEVENT", "UID:bad-1", "DTSTAMP:20260101T000000Z", "DTSTART:20260301T100000Z",
      "DTEND:20260301T110000Z", "SUMMARY:bad"]
TAIL = ["END:VEVENT", "END:VCALENDAR"]

SYNTAX, OBJECT = "syntax", "object"
# (what, body, kind): kind SYNTAX must be answered with CALDAV:valid-calendar-data; OBJECT
# (valid iCalendar that breaks RFC 4791 4.1) with valid-calendar-object-resource, which mailark's
# spec also lets it name valid-calendar-data.
BAD_ICS = [
    ("empty", b"", SYNTAX),
    ("not iCalendar", b"hello world\r\n", SYNTAX),
    ("unterminated", ics(*HEAD, *EV), SYNTAX),
    ("no END:VCALENDAR", ics(*HEAD, *EV, "END:VEVENT"), SYNTAX),
    ("invalid UTF-8", ics(*HEAD, *EV[:-1], "SUMMARY:caf\xe9", *TAIL).replace(
        "caf\xe9".encode(), b"caf\xe9\xff"), SYNTAX),
    ("NUL byte", ics(*HEAD, *EV[:-1], "SUMMARY:a\x00b", *TAIL), SYNTAX),
    ("a vCard", dc.vcard("bad-card", "Not An Event"), SYNTAX),
    ("bad DTSTART value", ics(*HEAD, *EV[:3], "DTSTART:2026-13-45T25:00", *EV[4:], *TAIL),
     SYNTAX),
    ("RRULE FREQ=SOMETIMES", ics(*HEAD, *EV, "RRULE:FREQ=SOMETIMES", *TAIL), SYNTAX),
    ("no VERSION", ics(HEAD[0], HEAD[2], *EV, *TAIL), OBJECT),
    ("VERSION 1.0", ics(HEAD[0], "VERSION:1.0", HEAD[2], *EV, *TAIL), OBJECT),
    ("VEVENT without UID", ics(*HEAD, EV[0], *EV[2:], *TAIL), OBJECT),
    ("VEVENT without DTSTART", ics(*HEAD, *EV[:3], *EV[4:], *TAIL), OBJECT),
    ("DTEND and DURATION", ics(*HEAD, *EV, "DURATION:PT1H", *TAIL), OBJECT),
    ("two VCALENDARs", ics(*HEAD, *EV, *TAIL) + ics(*HEAD, *[l.replace("bad-1", "bad-2")
                                                            for l in EV], *TAIL), OBJECT),
    ("VEVENT and VTODO", ics(*HEAD, *EV, "END:VEVENT", "BEGIN:VTODO", "UID:bad-1",
                             "DTSTAMP:20260101T000000Z", "END:VTODO", "END:VCALENDAR"), OBJECT),
    ("two UIDs", ics(*HEAD, *EV, "END:VEVENT", *[l.replace("bad-1", "bad-2") for l in EV],
                     *TAIL), OBJECT),
    ("two masters, one UID", ics(*HEAD, *EV, "END:VEVENT", *EV, *TAIL), OBJECT),
    ("two overrides of one instance",
     ics(*HEAD, *EV, "RRULE:FREQ=DAILY;COUNT=3", "END:VEVENT",
         *EV[:3], "RECURRENCE-ID:20260302T100000Z", "DTSTART:20260302T120000Z", "END:VEVENT",
         *EV[:3], "RECURRENCE-ID:20260302T100000Z", "DTSTART:20260302T140000Z", *TAIL), OBJECT),
    ("METHOD", ics(*HEAD, "METHOD:REQUEST", *EV, *TAIL), OBJECT),
    ("no component", ics(*HEAD, "END:VCALENDAR"), OBJECT),
]

VC = ["BEGIN:VCARD", "VERSION:3.0", "UID:badcard-1", "FN:Bad Card", "N:Card;Bad;;;"]
BAD_VCF = [
    ("empty", b""),
    ("not a vCard", b"hello world\r\n"),
    ("unterminated", ics(*VC)),
    ("VERSION 2.1", ics(VC[0], "VERSION:2.1", *VC[2:], "END:VCARD")),
    ("no VERSION", ics(VC[0], *VC[2:], "END:VCARD")),
    ("two VERSIONs", ics(*VC, "VERSION:4.0", "END:VCARD")),
    ("4.0 without FN", ics(VC[0], "VERSION:4.0", VC[2], "END:VCARD")),
    ("two vCards", ics(*VC, "END:VCARD") + ics(*[l.replace("badcard-1", "badcard-2") for l in VC],
                                               "END:VCARD")),
    ("nested vCard", ics(*VC, *VC, "END:VCARD", "END:VCARD")),
    ("two UIDs", ics(*VC, "UID:badcard-2", "END:VCARD")),
    ("iCalendar", ics(*HEAD, *EV, *TAIL)),
    ("invalid UTF-8", ics(*VC, "NOTE:x", "END:VCARD").replace(b"NOTE:x", b"NOTE:\xc3\x28")),
    ("text after END", ics(*VC, "END:VCARD", "trailing garbage")),
    ("line without colon", ics(*VC, "THIS LINE HAS NO COLON", "END:VCARD")),
]

BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n' +
                  b"".join(b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else
                                                             b"&lol;") * 10) for i in range(1, 10))
                  + b']>\n<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&lol9;</d:displayname>'
                  b"</d:prop></d:propfind>")
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
       b'<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>&xxe;</d:displayname></d:prop>'
       b"</d:propfind>")
MALFORMED_XML = [
    ("unclosed", b'<d:propfind xmlns:d="DAV:"><d:prop>'),
    ("not XML", b"not xml at all"),
    ("unbound prefix", b"<x:propfind><x:prop/></x:propfind>"),
    ("mismatched tags", b'<d:propfind xmlns:d="DAV:"><d:prop></d:propfind></d:prop>'),
    ("two roots", b'<d:propfind xmlns:d="DAV:"/><d:propfind xmlns:d="DAV:"/>'),
    ("declared UTF-16", b'<?xml version="1.0" encoding="UTF-16"?><d:propfind xmlns:d="DAV:"/>'),
    ("invalid UTF-8", b'<d:propfind xmlns:d="DAV:"><d:prop><d:displayname>\xff\xfe'
                      b"</d:displayname></d:prop></d:propfind>"),
    ("billion laughs", BILLION_LAUGHS),
    ("external entity", XXE),
    ("internal DOCTYPE", b'<!DOCTYPE d:propfind><d:propfind xmlns:d="DAV:"/>'),
    ("deep nesting", b'<d:propfind xmlns:d="DAV:"><d:prop>' + b"<a>" * 5000 + b"</a>" * 5000 +
     b"</d:prop></d:propfind>"),
    ("NUL", b'<d:propfind xmlns:d="DAV:">\x00</d:propfind>'),
]

SECRET = b"secret of"


class BadInputTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = dc.start_server(
            "dav-bad", users=USERS, tenants=("acme.test", "other.test"),
            options=[("auth", "failure_delay_ms", "10"), ("auth", "max_failures", "100000"),
                     ("dav", "max_resource_size", '"8KB"')])
        cls.shared_instances = [cls.inst]
        cls.port = cls.ports["http"]
        cls.clients = {u: dc.Dav(cls.port, u) for u in USERS}
        for u, cl in cls.clients.items():
            for path, body in ((dc.cal(u) + "secret.ics",
                                dc.event(f"secret-{u}", summary=f"secret of {u}")),
                               (dc.book(u) + "secret.vcf",
                                dc.vcard(f"secret-{u}", f"secret of {u}")),
                               (dc.cal(u, "private") + "secret.ics",
                                dc.event(f"private-{u}", summary=f"secret of {u} (private)"))):
                if "private" in path:
                    r = cl.mkcalendar(dc.cal(u, "private"), displayname="Private")
                    assert r.status == 201, str(r)
                r = cl.put(path, body)
                assert r.status == 201, str(r)

    @classmethod
    def tearDownClass(cls):
        for cl in cls.clients.values():
            cl.close()
        cls.inst.stop()

    # ---------------------------------------------------------------- helpers

    def client(self, user=ALICE, **kw):
        cl = dc.Dav(self.port, user, **kw)
        self.addCleanup(cl.close)
        return cl

    def snapshot(self):
        """Everything a bad request could have changed, read through DAV and SQLite."""
        out = {}
        for u, cl in self.clients.items():
            for path in (dc.cal(u), dc.cal(u, "private"), dc.book(u)):
                ms = cl.props(path, [d("getetag"), d("sync-token"), d("displayname")], depth=1)
                out[path] = ({hr: e.text(d("getetag")) for hr, e in ms.entries.items()
                              if hr != path}, ms[path].text(d("sync-token")),
                             ms[path].text(d("displayname")))
            for home in (dc.cal_home(u), dc.book_home(u)):
                out[home] = sorted(cl.props(home, [d("resourcetype")], depth=1).hrefs())
        out["items"] = sorted((it["address"], it["folder"], it["blob"]) for it in self.inst.items())
        return out

    def assertUnchanged(self, before, what):
        after = self.snapshot()
        if after != before:
            diffs = [f"{k}: {before.get(k)!r} -> {after.get(k)!r}"
                     for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
            self.fail(f"{what} changed the stored state:\n" + "\n".join(diffs))

    # ---------------------------------------------------------------- objects

    def test_invalid_icalendar_is_refused(self):
        cl = self.client()
        before = self.snapshot()
        failures = []
        for what, body, kind in BAD_ICS:
            r = cl.put(dc.cal(ALICE) + "bad.ics", body)
            allowed = {c("valid-calendar-data")} | (
                {c("valid-calendar-object-resource")} if kind == OBJECT else set())
            if r.status != 403 or not allowed & set(r.preconditions()):
                failures.append(f"{what}: wanted 403 with one of {sorted(allowed)}\n{r}")
            if cl.get(dc.cal(ALICE) + "bad.ics").status != 404:
                failures.append(f"{what}: stored")
        self.assertEqual(failures, [], "\n\n".join(failures))
        self.assertUnchanged(before, "invalid iCalendar")

    def test_invalid_vcard_is_refused(self):
        cl = self.client()
        before = self.snapshot()
        failures = []
        for what, body in BAD_VCF:
            r = cl.put(dc.book(ALICE) + "bad.vcf", body)
            if r.status != 403 or card("valid-address-data") not in r.preconditions():
                failures.append(f"{what}: wanted 403 valid-address-data\n{r}")
        self.assertEqual(failures, [], "\n\n".join(failures))
        self.assertUnchanged(before, "invalid vCards")

    def test_oversized_bodies(self):
        cl = self.client()
        before = self.snapshot()
        big = dc.event("too-big", extra=["DESCRIPTION:" + "x" * 9000])
        r = cl.put(dc.cal(ALICE) + "big.ics", big)
        self.assertEqual(r.status, 403, str(r))
        self.assertIn(c("max-resource-size"), r.preconditions(), str(r))
        r = cl.put(dc.book(ALICE) + "big.vcf", dc.vcard("too-big", "Too Big", "NOTE:" + "y" * 9000))
        self.assertEqual(r.status, 403, str(r))
        self.assertIn(card("max-resource-size"), r.preconditions(), str(r))
        # over the HTTP body limit (16 MiB): refused on the Content-Length alone
        n = 17 << 20
        head = (f"PUT /dav/calendars/{ALICE}/default/huge.ics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {cl.auth_header()}\r\nContent-Type: text/calendar\r\n"
                f"Content-Length: {n}\r\n\r\n").encode()
        status, _, _ = dc.raw_request(self.port, head)
        self.assertEqual(status, 413)
        # ... and when the body is really sent
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        try:
            s.sendall(head)
            chunk = b"X" * (1 << 20)
            sent = 0
            try:
                while sent < n:
                    s.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the server answered and closed while we were sending
            try:
                reply = s.recv(4096)
            except OSError:
                reply = b""
        finally:
            s.close()
        if reply:
            self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:200])
        # an XML body far larger than any PROPFIND needs
        r = cl.propfind(dc.cal(ALICE), body=b'<d:propfind xmlns:d="DAV:"><d:prop>' + b" " *
                        (3 << 20) + b"<d:getetag/></d:prop></d:propfind>", depth=0)
        self.assertIn(r.status, (400, 413), str(r))
        self.assertEqual(cl.get(dc.cal(ALICE) + "big.ics").status, 404)
        self.assertEqual(cl.get(dc.cal(ALICE) + "huge.ics").status, 404)
        self.assertUnchanged(before, "oversized bodies")

    def test_imap_cannot_reach_calendar_and_contact_folders(self):
        """The "#calendars/..." and "#addressbooks/..." folders hold DAV resources: IMAP must
        neither show them nor let mail in or resources out (that would bypass every check
        above)."""
        import imap_client as ic
        before = self.snapshot()
        im = ic.Imap(self.ports["imap"])
        self.addCleanup(im.close)
        im.login(ALICE, PW)
        for pattern in ('"" "*"', '"" "#*"', '"" "#calendars/%"', '"#calendars/" "*"',
                        '"" "#addressbooks/default"'):
            names = ic.list_names(im.must(f"LIST {pattern}"))
            self.assertFalse([n for n in names if n.startswith("#")], f"LIST {pattern}: {names}")
        failures = []
        for box in ("#calendars/default", "#calendars/private", "#addressbooks/default",
                    "#calendars", "#addressbooks"):
            q = ic.quote(box)
            for cmd in (f"SELECT {q}", f"EXAMINE {q}", f"STATUS {q} (MESSAGES)", f"DELETE {q}",
                        f"RENAME {q} Stolen", f"SUBSCRIBE {q}"):
                r = im.cmd(cmd)
                if r.ok:
                    failures.append(f"{cmd}: {r}")
                if cmd.startswith(("SELECT", "EXAMINE")):
                    im.cmd("UNSELECT")
            r = im.append(box, ic.msg(subject="mail into a calendar"))
            if r.ok:
                failures.append(f"APPEND {q}: {r}")
        for box in ("#calendars/new", "#addressbooks/new", "#calendars/default/sub"):
            r = im.cmd(f"CREATE {ic.quote(box)}")
            if r.ok:
                failures.append(f"CREATE {box}: {r}")
                im.cmd(f"DELETE {ic.quote(box)}")
        lsub = ic.list_names(im.must('LSUB "" "*"'), "LSUB")
        if [n for n in lsub if n.startswith("#")]:
            failures.append(f"LSUB lists {lsub}")
        im.select("INBOX")
        self.assertTrue(im.append("INBOX", ic.msg(subject="plain mail")).ok)
        im.select("INBOX")
        for cmd in ('UID COPY 1:* "#calendars/default"', 'UID MOVE 1:* "#addressbooks/default"',
                    'RENAME INBOX "#calendars/inbox"'):
            r = im.cmd(cmd)
            if r.ok:
                failures.append(f"{cmd}: {r}")
        im.logout()
        # the DAV side is unchanged (the appended message is mail, in INBOX)
        now = self.snapshot()
        for state in (now, before):
            state["items"] = [it for it in state["items"] if it[1] != "INBOX"]
        self.assertEqual(now, before)
        self.assertEqual(failures, [], "\n".join(failures))

    def test_quota_counts_calendar_and_contact_data(self):
        inst = self.inst
        user = "quota@acme.test"
        inst.add_user(user, quota="20KB")
        cl = self.client(user)
        path = dc.cal(user)
        accepted, refused = [], None
        for i in range(20):
            body = dc.event(f"quota-{i}", extra=["DESCRIPTION:" + "q" * 3000])
            r = cl.put(f"{path}q{i}.ics", body)
            if r.status == 201:
                accepted.append(f"{path}q{i}.ics")
                continue
            refused = r
            break
        self.assertIsNotNone(refused, "20 x 3KB stored under a 20KB quota")
        self.assertEqual(refused.status, 507, str(refused))
        self.assertIn(d("quota-not-exceeded"), refused.preconditions(), str(refused))
        self.assertEqual(set(cl.listing(path)), set(accepted))
        r = cl.put(dc.book(user) + "big.vcf", dc.vcard("quota-card", "Q", "NOTE:" + "n" * 3000))
        self.assertEqual(r.status, 507, str(r))
        # freeing space lets the next one in
        self.assertEqual(cl.delete(accepted[0]).status, 204)
        self.assertEqual(cl.put(f"{path}again.ics", dc.event("quota-again")).status, 201)
        # The admin's changes count from the next request, though the server keeps verified
        # credentials (and what they resolved to) for minutes: a raised quota...
        inst.cli("user", "quota", user, "1MB")
        r = cl.put(dc.book(user) + "big.vcf", dc.vcard("quota-card", "Q", "NOTE:" + "n" * 3000))
        self.assertEqual(r.status, 201, str(r))
        # ...and a deleted user.
        inst.cli("user", "del", user)
        r = cl.put(f"{path}gone.ics", dc.event("quota-gone"))
        self.assertEqual(r.status, 401, str(r))

    # ---------------------------------------------------------------- XML

    def test_malformed_xml_bodies(self):
        cl = self.client()
        before = self.snapshot()
        failures = []
        targets = [("PROPFIND", dc.cal(ALICE), 1), ("PROPPATCH", dc.cal(ALICE), None),
                   ("REPORT", dc.cal(ALICE), 1), ("REPORT", dc.book(ALICE), 1),
                   ("MKCALENDAR", dc.cal(ALICE, "fromxml"), None),
                   ("MKCOL", dc.book(ALICE, "fromxml"), None)]
        for what, body in MALFORMED_XML:
            for method, path, depth in targets:
                r = cl.request(method, path, body, depth=depth)
                if r.status != 400:
                    failures.append(f"{what} / {method} {path}: wanted 400\n{r}")
                if b"root:x:0" in r.body or b"lollol" in r.body:
                    failures.append(f"{what} / {method}: entity expanded into the answer\n{r}")
        self.assertEqual(failures, [], "\n\n".join(failures))
        self.assertEqual(cl.propfind(dc.cal(ALICE, "fromxml"), [d("displayname")]).status, 404)
        self.assertEqual(cl.propfind(dc.book(ALICE, "fromxml"), [d("displayname")]).status, 404)
        self.assertUnchanged(before, "malformed XML")

    def test_wrong_root_elements_and_invalid_reports(self):
        cl = self.client()
        before = self.snapshot()
        failures = []

        def want(r, what, statuses, preconditions=()):
            ok = r.status in statuses and (not preconditions or set(preconditions) &
                                           set(r.preconditions()))
            if not ok:
                failures.append(f"{what}: wanted {statuses} {list(preconditions)}\n{r}")

        want(cl.propfind(dc.cal(ALICE), body=dc.proppatch_body([(d("displayname"), "x")])),
             "PROPFIND with a propertyupdate", (400,))
        want(cl.proppatch(dc.cal(ALICE), body=dc.propfind_body([d("displayname")])),
             "PROPPATCH with a propfind", (400,))
        want(cl.report(dc.cal(ALICE), dc.doc(d("nonsense-report")), depth=0),
             "an unknown REPORT", (403,), [d("supported-report")])
        # calendar-query filters that RFC 4791 9.7 does not allow
        for what, f in (
                ("top comp-filter VEVENT", dc.comp_filter("VEVENT")),
                ("two top comp-filters", dc.comp_filter("VCALENDAR") + dc.comp_filter("VCALENDAR")),
                ("no comp-filter", "")):
            want(cl.report(dc.cal(ALICE), dc.calendar_query(f), depth=1), what, (403,),
                 [c("valid-filter")])
        for start in ("tomorrow", "20260101", "2026-01-01T00:00:00Z", "20260101T000000"):
            body = dc.event_range_query(start, "20270101T000000Z")
            r = cl.report(dc.cal(ALICE), body, depth=1)
            if not (r.status == 400 or
                    (r.status == 403 and c("valid-filter") in r.preconditions())):
                failures.append(f"time-range start={start}: wanted 400 or 403 valid-filter\n{r}")
        # time ranges the wrong way round, empty, or at the ends of the calendar
        for start, end in (("20270101T000000Z", "20260101T000000Z"),
                           ("20260101T000000Z", "20260101T000000Z")):
            for body in (dc.event_range_query(start, end),
                         dc.event_range_query(start, end, props=(d("getetag"), dc.calendar_data(
                             expand=(start, end)))),
                         dc.freebusy_body(start, end)):
                r = cl.report(dc.cal(ALICE), body, depth=1)
                if not (r.status == 400 or (r.status == 403 and
                                            c("valid-filter") in r.preconditions())):
                    failures.append(f"time-range [{start}, {end}): wanted 400 or 403 "
                                    f"valid-filter\n{r}")
        for start, end in (("00000101T000000Z", "99991231T235959Z"),
                           ("99991231T000000Z", "99991231T235959Z")):
            r = cl.report(dc.cal(ALICE), dc.event_range_query(start, end), depth=1)
            if r.status not in (207, 400, 403):
                failures.append(f"time-range [{start}, {end}): {r.status}\n{r}")
        # sync-collection and addressbook-query limits that are not positive numbers
        for n in ("0", "-1", "x", "4294967296", "99999999999999999999"):
            for path, body in ((dc.cal(ALICE), dc.sync_body("").replace(
                    "<d:sync-level>", f"<d:limit><d:nresults>{n}</d:nresults></d:limit>"
                                      "<d:sync-level>")),
                               (dc.book(ALICE), dc.addressbook_query([]).replace(
                                   "</card:filter>", "</card:filter><card:limit><card:nresults>"
                                   f"{n}</card:nresults></card:limit>"))):
                r = cl.report(path, body, depth=0 if "sync" in body else 1)
                if r.status not in (207, 400, 403):
                    failures.append(f"nresults {n} on {path}: {r.status}\n{r}")
        # collations the server does not have (RFC 4791 7.5.1, RFC 6352 8.3)
        body = dc.calendar_query(dc.comp_filter("VCALENDAR", dc.comp_filter(
            "VEVENT", dc.prop_filter("SUMMARY", dc.text_match("x", collation="i;nonsense")))))
        want(cl.report(dc.cal(ALICE), body, depth=1), "CalDAV collation", (403,),
             [c("supported-collation")])
        body = dc.addressbook_query([dc.prop_filter("FN", dc.text_match(
            "x", collation="i;nonsense", ns=dc.CARDDAV), ns=dc.CARDDAV)])
        want(cl.report(dc.book(ALICE), body, depth=1), "CardDAV collation", (403,),
             [card("supported-collation")])
        body = dc.addressbook_query([dc.prop_filter("FN", dc.text_match(
            "x", match_type="sounds-like", ns=dc.CARDDAV), ns=dc.CARDDAV)])
        r = cl.report(dc.book(ALICE), body, depth=1)
        if not (r.status == 400 or (r.status == 403 and
                                    card("supported-filter") in r.preconditions())):
            failures.append(f"match-type sounds-like: wanted 400 or 403 supported-filter\n{r}")
        self.assertEqual(failures, [], "\n\n".join(failures))
        self.assertUnchanged(before, "invalid REPORTs")

    # ---------------------------------------------------------------- paths

    def test_path_traversal_and_bad_escapes(self):
        cl = self.client()
        before = self.snapshot()
        cal = dc.cal(ALICE)
        exactly_400 = [
            f"{cal}%2e%2e/%2e%2e/{BOB}/default/secret.ics",
            f"{cal}%2E%2E/%2E%2E/{BOB}/default/",
            f"/dav/calendars/{ALICE}/%2e%2e/{BOB}/default/secret.ics",
            f"{cal}..%2f..%2f{BOB}%2fdefault%2fsecret.ics",
            f"{cal}%2e/x.ics",
            f"{cal}x%zz.ics",
            f"{cal}x%4.ics",
            f"{cal}x%",
            f"{cal}x%00.ics",
            f"{cal}%c0%ae%c0%ae/x.ics",
            f"{cal}x%ff.ics",
        ]
        # literal dot segments, encoded slashes, backslashes, double encoding, a long path:
        # refused one way or another, never reaching bob's data, never storing anything
        refused = [
            f"{cal}../../{BOB}/default/secret.ics",
            f"/dav/calendars/{ALICE}/../{BOB}/default/secret.ics",
            f"{cal}./x.ics",
            f"{cal}a%2Fb.ics",
            f"/dav/calendars/{ALICE}/default%2Fevil.ics",
            f"/dav/calendars/{ALICE}%2Fdefault/evil.ics",
            f"{cal}%252e%252e/%252e%252e/{BOB}/default/secret.ics",
            f"{cal}" + "a" * 10000 + ".ics",
        ]
        read_only = [f"{cal}..\\..\\{BOB}\\default\\secret.ics"]
        failures = []
        for path in exactly_400 + refused + read_only:
            methods = ["GET", "PROPFIND", "DELETE"]
            if path not in read_only:
                methods += ["PUT", "MKCALENDAR"]
            for method in methods:
                body = dc.event("traversal") if method == "PUT" else (
                    dc.propfind_body([d("getetag")]) if method == "PROPFIND" else None)
                r = cl.request(method, path, body, depth=0 if method == "PROPFIND" else None,
                               content_type="text/calendar" if method == "PUT" else None)
                if path in exactly_400 and r.status != 400:
                    failures.append(f"{method} {path}: wanted 400\n{r}")
                elif not 400 <= r.status < 500:
                    failures.append(f"{method} {path}: wanted a 4xx\n{r}")
                if SECRET in r.body:
                    failures.append(f"{method} {path}: leaked a secret\n{r}")
        # NUL and spaces in the request line itself
        for target in (f"{cal}a\x00b.ics", f"{cal}a b.ics", f"{cal}\x01.ics"):
            raw = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: {cl.auth_header()}\r\n\r\n").encode()
            status, _, body = dc.raw_request(self.port, raw)
            # a 400, or a close without an answer: both refuse the request
            if status not in (400, None):
                failures.append(f"raw GET {target!r}: {status}")
        self.assertEqual(failures, [], "\n\n".join(failures))
        self.assertUnchanged(before, "path traversal")

    # ---------------------------------------------------------------- other users

    def test_other_users_principals_and_collections(self):
        cl = self.client()
        before = self.snapshot()
        failures = []

        def refused(r, what, allow_404=False):
            ok = (r.status == 403 and d("need-privileges") in r.preconditions()) or (
                allow_404 and r.status == 404)
            if not ok:
                failures.append(f"{what}: wanted 403 need-privileges\n{r}")
            if SECRET in r.body:
                failures.append(f"{what}: leaked a secret\n{r}")

        spellings = []
        for other in OTHERS:
            spellings += [other, other.upper(), other.replace("@", "%40")]
        for o in spellings:
            paths = [dc.principal(o), dc.cal_home(o), dc.cal(o), dc.cal(o) + "secret.ics",
                     dc.cal(o, "private"), dc.book_home(o), dc.book(o), dc.book(o) + "secret.vcf"]
            for p in paths:
                for depth in (0, 1):
                    refused(cl.propfind(p, [d("getetag"), d("displayname"), c("calendar-data")],
                                        depth=depth), f"PROPFIND depth {depth} {p}")
                refused(cl.proppatch(p, set_=[(d("displayname"), "owned")]), f"PROPPATCH {p}")
                if p.endswith((".ics", ".vcf")):
                    refused(cl.get(p), f"GET {p}")
                    r = cl.head(p)  # no body to name the precondition in
                    if (r.status, r.body) != (403, b""):
                        failures.append(f"HEAD {p}: wanted 403\n{r}")
                    body = dc.event(f"planted-{o}") if p.endswith(".ics") else dc.vcard(
                        f"planted-{o}", "Planted")
                    refused(cl.put(p, body), f"PUT over {p}")
                    refused(cl.put(p, body, if_match="*"), f"PUT If-Match * {p}")
                    refused(cl.delete(p), f"DELETE {p}")
                elif p in (dc.cal(o), dc.cal(o, "private"), dc.book(o)):
                    new = p + ("planted.ics" if "/calendars/" in p else "planted.vcf")
                    body = dc.event(f"planted-{o}") if new.endswith(".ics") else dc.vcard(
                        f"planted-{o}", "Planted")
                    refused(cl.put(new, body), f"PUT {new}")
                    refused(cl.report(p, dc.sync_body(""), depth=0), f"sync-collection {p}")
                    kind = "calendar" if "/calendars/" in p else "addressbook"
                    q = (dc.event_range_query("20000101T000000Z", "20400101T000000Z",
                                              props=(d("getetag"), dc.calendar_data()))
                         if kind == "calendar" else dc.addressbook_query(
                        [], props=(d("getetag"), card("address-data"))))
                    refused(cl.report(p, q, depth=1), f"query {p}")
                    mg = dc.multiget_body(kind, [p + "secret." + ("ics" if kind == "calendar"
                                                                  else "vcf")],
                                          [d("getetag"), dc.calendar_data() if kind == "calendar"
                                           else card("address-data")])
                    refused(cl.report(p, mg, depth=1), f"multiget {p}")
                    if kind == "calendar":
                        refused(cl.report(p, dc.freebusy_body("20000101T000000Z",
                                                              "20400101T000000Z"), depth=1),
                                f"free-busy {p}")
                    refused(cl.delete(p), f"DELETE collection {p}")
            refused(cl.mkcalendar(dc.cal(o, "evil"), displayname="evil"), f"MKCALENDAR for {o}")
            refused(cl.mkcol(dc.book(o, "evil"), [d("collection"), card("addressbook")], "evil"),
                    f"MKCOL for {o}")
        # a user that does not exist: refused, and no account appears
        for p in (dc.principal("nobody@acme.test"), dc.cal("nobody@acme.test"),
                  dc.cal_home("nobody@other.test")):
            refused(cl.propfind(p, [d("displayname")]), f"PROPFIND {p}", allow_404=True)
            refused(cl.mkcalendar(dc.cal("nobody@acme.test", "x")), "MKCALENDAR for nobody",
                    allow_404=True)
        self.assertEqual(failures, [], "\n\n".join(failures))
        self.assertNotIn("nobody@acme.test", self.inst.cli("db", "dump", "db1").out)
        self.assertUnchanged(before, "requests for other users' paths")

    def test_multiget_hrefs_of_other_users(self):
        cl = self.client()
        before = self.snapshot()
        mine = dc.cal(ALICE) + "secret.ics"
        foreign = [dc.cal(o) + "secret.ics" for o in OTHERS] + [dc.cal(BOB, "private") +
                                                              "secret.ics"]
        body = dc.multiget_body("calendar", [mine] + foreign, [d("getetag"), dc.calendar_data()])
        r = cl.report(dc.cal(ALICE), body, depth=1)
        ms = r.multistatus()
        self.assertIn(b"secret of alice@acme.test", r.body)
        self.assertNotIn(b"secret of bob", r.body)
        self.assertNotIn(b"secret of zed", r.body)
        self.assertNotIn(b"secret of alice@other.test", r.body)
        for hr in foreign:
            self.assertIn(ms[hr].status, (403, 404), ms)
        fb = [dc.book(o) + "secret.vcf" for o in OTHERS]
        body = dc.multiget_body("addressbook", fb, [d("getetag"), card("address-data")])
        r = cl.report(dc.book(ALICE), body, depth=1)
        self.assertNotIn(SECRET, r.body, str(r))
        for hr in fb:
            self.assertIn(r.multistatus()[hr].status, (403, 404), str(r))
        # hrefs that climb out of alice's calendar
        for hr in (f"{dc.cal(ALICE)}../../{BOB}/default/secret.ics",
                   f"{dc.cal(ALICE)}%2e%2e/%2e%2e/{BOB}/default/secret.ics",
                   f"http://127.0.0.1:{self.port}/dav/calendars/{BOB}/default/secret.ics"):
            body = dc.multiget_body("calendar", [hr], [d("getetag"), dc.calendar_data()])
            r = cl.report(dc.cal(ALICE), body, depth=1)
            self.assertNotIn(SECRET, r.body, str(r))
            if r.status == 207:
                st = [e.status for e in r.multistatus().entries.values()]
                self.assertTrue(st and all(s is not None and 400 <= s < 500 for s in st), str(r))
            else:
                self.assertEqual(r.status, 400, str(r))
        self.assertUnchanged(before, "multiget of other users' hrefs")

    def test_listings_show_only_the_user(self):
        cl = self.client()
        for path in ("/dav/", "/dav/principals/", "/"):
            r = cl.propfind(path, [d("displayname"), d("resourcetype")], depth=1)
            self.assertIn(r.status, (207, 403, 404, 405), str(r))
            for o in OTHERS:
                self.assertNotIn(o.encode(), r.body, str(r))
            if r.status == 207:
                for hr in r.multistatus().hrefs():
                    self.assertTrue(hr in ("/", "/dav/", "/dav/principals/") or ALICE in hr, hr)

    def test_same_local_part_in_two_tenants(self):
        a = self.client(ALICE)
        b = self.client(ALICE_OTHER)
        self.assertIn(b"secret of alice@acme.test", a.get(dc.cal(ALICE) + "secret.ics").body)
        self.assertIn(b"secret of alice@other.test",
                      b.get(dc.cal(ALICE_OTHER) + "secret.ics").body)
        r = b.get(dc.cal(ALICE) + "secret.ics")
        self.assertEqual(r.status, 403, str(r))
        e = b.props("/dav/", [d("current-user-principal")])["/dav/"]
        self.assertEqual(e.hrefs(d("current-user-principal")), [dc.principal(ALICE_OTHER)])
        # bare local parts and empty parts are no one
        for login in ("alice", "alice@", "@acme.test", "alice@acme", f"{ALICE}\x00x"):
            r = self.client(login).propfind("/dav/", [d("current-user-principal")])
            self.assertEqual(r.status, 401, f"{login!r}\n{r}")


class HostileRecurrenceTest(h.MailarkTestCase):
    """Rules with endless or huge instance counts. mailark documents a limit of 100000
    instances per expansion (CALDAV:max-instances, src/mailstore/groupware.h): a query that
    would need more is refused (403/507) or answered correctly, one that needs fewer is
    answered, nothing hangs, and the server goes on serving. The server's data segment is
    capped (RLIMIT_DATA, 1 GB) so that an expansion without a bound fails here instead of
    taking the machine's memory (without the cap one such REPORT grew the server to 24 GB and
    the kernel's OOM killer ended it). A server that dies or does not answer within 15 s (a
    bounded expansion takes milliseconds) is noted and restarted, so every case is tried."""

    # Seen on the first DAV build (14:29): expand of 172800 instances answered with 30 MB, an
    # expansion over a century ended the server (std::bad_alloc abort, SIGSEGV), free-busy over
    # a range with more instances than the limit answered "free" (no FREEBUSY at all).

    CAP = 1 << 30

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = dc.start_server(
            "dav-hostile", users=[ALICE], options=[("auth", "failure_delay_ms", "10")])
        cls.shared_instances = [cls.inst]
        cls.cap()

    @classmethod
    def cap(cls):
        import resource
        resource.prlimit(cls.inst.proc.pid, resource.RLIMIT_DATA, (cls.CAP, cls.CAP))
        with open(cls.inst.ports_file) as f:
            cls.ports = json.load(f)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.stop(timeout=20)
        except AssertionError:
            cls.inst.kill9()

    RULES = {
        "secondly": ["DTSTART:20260101T000000Z", "DURATION:PT1S", "RRULE:FREQ=SECONDLY"],
        "minutely": ["DTSTART:20260101T000000Z", "DURATION:PT1M",
                     "RRULE:FREQ=MINUTELY;COUNT=5000000"],
        "everything": ["DTSTART:20260101T000000Z", "DURATION:PT1M",
                       "RRULE:FREQ=YEARLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;"
                       "BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,"
                       "12,13,14,15,16,17,18,19,20,21,22,23;BYMINUTE=0,15,30,45"],
        "never": ["DTSTART:20260101T000000Z", "DURATION:PT1H",
                  "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"],
    }
    TWO_DAYS = ("20260101T000000Z", "20260103T000000Z")
    CENTURY = ("20260101T000000Z", "21260101T000000Z")
    # instances an expansion over TWO_DAYS / CENTURY produces (None: endless, not asked: the
    # finite ones over the limit show the same)
    INSTANCES = {"secondly": (172800, None), "minutely": (2880, 5000000),
                 "everything": (192, 3506304), "never": (1, 1)}
    # does an instance overlap the one second at 2100-01-01T00:00:00Z?
    IN_2100 = {"secondly": True, "minutely": False, "everything": True, "never": False}
    # busy time over TWO_DAYS / CENTURY as merged (start, end) intervals, where checked
    MINUTELY_END = dc.utc_text(dc.utc_seconds("20260101T000000Z") + 5000000 * 60)
    BUSY = {"secondly": ([TWO_DAYS], [CENTURY]),
            "minutely": ([TWO_DAYS], [("20260101T000000Z", MINUTELY_END)]),
            "never": ([("20260101T000000Z", "20260101T010000Z")],) * 2}

    @staticmethod
    def merged(periods):
        out = []
        for _, s, e in sorted(periods, key=lambda p: p[1]):
            if out and s <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
        return out

    def test_hostile_recurrences(self):
        failures = []
        state = {"cl": None}

        def client():
            if state["cl"] is None:
                state["cl"] = dc.Dav(self.ports["http"], ALICE, timeout=15)
                self.addCleanup(state["cl"].close)
            return state["cl"]

        def restart():
            state["cl"].close()
            state["cl"] = None
            self.inst.kill9()
            self.inst.start()
            self.cap()

        def ask(what, path, body):
            try:
                r = client().report(path, body, depth=1)
            except (OSError, http_client.HTTPException) as e:
                if self.inst.running():
                    failures.append(f"{what}: no answer ({e!r}); server killed and restarted")
                else:
                    failures.append(f"{what}: the server DIED (exit {self.inst.proc.returncode}, "
                                    f"client saw {e!r}); restarted")
                restart()
                return None
            if r.status not in (200, 207, 403, 507):
                failures.append(f"{what}: {r.status}\n{str(r)[:1000]}")
            return r

        for name, lines in self.RULES.items():
            path = dc.cal(ALICE, name)
            self.assertEqual(client().mkcalendar(path).status, 201)
            r = client().put(path + "x.ics", dc.vcalendar(dc.vevent(name, *lines)))
            if r.status != 201:
                # refusing to store it is fine too (CALDAV:max-instances on PUT)
                self.assertEqual(r.status, 403, str(r))
                continue
            for what, rng, want in (("time-range over a century", self.CENTURY, True),
                                    ("one second in 2100", ("21000101T000000Z",
                                                            "21000101T000001Z"),
                                     self.IN_2100[name])):
                r = ask(f"{name}: {what}", path, dc.event_range_query(*rng))
                if r is not None and r.status == 207:
                    got = path + "x.ics" in r.multistatus().hrefs()
                    if got != want:
                        failures.append(f"{name}: {what}: matched={got}, wanted {want}")
            for n, rng in enumerate((self.TWO_DAYS, self.CENTURY)):
                what = f"{name}: free-busy [{rng[0]}, {rng[1]})"
                r = ask(what, path, dc.freebusy_body(*rng))
                if r is None or r.status != 200:
                    continue
                busy = self.merged(dc.freebusy_periods(r.text))
                if name in self.BUSY and busy != self.BUSY[name][n]:
                    failures.append(f"{what}: busy {busy[:3]}{'...' if len(busy) > 3 else ''} "
                                    f"({len(busy)} intervals), wanted {self.BUSY[name][n]}")
                if name == "everything" and not busy:
                    failures.append(f"{what}: no busy time at all")
            for rng, count in zip((self.TWO_DAYS, self.CENTURY), self.INSTANCES[name]):
                if count is None:
                    continue
                what = f"{name}: expand [{rng[0]}, {rng[1]})"
                r = ask(what, path, dc.event_range_query(*rng, props=(
                    d("getetag"), dc.calendar_data(expand=rng))))
                if r is None:
                    continue
                if count > 100000:
                    if r.status not in (403, 507):
                        failures.append(f"{what}: {count} instances, answered "
                                        f"{r.status} with {len(r.body)} bytes")
                elif r.status != 207:
                    failures.append(f"{what}: {count} instances, answered {r.status}")
                else:
                    data = r.multistatus()[path + "x.ics"].text(c("calendar-data"))
                    got = len(dc.components(data, "VEVENT"))
                    if got != count:
                        failures.append(f"{what}: {got} instances, wanted {count}")
        self.assertTrue(self.inst.running(), self.inst.log_tail(30))
        self.assertEqual(client().propfind("/dav/", [d("current-user-principal")]).status, 207)
        self.assertEqual(failures, [], "\n".join(failures))


class AuthLimitsTest(h.MailarkTestCase):
    """[auth] failure_delay_ms = 200, max_failures = 3: counted per client address, so each
    test connects from its own loopback address (127.0.0.x)."""

    DELAY = 0.2

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = dc.start_server(
            "dav-authlim", users=["u1@acme.test", "u2@acme.test", "u3@acme.test"],
            options=[("auth", "failure_delay_ms", "200"), ("auth", "max_failures", "3"),
                     ("auth", "window", '"15m"')])
        cls.shared_instances = [cls.inst]
        cls.port = cls.ports["http"]

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def conn(self, source, user, password=PW):
        cl = dc.Dav(self.port, user, password, source=source)
        self.addCleanup(cl.close)
        return cl

    def find(self, cl):
        return cl.propfind("/dav/", [d("current-user-principal")])

    def test_failure_delay(self):
        for user in ("u1@acme.test", "nobody@acme.test"):  # no probing for users by timing
            cl = self.conn("127.0.0.20", user, "wrong")
            t = time.time()
            r = self.find(cl)
            took = time.time() - t
            self.assertEqual(r.status, 401, str(r))
            self.assertTrue(r.header("WWW-Authenticate", "").startswith("Basic"), str(r))
            print(f"\n[dav auth] failed login of {user} answered after {took * 1000:.0f} ms")
            self.assertGreaterEqual(took, self.DELAY - 0.01)

    def test_lockout_after_max_failures(self):
        for i in range(3):  # over two connections
            cl = self.conn("127.0.0.21", "u2@acme.test", f"wrong{i}") if i < 2 else \
                self.conn("127.0.0.21", "u2@acme.test", "wrong again")
            self.assertEqual(self.find(cl).status, 401)
        for user in ("u2@acme.test", "u3@acme.test"):
            r = self.find(self.conn("127.0.0.21", user))
            self.assertEqual(r.status, 503, str(r))
            self.assertRegex(r.header("Retry-After", ""), r"^\d+$", str(r))
            self.assertGreater(int(r.header("Retry-After")), 0)
            self.assertNotIn(b"current-user-principal", r.body)
        # requests that need no authentication still work from there
        anon = self.conn("127.0.0.21", None)
        self.assertEqual(anon.options("/dav/").status, 200)
        self.assertEqual(anon.request("GET", "/.well-known/caldav").status, 301)
        # another client address is not affected
        self.assertEqual(self.find(self.conn("127.0.0.22", "u2@acme.test")).status, 207)

    def test_below_limit_still_logs_in(self):
        for _ in range(2):
            self.assertEqual(self.find(self.conn("127.0.0.23", "u3@acme.test", "bad")).status, 401)
        self.assertEqual(self.find(self.conn("127.0.0.23", "u3@acme.test")).status, 207)

    def test_missing_credentials_are_not_failures(self):
        anon = self.conn("127.0.0.24", None)
        for _ in range(5):
            r = self.find(anon)
            self.assertEqual(r.status, 401, str(r))
        r = anon.request("PROPFIND", "/dav/", dc.propfind_body([d("displayname")]), depth=0,
                         headers={"Authorization": "Basic !!!not-base64"})
        self.assertIn(r.status, (400, 401), str(r))
        r = anon.request("PROPFIND", "/dav/", dc.propfind_body([d("displayname")]), depth=0,
                         headers={"Authorization": "Bearer abc"})
        self.assertEqual(r.status, 401, str(r))
        self.assertEqual(self.find(self.conn("127.0.0.24", "u1@acme.test")).status, 207)


class PlaintextNeverTest(h.MailarkTestCase):
    """[dav] plaintext_auth = "never": no password over http, https works."""

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = dc.start_server(
            "dav-never", users=["tls@acme.test"],
            options=[("dav", "plaintext_auth", '"never"'), ("auth", "failure_delay_ms", "10")])
        cls.shared_instances = [cls.inst]

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def test_plain_http_refuses_passwords(self):
        cl = dc.Dav(self.ports["http"], "tls@acme.test")
        self.addCleanup(cl.close)
        for method, path in (("PROPFIND", "/dav/"), ("GET", dc.cal("tls@acme.test") + "x.ics"),
                             ("PUT", dc.cal("tls@acme.test") + "x.ics")):
            body = dc.event("plain") if method == "PUT" else (
                dc.propfind_body([d("current-user-principal")]) if method == "PROPFIND" else None)
            r = cl.request(method, path, body, depth=0,
                           content_type="text/calendar" if method == "PUT" else None)
            self.assertIn(r.status, (401, 403), str(r))
            self.assertNotIn(b"multistatus", r.body)
        # what needs no password still works over http
        self.assertEqual(cl.options("/dav/").status, 200)
        self.assertEqual(cl.request("GET", "/.well-known/carddav").status, 301)

    def test_https_with_the_instance_certificate(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.inst.data, "tls", "cert.pem"))
        cl = dc.Dav(self.ports["https"], "tls@acme.test", tls=True, context=ctx)
        self.addCleanup(cl.close)
        e = cl.props("/dav/", [d("current-user-principal")])["/dav/"]
        self.assertEqual(e.hrefs(d("current-user-principal")), [dc.principal("tls@acme.test")])
        body = dc.event("over-tls")
        r = cl.put(dc.cal("tls@acme.test") + "tls.ics", body)
        self.assertEqual((r.status, r.etag), (201, dc.etag_of(body)), str(r))
        self.assertEqual(cl.get(dc.cal("tls@acme.test") + "tls.ics").body, body)
        bad = dc.Dav(self.ports["https"], "tls@acme.test", "wrong", tls=True, context=ctx)
        self.addCleanup(bad.close)
        self.assertEqual(bad.propfind("/dav/", [d("displayname")]).status, 401)
        # plain http to the https port is not answered as DAV
        r = dc.raw_request(self.ports["https"], b"OPTIONS /dav/ HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertNotEqual(r[0], 200)


class LoopbackPolicyTest(h.MailarkTestCase):
    """[dav] plaintext_auth = "loopback" (the default) with [http] on every address: passwords
    over http only from loopback."""

    def test_plaintext_only_from_loopback(self):
        addr = h.non_loopback_address()
        if not addr:
            self.skipTest("no non-loopback IPv4 address on this host")
        inst, ports = dc.start_server("dav-loopback", users=["lb@acme.test"],
                                      options=[("http", "address", '"0.0.0.0"'),
                                               ("auth", "failure_delay_ms", "10")])
        try:
            remote = dc.Dav(ports["http"], "lb@acme.test", host=addr)
            self.addCleanup(remote.close)
            r = remote.propfind("/dav/", [d("current-user-principal")])
            self.assertIn(r.status, (401, 403), str(r))
            local = dc.Dav(ports["http"], "lb@acme.test")
            self.addCleanup(local.close)
            self.assertEqual(local.propfind("/dav/", [d("current-user-principal")]).status, 207)
        finally:
            inst.stop()


if __name__ == "__main__":
    h.main()
