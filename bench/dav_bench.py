#!/usr/bin/python3
"""CalDAV benchmark: mailark side by side with Radicale 3.1.

Starts a fresh mailark and a fresh Radicale (bench/servers.py), loads the same generated
calendar into both over HTTP PUT, then measures with the same client code on both servers:

  1. PUT throughput: 10,000 events with If-None-Match: *, over 1 connection (the calendar
     the later rows use) and over 8 connections (a second calendar of 10,000 events); each
     server gets at most --put-budget seconds per row (Radicale's PUT checks the UID against
     every stored item, so its load is quadratic); the rest of the first calendar is then
     loaded untimed (mailark: more PUTs; Radicale: through its own storage code)
  2. PROPFIND Depth: 1 (getetag, getcontenttype) of the 10,000-event calendar   median of 5
  3. calendar-query, VEVENT time-range of one week / one month, calendar-data   median of 5
  4. sync-collection (getetag) after 1% of the events changed and 2 deleted     median of 5
  5. calendar-multiget of 100 hrefs with calendar-data                          median of 5
  6. PROPFIND Depth: 0 getctag + sync-token, a client's poll                    median of 5

About 10% of the events recur (daily or weekly, COUNT or UNTIL, some with EXDATE, some with
an overridden instance, some in Europe/Berlin across the DST changes), some are all-day,
some are in Europe/Berlin with a VTIMEZONE; the rest are single events spread over 2026.
Every answer is checked (status codes, ETags against what PUT returned, the set of UIDs a
query returns against an expectation computed here, the two servers against each other,
exactly the changed hrefs after a sync), prints a table and writes
bench/results/dav-<date>.json.

    /usr/bin/python3 bench/dav_bench.py --mailark build/mailark
    /usr/bin/python3 bench/dav_bench.py --scale 0.05            # quick check

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__

import argparse
import base64
import dataclasses
import datetime
import json
import os
import platform
import random
import resource
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
import zoneinfo
from typing import Callable, Dict, List, Optional, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import servers  # noqa: E402
from servers import DISTURBED, log, own_cpu  # noqa: E402

DOMAIN = "bench.test"
USER = "alice@" + DOMAIN
HOST = "127.0.0.1"
# The target: mailark at least this many times better than Radicale on every row.
TARGET_RATIO = 10.0

UTC = datetime.timezone.utc
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
YEAR = datetime.datetime(2026, 1, 1, tzinfo=UTC)
# Query windows. The week holds the start of summer time in Europe/Berlin (29 March), the
# month its end (25 October), so zone handling of recurring Berlin events shows.
WEEK = ("20260323T000000Z", "20260330T000000Z")
MONTH = ("20261001T000000Z", "20261101T000000Z")

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"


# --- HTTP/1.1 client ------------------------------------------------------------------------

class HttpError(Exception):
    pass


@dataclasses.dataclass
class Response:
    status: int
    headers: Dict[str, str]   # lower-case names
    body: bytes


class HttpConn:
    """One client connection: keep-alive when the server allows it (mailark), a new
    connection per request when it closes after each answer (Radicale's wsgiref server).
    Requests are pre-encoded bytes, so building them costs nothing while the clock runs."""

    def __init__(self, port: int, timeout: float = 600.0):
        self.port, self.timeout = port, timeout
        self.sock: Optional[socket.socket] = None
        self.buf = b""
        self.connects = 0

    def _connect(self):
        self.sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.connects += 1

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _read_until(self, sep: bytes) -> bytes:
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return out
            start = max(0, len(self.buf) - len(sep) + 1)
            if not self._fill():
                raise HttpError("connection closed while reading a response")

    def _read_exact(self, n: int) -> bytes:
        if len(self.buf) < n:
            # Gather the pieces and join once: a multi-megabyte answer arrives in many.
            parts, have = [self.buf], len(self.buf)
            while have < n:
                chunk = self.sock.recv(max(1 << 18, n - have))
                if not chunk:
                    raise HttpError("connection closed after %d of %d body bytes" % (have, n))
                parts.append(chunk)
                have += len(chunk)
            self.buf = b"".join(parts)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_response(self, head: bool) -> Response:
        raw = self._read_until(b"\r\n\r\n")
        lines = raw.decode("iso-8859-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError("bad status line %r" % lines[0][:80])
        status = int(parts[1])
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if head or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")  # no trailers expected
                    break
                chunks.append(self._read_exact(size))
                self._read_exact(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:  # HTTP/1.0 style: the body ends with the connection
            while self._fill():
                pass
            body, self.buf = self.buf, b""
            headers["connection"] = "close"
        conn = headers.get("connection", "").lower()
        if conn == "close" or (parts[0] == "HTTP/1.0" and conn != "keep-alive"):
            self.close()
        return Response(status, headers, body)

    def send(self, request: bytes, head: bool = False) -> Response:
        """Sends one pre-encoded request and reads its response. A keep-alive connection the
        server closed while idle is reopened once (nothing was answered on it)."""
        for attempt in (0, 1):
            fresh = self.sock is None
            if fresh:
                self._connect()
            try:
                self.sock.sendall(request)
                return self._read_response(head)
            except (HttpError, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if fresh or attempt:
                    raise HttpError(str(e))
        raise AssertionError("unreachable")


# --- calendar data --------------------------------------------------------------------------

@dataclasses.dataclass
class Event:
    uid: str
    kind: str
    ics: bytes
    spans: List[Tuple[int, int]]  # every instance as (start, end), UTC seconds
    exact: bool                   # the expectation is checked exactly; else the servers must agree

    @property
    def name(self) -> str:
        return self.uid + ".ics"


VTIMEZONE_BERLIN = [
    "BEGIN:VTIMEZONE", "TZID:Europe/Berlin",
    "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "TZNAME:CEST",
    "DTSTART:19700329T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT",
    "BEGIN:STANDARD", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "TZNAME:CET",
    "DTSTART:19701025T030000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
    "END:VTIMEZONE"]

WORDS = ("project review planning sync weekly standup budget design launch retro quarterly "
         "customer demo interview onboarding training workshop lunch dentist school parents "
         "evening football yoga flight hotel train conference call board report offsite "
         "migration release audit security hiring roadmap architecture backlog sprint "
         "Berlin Paris London Hamburg Munich office garden birthday dinner concert").split()
ROOMS = ("Room 1.01", "Room 2.14", "Aquarium", "Kantine", "Zoom", "Hangout", "Main hall",
         "Konferenzraum Süd", "Café Olé", "HQ 4th floor")
PEOPLE = ("Anna Schmidt", "Bob Smith", "Chloé Martin", "Dmitri Ivanov", "Emma Jones",
          "Fatima Khan", "Georg Müller", "Hiro Tanaka", "Ines Costa", "Jan Novak")

# Recurring kinds and their weights among the ~10% recurring events. Every kind but
# "override" has rules simple enough that the expectation computed here is exact.
RECURRING = (("daily", 25), ("weekly_until", 25), ("weekly_exdate", 15), ("weekly_tz", 15),
             ("allday_recur", 5), ("override", 15))


def fold(line: str) -> List[str]:
    """RFC 5545 line folding at 75 octets (never inside a UTF-8 sequence)."""
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return [line]
    out, cur, limit = [], b"", 75
    for ch in line:
        b = ch.encode("utf-8")
        if len(cur) + len(b) > limit:
            out.append(cur.decode("utf-8"))
            cur, limit = b" ", 75
        cur += b
    out.append(cur.decode("utf-8"))
    return out


def ical_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def f_utc(dt: datetime.datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def f_local(dt: datetime.datetime) -> str:
    return dt.strftime("%Y%m%dT%H%M%S")


def f_date(d: datetime.date) -> str:
    return d.strftime("%Y%m%d")


def ts(dt: datetime.datetime) -> int:
    return int(dt.timestamp())


def berlin(naive: datetime.datetime) -> datetime.datetime:
    """A Berlin wall-clock time (never in the spring-forward gap: events are 07-20h)."""
    return naive.replace(tzinfo=BERLIN)


def day_utc(d: datetime.date) -> datetime.datetime:
    """Floating dates (all-day events) are taken as UTC, as both servers do without a
    CALDAV:timezone in the query."""
    return datetime.datetime(d.year, d.month, d.day, tzinfo=UTC)


def generate(count: int, seed: int, prefix: str) -> List[Event]:
    """count events, deterministic from seed; UIDs start with prefix."""
    rng = random.Random(seed)
    kinds, weights = zip(*RECURRING)
    events = []
    for i in range(count):
        uid = "%s-%05d-%08x" % (prefix, i, rng.getrandbits(32))
        r = rng.random()
        if r < 0.10:
            kind = rng.choices(kinds, weights)[0]
        elif r < 0.15:
            kind = "allday"
        elif r < 0.25:
            kind = "tz"
        else:
            kind = "single"
        day = rng.randrange(365)
        date = YEAR.date() + datetime.timedelta(days=day)
        wall = datetime.datetime(date.year, date.month, date.day, rng.randrange(7, 20),
                                 rng.choice((0, 15, 30, 45)))
        minutes = rng.choice((15, 30, 45, 60, 60, 60, 90, 120, 180))
        if kind == "single" and rng.random() < 0.03:
            minutes = rng.choice((24, 36, 48, 72)) * 60  # multi-day
        dur = datetime.timedelta(minutes=minutes)
        when: List[str] = []
        extra_vevents: List[List[str]] = []
        tz = False
        spans: List[Tuple[int, int]] = []
        exact = True

        if kind == "single":
            start = wall.replace(tzinfo=UTC)
            when.append("DTSTART:" + f_utc(start))
            if rng.random() < 0.2:
                when.append("DURATION:PT%dM" % minutes)
            else:
                when.append("DTEND:" + f_utc(start + dur))
            spans = [(ts(start), ts(start + dur))]
        elif kind == "allday":
            ndays = rng.choice((1, 1, 1, 1, 2, 3, 4))
            end = date + datetime.timedelta(days=ndays)
            when += ["DTSTART;VALUE=DATE:" + f_date(date), "DTEND;VALUE=DATE:" + f_date(end)]
            spans = [(ts(day_utc(date)), ts(day_utc(end)))]
        elif kind == "tz":
            tz = True
            start = berlin(wall)
            when += ["DTSTART;TZID=Europe/Berlin:" + f_local(wall),
                     "DTEND;TZID=Europe/Berlin:" + f_local(wall + dur)]
            spans = [(ts(start), ts(berlin(wall + dur)))]
        elif kind == "daily":
            n, step = rng.randrange(2, 31), rng.choice((1, 1, 2, 3))
            start = wall.replace(tzinfo=UTC)
            when += ["DTSTART:" + f_utc(start), "DTEND:" + f_utc(start + dur),
                     "RRULE:FREQ=DAILY;COUNT=%d%s" % (n, ";INTERVAL=%d" % step if step > 1 else "")]
            spans = [(ts(s), ts(s + dur)) for s in
                     (start + datetime.timedelta(days=k * step) for k in range(n))]
        elif kind == "weekly_until":
            n, step = rng.randrange(2, 41), rng.choice((1, 1, 2))
            start = wall.replace(tzinfo=UTC)
            last = start + datetime.timedelta(weeks=(n - 1) * step)
            # Half end exactly on the last instance's start (what clients write), half later.
            until = last if rng.random() < 0.5 else last + datetime.timedelta(hours=rng.randrange(1, 100))
            when += ["DTSTART:" + f_utc(start), "DTEND:" + f_utc(start + dur),
                     "RRULE:FREQ=WEEKLY;UNTIL=%s%s" % (f_utc(until),
                                                       ";INTERVAL=%d" % step if step > 1 else "")]
            spans = [(ts(s), ts(s + dur)) for s in
                     (start + datetime.timedelta(weeks=k * step) for k in range(n))]
        elif kind == "weekly_exdate":
            n = rng.randrange(5, 31)
            start = wall.replace(tzinfo=UTC)
            starts = [start + datetime.timedelta(weeks=k) for k in range(n)]
            gone = sorted(rng.sample(range(1, n), rng.choice((1, 2))))
            when += ["DTSTART:" + f_utc(start), "DTEND:" + f_utc(start + dur),
                     "RRULE:FREQ=WEEKLY;COUNT=%d" % n,
                     "EXDATE:" + ",".join(f_utc(starts[k]) for k in gone)]
            spans = [(ts(s), ts(s + dur)) for k, s in enumerate(starts) if k not in gone]
        elif kind == "weekly_tz":
            tz = True
            n = rng.randrange(5, 41)
            when += ["DTSTART;TZID=Europe/Berlin:" + f_local(wall),
                     "DTEND;TZID=Europe/Berlin:" + f_local(wall + dur),
                     "RRULE:FREQ=WEEKLY;COUNT=%d" % n]
            # Instances keep their wall-clock time across the DST changes.
            for k in range(n):
                w = wall + datetime.timedelta(weeks=k)
                spans.append((ts(berlin(w)), ts(berlin(w + dur))))
        elif kind == "allday_recur":
            n = rng.randrange(2, 11)
            weekly = rng.random() < 0.5
            step = datetime.timedelta(weeks=1) if weekly else datetime.timedelta(days=1)
            when += ["DTSTART;VALUE=DATE:" + f_date(date),
                     "DTEND;VALUE=DATE:" + f_date(date + datetime.timedelta(days=1)),
                     "RRULE:FREQ=%s;COUNT=%d" % ("WEEKLY" if weekly else "DAILY", n)]
            for k in range(n):
                d = date + step * k
                spans.append((ts(day_utc(d)), ts(day_utc(d + datetime.timedelta(days=1)))))
        elif kind == "override":
            exact = False
            n = rng.randrange(4, 21)
            start = wall.replace(tzinfo=UTC)
            starts = [start + datetime.timedelta(weeks=k) for k in range(n)]
            k = rng.randrange(1, n)
            moved = starts[k] + rng.choice((datetime.timedelta(hours=2), datetime.timedelta(days=1),
                                            datetime.timedelta(days=-2), datetime.timedelta(days=3),
                                            datetime.timedelta(days=9)))
            when += ["DTSTART:" + f_utc(start), "DTEND:" + f_utc(start + dur),
                     "RRULE:FREQ=WEEKLY;COUNT=%d" % n]
            extra_vevents.append([
                "UID:" + uid, "DTSTAMP:20251215T090000Z", "RECURRENCE-ID:" + f_utc(starts[k]),
                "SEQUENCE:0", "SUMMARY:Moved: " + " ".join(rng.choices(WORDS, k=3)),
                "DTSTART:" + f_utc(moved), "DTEND:" + f_utc(moved + dur)])
            spans = [(ts(s), ts(s + dur)) for j, s in enumerate(starts) if j != k]
            spans.append((ts(moved), ts(moved + dur)))

        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mailark bench//dav_bench//EN",
                 "CALSCALE:GREGORIAN"]
        if tz:
            lines += VTIMEZONE_BERLIN
        body = ["UID:" + uid, "DTSTAMP:20251215T090000Z", "CREATED:20251215T090000Z",
                "LAST-MODIFIED:20251215T090000Z", "SEQUENCE:0",
                "SUMMARY:" + ical_text(" ".join(rng.choices(WORDS, k=rng.randrange(2, 6))).capitalize())]
        if rng.random() < 0.5:
            body.append("LOCATION:" + ical_text(rng.choice(ROOMS)))
        if rng.random() < 0.4:
            body.append("DESCRIPTION:" + ical_text(" ".join(rng.choices(WORDS, k=rng.randrange(10, 60)))))
        if rng.random() < 0.3:
            org = rng.choice(PEOPLE)
            body.append("ORGANIZER;CN=%s:mailto:%s@example.com" % (org, org.split()[0].lower()))
            for who in rng.sample(PEOPLE, rng.randrange(1, 5)):
                body.append("ATTENDEE;CN=%s;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:"
                            "mailto:%s@example.com" % (who, who.split()[0].lower()))
        body += when
        body += ["STATUS:CONFIRMED", "TRANSP:OPAQUE"]
        if rng.random() < 0.3:
            body += ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M",
                     "DESCRIPTION:Reminder", "END:VALARM"]
        lines += ["BEGIN:VEVENT"] + body + ["END:VEVENT"]
        for ev in extra_vevents:
            lines += ["BEGIN:VEVENT"] + ev + ["END:VEVENT"]
        lines.append("END:VCALENDAR")
        text = "".join(f + "\r\n" for line in lines for f in fold(line))
        events.append(Event(uid, kind, text.encode("utf-8"), spans, exact))
    return events


def changed_version(e: Event, round_: int) -> bytes:
    """The event as a client would PUT it after editing its title (times unchanged, so
    the query expectations still hold)."""
    out = e.ics.replace(b"\r\nSEQUENCE:0\r\n", b"\r\nSEQUENCE:%d\r\n" % (round_ + 1))
    return out.replace(b"\r\nSUMMARY:", b"\r\nSUMMARY:[r%d] " % (round_ + 1), 1)


def overlapping(events: List[Event], window: Tuple[str, str]) -> Set[str]:
    """UIDs of the events with an instance overlapping the window (RFC 4791 9.9: start <
    window end and end > window start; every generated instance has a duration)."""
    lo, hi = (ts(datetime.datetime.strptime(w, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
              for w in window)
    return {e.uid for e in events if any(s < hi and end > lo for s, end in e.spans)}


def growth(latencies: List[float], total: int) -> Dict:
    """For one connection's PUTs in order: the median latency of the first and the last
    tenth, and a least-squares line latency = a + b * (events already stored), extrapolated
    to the time all `total` PUTs would take."""
    n = len(latencies)
    if n < 20:
        return {}
    tenth = max(1, n // 10)
    out = {"first_tenth_p50_ms": round(1000 * statistics.median(latencies[:tenth]), 3),
           "last_tenth_p50_ms": round(1000 * statistics.median(latencies[-tenth:]), 3)}
    mx = (n - 1) / 2
    my = sum(latencies) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    b = sum((i - mx) * (y - my) for i, y in enumerate(latencies)) / sxx
    a = my - b * mx
    out["ms_per_1000_stored"] = round(1e6 * b, 3)
    if n < total:
        est = total * a + b * total * (total - 1) / 2
        out["estimated_full_load_s"] = round(est, 1)
        out["estimated_full_rate"] = round(total / est, 2) if est > 0 else None
    return out


# Run by Radicale's own interpreter while Radicale is stopped: what PUT does for each event
# (read_components, check_and_sanitize_items, Item.prepare, serialize), stored with
# create_collection (Radicale's path for a whole-calendar PUT) and fsync off, then one sync()
# so the history cache behind sync tokens exists for every item, as it does after PUTs.
RADICALE_LOADER = r"""
import json, sys
from radicale import config, storage, item as radicale_item
conf, path, data = sys.argv[1:4]
configuration = config.load([(conf, False)])
configuration.update({"storage": {"_filesystem_fsync": "False"}}, "dav_bench", privileged=True)
st = storage.load(configuration)
items = []
for text in json.load(open(data)):
    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(vobject_items, is_collection=False, tag="VCALENDAR")
    vobject_item, = vobject_items
    it = radicale_item.Item(collection_path=path.strip("/"), vobject_item=vobject_item)
    it.prepare()
    items.append(it)
with st.acquire_lock("w"):
    col = next(iter(st.discover(path)))
    col = st.create_collection(path, items, col.get_meta())
    token, _ = col.sync()
print(json.dumps({"items": len(items), "token": token}))
"""


def radicale_load(server, path: str, events: List[Event]) -> str:
    """Replaces the Radicale collection at path with all the events (see RADICALE_LOADER)."""
    data = os.path.join(server.root, "load.json")
    with open(data, "w") as f:
        json.dump([e.ics.decode("utf-8") for e in events], f)
    server.stop()
    try:
        p = subprocess.run(["/usr/bin/python3", "-c", RADICALE_LOADER, server.conf, path, data],
                           capture_output=True, text=True)
    finally:
        os.unlink(data)
        server.start()
    if p.returncode != 0:
        raise servers.BenchError("loading Radicale failed: %s" % (p.stderr or p.stdout)[-600:])
    return "written by Radicale's storage code, fsync off: %s" % p.stdout.strip()


# --- DAV requests and answers ---------------------------------------------------------------

PROPFIND_ETAG = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                 b'<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:getcontenttype/>'
                 b'</d:prop></d:propfind>')
PROPFIND_POLL = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                 b'<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop>'
                 b'<cs:getctag/><d:sync-token/></d:prop></d:propfind>')
PROPFIND_TOKEN = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                  b'<d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/></d:prop></d:propfind>')


def calendar_query(window: Tuple[str, str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            '<d:prop><d:getetag/><c:calendar-data/></d:prop>'
            '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
            '<c:time-range start="%s" end="%s"/></c:comp-filter></c:comp-filter></c:filter>'
            '</c:calendar-query>' % window).encode()


def multiget(hrefs: List[str]) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            '<d:prop><d:getetag/><c:calendar-data/></d:prop>%s</c:calendar-multiget>'
            % "".join("<d:href>%s</d:href>" % h for h in hrefs)).encode()


def sync_collection(token: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<d:sync-collection xmlns:d="DAV:"><d:sync-token>%s</d:sync-token>'
            '<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>'
            % token).encode()


MKCALENDAR = (b'<?xml version="1.0" encoding="utf-8"?>\n'
              b'<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set>'
              b'<d:prop><d:displayname>%s</d:displayname><c:supported-calendar-component-set>'
              b'<c:comp name="VEVENT"/><c:comp name="VTODO"/></c:supported-calendar-component-set>'
              b'</d:prop></d:set></c:mkcalendar>')


@dataclasses.dataclass
class DavResponse:
    href: str                 # unquoted path
    status: int               # the response's own status, else 200 when it has propstats
    props: Dict[str, str]     # Clark name -> text, for properties in a 200 propstat


def parse_multistatus(body: bytes) -> Tuple[List[DavResponse], Optional[str]]:
    root = ET.fromstring(body)
    if root.tag != DAV + "multistatus":
        raise ValueError("not a multistatus: %s" % root.tag)
    out = []
    for r in root.iter(DAV + "response"):
        href = urllib.parse.unquote((r.findtext(DAV + "href") or "").strip())
        st = r.findtext(DAV + "status")
        props: Dict[str, str] = {}
        for ps in r.findall(DAV + "propstat"):
            code = int((ps.findtext(DAV + "status") or "x 0").split()[1])
            prop = ps.find(DAV + "prop")
            if code == 200 and prop is not None:
                for p in prop:
                    props[p.tag] = p.text or ""
        out.append(DavResponse(href, int(st.split()[1]) if st else 200, props))
    token = root.findtext(DAV + "sync-token")
    return out, token.strip() if token else None


def name_of(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1]


def uid_of(ics: str) -> str:
    for line in ics.replace("\r\n ", "").splitlines():
        if line.startswith("UID:"):
            return line[4:].strip()
    return ""


# --- servers under test ---------------------------------------------------------------------

class Target:
    """One server as the CalDAV client sees it, plus the ETags its PUTs returned."""

    def __init__(self, name: str, server, port: int, login: str, home: str):
        self.name, self.server, self.port, self.home = name, server, port, home
        self.auth = "Basic " + base64.b64encode(
            ("%s:%s" % (login, servers.PASSWORD)).encode()).decode()
        self.etags: Dict[str, Dict[str, str]] = {}   # calendar -> resource name -> ETag

    @property
    def pid(self) -> int:
        return self.server.pid

    def cpu(self) -> float:
        return servers.tree_cpu_seconds(self.pid)

    def cal(self, calendar: str) -> str:
        return self.home + calendar + "/"

    def request(self, method: str, path: str, body: bytes = b"",
                headers: Tuple[Tuple[str, str], ...] = ()) -> bytes:
        head = ["%s %s HTTP/1.1" % (method, urllib.parse.quote(path, safe="/@:")),
                "Host: %s:%d" % (HOST, self.port), "Authorization: " + self.auth,
                "User-Agent: mailark-dav-bench", "Content-Length: %d" % len(body)]
        head += ["%s: %s" % kv for kv in headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def conn(self) -> HttpConn:
        return HttpConn(self.port)

    def timed(self, request: bytes) -> Tuple[float, Response]:
        """Sends `request` on a new connection: the seconds from sending to the last byte of
        the answer, and the answer."""
        c = self.conn()
        try:
            t0 = time.perf_counter()
            r = c.send(request)
            return time.perf_counter() - t0, r
        finally:
            c.close()

    def call(self, method: str, path: str, body: bytes = b"", headers=()) -> Response:
        c = self.conn()
        try:
            return c.send(self.request(method, path, body, headers), head=method == "HEAD")
        finally:
            c.close()

    def put_request(self, calendar: str, e: Event, body: Optional[bytes] = None,
                    if_match: Optional[str] = None) -> bytes:
        cond = ("If-Match", if_match) if if_match else ("If-None-Match", "*")
        return self.request("PUT", self.cal(calendar) + e.name, body or e.ics,
                            (("Content-Type", "text/calendar; charset=utf-8"), cond))

    def report(self, calendar: str, body: bytes, depth: str) -> bytes:
        return self.request("REPORT", self.cal(calendar), body,
                            (("Content-Type", "application/xml; charset=utf-8"),
                             ("Depth", depth)))

    def mkcalendar(self, calendar: str):
        r = self.call("MKCALENDAR", self.cal(calendar), MKCALENDAR % calendar.encode(),
                      (("Content-Type", "application/xml; charset=utf-8"),))
        if r.status != 201:
            raise servers.BenchError("%s: MKCALENDAR %s answered %d %r" % (
                self.name, self.cal(calendar), r.status, r.body[:200]))

    def sync_token(self, calendar: str) -> str:
        r = self.call("PROPFIND", self.cal(calendar), PROPFIND_TOKEN,
                      (("Content-Type", "application/xml; charset=utf-8"), ("Depth", "0")))
        if r.status != 207:
            raise servers.BenchError("%s: PROPFIND sync-token answered %d" % (self.name, r.status))
        rs, _ = parse_multistatus(r.body)
        token = rs[0].props.get(DAV + "sync-token", "") if rs else ""
        if not token:
            raise servers.BenchError("%s: no DAV:sync-token on %s" % (self.name, self.cal(calendar)))
        return token

    def listing(self, calendar: str) -> Tuple[Optional[Response], List[DavResponse]]:
        r = self.call("PROPFIND", self.cal(calendar), PROPFIND_ETAG,
                      (("Content-Type", "application/xml; charset=utf-8"), ("Depth", "1")))
        return r, (parse_multistatus(r.body)[0] if r.status == 207 else [])


def check_listing(t: Target, calendar: str, rs: List[DavResponse], count: int) -> List[str]:
    """Every resource of the calendar with the ETag its PUT returned, nothing else."""
    errs = []
    coll = t.cal(calendar).rstrip("/")
    got = {}
    bad_type = 0
    for r in rs:
        if r.href.rstrip("/") == coll:
            continue
        got[name_of(r.href)] = r.props.get(DAV + "getetag")
        if not r.props.get(DAV + "getcontenttype", "").startswith("text/calendar"):
            bad_type += 1
    want = t.etags.get(calendar, {})
    if len(got) != count or set(got) != set(want):
        errs.append("PROPFIND listed %d resources, expected %d (%d missing, %d unknown)" % (
            len(got), count, len(set(want) - set(got)), len(set(got) - set(want))))
    wrong = [n for n in got if n in want and got[n] != want[n]]
    if wrong:
        errs.append("%d ETags differ from what PUT returned, e.g. %s: %s vs %s" % (
            len(wrong), wrong[0], got[wrong[0]], want[wrong[0]]))
    if bad_type:
        errs.append("%d resources without a text/calendar getcontenttype" % bad_type)
    return errs


# --- measurement helpers -------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    value: Optional[float]     # seconds, or events/s
    server_cpu_s: float
    errors: List[str]
    extra: Dict


class Row:
    def __init__(self, key: str, title: str, unit: str, better: str, reps: int):
        self.key, self.title, self.unit, self.better, self.reps = key, title, unit, better, reps
        self.runs: Dict[str, List[Run]] = {}
        self.notes: List[str] = []
        self.other_cpu_s = 0.0
        self.wall_s = 0.0

    def disturbed(self) -> bool:
        """Other processes used more than 10% of the machine while the row ran."""
        return self.other_cpu_s > max(0.2, DISTURBED * self.wall_s * (os.cpu_count() or 1))

    def value(self, name: str) -> Optional[float]:
        runs = [r for r in self.runs.get(name, []) if r.value is not None]
        if not runs:
            return None
        return statistics.median(r.value for r in runs)

    def ok(self, name: str) -> bool:
        runs = self.runs.get(name, [])
        return bool(runs) and not any(r.errors for r in runs)

    def errors(self, name: str) -> List[str]:
        out = []
        for r in self.runs.get(name, []):
            out += r.errors
        return out

    def ratio(self) -> Optional[float]:
        """> 1 means mailark is better: radicale/mailark for times, mailark/radicale for
        rates."""
        m, d = self.value("mailark"), self.value("radicale")
        if not m or not d:
            return None
        return m / d if self.better == "higher" else d / m

    def latency_ms(self, name: str) -> Optional[float]:
        """Absolute latency: the median time for time rows, the median per-PUT latency for
        throughput rows."""
        if self.unit == "s":
            v = self.value(name)
            return v * 1000 if v is not None else None
        lat = [r.extra.get("p50_ms") for r in self.runs.get(name, []) if r.extra.get("p50_ms")]
        return statistics.median(lat) if lat else None

    def to_json(self) -> Dict:
        r = self.ratio()
        out = {"title": self.title, "unit": self.unit, "better": self.better,
               "repeats": self.reps, "ratio": round(r, 3) if r else None,
               "target_met": bool(r and r >= TARGET_RATIO),
               "notes": self.notes, "other_cpu_s": round(self.other_cpu_s, 2),
               "wall_s": round(self.wall_s, 1), "disturbed": self.disturbed()}
        for name, runs in self.runs.items():
            out[name] = {
                "value": self.value(name), "ok": self.ok(name),
                "latency_ms": self.latency_ms(name),
                "runs": [x.value for x in runs],
                "server_cpu_s": [round(x.server_cpu_s, 3) for x in runs],
                "errors": self.errors(name)[:20],
                "extra": [x.extra for x in runs if x.extra],
            }
        return out


RowFn = Callable[[Target, int], Tuple[Optional[float], List[str], Dict]]


class Bench:
    def __init__(self, args, targets: List[Target], events: List[Event], bulk: List[Event]):
        self.args, self.targets = args, targets
        self.events, self.bulk = events, bulk
        self.by_uid = {e.uid: e for e in events}
        self.rows: List[Row] = []
        # Query answers per server, for comparing the servers: row key -> name -> UIDs.
        self.answers: Dict[str, Dict[str, Set[str]]] = {}

    def ours(self) -> float:
        return own_cpu() + sum(t.cpu() for t in self.targets)

    def measure(self, row: Row, fn: RowFn):
        """Runs fn(target, rep) row.reps times per server, interleaved (mailark, radicale,
        mailark, ...). fn returns (value, errors, extra) and times only what the row is
        about. Server CPU is taken over the whole call."""
        self.rows.append(row)
        _, load = servers.wait_for_quiet(self.ours, self.args.quiet_wait)
        if load >= 0.15:
            row.notes.append("other processes used %.2f CPUs before the row started" % load)
        f0 = servers.foreign_cpu_seconds(self.ours)
        w0 = time.monotonic()
        for rep in range(row.reps):
            for t in self.targets:
                cpu0 = t.cpu()
                try:
                    value, errs, extra = fn(t, rep)
                except (HttpError, OSError, ValueError, ET.ParseError, servers.BenchError) as e:
                    value, errs, extra = None, ["%s: %s" % (type(e).__name__, e)], {}
                row.runs.setdefault(t.name, []).append(Run(value, t.cpu() - cpu0, errs, extra))
        row.other_cpu_s = max(0.0, servers.foreign_cpu_seconds(self.ours) - f0)
        row.wall_s = time.monotonic() - w0
        if row.disturbed():
            row.notes.append("other processes used %.1f CPU s during the row's %.0f s" % (
                row.other_cpu_s, row.wall_s))
        parts = []
        for t in self.targets:
            parts.append("%s %s%s" % (t.name, fmt_value(row.value(t.name), row.unit),
                                      "" if row.ok(t.name) else " (CHECK FAILED)"))
        log("  %-46s %s" % (row.title, ", ".join(parts)))
        for t in self.targets:
            for e in row.errors(t.name)[:3]:
                log("     %s: %s" % (t.name, e))

    # Row 1 ---------------------------------------------------------------------------------
    def put_row(self, calendar: str, events: List[Event], conns: int, create: bool) -> RowFn:
        """PUT the events (If-None-Match: *) over `conns` connections, each taking every
        conns-th event; the clock runs from when all connections start to the last answer.
        A connection takes no new event once --put-budget seconds have passed (Radicale's
        PUT reads every item of the calendar to check the UID is free, so its load is
        quadratic); the rate is then over the events stored so far."""
        budget = self.args.put_budget

        def fn(t: Target, rep: int):
            if create:
                t.mkcalendar(calendar)
            # Authenticate once, untimed (mailark then trusts the password for 5 minutes).
            t.sync_token(calendar)
            share = [[(e, t.put_request(calendar, e)) for e in events[k::conns]]
                     for k in range(conns)]
            etags = t.etags.setdefault(calendar, {})
            lat: List[List[float]] = [[] for _ in range(conns)]
            errors: List[str] = []
            bad = [0] * conns
            lock = threading.Lock()
            barrier = threading.Barrier(conns + 1)
            hc = [t.conn() for _ in range(conns)]
            connects = [0] * conns

            def worker(k: int):
                c = hc[k]
                mine = lat[k]
                barrier.wait()
                deadline = time.perf_counter() + budget
                try:
                    for e, req in share[k]:
                        t0 = time.perf_counter()
                        if t0 > deadline:
                            break
                        r = c.send(req)
                        mine.append(time.perf_counter() - t0)
                        etag = r.headers.get("etag")
                        if r.status != 201 or not etag:
                            bad[k] += 1
                            if bad[k] <= 2:
                                with lock:
                                    errors.append("PUT %s: %d%s %r" % (
                                        e.name, r.status, "" if etag else " without ETag",
                                        r.body[:160]))
                        if etag:
                            etags[e.name] = etag
                except (HttpError, OSError) as ex:
                    with lock:
                        errors.append("connection %d: %s" % (k, ex))
                finally:
                    connects[k] = c.connects
                    c.close()

            threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
            for th in threads:
                th.start()
            barrier.wait()
            t0 = time.perf_counter()
            for th in threads:
                th.join()
            el = time.perf_counter() - t0
            done = sum(len(x) for x in lat)
            ok = done - sum(bad)
            errs = errors[:4]
            if ok != done:
                errs.append("%d of %d PUTs answered 201 with an ETag" % (ok, done))
            all_lat = sorted(x for per in lat for x in per)
            extra = {"elapsed_s": round(el, 3), "events": len(events), "stored": ok,
                     "within_budget": done == len(events), "connections_opened": sum(connects),
                     "p50_ms": round(1000 * all_lat[len(all_lat) // 2], 3) if all_lat else None,
                     "p99_ms": round(1000 * all_lat[int(len(all_lat) * 0.99)], 3) if all_lat else None,
                     "bytes": sum(len(e.ics) for e in events[:done])}
            extra.update(growth(lat[0] if conns == 1 else [], len(events)))
            if done < len(events):
                errs_note = ("%d of %d events stored within the %.0f s budget" % (
                    done, len(events), budget))
                extra["note"] = errs_note
            # Untimed: the calendar holds exactly the stored events with these ETags.
            _, rs = t.listing(calendar)
            errs += check_listing(t, calendar, rs, ok)
            return (ok / el if el else None), errs, extra
        return fn

    def complete_calendar(self, t: Target, calendar: str, events: List[Event]) -> List[str]:
        """Untimed, after row 1a ran out of budget: the rest of the calendar. mailark gets
        the remaining PUTs. Radicale, where each PUT would by then take ~1 s, is stopped and
        the calendar is written through its own storage code (radicale_load below: the same
        items a PUT makes, without fsync), then it is restarted; the ETags the timed PUTs
        returned must still hold."""
        etags = t.etags.setdefault(calendar, {})
        rest = [e for e in events if e.name not in etags]
        if not rest:
            return []
        t0 = time.monotonic()
        errs: List[str] = []
        if t.name == "radicale":
            before = dict(etags)
            how = radicale_load(t.server, t.cal(calendar), events)
            _, rs = t.listing(calendar)
            coll = t.cal(calendar).rstrip("/")
            t.etags[calendar] = {name_of(x.href): x.props.get(DAV + "getetag")
                                 for x in rs if x.href.rstrip("/") != coll}
            changed = [n for n, tag in before.items() if t.etags[calendar].get(n) != tag]
            if changed:
                errs.append("%d events stored by PUT have another ETag after the load, e.g. %s"
                            % (len(changed), changed[0]))
        else:
            c = t.conn()
            try:
                for e in rest:
                    r = c.send(t.put_request(calendar, e))
                    if r.status != 201 or not r.headers.get("etag"):
                        errs.append("PUT %s: %d" % (e.name, r.status))
                    else:
                        etags[e.name] = r.headers["etag"]
            finally:
                c.close()
            how = "%d more PUTs" % len(rest)
        _, rs = t.listing(calendar)
        errs += check_listing(t, calendar, rs, len(events))
        os.sync()
        log("     %s: the other %d events loaded untimed (%s) in %.0f s" % (
            t.name, len(rest), how, time.monotonic() - t0))
        return errs[:5]

    # Row 2 ---------------------------------------------------------------------------------
    def propfind_row(self, calendar: str) -> RowFn:
        def fn(t: Target, rep: int):
            el, r = t.timed(t.request("PROPFIND", t.cal(calendar), PROPFIND_ETAG,
                                      (("Content-Type", "application/xml; charset=utf-8"),
                                       ("Depth", "1"))))
            if r.status != 207:
                return el, ["PROPFIND answered %d %r" % (r.status, r.body[:200])], {}
            rs, _ = parse_multistatus(r.body)
            errs = check_listing(t, calendar, rs, len(self.events))
            return el, errs, {"responses": len(rs), "bytes": len(r.body)} if rep == 0 else {}
        return fn

    # Row 3 ---------------------------------------------------------------------------------
    def query_row(self, key: str, calendar: str, window: Tuple[str, str]) -> RowFn:
        expected = overlapping(self.events, window)
        exact_uids = {e.uid for e in self.events if e.exact}

        def fn(t: Target, rep: int):
            el, r = t.timed(t.report(calendar, calendar_query(window), "1"))
            if r.status != 207:
                return el, ["calendar-query answered %d %r" % (r.status, r.body[:300])], {}
            rs, _ = parse_multistatus(r.body)
            errs = []
            got: Set[str] = set()
            bad_data = 0
            for x in rs:
                data = x.props.get(CALDAV + "calendar-data", "")
                uid = name_of(x.href)[:-4] if x.href.endswith(".ics") else x.href
                if x.status != 200 or uid_of(data) != uid:
                    bad_data += 1
                    continue
                if x.props.get(DAV + "getetag") != t.etags[calendar].get(uid + ".ics"):
                    bad_data += 1
                got.add(uid)
            if bad_data:
                errs.append("%d responses without the event's calendar-data or ETag" % bad_data)
            # Exact for every event whose instances are computed here with certainty;
            # events with an overridden instance are compared between the servers (below).
            miss = (expected - got) & exact_uids
            extra_ = (got - expected) & exact_uids
            if miss or extra_:
                errs.append("%d events missing, %d unexpected (of %d expected), e.g. %s" % (
                    len(miss), len(extra_), len(expected),
                    ", ".join("%s (%s)" % (u, self.by_uid[u].kind)
                              for u in sorted(miss | extra_)[:4])))
            self.answers.setdefault(key, {}).setdefault(t.name, got)
            odd = sorted((got ^ expected) - exact_uids)
            return el, errs, ({"matched": len(got), "expected": len(expected),
                               "bytes": len(r.body),
                               "override_events_unlike_expectation": odd} if rep == 0 else {})
        return fn

    # Row 5 ---------------------------------------------------------------------------------
    def multiget_row(self, calendar: str, names: List[str]) -> RowFn:
        def fn(t: Target, rep: int):
            hrefs = [urllib.parse.quote(t.cal(calendar) + n, safe="/@:") for n in names]
            el, r = t.timed(t.report(calendar, multiget(hrefs), "1"))
            if r.status != 207:
                return el, ["calendar-multiget answered %d %r" % (r.status, r.body[:300])], {}
            rs, _ = parse_multistatus(r.body)
            good = 0
            for x in rs:
                n = name_of(x.href)
                if (x.status == 200 and uid_of(x.props.get(CALDAV + "calendar-data", "")) == n[:-4]
                        and x.props.get(DAV + "getetag") == t.etags[calendar].get(n)):
                    good += 1
            errs = []
            if good != len(names) or len(rs) != len(names):
                errs.append("%d responses, %d with the right calendar-data and ETag, for %d "
                            "hrefs" % (len(rs), good, len(names)))
            return el, errs, {"bytes": len(r.body)} if rep == 0 else {}
        return fn

    # Row 6 ---------------------------------------------------------------------------------
    def poll_row(self, calendar: str) -> RowFn:
        """What a client sends every few minutes to learn whether anything changed."""
        seen: Dict[str, Tuple[str, str]] = {}

        def fn(t: Target, rep: int):
            el, r = t.timed(t.request("PROPFIND", t.cal(calendar), PROPFIND_POLL,
                                      (("Content-Type", "application/xml; charset=utf-8"),
                                       ("Depth", "0"))))
            if r.status != 207:
                return el, ["PROPFIND Depth 0 answered %d %r" % (r.status, r.body[:200])], {}
            rs, _ = parse_multistatus(r.body)
            props = rs[0].props if len(rs) == 1 else {}
            got = (props.get("{http://calendarserver.org/ns/}getctag", ""),
                   props.get(DAV + "sync-token", ""))
            errs = []
            if len(rs) != 1 or not all(got):
                errs.append("%d responses, getctag %r, sync-token %r" % (len(rs), got[0], got[1]))
            elif seen.setdefault(t.name, got) != got:
                errs.append("getctag or sync-token changed while nothing changed: %r -> %r" % (
                    seen[t.name], got))
            return el, errs, {}
        return fn

    # Row 4 ---------------------------------------------------------------------------------
    def sync_row(self, calendar: str, changes: int, deletes: int) -> RowFn:
        """Each round, per server: take a sync token (PROPFIND DAV:sync-token), PUT new
        versions of `changes` events (If-Match) and DELETE `deletes` others, then time
        the sync-collection REPORT with the old token. Every round changes other events."""
        order = random.Random(self.args.seed + 5).sample(range(len(self.events)), len(self.events))

        def fn(t: Target, rep: int):
            per = changes + deletes
            pick = [self.events[i] for i in order[rep * per:(rep + 1) * per]]
            changed, deleted = pick[:changes], pick[changes:]
            if len(pick) < per:
                raise servers.BenchError("not enough events for round %d" % rep)
            old = t.sync_token(calendar)
            etags = t.etags[calendar]
            c = t.conn()
            errs = []
            no_etag = 0
            try:
                for e in changed:
                    r = c.send(t.put_request(calendar, e, changed_version(e, rep), etags[e.name]))
                    if r.status not in (200, 201, 204):
                        errs.append("PUT %s (If-Match) answered %d %r" % (e.name, r.status, r.body[:160]))
                    if r.headers.get("etag"):
                        etags[e.name] = r.headers["etag"]
                    else:
                        no_etag += 1
                        etags[e.name] = None
                for e in deleted:
                    r = c.send(t.request("DELETE", t.cal(calendar) + e.name, b"",
                                         (("If-Match", etags[e.name]),)))
                    if r.status not in (200, 204):
                        errs.append("DELETE %s answered %d" % (e.name, r.status))
                    etags.pop(e.name, None)
            finally:
                c.close()
            el, r = t.timed(t.report(calendar, sync_collection(old), "0"))
            if r.status != 207:
                return el, errs + ["sync-collection answered %d %r" % (r.status, r.body[:300])], {}
            rs, token = parse_multistatus(r.body)
            got_changed = {name_of(x.href): x.props.get(DAV + "getetag") for x in rs
                           if x.status == 200}
            got_deleted = {name_of(x.href) for x in rs if x.status == 404}
            want_changed = {e.name for e in changed}
            want_deleted = {e.name for e in deleted}
            if set(got_changed) != want_changed or got_deleted != want_deleted:
                errs.append("sync-collection returned %d changed (%d of the %d changed) and %d "
                            "removed (%d of the %d deleted)" % (
                                len(got_changed), len(set(got_changed) & want_changed),
                                len(want_changed), len(got_deleted),
                                len(got_deleted & want_deleted), len(want_deleted)))
            wrong = [n for n, tag in got_changed.items() if etags.get(n) and tag != etags[n]]
            if wrong:
                errs.append("%d ETags differ from what the PUTs returned" % len(wrong))
            if not token or token == old:
                errs.append("no new sync-token")
            extra = {"responses": len(rs), "bytes": len(r.body)}
            if no_etag:
                extra["puts_without_etag"] = no_etag
            return el, errs, extra
        return fn


# --- report --------------------------------------------------------------------------------

def fmt_value(v: Optional[float], unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return "%.1f ms" % (v * 1000) if v < 10 else "%.1f s" % v
    if unit == "ev/s":
        return "%.0f ev/s" % v
    return "%g %s" % (v, unit)


def print_table(rows: List[Row], names: List[str]):
    head = "%-44s | %22s | %22s | %9s | %s" % ("row", "mailark", "radicale", "ratio",
                                               "target >= %gx" % TARGET_RATIO)
    log(head)
    log("-" * len(head))
    for row in rows:
        cells = []
        for n in ("mailark", "radicale"):
            if n not in row.runs:
                cells.append("skipped")
                continue
            mark = "" if row.ok(n) else " !"
            cell = fmt_value(row.value(n), row.unit)
            if row.unit == "ev/s" and row.latency_ms(n) is not None:
                cell += " (%.2f ms)" % row.latency_ms(n)
            cells.append(cell + mark)
        r = row.ratio()
        log("%-44s | %22s | %22s | %9s | %s%s" % (
            row.title, cells[0], cells[1], "%.1fx" % r if r else "-",
            ("met" if r >= TARGET_RATIO else "MISSED") if r else "-",
            " ~" if row.disturbed() else ""))


def print_details(rows: List[Row]):
    log()
    log("details: every run in order (value / server CPU s for the whole run incl. setup of "
        "the round)")
    for row in rows:
        for n, runs in row.runs.items():
            log("  %-44s %-8s %s" % (row.title[:44], n, "  ".join(
                "%s/%.2f" % (fmt_value(r.value, row.unit).split()[0], r.server_cpu_s)
                for r in runs)))
            if row.unit == "ev/s":
                for r in runs:
                    if r.extra:
                        x = r.extra
                        log("  %-44s %-8s %d of %d stored in %.1f s; per PUT p50 %s ms, p99 %s "
                            "ms; %d connections opened" % (
                                "", n, x.get("stored", 0), x.get("events", 0),
                                x.get("elapsed_s", 0), x.get("p50_ms"), x.get("p99_ms"),
                                x.get("connections_opened", 0)))
                        if "first_tenth_p50_ms" in x:
                            log("  %-44s %-8s p50 of the first tenth %s ms, of the last tenth %s "
                                "ms; fit: +%s ms per 1000 events stored%s" % (
                                    "", n, x["first_tenth_p50_ms"], x["last_tenth_p50_ms"],
                                    x["ms_per_1000_stored"],
                                    "; all %d would take ~%.0f s (%.1f ev/s)" % (
                                        x["events"], x["estimated_full_load_s"],
                                        x["estimated_full_rate"])
                                    if x.get("estimated_full_load_s") else ""))
        for note in row.notes:
            log("  %-44s note: %s" % (row.title[:44], note))


# --- main ----------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description="CalDAV benchmark: mailark vs Radicale")
    ap.add_argument("--mailark", default=os.path.join(HERE, "..", "build", "mailark"),
                    help="mailark binary (default build/mailark)")
    ap.add_argument("--count", type=int, default=10000, help="events per calendar")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply --count (and so the 1%% of changes) by this, e.g. 0.05")
    ap.add_argument("--seed", type=int, default=1, help="event generator seed")
    ap.add_argument("--conns", type=int, default=8, help="connections for row 1b (default 8)")
    ap.add_argument("--put-budget", type=float, default=150.0,
                    help="seconds each server may spend on each PUT row (default 150); "
                         "the rate is over the events stored by then")
    ap.add_argument("--repeat", type=int, default=5, help="runs of rows 2-5 (default 5)")
    ap.add_argument("--changes", type=int, default=None,
                    help="events changed per sync round (default 1%% of the events)")
    ap.add_argument("--deletes", type=int, default=2, help="events deleted per sync round")
    ap.add_argument("--multiget", type=int, default=100, help="hrefs in the multiget")
    ap.add_argument("--rows", default="1,2,3,4,5,6",
                    help="rows to run (default all; row 1a always runs: it loads the calendar)")
    ap.add_argument("--servers", default="mailark,radicale")
    ap.add_argument("--workdir", default=None,
                    help="where the data directories go (default $TMPDIR or /tmp); a real disk")
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--quiet-wait", type=float, default=5.0,
                    help="before each row, wait up to this many seconds for other processes "
                         "to leave the CPUs idle (default 5)")
    args = ap.parse_args()
    args.count = max(10, int(args.count * args.scale))
    if args.changes is None:
        args.changes = max(1, args.count // 100)
    args.multiget = min(args.multiget, args.count)
    which = [s.strip() for s in args.servers.split(",") if s.strip()]
    return servers.in_scratch_dir(args.workdir, "mailark-dav-bench-", args.keep,
                                  lambda workdir, root: bench(args, which, workdir, root))


def bench(args, which: List[str], workdir: str, root: str) -> int:
    started = datetime.datetime.now()
    t_start = time.monotonic()
    binary = None
    if "mailark" in which:
        args.mailark = os.path.abspath(args.mailark)
        binary = servers.snapshot_binary(args.mailark, root)
        if not binary:
            log("error: mailark binary %s not found or not runnable (build it with `make build`)"
                % args.mailark)
            return 2
    if "radicale" in which:
        missing = servers.Radicale.available()
        if missing:
            log("error: " + missing)
            return 2
    if servers.fs_type(workdir) in ("tmpfs", "ramfs"):
        log("warning: %s is %s: fsync is free there" % (workdir, servers.fs_type(workdir)))

    log("CalDAV benchmark  %s" % started.strftime("%Y-%m-%d %H:%M:%S"))
    machine = servers.describe_machine(workdir)
    mversion = servers.mailark_version(binary) if binary else None
    msha = servers.sha256_file(binary)[:16] if binary else None
    rversion = servers.Radicale.version() if "radicale" in which else None
    if mversion:
        log("mailark: %s (%s, sha256 %s..., copied for the whole run), defaults, Basic auth "
            "(argon2id, verified passwords cached 5 min)" % (mversion, args.mailark, msha))
    if rversion:
        log("radicale: %s (Debian, /usr/bin/python3 %s), multifilesystem storage with fsync, "
            "htpasswd plain, rights owner_only, max_connections 20" % (
                rversion, platform.python_version()))

    t = time.monotonic()
    events = generate(args.count, args.seed, "ev")
    bulk = generate(args.count, args.seed + 1000, "bulk")
    kinds: Dict[str, int] = {}
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    sizes = sorted(len(e.ics) for e in events)
    data_info = {"count": len(events), "seed": args.seed, "kinds": kinds,
                 "bytes": sum(sizes), "median_bytes": sizes[len(sizes) // 2],
                 "max_bytes": sizes[-1],
                 "expected": {"week": len(overlapping(events, WEEK)),
                              "month": len(overlapping(events, MONTH))},
                 "windows": {"week": WEEK, "month": MONTH}}
    log("data: %d events per calendar, %.1f MB, median %d B, max %d B; %s (%.1f s to generate)"
        % (len(events), data_info["bytes"] / 1e6, data_info["median_bytes"], sizes[-1],
           ", ".join("%s %d" % kv for kv in sorted(kinds.items())), time.monotonic() - t))
    log("expected matches: week %s-%s %d, month %s-%s %d" % (
        WEEK[0], WEEK[1], data_info["expected"]["week"], MONTH[0], MONTH[1],
        data_info["expected"]["month"]))

    targets: List[Target] = []
    mk = rd = None
    errors: List[str] = []
    result: Dict = {}
    try:
        if "mailark" in which:
            mk = servers.Mailark(binary, os.path.join(root, "m"), DOMAIN, [USER])
            os.makedirs(mk.root)
            mk.setup()
            mk.start()
            targets.append(Target("mailark", mk, mk.ports["http"], USER,
                                  "/dav/calendars/%s/" % USER))
        if "radicale" in which:
            rroot = os.path.join(root, "r")
            os.makedirs(rroot)
            rd = servers.Radicale(rroot, [USER.split("@")[0]])
            rd.setup()
            rd.start()
            targets.append(Target("radicale", rd, rd.port, USER.split("@")[0],
                                  "/%s/" % USER.split("@")[0]))
        # The calendar the rows use: mailark's default calendar exists after `user add`;
        # Radicale's is created (its principal collection appears on the first request).
        for tg in targets:
            if tg.name == "radicale":
                tg.mkcalendar("default")

        b = Bench(args, targets, events, bulk)
        rows = set(args.rows.split(","))
        log("rows:")
        b.measure(Row("put_1", "1a PUT %d events, 1 connection" % len(events), "ev/s",
                      "higher", 1), b.put_row("default", events, 1, create=False))
        for tg in targets:
            errs = b.complete_calendar(tg, "default", events)
            if errs:
                raise servers.BenchError("%s: loading the calendar: %s" % (tg.name, "; ".join(errs)))
        if "1" in rows:
            b.measure(Row("put_n", "1b PUT %d events, %d connections" % (len(bulk), args.conns),
                          "ev/s", "higher", 1), b.put_row("bulk", bulk, args.conns, create=True))
        if "2" in rows:
            b.measure(Row("propfind", "2 PROPFIND Depth 1 (%d events)" % len(events), "s",
                          "lower", args.repeat), b.propfind_row("default"))
        if "3" in rows:
            b.measure(Row("query_week", "3a calendar-query 1 week (%d match)" %
                          data_info["expected"]["week"], "s", "lower", args.repeat),
                      b.query_row("query_week", "default", WEEK))
            b.measure(Row("query_month", "3b calendar-query 1 month (%d match)" %
                          data_info["expected"]["month"], "s", "lower", args.repeat),
                      b.query_row("query_month", "default", MONTH))
        if "5" in rows:
            names = [e.name for e in random.Random(args.seed + 4).sample(events, args.multiget)]
            b.measure(Row("multiget", "5 calendar-multiget %d hrefs" % len(names), "s", "lower",
                          args.repeat), b.multiget_row("default", names))
        if "6" in rows:
            b.measure(Row("poll", "6 PROPFIND Depth 0 getctag+sync-token", "s", "lower",
                          args.repeat), b.poll_row("default"))
        # Last: it changes the calendar.
        if "4" in rows:
            b.measure(Row("sync", "4 sync-collection after %d changed, %d deleted" % (
                args.changes, args.deletes), "s", "lower", args.repeat),
                b.sync_row("default", args.changes, args.deletes))

        # Cross-server checks ------------------------------------------------------------
        disagreements = {}
        for key, per in b.answers.items():
            if len(per) == 2:
                a, d = per.get("mailark", set()), per.get("radicale", set())
                if a != d:
                    only_m, only_r = sorted(a - d), sorted(d - a)
                    disagreements[key] = {"only_mailark": only_m, "only_radicale": only_r}
                    errors.append("%s: the servers disagree: %d only from mailark (%s), %d only "
                                  "from radicale (%s)" % (
                                      key, len(only_m), ", ".join(
                                          "%s %s" % (u, b.by_uid[u].kind) for u in only_m[:3]),
                                      len(only_r), ", ".join(
                                          "%s %s" % (u, b.by_uid[u].kind) for u in only_r[:3])))
        for row in b.rows:
            for tg in targets:
                if tg.name in row.runs and not row.ok(tg.name):
                    errors.append("%s / %s: %s" % (row.title, tg.name,
                                                   "; ".join(row.errors(tg.name)[:2])))
        for tg in targets:
            tg.server.before_stop()

        # Report --------------------------------------------------------------------------
        total_s = time.monotonic() - t_start
        log()
        log("== CalDAV, calendar of %d events (%.1f MB), nproc %d ==" % (
            len(events), data_info["bytes"] / 1e6, os.cpu_count()))
        print_table(sorted(b.rows, key=lambda r: r.title), [x.name for x in targets])
        print_details(b.rows)
        log()
        log("ratio: radicale/mailark for times, mailark/radicale for events/s; >1 means mailark "
            "is better. '!' = a check failed (wrong answer); see the errors below. '~' = other "
            "processes used over %d%% of the CPUs during the row (figures skewed)."
            % (DISTURBED * 100))
        log("Times are medians of %d runs, from connecting and sending the request to the last "
            "byte of the answer (a new loopback connection per timed request on both servers; "
            "Radicale closes it after each answer anyway); PUT rows show the median per-PUT "
            "latency in parentheses." % args.repeat)
        for row in b.rows:
            if row.key.startswith("query"):
                for name, runs in row.runs.items():
                    odd = next((r.extra.get("override_events_unlike_expectation") for r in runs
                                if r.extra), None)
                    if odd:
                        log("note: %s / %s: %d events with an overridden instance differ from "
                            "the expectation computed here: %s" % (
                                row.title, name, len(odd), ", ".join(odd[:5])))
        for tg in targets:
            for p in tg.server.problems()[:5]:
                log("log %s: %s" % (tg.name, p))
        if errors:
            log("CHECKS FAILED:")
            for e in errors:
                log("  " + e)
        else:
            log("all checks passed (201 + ETag for every PUT, listings and ETags, query UIDs "
                "against the expectation and between the servers, multiget data, sync changes)")
        log("total runtime %.0f s" % total_s)

        result = {
            "benchmark": "dav",
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round(total_s, 1),
            "machine": dict(machine, bench_max_rss_bytes=resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss * 1024),
            "mailark": {"binary": args.mailark, "version": mversion, "sha256_prefix": msha,
                        "vmhwm_bytes": mk.hwm, "disk_bytes": mk.disk_usage()} if mk else None,
            "radicale": {"version": rversion, "auth": "htpasswd plain", "storage":
                         "multifilesystem, fsync", "max_connections": 20,
                         "vmhwm_bytes": rd.hwm, "disk_bytes": rd.disk_usage()} if rd else None,
            "data": data_info,
            "settings": {"conns": args.conns, "repeat": args.repeat, "changes": args.changes,
                         "deletes": args.deletes, "multiget": args.multiget,
                         "target_ratio": TARGET_RATIO},
            "rows": {row.key: row.to_json() for row in b.rows},
            "disagreements": disagreements,
            "all_verified": not errors,
            "errors": errors,
            "log_problems": {tg.name: tg.server.problems() for tg in targets},
        }
    except (servers.BenchError, HttpError, OSError, ValueError) as e:
        log("FAILED: %s: %s" % (type(e).__name__, e))
        for tg in targets:
            for p in tg.server.log_tail(10):
                log("log %s: %s" % (tg.name, p))
        errors.append(str(e))
        result = {"benchmark": "dav", "started": started.isoformat(timespec="seconds"),
                  "machine": machine, "all_verified": False, "errors": errors}
    finally:
        for srv in (mk, rd):
            if srv:
                try:
                    srv.stop()
                except servers.BenchError as e:
                    errors.append(str(e))
                    log("stop: %s" % e)

    os.makedirs(args.results_dir, exist_ok=True)
    out = os.path.join(args.results_dir, "dav-%s.json" % started.strftime("%Y%m%d-%H%M%S"))
    with open(out, "w") as f:
        json.dump(result, f, indent=2, default=str)
    log("results: %s" % out)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
