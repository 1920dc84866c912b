"""Backups of calendars and contacts, end to end with the real binary:

- point in time: events and contacts are added, changed and deleted, a display name is
  changed with PROPPATCH, collections are created and deleted; `restore --db db1 --time T
  --into NEW` at several moments T gives a recovery database whose `db dump` holds, for that
  user's "#calendars/..." and "#addressbooks/..." folders, exactly what PROPFIND and GET showed
  at T: the resource names, their bodies' SHA-256 (the ETags) and the display names;
- one account: `restore --user ADDR --time T` into the live account, twice: deleted events and
  contacts come back under their names with their old ETags, no UID appears twice, the second
  run restores nothing, and a client's sync token sees the restored resources."""

import json
import re
import time

import dav_client as dc
import harness as h
from dav_client import d, etag_of, vcalendar, vevent
from imap_client import wait_for

DOMAIN = "backup.test"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
DEFAULT_NAMES = {"#calendars/default": "Calendar", "#addressbooks/default": "Contacts"}


def iso_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def recurring(uid, summary):
    return vcalendar(
        vevent(uid, "DTSTART:20260105T090000Z", "DTEND:20260105T100000Z",
               "RRULE:FREQ=WEEKLY;COUNT=8", f"SUMMARY:{summary}"),
        vevent(uid, "RECURRENCE-ID:20260112T090000Z", "DTSTART:20260113T090000Z",
               "DTEND:20260113T100000Z", f"SUMMARY:{summary} (moved)"))


class DavBackupTest(h.MailarkTestCase):

    # ---------------------------------------------------------------- helpers

    def instance(self, name):
        inst = h.Instance(name)
        inst.set_option("backup", "archive_interval", '"100ms"')
        inst.set_option("backup", "base_interval", '"off"')
        inst.set_option("auth", "failure_delay_ms", "10")
        inst.add_tenant(DOMAIN)
        for u in (ALICE, BOB):
            inst.add_user(u)
        inst.start()
        with open(inst.ports_file) as f:
            port = json.load(f)["http"]
        return inst, port

    def client(self, port, user=ALICE):
        cl = dc.Dav(port, user)
        self.addCleanup(cl.close)
        return cl

    def must(self, r, status):
        self.assertEqual(r.status, status, str(r))
        return r

    def wait_archived(self, inst, db="db1"):
        def done():
            r = inst.cli("health", "--json", expect=None)
            s = json.loads(r.out)["databases"][db]
            return s["archived_seq"] == s["journal_seq"]
        self.assertTrue(wait_for(done, timeout=20, interval=0.1),
                        inst.cli("health", "--json", expect=None).out + inst.log_tail())

    def seen(self, cl, user=ALICE):
        """{folder name: (displayname, {resource name: sha256 hex})} as a client sees it now;
        every ETag is checked against the body GET returns."""
        out = {}
        for kind, home in (("calendars", dc.cal_home(user)), ("addressbooks", dc.book_home(user))):
            ms = cl.props(home, [d("resourcetype"), d("displayname")], depth=1)
            for coll, e in ms.entries.items():
                if coll == home:
                    continue
                items = {}
                for href, etag in cl.listing(coll).items():
                    r = cl.get(href)
                    self.assertEqual((r.status, r.etag), (200, etag), str(r))
                    self.assertEqual(etag, etag_of(r.body))
                    items[href[len(coll):]] = etag.strip('"')
                out[f"#{kind}/{coll[len(home):].strip('/')}"] = (e.text(d("displayname")), items)
        return out

    def dumped(self, inst, db, user=ALICE):
        """The same shape from `mailark db dump DB --user USER`."""
        out = {}
        for name, f in dc.dump_folders(inst, user, db).items():
            if not name.startswith(("#calendars/", "#addressbooks/")):
                continue
            want_kind = "calendar" if name.startswith("#calendars/") else "contacts"
            self.assertEqual(f.get("kind"), want_kind, f"{db} {name}: {f}")
            items = {}
            for it in f["items"]:
                self.assertNotIn(it.get("dav_name"), (None, ""), f"{db} {name}: {it}")
                self.assertNotIn(it["dav_name"], items, f"{db} {name}: two items named so")
                items[it["dav_name"]] = it["blob"]
            props = f.get("props") or {}
            name_prop = props.get("{DAV:}displayname")
            if name_prop is None and name in DEFAULT_NAMES:
                name_prop = DEFAULT_NAMES[name]  # the default collections' implicit names
            out[name] = (name_prop, items)
        return out

    def checkpoint(self, inst, cl, points):
        self.wait_archived(inst)
        time.sleep(0.05)
        points.append((iso_now(), self.seen(cl)))
        time.sleep(0.05)

    def uids(self, cl, coll):
        """UID -> [resource names] over a collection, from GET of every member."""
        out = {}
        for href in cl.listing(coll):
            r = cl.get(href)
            uid = re.search(r"(?m)^UID:(.*?)\r?$", r.text).group(1)
            out.setdefault(uid, []).append(href[len(coll):])
        return out

    # ---------------------------------------------------------------- point in time

    def test_restore_at_several_times_equals_what_clients_saw(self):
        inst, port = self.instance("davpitr")
        cl = self.client(port)
        bob = self.client(port, BOB)
        cal, book = dc.cal(ALICE), dc.book(ALICE)
        bodies = {f"e{i}.ics": dc.event(f"pitr-e{i}", f"2026030{i}T100000Z",
                                        f"2026030{i}T110000Z", f"event {i}") for i in range(1, 5)}
        bodies["e4.ics"] = recurring("pitr-e4", "weekly")
        for name, body in bodies.items():
            self.must(cl.put(cal + name, body), 201)
        for i in range(1, 4):
            self.must(cl.put(book + f"c{i}.vcf", dc.vcard(f"pitr-c{i}", f"Person {i}",
                                                          f"EMAIL:p{i}@example.test")), 201)
        r = cl.proppatch(cal, set_=[(d("displayname"), "Cal A")])
        self.assertEqual(r.multistatus()[cal].prop_status(d("displayname")), 200, str(r))
        self.must(bob.put(dc.cal(BOB) + "b.ics", dc.event("pitr-bob")), 201)
        inst.cli("backup", "run", "--quiet")
        points = []
        self.checkpoint(inst, cl, points)
        # add, modify, delete; rename; new collections of both kinds
        self.must(cl.put(cal + "e5.ics", dc.event("pitr-e5", summary="event 5")), 201)
        self.must(cl.put(cal + "e1.ics", dc.event("pitr-e1", "20260301T100000Z",
                                                  "20260301T120000Z", "event 1, longer")), 204)
        self.must(cl.delete(cal + "e2.ics"), 204)
        cl.proppatch(cal, set_=[(d("displayname"), "Cal B")])
        trip = dc.cal(ALICE, "trip")
        self.must(cl.mkcalendar(trip, displayname="Trip"), 201)
        self.must(cl.put(trip + "t1.ics", dc.event("pitr-t1", summary="flight")), 201)
        self.must(cl.put(book + "c4.vcf", dc.vcard("pitr-c4", "Person 4")), 201)
        c1 = dc.vcard("pitr-c1", "Person 1", "EMAIL:new@example.test")
        self.must(cl.put(book + "c1.vcf", c1), 204)
        self.must(cl.delete(book + "c2.vcf"), 204)
        team = dc.book(ALICE, "team")
        self.must(cl.mkcol(team, [d("collection"), dc.card("addressbook")], "Team"), 201)
        self.must(cl.put(team + "m.vcf", dc.vcard("pitr-m", "Mia Member")), 201)
        self.checkpoint(inst, cl, points)
        inst.cli("backup", "run", "--quiet")  # a second base backup between restore points
        self.must(cl.delete(cal + "e3.ics"), 204)
        self.must(cl.delete(trip), 204)
        self.must(cl.put(cal + "e5.ics", dc.event("pitr-e5", summary="event 5, changed")), 204)
        cl.proppatch(book, set_=[(d("displayname"), "People")])
        self.must(bob.delete(dc.cal(BOB) + "b.ics"), 204)
        self.checkpoint(inst, cl, points)
        # the checkpoints differ from each other in what this test changed
        self.assertEqual(points[0][1]["#calendars/default"][0], "Cal A")
        self.assertEqual(points[1][1]["#calendars/default"][0], "Cal B")
        self.assertIn("#calendars/trip", points[1][1])
        self.assertNotIn("#calendars/trip", points[2][1])
        for n, (t, want) in enumerate(points):
            with self.subTest(checkpoint=n, time=t):
                r = inst.cli("restore", "--db", "db1", "--time", t, "--into", f"at{n}")
                self.assertIn("restored database db1 into", r.out)
                got = self.dumped(inst, f"at{n}")
                self.assertEqual(got, want, f"restore at {t}")
                inst.cli("check", "--db", f"at{n}")
        # the live database agrees with the clients too
        self.assertEqual(self.dumped(inst, "db1"), self.seen(cl))

    # ---------------------------------------------------------------- one account

    def test_user_restore_into_live_account_twice(self):
        inst, port = self.instance("davuser")
        cl = self.client(port)
        bob = self.client(port, BOB)
        cal, book, trip = dc.cal(ALICE), dc.book(ALICE), dc.cal(ALICE, "trip")
        original = {
            cal + "e1.ics": dc.event("user-e1", summary="one"),
            cal + "e2.ics": dc.event("user-e2", "20260302T100000Z", "20260302T110000Z", "two"),
            cal + "e3.ics": recurring("user-e3", "three"),
            book + "c1.vcf": dc.vcard("user-c1", "Carla One"),
            book + "c2.vcf": dc.vcard("user-c2", "Carlo Two", "TEL:+1 555 0199"),
        }
        self.must(cl.mkcalendar(trip, displayname="Trip"), 201)
        original[trip + "t1.ics"] = dc.event("user-t1", summary="flight")
        for path, body in original.items():
            self.must(cl.put(path, body), 201)
        self.must(bob.put(dc.cal(BOB) + "b.ics", dc.event("user-bob")), 201)
        inst.cli("backup", "run", "--quiet")
        self.wait_archived(inst)
        time.sleep(0.05)
        t0 = iso_now()
        time.sleep(0.05)
        # later: delete, modify, add, delete a whole calendar
        self.must(cl.delete(cal + "e2.ics"), 204)
        e1b = dc.event("user-e1", summary="one, changed")
        self.must(cl.put(cal + "e1.ics", e1b), 204)
        self.must(cl.put(cal + "e4.ics", dc.event("user-e4", summary="four")), 201)
        self.must(cl.delete(book + "c2.vcf"), 204)
        self.must(cl.delete(trip), 204)
        self.wait_archived(inst)
        bob_before = self.seen(bob, BOB)
        token = cl.sync(cal, "").multistatus().sync_token
        r = inst.cli("restore", "--user", ALICE, "--time", t0)
        m = re.search(r"total restored: (\d+) items", r.out)
        self.assertTrue(m, r.out)
        self.assertGreaterEqual(int(m.group(1)), 2, r.out)  # e2 and c2 at least (and t1)
        after_first = self.seen(cl)
        # the deleted ones are back under their names, with the ETags they had
        for path in (cal + "e2.ics", book + "c2.vcf"):
            r = cl.get(path)
            self.assertEqual((r.status, r.body, r.etag), (200, original[path],
                                                          etag_of(original[path])), path)
        # no UID twice; what was added later is still there
        for coll in (cal, book):
            for uid, where in self.uids(cl, coll).items():
                self.assertEqual(len(where), 1, f"UID {uid} in {coll} at {where}")
        self.assertIn("user-e1", self.uids(cl, cal))
        self.assertEqual(cl.get(cal + "e4.ics").status, 200)
        # a client that synced before the restore is told about the restored event
        ms = cl.sync(cal, token).multistatus()
        self.assertIn(cal + "e2.ics", ms.found(), ms)
        self.assertEqual(ms[cal + "e2.ics"].text(d("getetag")), etag_of(original[cal + "e2.ics"]))
        # the second run restores nothing and changes nothing
        cal_token = cl.props(cal, [d("sync-token")])[cal].text(d("sync-token"))
        r = inst.cli("restore", "--user", ALICE, "--time", t0)
        self.assertIn("total restored: 0 items", r.out, r.out)
        self.assertEqual(self.seen(cl), after_first)
        self.assertEqual(cl.props(cal, [d("sync-token")])[cal].text(d("sync-token")), cal_token)
        self.assertEqual(self.seen(bob, BOB), bob_before, "the other account changed")
        live = dc.dump_folders(inst, ALICE)
        for name, f in live.items():
            cuids = [it.get("component_uid") for it in f["items"]]
            self.assertEqual(len(cuids), len(set(cuids)), f"{name}: {cuids}")
        # the deleted calendar comes back with its event
        r = cl.get(trip + "t1.ics")
        self.assertEqual((r.status, r.body), (200, original[trip + "t1.ics"]), str(r))


if __name__ == "__main__":
    h.main()
