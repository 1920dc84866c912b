"""Calendar and contact migration commands against the running server.

`mailark calendar import|export` and `mailark contacts import|export`: an import shows up for
CalDAV/CardDAV clients at once, importing the same file twice creates nothing new (same UID =
the same resource), a changed object replaces its resource, one invalid object makes the whole
import refuse with a one-line reason and change nothing, and an export imports back equal.
"""

import os

import dav_client as dc
import harness as h

USER = "mig@acme.test"

CALENDAR_FILE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Other Server//EN\r\nMETHOD:PUBLISH\r\n"
    "X-WR-CALNAME:Exported\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
    "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
    "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
    "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:mig-1\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20260302T090000\r\nDTEND;TZID=Europe/Berlin:20260302T100000\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:mig-1\r\nDTSTAMP:20260101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20260309T090000\r\n"
    "DTSTART;TZID=Europe/Berlin:20260310T140000\r\nDTEND;TZID=Europe/Berlin:20260310T150000\r\n"
    "SUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:mig-2\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260401\r\n"
    "SUMMARY:Holiday\r\nEND:VEVENT\r\n"
    "BEGIN:VTODO\r\nUID:mig-3\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:File taxes\r\nEND:VTODO\r\n"
    "END:VCALENDAR\r\n")

CONTACTS_FILE = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-1\r\nFN:Ann One\r\nN:One;Ann;;;\r\n"
    "EMAIL:ann@one.test\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No Uid\r\nEMAIL:nouid@x.test\r\nEND:VCARD\r\n")


class DavAdminTest(h.MailarkTestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst, cls.ports = dc.start_server("dav-admin", users=[USER])
        cls.shared_instances = [cls.inst]
        cls.dav = dc.Dav(cls.ports["http"], USER)

    @classmethod
    def tearDownClass(cls):
        cls.dav.close()
        cls.inst.stop()

    def write(self, name, text):
        path = os.path.join(self.inst.data, name)
        with open(path, "w", newline="") as f:
            f.write(text)
        return path

    def test_calendar_import_twice_then_changed_then_export(self):
        path = self.write("cal.ics", CALENDAR_FILE)
        r = self.inst.cli("calendar", "import", USER, path, "--calendar", "imported")
        self.assertIn("3 created, 0 updated, 0 unchanged", r.out)
        coll = dc.cal(USER, "imported")
        listing = self.dav.listing(coll)
        self.assertEqual(len(listing), 3, listing)
        # Each object holds only its own UID's components, with the time zone it uses.
        bodies = {}
        for href in listing:
            g = self.dav.get(href)
            self.assertEqual(g.status, 200)
            bodies[href] = g.body.decode()
        weekly = [b for b in bodies.values() if "UID:mig-1" in b]
        self.assertEqual(len(weekly), 1)
        self.assertEqual(weekly[0].count("BEGIN:VEVENT"), 2)
        self.assertIn("BEGIN:VTIMEZONE", weekly[0])
        self.assertNotIn("METHOD", weekly[0])
        # Again: nothing new, nothing changed (same ETags).
        r = self.inst.cli("calendar", "import", USER, path, "--calendar", "imported")
        self.assertIn("0 created, 0 updated, 3 unchanged", r.out)
        self.assertEqual(self.dav.listing(coll), listing)
        # A changed event replaces its resource.
        changed = CALENDAR_FILE.replace("SUMMARY:Holiday", "SUMMARY:Holiday (all day)")
        r = self.inst.cli("calendar", "import", USER, self.write("cal2.ics", changed),
                          "--calendar", "imported")
        self.assertIn("0 created, 1 updated, 2 unchanged", r.out)
        after = self.dav.listing(coll)
        self.assertEqual(set(after), set(listing))
        self.assertEqual(sum(1 for href in after if after[href] != listing[href]), 1)
        # Export, then import into another calendar: the same objects.
        out = self.inst.cli("calendar", "export", USER, "--calendar", "imported").out
        self.assertEqual(out.count("BEGIN:VCALENDAR"), 1)
        self.assertEqual(out.count("BEGIN:VTIMEZONE"), 1)
        self.assertEqual(out.count("BEGIN:VEVENT"), 3)
        r = self.inst.cli("calendar", "import", USER, self.write("export.ics", out),
                          "--calendar", "copy")
        self.assertIn("3 created", r.out)
        self.assertEqual(len(self.dav.listing(dc.cal(USER, "copy"))), 3)

    def test_invalid_object_stops_the_whole_import(self):
        bad = CALENDAR_FILE.replace("DTSTART;VALUE=DATE:20260401\r\n", "DTSTART:yesterday\r\n")
        r = self.inst.cli("calendar", "import", USER, self.write("bad.ics", bad),
                          "--calendar", "strict", expect=65)
        self.assertIn("nothing was imported", r.err)
        self.assertEqual(len(r.err.strip().splitlines()), 1, r.err)
        # The collection was not even created.
        self.assertEqual(self.dav.propfind(dc.cal(USER, "strict"), [dc.d("displayname")]).status,
                         404)
        r = self.inst.cli("calendar", "import", USER, "/nonexistent.ics", expect=(1, 74))
        self.assertTrue(r.err.startswith("mailark: "), r.err)
        r = self.inst.cli("calendar", "import", "nobody@acme.test", self.write("c.ics", CALENDAR_FILE),
                          expect=1)
        self.assertTrue(r.err.startswith("mailark: "), r.err)

    def test_contacts_import_twice_and_export(self):
        path = self.write("contacts.vcf", CONTACTS_FILE)
        r = self.inst.cli("contacts", "import", USER, path)
        self.assertIn("2 created", r.out)
        listing = self.dav.listing(dc.book(USER))
        self.assertEqual(len(listing), 2)
        # The card without a UID got a stable one: a second import finds it.
        r = self.inst.cli("contacts", "import", USER, path)
        self.assertIn("0 created, 0 updated, 2 unchanged", r.out)
        self.assertEqual(self.dav.listing(dc.book(USER)), listing)
        out = self.inst.cli("contacts", "export", USER).out
        self.assertEqual(out.count("BEGIN:VCARD"), 2)
        self.assertIn("UID:card-1", out)
        self.assertIn("UID:mailark-", out)
        # CardDAV clients find the imported cards by text.
        body = dc.addressbook_query(
            dc.prop_filter("EMAIL", dc.text_match("nouid@", ns=dc.CARDDAV), ns=dc.CARDDAV))
        ms = self.dav.report(dc.book(USER), body, depth=1).multistatus()
        self.assertEqual(len(ms.hrefs()), 1, ms)


if __name__ == "__main__":
    h.main()
