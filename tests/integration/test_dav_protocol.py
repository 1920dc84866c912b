"""CalDAV (RFC 4791) and CardDAV (RFC 6352) on a real `mailark serve`, asserted from the RFCs
and mailark's spec, response by response:

- discovery: /.well-known -> /dav/ -> DAV:current-user-principal -> home sets -> the default
  calendar and address book (created at the first DAV login, visible in `db dump`);
- PROPFIND (depth 0/1, infinity refused, 404 propstats, allprop, propname), PROPPATCH (live and
  dead properties; a protected one fails the whole request atomically with 403/424);
- MKCALENDAR, extended MKCOL, DELETE of collections;
- PUT/GET/HEAD/DELETE with strong ETags (SHA-256 of the body) and every If-Match /
  If-None-Match case, concurrent writers (exactly one wins), the PUT preconditions;
- sync-collection (RFC 6578) after add/change/delete, with a limit, with bad tokens;
- calendar-query over a table of recurrence cases (EXDATE, RECURRENCE-ID overrides moved into
  and out of the range, a DST change with VTIMEZONE, all-day, floating, DURATION, instants,
  unbounded rules), expand, multiget, free-busy-query;
- addressbook-query (text-match on FN/EMAIL/TEL, match types, collations, anyof/allof,
  negation, is-not-defined, nresults), addressbook-multiget, address-data with a prop subset."""

import imaplib
import re
import socket
import threading
import time
import urllib.parse

import dav_client as dc
import harness as h
from dav_client import c, card, d, etag_of, vcalendar, vevent, vtodo

ALICE = "alice@acme.test"
FRESH = "fresh@acme.test"  # never logged in before test_discovery_chain
SYNC = "sync@acme.test"
QUERY = "query@acme.test"  # the recurrence table and the address book queries

NS_X = "urn:x-test:dav"


def x(name):
    return dc.clark(NS_X, name)


# ---------------------------------------------------------------------------------------------
# The recurrence table: one resource each in QUERY's calendar "rec".

REC = {
    # Berlin local 10:00-11:00 (09:00Z in winter) every Monday from 5 Jan 2026, ten times,
    # without 19 Jan: 5, 12, 26 Jan, 2, 9, 16, 23 Feb, 2, 9 Mar.
    "weekly.ics": vcalendar(vevent(
        "weekly-1", "DTSTART;TZID=Europe/Berlin:20260105T100000",
        "DTEND;TZID=Europe/Berlin:20260105T110000", "RRULE:FREQ=WEEKLY;COUNT=10",
        "EXDATE;TZID=Europe/Berlin:20260119T100000", "SUMMARY:Weekly team meeting"),
        tz=dc.berlin_tz()),
    # Daily 12:00-13:00Z 1-5 Jun; the 3rd moved out to 10 Jun 15:00Z, the 4th moved before the
    # master's start to 25 May 08:00Z, the 5th moved to 20 Jun 09:00Z.
    "override.ics": vcalendar(
        vevent("override-1", "DTSTART:20260601T120000Z", "DTEND:20260601T130000Z",
               "RRULE:FREQ=DAILY;COUNT=5", "SUMMARY:Daily standup"),
        vevent("override-1", "RECURRENCE-ID:20260603T120000Z", "DTSTART:20260610T150000Z",
               "DTEND:20260610T160000Z", "SUMMARY:Standup moved out"),
        vevent("override-1", "RECURRENCE-ID:20260604T120000Z", "DTSTART:20260525T080000Z",
               "DTEND:20260525T090000Z", "SUMMARY:Standup moved early"),
        vevent("override-1", "RECURRENCE-ID:20260605T120000Z", "DTSTART:20260620T090000Z",
               "DTEND:20260620T100000Z", "SUMMARY:Standup moved far")),
    # Berlin 09:00 daily 27-31 Mar 2026, DST starts 29 Mar: 08:00Z, 08:00Z, then 07:00Z.
    "dst.ics": vcalendar(vevent(
        "dst-1", "DTSTART;TZID=Europe/Berlin:20260327T090000", "DURATION:PT1H",
        "RRULE:FREQ=DAILY;COUNT=5", "SUMMARY:Across the spring change"), tz=dc.berlin_tz()),
    # A zone only the object's VTIMEZONE defines; DST ends 25 Oct 2026: 07:00Z twice, then 08:00Z.
    "customtz.ics": vcalendar(vevent(
        "customtz-1", "DTSTART;TZID=Custom Berlin:20261023T090000",
        "DTEND;TZID=Custom Berlin:20261023T093000", "RRULE:FREQ=DAILY;COUNT=5",
        "SUMMARY:Across the autumn change"), tz=dc.berlin_tz("Custom Berlin")),
    "allday.ics": vcalendar(vevent(
        "allday-1", "DTSTART;VALUE=DATE:20260715", "DTEND;VALUE=DATE:20260717",
        "SUMMARY:Two days off")),
    "floating.ics": vcalendar(vevent(
        "floating-1", "DTSTART:20260801T100000", "DTEND:20260801T110000",
        "SUMMARY:Floating ten o'clock")),
    "duration.ics": vcalendar(vevent(
        "duration-1", "DTSTART:20260901T220000Z", "DURATION:P1DT2H", "SUMMARY:26 hours")),
    "instant.ics": vcalendar(vevent(
        "instant-1", "DTSTART:20260905T100000Z", "SUMMARY:A moment")),
    "allday2.ics": vcalendar(vevent(
        "allday-2", "DTSTART;VALUE=DATE:20260910", "SUMMARY:One day, no DTEND")),
    "yearly.ics": vcalendar(vevent(
        "yearly-1", "DTSTART:20201224T100000Z", "DTEND:20201224T110000Z",
        "RRULE:FREQ=YEARLY", "SUMMARY:Every Christmas Eve, forever")),
    "todo.ics": vcalendar(vtodo(
        "todo-1", "DTSTART:20260601T120000Z", "DUE:20260601T130000Z",
        "SUMMARY:A task at standup time")),
}
EVENTS = set(REC) - {"todo.ics"}

# (start, end, names of the VEVENTs that must match): RFC 4791 9.9.
TIME_RANGES = [
    ("20260119T000000Z", "20260120T000000Z", set()),  # only the EXDATE'd instance that day
    ("20260126T000000Z", "20260127T000000Z", {"weekly.ics"}),
    ("20260309T090000Z", "20260309T093000Z", {"weekly.ics"}),  # the 10th and last
    ("20260309T100000Z", "20260310T000000Z", set()),  # ends at 10:00Z: end is exclusive
    ("20260310T000000Z", "20260327T000000Z", set()),  # COUNT is used up
    ("20260328T070000Z", "20260328T080000Z", set()),  # still CET: 08:00Z
    ("20260328T083000Z", "20260328T084500Z", {"dst.ics"}),
    ("20260330T070000Z", "20260330T073000Z", {"dst.ics"}),  # CEST: 07:00Z
    ("20260330T080000Z", "20260330T090000Z", set()),  # where it would be without DST
    ("20260525T000000Z", "20260526T000000Z", {"override.ics"}),  # override before DTSTART
    ("20260601T000000Z", "20260602T000000Z", {"override.ics"}),  # the VTODO does not count
    ("20260603T000000Z", "20260604T000000Z", set()),  # moved out
    ("20260604T000000Z", "20260606T000000Z", set()),  # both moved away
    ("20260610T150000Z", "20260610T150001Z", {"override.ics"}),  # moved in
    ("20260620T000000Z", "20260621T000000Z", {"override.ics"}),
    ("20260611T000000Z", "20260620T000000Z", set()),
    ("20260716T120000Z", "20260716T130000Z", {"allday.ics"}),
    ("20260717T000000Z", "20260718T000000Z", set()),  # DTEND of a DATE is exclusive
    ("20260714T120000Z", "20260715T000000Z", set()),
    ("20260801T103000Z", "20260801T104000Z", {"floating.ics"}),  # floating read as UTC
    ("20260801T110000Z", "20260801T120000Z", set()),
    ("20260902T230000Z", "20260903T000000Z", {"duration.ics"}),
    ("20260903T000000Z", "20260904T000000Z", set()),
    ("20260905T100000Z", "20260905T100001Z", {"instant.ics"}),  # start <= DTSTART < end
    ("20260905T090000Z", "20260905T100000Z", set()),
    ("20260910T230000Z", "20260911T000000Z", {"allday2.ics"}),  # a DATE alone lasts a day
    ("20260911T000000Z", "20260912T000000Z", set()),
    ("20261024T070000Z", "20261024T073000Z", {"customtz.ics"}),
    ("20261026T070000Z", "20261026T080000Z", set()),
    ("20261026T080000Z", "20261026T083000Z", {"customtz.ics"}),
    ("20351224T000000Z", "20351225T000000Z", {"yearly.ics"}),  # unbounded rule, far away
    ("20351225T000000Z", "20351226T000000Z", set()),
    ("20260101T000000Z", "20270101T000000Z", EVENTS),
    ("20351224T000000Z", None, {"yearly.ics"}),  # open end
    (None, "20201224T100001Z", {"yearly.ics"}),  # open start
    (None, "20201224T100000Z", set()),
]

# With CALDAV:timezone Europe/Berlin, floating times and dates are Berlin times.
TZ_RANGES = [
    ("20260801T081500Z", "20260801T083000Z", {"floating.ics"}),
    ("20260801T103000Z", "20260801T104000Z", set()),
    ("20260714T223000Z", "20260714T233000Z", {"allday.ics"}),
    ("20260716T223000Z", "20260716T235959Z", set()),
]

CARDS = {
    "alice.vcf": dc.vcard("card-alice", "Alice Example", "EMAIL;TYPE=INTERNET:alice@example.com",
                          "TEL;TYPE=CELL:+1 555 0100"),
    "bob.vcf": dc.vcard("card-bob", "Bob Builder", "EMAIL;TYPE=work:bob@builder.test",
                        "EMAIL;TYPE=home:bobby@home.test", "TEL:+49 30 1234"),
    "carol.vcf": dc.vcard("card-carol", "Carol Ärger", "EMAIL:carol@example.org", version="4.0"),
    "dave.vcf": dc.vcard("card-dave", "Dave", "N:;Dave;;;", "TEL:555 0100"),
    "erin.vcf": dc.vcard("card-erin", "Erin Grouped", "item1.EMAIL:erin@grouped.test",
                         "item1.X-ABLabel:work"),
}


def pf(name, *matches, test=None):
    return dc.prop_filter(name, *matches, ns=dc.CARDDAV, test=test)


def tm(text, **kw):
    return dc.text_match(text, ns=dc.CARDDAV, **kw)


# (description, filters, test, names that must match): RFC 6352 10.5.
CARD_QUERIES = [
    ("FN contains ali", [pf("FN", tm("ali"))], None, {"alice.vcf"}),
    ("case-insensitive by default", [pf("FN", tm("ALI"))], None, {"alice.vcf"}),
    ("equals, whole value", [pf("FN", tm("dave", match_type="equals"))], None, {"dave.vcf"}),
    ("equals is not contains", [pf("FN", tm("Dav", match_type="equals"))], None, set()),
    ("starts-with", [pf("FN", tm("Bo", match_type="starts-with"))], None, {"bob.vcf"}),
    ("ends-with", [pf("FN", tm("ger", match_type="ends-with"))], None, {"carol.vcf"}),
    ("unicode casemap", [pf("FN", tm("ärger"))], None, {"carol.vcf"}),
    ("EMAIL ends-with", [pf("EMAIL", tm("example.com", match_type="ends-with"))], None,
     {"alice.vcf"}),
    ("EMAIL contains", [pf("EMAIL", tm("example"))], None, {"alice.vcf", "carol.vcf"}),
    ("second EMAIL", [pf("EMAIL", tm("bobby"))], None, {"bob.vcf"}),
    ("grouped EMAIL", [pf("EMAIL", tm("grouped"))], None, {"erin.vcf"}),
    ("TEL contains", [pf("TEL", tm("555"))], None, {"alice.vcf", "dave.vcf"}),
    ("no EMAIL", [pf("EMAIL", dc.is_not_defined(dc.CARDDAV))], None, {"dave.vcf"}),
    ("negated", [pf("FN", tm("a", negate=True))], None, {"bob.vcf", "erin.vcf"}),
    ("anyof", [pf("FN", tm("Dave", match_type="equals")),
               pf("EMAIL", tm("bob", match_type="starts-with"))], "anyof",
     {"dave.vcf", "bob.vcf"}),
    ("allof", [pf("EMAIL", tm("example")), pf("TEL", tm("555"))], "allof", {"alice.vcf"}),
    ("no filter", [], None, set(CARDS)),
]


def names(hrefs, base):
    return {hr[len(base):] for hr in hrefs if hr.startswith(base) and hr != base}


def slow_reader(port, cl, path, body):
    """A socket with a 4 KB receive window and the bytes of a REPORT of `body` on `path`."""
    request = (f"REPORT {path} HTTP/1.1\r\nHost: localhost\r\n"
               f"Authorization: {cl.auth_header()}\r\nDepth: 1\r\n"
               f"Content-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    return s, request


def read_207(test, s):
    """Reads one answer from `s`; checks it is a 207 and returns its body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        test.assertTrue(chunk, "closed before the header")
        buf += chunk
    head, got = buf.split(b"\r\n\r\n", 1)
    test.assertTrue(head.startswith(b"HTTP/1.1 207 "), head)
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    while len(got) < length:
        chunk = s.recv(65536)
        test.assertTrue(chunk, f"closed after {len(got)} of {length} bytes")
        got += chunk
    return got


class DavProtocolTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = dc.start_server(
            "dav-proto", users=[ALICE, FRESH, SYNC, QUERY],
            options=[("auth", "failure_delay_ms", "10"), ("auth", "max_failures", "1000"),
                     ("dav", "max_resource_size", '"4KB"')])
        cls.shared_instances = [cls.inst]
        cls.port = cls.ports["http"]
        q = dc.Dav(cls.port, QUERY)
        try:
            cls.rec = dc.cal(QUERY, "rec")
            r = q.mkcalendar(cls.rec, displayname="Recurrences")
            assert r.status == 201, str(r)
            for name, body in REC.items():
                r = q.put(cls.rec + name, body)
                assert r.status == 201, str(r)
            cls.people = dc.book(QUERY, "people")
            r = q.mkcol(cls.people, [d("collection"), card("addressbook")], "People")
            assert r.status == 201, str(r)
            for name, body in CARDS.items():
                r = q.put(cls.people + name, body)
                assert r.status == 201, str(r)
        finally:
            q.close()

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def client(self, user=ALICE, **kw):
        cl = dc.Dav(self.port, user, **kw)
        self.addCleanup(cl.close)
        return cl

    def expect(self, r, status, *preconditions):
        self.assertEqual(r.status, status, str(r))
        for p in preconditions:
            self.assertIn(p, r.preconditions(), f"precondition {p} missing\n{r}")

    def new_calendar(self, cl, segment, **kw):
        path = dc.cal(cl.user, segment)
        self.expect(cl.mkcalendar(path, **kw), 201)
        return path

    # ---------------------------------------------------------------- discovery

    def test_options_and_well_known_need_no_auth(self):
        cl = self.client(None)
        for path in ("/dav/", dc.cal(ALICE), dc.cal(ALICE) + "nothing.ics", "/"):
            r = cl.options(path)
            self.assertEqual(r.status, 200, str(r))
            dav = {v.strip() for v in r.header("DAV", "").split(",")}
            self.assertLessEqual({"1", "3", "extended-mkcol", "calendar-access", "addressbook"},
                                 dav, str(r))
            allow = {v.strip() for v in r.header("Allow", "").split(",")}
            self.assertLessEqual({"OPTIONS", "GET", "HEAD", "PUT", "DELETE", "PROPFIND",
                                  "PROPPATCH", "MKCOL", "MKCALENDAR", "REPORT"}, allow, str(r))
        for wk in ("/.well-known/caldav", "/.well-known/carddav"):
            for method in ("GET", "PROPFIND"):
                r = cl.request(method, wk)
                self.assertEqual(r.status, 301, str(r))
                self.assertEqual(urllib.parse.urlsplit(r.header("Location", "")).path, "/dav/",
                                 str(r))

    def test_authentication_is_required(self):
        cl = self.client(None)
        for method, path in (("PROPFIND", "/dav/"), ("GET", self.rec + "weekly.ics"),
                             ("PROPFIND", dc.principal(ALICE)), ("REPORT", self.rec)):
            r = cl.request(method, path, dc.propfind_body([d("displayname")])
                           if method != "GET" else None, depth=0)
            self.assertEqual(r.status, 401, str(r))
            self.assertRegex(r.header("WWW-Authenticate", ""), r"^Basic realm=\"[^\"]*\"", str(r))
            self.assertNotIn(b"Weekly", r.body)

    def test_discovery_chain(self):
        before = dc.dump_folders(self.inst, FRESH)
        self.assertNotIn("#calendars/default", before)
        self.assertNotIn("#addressbooks/default", before)
        cl = self.client(FRESH)
        r = cl.request("PROPFIND", "/.well-known/caldav", dc.propfind_body(
            [d("current-user-principal")]), depth=0)
        self.assertEqual(r.status, 301, str(r))
        context = urllib.parse.urlsplit(r.header("Location")).path
        ms = cl.props(context, [d("current-user-principal")])
        self.assertEqual(ms.hrefs(), {"/dav/"})
        self.assertEqual(ms["/dav/"].hrefs(d("current-user-principal")), [dc.principal(FRESH)])
        # the principal
        p = dc.principal(FRESH)
        wanted = [d("resourcetype"), d("displayname"), c("calendar-home-set"),
                  card("addressbook-home-set"), c("calendar-user-address-set")]
        e = cl.props(p, wanted)[p]
        self.assertIn(d("principal"), e.children(d("resourcetype")), e)
        self.assertTrue(e.text(d("displayname")).strip(), e)
        self.assertEqual(e.hrefs(c("calendar-home-set")), [dc.cal_home(FRESH)])
        self.assertEqual(e.hrefs(card("addressbook-home-set")), [dc.book_home(FRESH)])
        self.assertIn(f"mailto:{FRESH}", e.hrefs(c("calendar-user-address-set")))
        # the homes and the default collections in them
        props = [d("resourcetype"), d("displayname"), c("supported-calendar-component-set")]
        ms = cl.props(dc.cal_home(FRESH), props, depth=1)
        self.assertEqual(ms.hrefs(), {dc.cal_home(FRESH), dc.cal(FRESH)}, ms)
        self.assertEqual(ms[dc.cal_home(FRESH)].children(d("resourcetype")), [d("collection")])
        default = ms[dc.cal(FRESH)]
        self.assertEqual(set(default.children(d("resourcetype"))), {d("collection"), c("calendar")})
        self.assertEqual(default.text(d("displayname")), "Calendar")
        comps = default.prop(c("supported-calendar-component-set"))
        self.assertEqual({ch.get("name") for ch in comps.findall(c("comp"))}, {"VEVENT", "VTODO"})
        ms = cl.props(dc.book_home(FRESH), [d("resourcetype"), d("displayname")], depth=1)
        self.assertEqual(ms.hrefs(), {dc.book_home(FRESH), dc.book(FRESH)}, ms)
        default = ms[dc.book(FRESH)]
        self.assertEqual(set(default.children(d("resourcetype"))),
                         {d("collection"), card("addressbook")})
        self.assertEqual(default.text(d("displayname")), "Contacts")
        # the default collections are stored folders now
        after = dc.dump_folders(self.inst, FRESH)
        self.assertEqual(after.get("#calendars/default", {}).get("kind"), "calendar", after)
        self.assertEqual(after.get("#addressbooks/default", {}).get("kind"), "contacts", after)

    # ---------------------------------------------------------------- PROPFIND

    def test_propfind_found_and_missing_properties(self):
        cl = self.client()
        path = self.new_calendar(cl, "pf", displayname="PF")
        bodies = {f"e{i}.ics": dc.event(f"pf-{i}", summary=f"pf {i}") for i in range(3)}
        for name, body in bodies.items():
            self.expect(cl.put(path + name, body), 201)
        r = cl.propfind(path, [d("displayname"), x("nothing"), d("sync-token"),
                               c("calendar-description")])
        e = r.multistatus()[path]
        self.assertEqual(e.text(d("displayname")), "PF")
        self.assertEqual(e.prop_status(x("nothing")), 404, e)
        self.assertEqual(e.prop_status(c("calendar-description")), 404, e)
        _, missing = e.props[x("nothing")]
        self.assertEqual((len(missing), (missing.text or "").strip()), (0, ""))
        self.assertRegex(e.text(d("sync-token")), r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
        # Depth 1: the collection and each resource, with exact ETag, type and length
        props = [d("getetag"), d("getcontenttype"), d("getcontentlength"), d("resourcetype")]
        ms = cl.props(path, props, depth=1)
        self.assertEqual(ms.hrefs(), {path} | {path + n for n in bodies}, ms)
        self.assertEqual(len(ms.order), len(set(ms.order)), "duplicate hrefs")
        for name, body in bodies.items():
            e = ms[path + name]
            self.assertEqual(e.text(d("getetag")), etag_of(body), e)
            self.assertTrue(e.text(d("getcontenttype")).startswith("text/calendar"), e)
            self.assertEqual(int(e.text(d("getcontentlength"))), len(body))
            self.assertEqual(e.children(d("resourcetype")), [])
        # Depth 0 on a resource, and Depth 1 on a resource is the resource alone
        for depth in (0, 1):
            ms = cl.props(path + "e1.ics", [d("getetag")], depth=depth)
            self.assertEqual(ms.hrefs(), {path + "e1.ics"})
        for bad in ("2", "one", "-1", ""):
            r = cl.propfind(path, [d("getetag")], depth=bad)
            self.assertEqual(r.status, 400, f"Depth: {bad!r}\n{r}")
        # Depth infinity is refused (RFC 4918 9.1)
        r = cl.propfind(path, [d("getetag")], depth="infinity")
        self.expect(r, 403, d("propfind-finite-depth"))
        # missing collection and resource
        self.assertEqual(cl.propfind(dc.cal(ALICE, "nope"), [d("getetag")]).status, 404)
        self.assertEqual(cl.propfind(path + "nope.ics", [d("getetag")]).status, 404)

    def test_propfind_allprop_and_propname(self):
        cl = self.client()
        path = self.new_calendar(cl, "allprop", displayname="All")
        for body in ("", dc.propfind_body(allprop=True)):
            r = cl.propfind(path, body=body, depth=0)
            e = r.multistatus()[path]
            self.assertEqual(e.text(d("displayname")), "All", r)
            self.assertEqual(set(e.children(d("resourcetype"))), {d("collection"), c("calendar")})
        r = cl.propfind(path, body=dc.propfind_body(propname=True), depth=0)
        e = r.multistatus()[path]
        self.assertIn(d("displayname"), e.props, r)
        self.assertIn(d("resourcetype"), e.props, r)
        for name, (st, el) in e.props.items():
            self.assertEqual(st, 200, name)
            self.assertEqual((len(el), (el.text or "").strip()), (0, ""), f"{name} has a value")

    def test_supported_report_set(self):
        cl = self.client(QUERY)
        for path, want in (
                (self.rec, {c("calendar-query"), c("calendar-multiget"), c("free-busy-query"),
                            d("sync-collection")}),
                (self.people, {card("addressbook-query"), card("addressbook-multiget"),
                               d("sync-collection")})):
            e = cl.props(path, [d("supported-report-set")])[path]
            el = e.prop(d("supported-report-set"))
            self.assertIsNotNone(el, e)
            got = {ch.tag for sr in el.findall(d("supported-report"))
                   for rep in sr.findall(d("report")) for ch in rep}
            self.assertLessEqual(want, got, e)

    # ---------------------------------------------------------------- PROPPATCH

    def test_proppatch_live_and_dead_properties(self):
        cl = self.client()
        path = self.new_calendar(cl, "pp", displayname="Before")
        dead_xml = f'<y:inner xmlns:y="{NS_X}" a="1">t &amp; u</y:inner>'
        r = cl.proppatch(path, set_=[
            (d("displayname"), dc.xml_text("Team ✓ & <co>")),
            (c("calendar-description"), "first\nsecond"),
            (dc.clark(dc.APPLE, "calendar-color"), "#FF0000FF"),
            (x("note"), dead_xml),
            (x("plain"), "just &lt;text&gt;")])
        ms = r.multistatus()
        self.assertEqual(ms.hrefs(), {path}, ms)
        e = ms[path]
        for name in (d("displayname"), c("calendar-description"),
                     dc.clark(dc.APPLE, "calendar-color"), x("note"), x("plain")):
            self.assertEqual(e.prop_status(name), 200, f"{name}: {ms}")
        props = [d("displayname"), c("calendar-description"), dc.clark(dc.APPLE, "calendar-color"),
                 x("note"), x("plain")]
        e = cl.props(path, props)[path]
        self.assertEqual(e.text(d("displayname")), "Team ✓ & <co>")
        self.assertEqual(e.text(c("calendar-description")), "first\nsecond")
        self.assertEqual(e.text(dc.clark(dc.APPLE, "calendar-color")), "#FF0000FF")
        self.assertEqual(e.text(x("plain")), "just <text>")
        inner = e.prop(x("note")).find(x("inner"))
        self.assertIsNotNone(inner, e)
        self.assertEqual((inner.get("a"), inner.text), ("1", "t & u"))
        # remove a dead property; the others stay
        r = cl.proppatch(path, remove=[x("note")])
        self.assertEqual(r.multistatus()[path].prop_status(x("note")), 200, r)
        e = cl.props(path, [x("note"), x("plain"), d("displayname")])[path]
        self.assertEqual(e.prop_status(x("note")), 404, e)
        self.assertEqual(e.text(x("plain")), "just <text>")
        self.assertEqual(e.text(d("displayname")), "Team ✓ & <co>")
        # the same properties on an address book
        bpath = dc.book(ALICE)
        r = cl.proppatch(bpath, set_=[(d("displayname"), "My contacts"), (x("plain"), "b")])
        self.assertEqual(r.multistatus()[bpath].prop_status(d("displayname")), 200, r)
        e = cl.props(bpath, [d("displayname"), x("plain")])[bpath]
        self.assertEqual((e.text(d("displayname")), e.text(x("plain"))), ("My contacts", "b"))

    def test_proppatch_protected_property_fails_everything(self):
        cl = self.client()
        path = self.new_calendar(cl, "prot", displayname="Unchanged")
        token = cl.props(path, [d("sync-token")])[path].text(d("sync-token"))
        for protected, value in ((d("resourcetype"), "<d:collection/>"),
                                 (d("getetag"), '"abc"'), (d("sync-token"), "http://x/1")):
            for order in ("protected first", "protected last"):
                ops = [(protected, value), (d("displayname"), "Changed"), (x("dead"), "v")]
                if order == "protected last":
                    ops = ops[1:] + ops[:1]
                r = cl.proppatch(path, set_=ops)
                e = r.multistatus()[path]
                what = f"{protected} {order}\n{r}"
                self.assertEqual(e.prop_status(protected), 403, what)
                self.assertIn(d("cannot-modify-protected-property"), e.errors, what)
                self.assertEqual(e.prop_status(d("displayname")), 424, what)
                self.assertEqual(e.prop_status(x("dead")), 424, what)
        e = cl.props(path, [d("displayname"), x("dead"), d("sync-token")])[path]
        self.assertEqual(e.text(d("displayname")), "Unchanged")
        self.assertEqual(e.prop_status(x("dead")), 404)
        self.assertEqual(e.text(d("sync-token")), token, "a failed PROPPATCH changed the token")

    # ---------------------------------------------------------------- collections

    def test_mkcalendar_mkcol_and_delete_collections(self):
        cl = self.client()
        work = dc.cal(ALICE, "work")
        self.expect(cl.mkcalendar(work, displayname="Work", components=["VEVENT"]), 201)
        self.expect(cl.mkcalendar(work, displayname="Again"), 405)
        e = cl.props(work, [d("resourcetype"), d("displayname"),
                            c("supported-calendar-component-set")])[work]
        self.assertEqual(set(e.children(d("resourcetype"))), {d("collection"), c("calendar")})
        self.assertEqual(e.text(d("displayname")), "Work")
        comps = e.prop(c("supported-calendar-component-set"))
        self.assertEqual([ch.get("name") for ch in comps.findall(c("comp"))], ["VEVENT"])
        todo = vcalendar(vtodo("task-1", "SUMMARY:a task"))
        self.expect(cl.put(work + "task.ics", todo), 403, c("supported-calendar-component"))
        self.assertEqual(cl.get(work + "task.ics").status, 404)
        self.expect(cl.put(work + "ev.ics", dc.event("work-ev")), 201)
        # MKCALENDAR without a body: a calendar that takes tasks too
        plain = dc.cal(ALICE, "plain")
        self.expect(cl.mkcalendar(plain), 201)
        e = cl.props(plain, [d("resourcetype")])[plain]
        self.assertEqual(set(e.children(d("resourcetype"))), {d("collection"), c("calendar")})
        self.expect(cl.put(plain + "task.ics", todo), 201)
        # extended MKCOL of an address book (RFC 5689)
        friends = dc.book(ALICE, "friends")
        self.expect(cl.mkcol(friends, [d("collection"), card("addressbook")], "Friends"), 201)
        self.expect(cl.mkcol(friends, [d("collection"), card("addressbook")], "Friends"), 405)
        e = cl.props(friends, [d("resourcetype"), d("displayname")])[friends]
        self.assertEqual(set(e.children(d("resourcetype"))),
                         {d("collection"), card("addressbook")})
        self.assertEqual(e.text(d("displayname")), "Friends")
        self.expect(cl.put(friends + "f.vcf", dc.vcard("friend-1", "Fred Friend")), 201)
        homes = cl.props(dc.book_home(ALICE), [d("resourcetype")], depth=1).hrefs()
        self.assertIn(friends, homes)
        # DELETE a collection: gone with its members; a new one by that name starts empty
        self.expect(cl.delete(work), 204)
        self.assertEqual(cl.propfind(work, [d("displayname")]).status, 404)
        self.assertEqual(cl.get(work + "ev.ics").status, 404)
        self.assertNotIn(work, cl.props(dc.cal_home(ALICE), [d("resourcetype")], depth=1).hrefs())
        self.expect(cl.mkcalendar(work, displayname="Work 2"), 201)
        self.assertEqual(cl.listing(work), {})
        self.expect(cl.delete(friends), 204)
        self.assertEqual(cl.propfind(friends, [d("displayname")]).status, 404)
        homes = cl.props(dc.book_home(ALICE), [d("resourcetype")], depth=1).hrefs()
        self.assertNotIn(friends, homes)
        self.expect(cl.delete(friends), 404)

    # ---------------------------------------------------------------- resources

    def test_put_get_head_and_conditional_requests(self):
        cl = self.client()
        path = self.new_calendar(cl, "etags")
        res = path + "a.ics"
        v1 = dc.event("etag-a", summary="version 1")
        r = cl.put(res, v1)
        self.expect(r, 201)
        e1 = etag_of(v1)
        self.assertEqual(r.etag, e1, str(r))
        r = cl.get(res)
        self.assertEqual((r.status, r.body, r.etag), (200, v1, e1), str(r))
        self.assertTrue(r.header("Content-Type", "").startswith("text/calendar"), str(r))
        r = cl.head(res)
        self.assertEqual((r.status, r.body, r.etag), (200, b"", e1), str(r))
        # HEAD announces the length GET would send; 204 and 304 carry no length at all
        # (RFC 9110 8.6), so a keep-alive client never waits for a body that is not coming.
        self.assertEqual(r.header("Content-Length"), str(len(v1)), str(r))
        # If-None-Match on GET (RFC 7232 3.2)
        for inm in (e1, f'"{"0" * 64}", {e1}', "*"):
            r = cl.get(res, headers={"If-None-Match": inm})
            self.assertEqual((r.status, r.body), (304, b""), f"If-None-Match: {inm}\n{r}")
            self.assertEqual(r.etag, e1, str(r))
            self.assertIsNone(r.header("Content-Length"), str(r))
        r = cl.get(res, headers={"If-None-Match": f'"{"0" * 64}"'})
        self.assertEqual((r.status, r.body), (200, v1), str(r))
        # PUT If-None-Match: * on an existing resource
        v2 = dc.event("etag-a", summary="version 2")
        self.expect(cl.put(res, v2, if_none_match="*"), 412)
        self.assertEqual(cl.get(res).body, v1)
        # If-Match with another tag, a weak tag, or on a missing resource
        for im in ('"' + "0" * 64 + '"', "W/" + e1, '"garbage"'):
            self.expect(cl.put(res, v2, if_match=im), 412)
            self.assertEqual(cl.get(res).body, v1, f"If-Match: {im}")
        self.expect(cl.put(path + "missing.ics", dc.event("etag-m"), if_match="*"), 412)
        self.expect(cl.put(path + "missing.ics", dc.event("etag-m"), if_match=e1), 412)
        self.assertEqual(cl.get(path + "missing.ics").status, 404)
        # a matching If-Match replaces: 204 with the new ETag (here one of a list)
        r = cl.put(res, v2, if_match=f'"{"0" * 64}", {e1}')
        self.expect(r, 204)
        self.assertIsNone(r.header("Content-Length"), str(r))
        e2 = etag_of(v2)
        self.assertEqual(r.etag, e2, str(r))
        self.assertEqual(cl.get(res).body, v2)
        # the same body again: 204, the same ETag; If-Match: * works on an existing resource
        r = cl.put(res, v2)
        self.assertEqual((r.status, r.etag), (204, e2), str(r))
        r = cl.put(res, v2, if_match="*")
        self.assertEqual((r.status, r.etag), (204, e2), str(r))
        # If-None-Match: * creates
        r = cl.put(path + "b.ics", dc.event("etag-b"), if_none_match="*")
        self.assertEqual((r.status, r.etag), (201, etag_of(dc.event("etag-b"))), str(r))
        # DELETE: wrong If-Match 412, right one 204, then 404
        self.expect(cl.delete(res, if_match=e1), 412)
        self.assertEqual(cl.get(res).body, v2)
        self.expect(cl.delete(res, if_match=e2), 204)
        self.expect(cl.get(res), 404)
        self.expect(cl.delete(res), 404)
        self.assertEqual(set(cl.listing(path)), {path + "b.ics"})
        # vCards the same way
        bres = dc.book(ALICE) + "etag.vcf"
        c1 = dc.vcard("etag-card", "Etag Card")
        r = cl.put(bres, c1)
        self.assertEqual((r.status, r.etag), (201, etag_of(c1)), str(r))
        r = cl.get(bres)
        self.assertEqual((r.status, r.body), (200, c1))
        self.assertTrue(r.header("Content-Type", "").startswith("text/vcard"), str(r))
        self.expect(cl.put(bres, c1, if_none_match="*"), 412)
        self.expect(cl.delete(bres, if_match=etag_of(c1)), 204)

    def test_large_answer_to_a_slow_reader(self):
        """An answer larger than the socket takes at once: the thread that made it writes what
        fits, the connection's thread the rest, and the client gets every byte in order."""
        cl = self.client()
        path = self.new_calendar(cl, "large")
        hrefs = []
        for i in range(250):  # about 3.5 KB each (max_resource_size is 4 KB here)
            text = "".join(chr(0x41 + (i + k) % 26) for k in range(3300))
            self.expect(cl.put(path + f"e{i}.ics", dc.event(f"large-{i}", extra=[
                "DESCRIPTION:" + text])), 201)
            hrefs.append(path + f"e{i}.ics")
        # Each href eight times (each is answered): 7 MB, more than a loopback socket's
        # send buffer takes at once.
        body = dc.multiget_body("calendar", hrefs * 8,
                                [d("getetag"), dc.calendar_data()]).encode()
        expected = cl.report(path, body, depth=1)
        self.assertEqual(expected.status, 207, str(expected))
        self.assertGreater(len(expected.body), 6_000_000)
        s, request = slow_reader(self.port, cl, path, body)
        try:
            for round_ in range(2):  # the connection stays usable after a partial write
                s.sendall(request)
                time.sleep(0.5)  # the answer is made and partly written meanwhile
                self.assertEqual(read_207(self, s), expected.body, f"round {round_}")
        finally:
            s.close()

    def race(self, n, fn):
        """Runs fn(i) on n threads released together; returns the results in order."""
        barrier = threading.Barrier(n)
        out = [None] * n

        def run(i):
            barrier.wait()
            try:
                out[i] = fn(i)
            except Exception as e:  # reported by the caller
                out[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return out

    def test_concurrent_writers_with_the_same_if_match(self):
        path = self.new_calendar(self.client(), "race")
        res = path + "r.ics"
        clients = [self.client() for _ in range(4)]
        base = dc.event("race-1", summary="base")
        self.expect(clients[0].put(res, base), 201)
        for round_ in range(10):
            etag = clients[0].get(res).etag
            bodies = [dc.event("race-1", summary=f"round {round_} writer {i}") for i in range(4)]
            results = self.race(4, lambda i: clients[i].put(res, bodies[i], if_match=etag))
            for rr in results:
                self.assertNotIsInstance(rr, Exception, rr)
            codes = sorted(rr.status for rr in results)
            self.assertEqual(codes, [204, 412, 412, 412], "\n".join(map(str, results)))
            winner = [i for i, rr in enumerate(results) if rr.status == 204][0]
            r = clients[0].get(res)
            self.assertEqual((r.body, r.etag), (bodies[winner], etag_of(bodies[winner])))
            self.assertEqual(results[winner].etag, etag_of(bodies[winner]))
        # creating one name from four clients with If-None-Match: *
        for round_ in range(5):
            name = f"{path}new{round_}.ics"
            bodies = [dc.event(f"race-new-{round_}", summary=f"creator {i}") for i in range(4)]
            results = self.race(4, lambda i: clients[i].put(name, bodies[i], if_none_match="*"))
            codes = sorted(getattr(rr, "status", rr) for rr in results)
            self.assertEqual(codes, [201, 412, 412, 412], "\n".join(map(str, results)))
            winner = [i for i, rr in enumerate(results) if rr.status == 201][0]
            self.assertEqual(clients[0].get(name).body, bodies[winner])
        # one UID under two names at once: one is stored, the other is a UID conflict
        for round_ in range(5):
            uid = f"race-uid-{round_}"
            results = self.race(2, lambda i: clients[i].put(f"{path}u{round_}-{i}.ics",
                                                            dc.event(uid, summary=f"{i}")))
            codes = sorted(getattr(rr, "status", rr) for rr in results)
            self.assertEqual(codes, [201, 403], "\n".join(map(str, results)))
            loser = [rr for rr in results if rr.status == 403][0]
            self.assertIn(c("no-uid-conflict"), loser.preconditions(), str(loser))
        listing = clients[0].listing(path)
        self.assertEqual(len(listing), 1 + 5 + 5, listing)
        # a PUT and a DELETE with the same If-Match: exactly one of them happens
        for round_ in range(5):
            name = f"{path}pd{round_}.ics"
            self.expect(clients[0].put(name, dc.event(f"race-pd-{round_}")), 201)
            etag = clients[0].get(name).etag
            newer = dc.event(f"race-pd-{round_}", summary="newer")
            results = self.race(2, lambda i: clients[i].put(name, newer, if_match=etag) if i == 0
                                else clients[i].delete(name, if_match=etag))
            codes = [getattr(rr, "status", rr) for rr in results]
            self.assertIn(codes, ([204, 412], [412, 204]), "\n".join(map(str, results)))
            r = clients[0].get(name)
            if codes[0] == 204:
                self.assertEqual((r.status, r.body), (200, newer))
            else:
                self.assertEqual(r.status, 404, str(r))

    def test_put_preconditions(self):
        cl = self.client()
        path = self.new_calendar(cl, "pre")
        first = dc.event("pre-uid", summary="first")
        self.expect(cl.put(path + "first.ics", first), 201)
        before = cl.listing(path)
        # invalid iCalendar
        self.expect(cl.put(path + "bad.ics", b"this is not iCalendar\r\n"), 403,
                    c("valid-calendar-data"))
        # the same UID under another name: no-uid-conflict naming the holder
        r = cl.put(path + "second.ics", dc.event("pre-uid", summary="second"))
        self.expect(r, 403, c("no-uid-conflict"))
        root = r.xml()
        hrefs = [hr.text.strip() for hr in root.iter(d("href"))]
        self.assertEqual(hrefs, [path + "first.ics"], str(r))
        # ...while the holder itself may be rewritten, and another calendar may use the UID
        self.expect(cl.put(path + "first.ics", dc.event("pre-uid", summary="first v2")), 204)
        other = self.new_calendar(cl, "pre-other")
        self.expect(cl.put(other + "same-uid.ics", first), 201)
        # a VTODO into a VEVENT-only calendar
        events_only = self.new_calendar(cl, "pre-events", components=["VEVENT"])
        self.expect(cl.put(events_only + "t.ics", vcalendar(vtodo("pre-todo"))), 403,
                    c("supported-calendar-component"))
        # larger than [dav] max_resource_size (4KB here), for both kinds
        big = dc.event("pre-big", extra=["DESCRIPTION:" + "x" * 4600])
        self.expect(cl.put(path + "big.ics", big), 403, c("max-resource-size"))
        fits = dc.event("pre-fits", extra=["DESCRIPTION:" + "y" * 3300])
        self.expect(cl.put(path + "fits.ics", fits), 201)
        bigcard = dc.vcard("pre-bigcard", "Big Card", "NOTE:" + "z" * 4600)
        self.expect(cl.put(dc.book(ALICE) + "big.vcf", bigcard), 403, card("max-resource-size"))
        # into a collection that does not exist
        self.expect(cl.put(dc.cal(ALICE, "no-such-cal") + "x.ics", dc.event("pre-nocal")), 409)
        self.expect(cl.put(dc.book(ALICE, "no-such-book") + "x.vcf", dc.vcard("pre-nb", "N B")),
                    409)
        # vCards: invalid, and a UID conflict
        self.expect(cl.put(dc.book(ALICE) + "bad.vcf", b"BEGIN:VCARD\r\nEND:VCARD\r\n"), 403,
                    card("valid-address-data"))
        self.expect(cl.put(dc.book(ALICE) + "c1.vcf", dc.vcard("pre-card", "Card One")), 201)
        r = cl.put(dc.book(ALICE) + "c2.vcf", dc.vcard("pre-card", "Card Two"))
        self.expect(r, 403, card("no-uid-conflict"))
        self.assertEqual([hr.text.strip() for hr in r.xml().iter(d("href"))],
                         [dc.book(ALICE) + "c1.vcf"], str(r))
        # rewriting a resource with the UID another one holds
        self.expect(cl.put(path + "third.ics", dc.event("pre-third")), 201)
        r = cl.put(path + "third.ics", dc.event("pre-uid", summary="takes the UID"))
        self.expect(r, 403, c("no-uid-conflict"))
        self.assertEqual(cl.get(path + "third.ics").body, dc.event("pre-third"))
        after = cl.listing(path)
        self.assertEqual(set(after), set(before) | {path + "fits.ics", path + "third.ics"})
        self.assertEqual(cl.get(path + "second.ics").status, 404)

    # ---------------------------------------------------------------- sync-collection

    def sync_all(self, cl, path, token, limit=None):
        r = cl.sync(path, token, limit=limit)
        return r.multistatus()

    def test_sync_collection_after_add_change_delete(self):
        cl = self.client(SYNC)
        for path, make, ext in ((self.new_calendar(cl, "s"), lambda u, s: dc.event(u, summary=s),
                                 "ics"),
                                (dc.book(SYNC), lambda u, s: dc.vcard(u, s), "vcf")):
            with self.subTest(collection=path):
                bodies = {f"{path}{n}.{ext}": make(f"sync-{ext}-{n}", f"Item {n}")
                          for n in ("keep", "change", "gone")}
                for p, b in bodies.items():
                    self.expect(cl.put(p, b), 201)
                ms = self.sync_all(cl, path, "")
                self.assertEqual(ms.hrefs(), set(bodies), ms)
                for p, b in bodies.items():
                    self.assertEqual(ms[p].text(d("getetag")), etag_of(b))
                t0 = ms.sync_token
                self.assertRegex(t0 or "", r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", ms)
                # the collection's DAV:sync-token property is the same token
                prop = cl.props(path, [d("sync-token")])[path].text(d("sync-token"))
                self.assertEqual(prop, t0)
                # nothing changed: no responses, the same token
                ms = self.sync_all(cl, path, t0)
                self.assertEqual((ms.hrefs(), ms.sync_token), (set(), t0), ms)
                # add, change, delete
                added = f"{path}added.{ext}"
                new_body = make(f"sync-{ext}-added", "Added")
                self.expect(cl.put(added, new_body), 201)
                changed = make(f"sync-{ext}-change", "Changed")
                self.expect(cl.put(f"{path}change.{ext}", changed), 204)
                self.expect(cl.delete(f"{path}gone.{ext}"), 204)
                ms = self.sync_all(cl, path, t0)
                self.assertEqual(ms.hrefs(), {added, f"{path}change.{ext}", f"{path}gone.{ext}"},
                                 ms)
                self.assertEqual(ms[added].text(d("getetag")), etag_of(new_body))
                self.assertEqual(ms[f"{path}change.{ext}"].text(d("getetag")), etag_of(changed))
                self.assertEqual(ms[f"{path}gone.{ext}"].status, 404, ms)
                self.assertEqual(ms[f"{path}gone.{ext}"].props, {}, ms)
                t1 = ms.sync_token
                self.assertNotEqual(t1, t0)
                self.assertEqual(self.sync_all(cl, path, t1).hrefs(), set())
                # deleted and re-created under the same name: present, not 404
                self.expect(cl.delete(added), 204)
                again = make(f"sync-{ext}-added", "Added again")
                self.expect(cl.put(added, again), 201)
                ms = self.sync_all(cl, path, t1)
                self.assertEqual(ms.hrefs(), {added}, ms)
                self.assertEqual((ms[added].status, ms[added].text(d("getetag"))),
                                 (None, etag_of(again)), ms)
                # the initial listing now: the current members only
                ms = self.sync_all(cl, path, "")
                self.assertEqual(ms.hrefs(), {f"{path}keep.{ext}", f"{path}change.{ext}", added})
                # tokens that are not this collection's
                for bad in ("http://mailark.invalid/ns/sync/nonsense", "not a token",
                            t1 + "0", t0.rsplit("/", 1)[0] + "/99999999"):
                    r = cl.sync(path, bad)
                    self.expect(r, 403, d("valid-sync-token"))

    def test_sync_token_of_another_collection_is_refused(self):
        cl = self.client(SYNC)
        a = self.new_calendar(cl, "tok-a")
        b = self.new_calendar(cl, "tok-b")
        self.expect(cl.put(a + "x.ics", dc.event("tok-x")), 201)
        ta = self.sync_all(cl, a, "").sync_token
        self.expect(cl.sync(b, ta), 403, d("valid-sync-token"))

    def test_names_that_need_escaping(self):
        cl = self.client()
        # RFC 3986: the server's hrefs are percent-encoded, '@' left alone, and they lead back
        coll_href = dc.cal(ALICE, "K%C3%BCche%20%26%20Bad")
        self.expect(cl.mkcalendar(coll_href, displayname="Küche & Bad"), 201)
        res_href = coll_href + "Tee%20um%20f%C3%BCnf%3F%23.ics"
        body = dc.event("escaped-1", summary="Tee")
        self.expect(cl.put(res_href, body), 201)
        ms = cl.props(dc.cal_home(ALICE), [d("displayname")], depth=1)
        self.assertIn(coll_href, ms.hrefs(), ms)
        self.assertEqual(ms[coll_href].text(d("displayname")), "Küche & Bad")
        self.assertEqual(cl.listing(coll_href), {res_href: etag_of(body)})
        self.assertEqual(cl.get(res_href).body, body)
        ms = cl.sync(coll_href, "").multistatus()
        self.assertEqual(ms.hrefs(), {res_href}, ms)
        self.assertEqual(self.query_hrefs(cl, coll_href), {res_href})
        # lower-case escapes name the same resource
        self.assertEqual(cl.get(res_href.replace("%C3%BC", "%c3%bc")).body, body)
        self.expect(cl.delete(res_href), 204)
        self.expect(cl.delete(coll_href), 204)

    def query_hrefs(self, cl, coll):
        r = cl.report(coll, dc.event_range_query("20000101T000000Z", "20400101T000000Z"), depth=1)
        return r.multistatus().hrefs()

    def test_sync_tokens_under_concurrent_writers(self):
        """Four writers and a client syncing all the while: following the tokens, the client
        sees every resource's final ETag; no write falls between two tokens."""
        setup = self.client(SYNC)
        path = self.new_calendar(setup, "busy")
        writers = [self.client(SYNC) for _ in range(4)]
        reader = self.client(SYNC)
        final = {}
        known, token, errors = {}, "", []

        def write(i):
            try:
                for n in range(15):
                    name = f"{path}w{i}-{n % 5}.ics"
                    body = dc.event(f"busy-{i}-{n % 5}", summary=f"writer {i} step {n}")
                    r = writers[i].put(name, body)
                    if r.status not in (201, 204):
                        errors.append(str(r))
                    final[name] = etag_of(body)
                    if n % 7 == 6:
                        r = writers[i].delete(f"{path}w{i}-0.ics")
                        if r.status != 204:
                            errors.append(str(r))
                        final.pop(f"{path}w{i}-0.ics", None)
            except Exception as e:
                errors.append(repr(e))

        def apply(ms):
            for hr, e in ms.entries.items():
                if e.status == 404:
                    known.pop(hr, None)
                elif e.status is None:
                    known[hr] = e.text(d("getetag"))
                else:
                    errors.append(f"unexpected status {e.status} for {hr}")
            return ms.sync_token

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            token = apply(reader.sync(path, token).multistatus())
        for t in threads:
            t.join()
        token = apply(reader.sync(path, token).multistatus())
        self.assertEqual(errors, [])
        self.assertEqual(known, final)
        self.assertEqual(reader.listing(path), final)
        self.assertEqual(reader.sync(path, token).multistatus().hrefs(), set())

    def test_sync_collection_with_limit(self):
        cl = self.client(SYNC)
        path = self.new_calendar(cl, "lim")
        want = {f"{path}m{i}.ics" for i in range(5)}
        for p in sorted(want):
            self.expect(cl.put(p, dc.event("lim-" + p[-6:-4])), 201)
        ms = self.sync_all(cl, path, "", limit=2)
        self.assertEqual(ms.with_status(507), {path}, ms)
        first = ms.found()
        self.assertEqual(len(first), 2, ms)
        seen, token, rounds = set(first), ms.sync_token, 0
        while rounds < 6:
            rounds += 1
            ms = self.sync_all(cl, path, token, limit=2)
            got = ms.found()
            self.assertLessEqual(len(got), 2, ms)
            seen |= got
            token = ms.sync_token
            if path not in ms.with_status(507):
                break
        self.assertEqual(seen, want)
        self.assertEqual(self.sync_all(cl, path, token).hrefs(), set())

    # ---------------------------------------------------------------- calendar-query

    def query_names(self, start, end, component="VEVENT", timezone=None):
        cl = self.client(QUERY)
        r = cl.report(self.rec, dc.event_range_query(start, end, component=component,
                                                     timezone=timezone), depth=1)
        ms = r.multistatus()
        for hr, e in ms.entries.items():
            self.assertIsNone(e.status, ms)
            self.assertEqual(e.text(d("getetag")), etag_of(REC[hr[len(self.rec):]]))
        self.assertEqual(len(ms.order), len(set(ms.order)), f"duplicate hrefs {ms.order}")
        return names(ms.hrefs(), self.rec)

    def test_calendar_query_time_ranges(self):
        failures = []
        for start, end, want in TIME_RANGES:
            got = self.query_names(start, end)
            if got != want:
                failures.append(f"[{start}, {end}): wanted {sorted(want)}, got {sorted(got)}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_calendar_query_time_ranges_in_query_timezone(self):
        tz = vcalendar(tz=dc.berlin_tz()).decode()
        failures = []
        for start, end, want in TZ_RANGES:
            got = self.query_names(start, end, timezone=tz)
            if got != want:
                failures.append(f"[{start}, {end}) Berlin: wanted {sorted(want)}, "
                                f"got {sorted(got)}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_calendar_query_vtodo_time_range(self):
        self.assertEqual(self.query_names("20260601T123000Z", "20260601T124000Z", "VTODO"),
                         {"todo.ics"})
        self.assertEqual(self.query_names("20260601T130000Z", "20260601T140000Z", "VTODO"),
                         set())

    def test_calendar_query_comp_and_prop_filters(self):
        cl = self.client(QUERY)

        def run(filter_xml):
            r = cl.report(self.rec, dc.calendar_query(filter_xml), depth=1)
            return names(r.multistatus().hrefs(), self.rec)

        def vevent_with(*pfs):
            return dc.comp_filter("VCALENDAR", dc.comp_filter("VEVENT", *pfs))

        cases = [
            ("every VEVENT", vevent_with(), EVENTS),
            ("every VTODO", dc.comp_filter("VCALENDAR", dc.comp_filter("VTODO")), {"todo.ics"}),
            ("everything", dc.comp_filter("VCALENDAR"), set(REC)),
            ("SUMMARY contains (case-insensitive)",
             vevent_with(dc.prop_filter("SUMMARY", dc.text_match("WEEKLY"))), {"weekly.ics"}),
            ("SUMMARY of an override",
             vevent_with(dc.prop_filter("SUMMARY", dc.text_match("moved far"))), {"override.ics"}),
            # every SUMMARY but "26 hours" has an "a" (ASCII case-insensitive: "A moment")
            ("negated text-match",
             vevent_with(dc.prop_filter("SUMMARY", dc.text_match("a", negate=True))),
             {"duration.ics"}),
            ("UID equals", vevent_with(dc.prop_filter("UID", dc.text_match("dst-1"))), {"dst.ics"}),
            ("no DTEND", vevent_with(dc.prop_filter("DTEND", dc.is_not_defined())),
             {"dst.ics", "duration.ics", "instant.ics", "allday2.ics"}),
            ("has RRULE", vevent_with(dc.prop_filter("RRULE")),
             {"weekly.ics", "override.ics", "dst.ics", "customtz.ics", "yearly.ics"}),
            ("DTSTART with TZID Custom Berlin",
             vevent_with(dc.prop_filter("DTSTART", dc.el(c("param-filter"), dc.text_match(
                 "Custom Berlin"), name="TZID"))), {"customtz.ics"}),
            ("no VEVENT at all", dc.comp_filter("VCALENDAR", dc.el(
                c("comp-filter"), dc.is_not_defined(), name="VEVENT")), {"todo.ics"}),
            ("i;octet is case-sensitive",
             vevent_with(dc.prop_filter("SUMMARY", dc.text_match("weekly", collation="i;octet"))),
             set()),
        ]
        failures = []
        for what, f, want in cases:
            got = run(f)
            if got != want:
                failures.append(f"{what}: wanted {sorted(want)}, got {sorted(got)}")
        self.assertEqual(failures, [], "\n".join(failures))

    def expanded(self, name, start, end):
        cl = self.client(QUERY)
        body = dc.event_range_query(start, end, props=(d("getetag"), dc.calendar_data(
            expand=(start, end))))
        ms = cl.report(self.rec, body, depth=1).multistatus()
        data = ms[self.rec + name].text(c("calendar-data"))
        self.assertIsNotNone(data, ms)
        return data

    def test_calendar_query_expand(self):
        # RFC 4791 9.6.5: one component per instance with RECURRENCE-ID, in UTC, no RRULE,
        # EXDATE or VTIMEZONE.
        cases = [
            ("weekly.ics", "20260101T000000Z", "20260201T000000Z",
             {("20260105T090000Z", "20260105T090000Z", "Weekly team meeting"),
              ("20260112T090000Z", "20260112T090000Z", "Weekly team meeting"),
              ("20260126T090000Z", "20260126T090000Z", "Weekly team meeting")}),
            ("override.ics", "20260520T000000Z", "20260701T000000Z",
             {("20260601T120000Z", "20260601T120000Z", "Daily standup"),
              ("20260602T120000Z", "20260602T120000Z", "Daily standup"),
              ("20260610T150000Z", "20260603T120000Z", "Standup moved out"),
              ("20260525T080000Z", "20260604T120000Z", "Standup moved early"),
              ("20260620T090000Z", "20260605T120000Z", "Standup moved far")}),
            ("override.ics", "20260602T000000Z", "20260611T000000Z",
             {("20260602T120000Z", "20260602T120000Z", "Daily standup"),
              ("20260610T150000Z", "20260603T120000Z", "Standup moved out")}),
            ("dst.ics", "20260301T000000Z", "20260401T000000Z",
             {("20260327T080000Z", "20260327T080000Z", "Across the spring change"),
              ("20260328T080000Z", "20260328T080000Z", "Across the spring change"),
              ("20260329T070000Z", "20260329T070000Z", "Across the spring change"),
              ("20260330T070000Z", "20260330T070000Z", "Across the spring change"),
              ("20260331T070000Z", "20260331T070000Z", "Across the spring change")}),
            ("customtz.ics", "20261024T000000Z", "20261026T000000Z",
             {("20261024T070000Z", "20261024T070000Z", "Across the autumn change"),
              ("20261025T080000Z", "20261025T080000Z", "Across the autumn change")}),
        ]
        for name, start, end, want in cases:
            with self.subTest(name=name, start=start):
                data = self.expanded(name, start, end)
                comps = dc.ics_components(data)
                self.assertNotIn("VTIMEZONE", [n for n, _ in comps], data)
                got = set()
                for cp in dc.components(data, "VEVENT"):
                    for banned in ("RRULE", "RDATE", "EXDATE", "EXRULE"):
                        self.assertNotIn(banned, cp, data)
                    got.add((dc.prop1(cp, "DTSTART"), dc.prop1(cp, "RECURRENCE-ID"),
                             dc.prop1(cp, "SUMMARY")))
                    self.assertEqual(dc.prop1(cp, "UID"), dc.prop1(dc.components(
                        REC[name].decode(), "VEVENT")[0], "UID"))
                self.assertEqual(got, want, data)

    def test_calendar_multiget(self):
        cl = self.client(QUERY)
        hrefs = [self.rec + "weekly.ics", self.rec + "floating.ics", self.rec + "absent.ics"]
        body = dc.multiget_body("calendar", hrefs, [d("getetag"), dc.calendar_data()])
        ms = cl.report(self.rec, body, depth=1).multistatus()
        self.assertEqual(ms.hrefs(), set(hrefs), ms)
        for name in ("weekly.ics", "floating.ics"):
            e = ms[self.rec + name]
            self.assertEqual(e.text(d("getetag")), etag_of(REC[name]))
            self.assertEqual(e.text(c("calendar-data")).encode(), REC[name],
                             "calendar-data differs from the stored body")
        for hr in hrefs[2:]:
            self.assertEqual(ms[hr].status, 404, ms)

    # ---------------------------------------------------------------- free-busy

    def test_free_busy_query(self):
        cl = self.client()
        path = self.new_calendar(cl, "fb")
        objects = {
            "busy.ics": dc.event("fb-busy", "20260601T100000Z", "20260601T110000Z"),
            "transparent.ics": dc.event("fb-transp", "20260601T120000Z", "20260601T130000Z",
                                        extra=["TRANSP:TRANSPARENT"]),
            "tentative.ics": dc.event("fb-tent", "20260601T140000Z", "20260601T150000Z",
                                      extra=["STATUS:TENTATIVE"]),
            "cancelled.ics": dc.event("fb-cancel", "20260601T160000Z", "20260601T170000Z",
                                      extra=["STATUS:CANCELLED"]),
            "daily.ics": dc.event("fb-daily", "20260601T080000Z", "20260601T083000Z",
                                  extra=["RRULE:FREQ=DAILY;COUNT=3", "EXDATE:20260602T080000Z"]),
            "task.ics": vcalendar(vtodo("fb-task", "DTSTART:20260601T180000Z",
                                        "DUE:20260601T190000Z")),
        }
        for name, body in objects.items():
            self.expect(cl.put(path + name, body), 201)
        for start, end, want in (
                ("20260601T000000Z", "20260603T090000Z",
                 [("BUSY", "20260601T080000Z", "20260601T083000Z"),
                  ("BUSY", "20260601T100000Z", "20260601T110000Z"),
                  ("BUSY", "20260603T080000Z", "20260603T083000Z"),
                  ("BUSY-TENTATIVE", "20260601T140000Z", "20260601T150000Z")]),
                ("20260601T103000Z", "20260601T143000Z",  # clipped to the range
                 [("BUSY", "20260601T103000Z", "20260601T110000Z"),
                  ("BUSY-TENTATIVE", "20260601T140000Z", "20260601T143000Z")]),
                ("20260602T000000Z", "20260602T235959Z", [])):
            with self.subTest(start=start, end=end):
                r = cl.report(path, dc.freebusy_body(start, end), depth=1)
                self.assertEqual(r.status, 200, str(r))
                self.assertTrue(r.header("Content-Type", "").startswith("text/calendar"), str(r))
                fbs = dc.components(r.text, "VFREEBUSY")
                self.assertEqual(len(fbs), 1, r.text)
                self.assertEqual((dc.prop1(fbs[0], "DTSTART"), dc.prop1(fbs[0], "DTEND")),
                                 (start, end), r.text)
                self.assertEqual(dc.freebusy_periods(r.text), sorted(want), r.text)

    # ---------------------------------------------------------------- CardDAV queries

    def test_addressbook_query(self):
        cl = self.client(QUERY)
        failures = []
        for what, filters, test, want in CARD_QUERIES:
            r = cl.report(self.people, dc.addressbook_query(filters, test=test), depth=1)
            if r.status != 207:
                failures.append(f"{what}: {r.status} {r.text[:300]}")
                continue
            ms = r.multistatus()
            got = names(ms.hrefs(), self.people)
            if got != want:
                failures.append(f"{what}: wanted {sorted(want)}, got {sorted(got)}")
            for hr in ms.hrefs():
                if ms[hr].text(d("getetag")) != etag_of(CARDS[hr[len(self.people):]]):
                    failures.append(f"{what}: wrong ETag for {hr}")
        self.assertEqual(failures, [], "\n".join(failures))

    def test_addressbook_query_nresults(self):
        cl = self.client(QUERY)
        r = cl.report(self.people, dc.addressbook_query([], limit=2), depth=1)
        ms = r.multistatus()
        self.assertEqual(len(names(ms.found(), self.people)), 2, ms)
        self.assertEqual(ms.with_status(507), {self.people}, ms)
        r = cl.report(self.people, dc.addressbook_query([], limit=len(CARDS)), depth=1)
        ms = r.multistatus()
        self.assertEqual(names(ms.hrefs(), self.people), set(CARDS), ms)

    def test_addressbook_multiget_and_address_data(self):
        cl = self.client(QUERY)
        hrefs = [self.people + "alice.vcf", self.people + "carol.vcf", self.people + "zz.vcf"]
        body = dc.multiget_body("addressbook", hrefs, [d("getetag"), card("address-data")])
        ms = cl.report(self.people, body, depth=1).multistatus()
        self.assertEqual(ms.hrefs(), set(hrefs), ms)
        for name in ("alice.vcf", "carol.vcf"):
            e = ms[self.people + name]
            self.assertEqual(e.text(d("getetag")), etag_of(CARDS[name]))
            self.assertEqual(e.text(card("address-data")).encode(), CARDS[name])
        self.assertEqual(ms[self.people + "zz.vcf"].status, 404)
        # address-data with a property subset (RFC 6352 10.4.2)
        subset = dc.el(card("address-data"), dc.el(card("prop"), name="EMAIL"))
        body = dc.multiget_body("addressbook", [self.people + "bob.vcf"], [subset])
        data = cl.report(self.people, body, depth=1).multistatus()[self.people + "bob.vcf"].text(
            card("address-data"))
        self.assertIn("bob@builder.test", data)
        self.assertIn("bobby@home.test", data)
        self.assertNotIn("TEL", data)
        self.assertNotIn("+49 30 1234", data)

    # ---------------------------------------------------------------- the rest

    def test_unknown_methods_and_paths(self):
        cl = self.client()
        for method in ("FROBNICATE", "BREW"):
            r = cl.request(method, dc.cal(ALICE) + "x.ics")
            self.assertEqual(r.status, 501, str(r))
        for path in ("/other/", "/davx/", "/dav/nothing/", "/index.html"):
            r = cl.propfind(path, [d("displayname")])
            self.assertEqual(r.status, 404, str(r))
        # the server still answers on the same connection
        self.assertEqual(cl.propfind("/dav/", [d("current-user-principal")]).status, 207)


class HttpThreadsTest(h.MailarkTestCase):
    """HTTP on one thread of its own (`[http] threads = 1`): a client that does not read its
    answer holds up no other HTTP client and no IMAP client, and no other server can listen
    on the HTTP port while this one does."""

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = dc.start_server(
            "dav-threads", users=[ALICE], options=[("http", "threads", "1")])
        cls.shared_instances = [cls.inst]
        cls.port = cls.ports["http"]

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()

    def test_a_reader_that_stalls_holds_up_nobody(self):
        cl = dc.Dav(self.port, ALICE)
        self.addCleanup(cl.close)
        path = dc.cal(ALICE, "stall")
        self.assertEqual(cl.mkcalendar(path).status, 201)
        hrefs = []
        for i in range(100):
            text = "".join(chr(0x41 + (i + k) % 26) for k in range(3000))
            r = cl.put(path + f"e{i}.ics", dc.event(f"stall-{i}", extra=["DESCRIPTION:" + text]))
            self.assertEqual(r.status, 201, str(r))
            hrefs.append(path + f"e{i}.ics")
        # 100 hrefs 24 times: about 8 MB, twice what a loopback socket's send buffer grows
        # to (tcp_wmem's 4 MB), so most of it waits until the client reads.
        body = dc.multiget_body("calendar", hrefs * 24, [d("getetag"), dc.calendar_data()]).encode()
        expected = cl.report(path, body, depth=1)
        self.assertEqual(expected.status, 207, str(expected))
        self.assertGreater(len(expected.body), 7_000_000)
        s, request = slow_reader(self.port, cl, path, body)
        self.addCleanup(s.close)
        s.sendall(request)
        time.sleep(0.5)  # the answer is made and its first part written
        # The only HTTP thread answers other clients while that answer waits for room.
        for _ in range(3):
            other = dc.Dav(self.port, ALICE, timeout=30)
            try:
                r = other.propfind(path, [d("displayname")], depth=0)
                self.assertEqual(r.status, 207, str(r))
            finally:
                other.close()
        imap = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=30)
        try:
            imap.login(ALICE, dc.PW)
            self.assertEqual(imap.select("INBOX")[0], "OK")
        finally:
            imap.logout()
        self.assertEqual(read_207(self, s), expected.body)

    def test_the_http_port_is_not_shared_with_another_server(self):
        other = h.Instance("dav-threads-other")
        other.set_option("http", "port", str(self.port))
        r = other.cli("serve", expect=None, timeout=60)
        self.assertNotEqual(r.rc, 0, str(r))
        self.assertIn(f"cannot listen on 127.0.0.1:{self.port}", r.err, str(r))
        other.set_option("http", "port", "0")
        other.set_option("http", "threads", "0")
        r = other.cli("serve", expect=None, timeout=60)
        self.assertNotEqual(r.rc, 0, str(r))
        self.assertIn("http.threads must be 1..256", r.err, str(r))
        # The first server goes on serving.
        cl = dc.Dav(self.port, ALICE)
        try:
            self.assertEqual(cl.propfind("/dav/", [d("current-user-principal")]).status, 207)
        finally:
            cl.close()


if __name__ == "__main__":
    h.main()
