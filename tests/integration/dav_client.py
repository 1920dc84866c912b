"""A small WebDAV/CalDAV/CardDAV client for mailark's black-box DAV tests (Python stdlib only).

`Dav` sends one request at a time over a keep-alive http.client connection (plain or TLS, Basic
auth, optional source address) and returns a `Response` with the status, every header and the
raw body; nothing is hidden or retried except a request on a keep-alive connection the server
had already closed. `parse_multistatus()` turns a 207 body into {href: {clark name: (status,
element)}} plus the per-href status, the preconditions named in DAV:error elements and the
sync token. The `*_body` functions build PROPFIND/PROPPATCH/MKCALENDAR/MKCOL/REPORT bodies;
`ics_components()` and `freebusy_periods()` read iCalendar text back for assertions.

Also here: `start_server()` (an instance with tenants, users and options, started) and
`raw_request()` for bytes http.client refuses to send (NUL, bare "..", bogus request lines).
"""

import base64
import hashlib
import http.client
import json
import re
import socket
import ssl
import xml.etree.ElementTree as ET

import imap_client

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"

PREFIXES = {DAV: "d", CALDAV: "c", CARDDAV: "card", CS: "cs", APPLE: "ical"}
NSDECL = " ".join(f'xmlns:{p}="{ns}"' for ns, p in PREFIXES.items())

PW = "secret-pw"


def clark(ns, name):
    return f"{{{ns}}}{name}"


def d(name):
    return clark(DAV, name)


def c(name):
    return clark(CALDAV, name)


def card(name):
    return clark(CARDDAV, name)


def split_clark(name):
    m = re.fullmatch(r"\{([^}]*)\}(.+)", name)
    return (m.group(1), m.group(2)) if m else ("", name)


def etag_of(body: bytes):
    """The strong ETag mailark gives a stored body: the quoted SHA-256 hex digest."""
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def xml_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ---------------------------------------------------------------------------------------------
# Responses


class Response:
    def __init__(self, method, path, status, reason, headers, body):
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    @property
    def etag(self):
        return self.header("ETag")

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def xml(self):
        return ET.fromstring(self.body)

    def multistatus(self):
        if self.status != 207:
            raise AssertionError(f"wanted 207 Multi-Status\n{self}")
        return parse_multistatus(self.body)

    def preconditions(self):
        """Clark names of the children of a DAV:error body ([] when the body is not one)."""
        return error_names(self.body)

    def __str__(self):
        body = self.text
        if len(body) > 3000:
            body = body[:3000] + f"... ({len(self.body)} bytes)"
        hdrs = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.path} -> {self.status} {self.reason}\n{hdrs}\n\n{body}"

    __repr__ = __str__


def error_names(body):
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    if root.tag != d("error"):
        return []
    return [ch.tag for ch in root]


def status_code(text):
    """200 from "HTTP/1.1 200 OK"."""
    m = re.match(r"\s*HTTP/\d(?:\.\d)?\s+(\d{3})", text or "")
    if not m:
        raise AssertionError(f"malformed DAV:status {text!r}")
    return int(m.group(1))


class Entry:
    """One DAV:response of a multistatus."""

    def __init__(self, href):
        self.href = href
        self.status = None  # the response-level DAV:status, when there is one
        self.props = {}  # clark name -> (status, element)
        self.errors = []  # preconditions in the response's or its propstats' DAV:error
        self.propstat_errors = {}  # clark name -> preconditions of its propstat

    def prop(self, name):
        """The element of a property found with 200, else None."""
        st, el = self.props.get(name, (None, None))
        return el if st == 200 else None

    def prop_status(self, name):
        return self.props.get(name, (None, None))[0]

    def text(self, name):
        el = self.prop(name)
        return None if el is None else (el.text or "")

    def hrefs(self, name):
        el = self.prop(name)
        return [] if el is None else [(x.text or "").strip() for x in el.iter(d("href"))]

    def children(self, name):
        el = self.prop(name)
        return [] if el is None else [ch.tag for ch in el]

    def __repr__(self):
        props = {k: (v[0], ET.tostring(v[1], encoding="unicode")[:200])
                 for k, v in self.props.items()}
        return f"Entry({self.href!r}, status={self.status}, props={props}, errors={self.errors})"


class Multistatus:
    def __init__(self):
        self.entries = {}  # href -> Entry
        self.order = []  # hrefs as they came, duplicates included
        self.sync_token = None
        self.raw = b""

    def __getitem__(self, href):
        return self.entries[href]

    def __contains__(self, href):
        return href in self.entries

    def hrefs(self):
        return set(self.entries)

    @property
    def props(self):
        """{href: {clark name: (status, element)}}"""
        return {h: e.props for h, e in self.entries.items()}

    @property
    def status(self):
        """{href: response-level status or None}"""
        return {h: e.status for h, e in self.entries.items()}

    def found(self):
        """Hrefs answered with properties (no response-level status)."""
        return {h for h, e in self.entries.items() if e.status is None}

    def with_status(self, code):
        return {h for h, e in self.entries.items() if e.status == code}

    def __repr__(self):
        return self.raw.decode(errors="replace")


def parse_multistatus(body):
    root = ET.fromstring(body)
    if root.tag != d("multistatus"):
        raise AssertionError(f"root is {root.tag}, not DAV:multistatus:\n{body[:2000]!r}")
    ms = Multistatus()
    ms.raw = body
    for resp in root.findall(d("response")):
        hrefs = [(x.text or "").strip() for x in resp.findall(d("href"))]
        if not hrefs:
            raise AssertionError(f"DAV:response without href:\n{body[:2000]!r}")
        st = resp.find(d("status"))
        for href in hrefs:
            ms.order.append(href)
            e = ms.entries.setdefault(href, Entry(href))
            if st is not None:
                e.status = status_code(st.text)
            err = resp.find(d("error"))
            if err is not None:
                e.errors += [ch.tag for ch in err]
            for ps in resp.findall(d("propstat")):
                code = status_code(ps.findtext(d("status")))
                perr = ps.find(d("error"))
                pnames = [ch.tag for ch in perr] if perr is not None else []
                e.errors += pnames
                prop = ps.find(d("prop"))
                for el in (list(prop) if prop is not None else []):
                    e.props[el.tag] = (code, el)
                    if pnames:
                        e.propstat_errors[el.tag] = pnames
    tok = root.find(d("sync-token"))
    if tok is not None:
        ms.sync_token = (tok.text or "").strip()
    return ms


# ---------------------------------------------------------------------------------------------
# Request bodies


def el(name, content="", /, **attrs):
    """An element in XML text: el(d("href"), "/x") -> <d:href>/x</d:href>. Namespaces without
    a known prefix are declared on the element itself. Attribute names may end in "_"."""
    ns, local = split_clark(name)
    a = "".join(f' {k.rstrip("_")}="{xml_text(str(v))}"' for k, v in attrs.items())
    if ns in PREFIXES:
        q = f"{PREFIXES[ns]}:{local}"
    elif ns:
        q = f"x:{local}"
        a = f' xmlns:x="{xml_text(ns)}"' + a
    else:
        q = local
    return f"<{q}{a}/>" if content == "" else f"<{q}{a}>{content}</{q}>"


def doc(name, content="", /, **attrs):
    """A whole document: the root gets every well-known namespace declaration."""
    ns, local = split_clark(name)
    a = "".join(f' {k.rstrip("_")}="{xml_text(str(v))}"' for k, v in attrs.items())
    q = f"{PREFIXES[ns]}:{local}"
    return f'<?xml version="1.0" encoding="utf-8"?>\n<{q} {NSDECL}{a}>{content}</{q}>'


def prop_list(props):
    return el(d("prop"), "".join(p if p.startswith("<") else el(p) for p in props))


def propfind_body(props=None, allprop=False, propname=False):
    if propname:
        return doc(d("propfind"), el(d("propname")))
    if allprop or props is None:
        return doc(d("propfind"), el(d("allprop")))
    return doc(d("propfind"), prop_list(props))


def proppatch_body(set_=(), remove=()):
    """set_: [(clark name, inner XML already escaped)]; remove: [clark name]. Document order is
    the order given: all sets, then all removes."""
    parts = []
    if set_:
        parts.append(el(d("set"), prop_list([el(n, v) if v != "" else el(n) for n, v in set_])))
    if remove:
        parts.append(el(d("remove"), prop_list(list(remove))))
    return doc(d("propertyupdate"), "".join(parts))


def mkcalendar_body(displayname=None, components=None, description=None):
    props = []
    if displayname is not None:
        props.append(el(d("displayname"), xml_text(displayname)))
    if description is not None:
        props.append(el(c("calendar-description"), xml_text(description)))
    if components is not None:
        props.append(el(c("supported-calendar-component-set"),
                        "".join(el(c("comp"), name=x) for x in components)))
    return doc(c("mkcalendar"), el(d("set"), prop_list(props)))


def mkcol_body(resourcetypes, displayname=None):
    props = [el(d("resourcetype"), "".join(el(t) for t in resourcetypes))]
    if displayname is not None:
        props.append(el(d("displayname"), xml_text(displayname)))
    return doc(d("mkcol"), el(d("set"), prop_list(props)))


def time_range(start=None, end=None):
    attrs = {}
    if start:
        attrs["start"] = start
    if end:
        attrs["end"] = end
    return el(c("time-range"), **attrs)


def text_match(text, negate=False, collation=None, match_type=None, ns=CALDAV):
    attrs = {}
    if collation:
        attrs["collation"] = collation
    if negate:
        attrs["negate-condition"] = "yes"
    if match_type:
        attrs["match-type"] = match_type
    a = "".join(f' {k}="{xml_text(v)}"' for k, v in attrs.items())
    p = PREFIXES[ns]
    return f"<{p}:text-match{a}>{xml_text(text)}</{p}:text-match>"


def comp_filter(name, *children):
    return el(c("comp-filter"), "".join(children), name=name)


def prop_filter(name, *children, ns=CALDAV, test=None):
    attrs = {"name": name}
    if test:
        attrs["test"] = test
    a = "".join(f' {k}="{xml_text(v)}"' for k, v in attrs.items())
    p = PREFIXES[ns]
    inner = "".join(children)
    return f"<{p}:prop-filter{a}>{inner}</{p}:prop-filter>" if inner else f"<{p}:prop-filter{a}/>"


def is_not_defined(ns=CALDAV):
    return f"<{PREFIXES[ns]}:is-not-defined/>"


def calendar_data(expand=None, comp=None):
    """The CALDAV:calendar-data property request; expand=(start, end) asks for expansion."""
    inner = comp or ""
    if expand:
        inner += el(c("expand"), start=expand[0], end=expand[1])
    return el(c("calendar-data"), inner)


def calendar_query(filter_xml, props=(d("getetag"),), timezone=None):
    """filter_xml: the content of CALDAV:filter (normally one VCALENDAR comp-filter)."""
    tz = el(c("timezone"), xml_text(timezone)) if timezone else ""
    return doc(c("calendar-query"), prop_list(list(props)) + el(c("filter"), filter_xml) + tz)


def event_range_query(start, end, props=(d("getetag"),), component="VEVENT", timezone=None):
    return calendar_query(comp_filter("VCALENDAR", comp_filter(component, time_range(start, end))),
                          props=props, timezone=timezone)


def multiget_body(kind, hrefs, props):
    root = c("calendar-multiget") if kind == "calendar" else card("addressbook-multiget")
    return doc(root, prop_list(list(props)) + "".join(el(d("href"), xml_text(x)) for x in hrefs))


def freebusy_body(start, end):
    return doc(c("free-busy-query"), time_range(start, end))


def sync_body(token, props=(d("getetag"),), limit=None, level="1"):
    lim = el(d("limit"), el(d("nresults"), str(limit))) if limit is not None else ""
    return doc(d("sync-collection"), el(d("sync-token"), xml_text(token or "")) +
               el(d("sync-level"), level) + lim + prop_list(list(props)))


def addressbook_query(filters, test=None, limit=None, props=(d("getetag"),)):
    attrs = f' test="{test}"' if test else ""
    lim = f"<card:limit><card:nresults>{limit}</card:nresults></card:limit>" if limit else ""
    return doc(card("addressbook-query"),
               prop_list(list(props)) +
               f"<card:filter{attrs}>{''.join(filters)}</card:filter>" + lim)


# ---------------------------------------------------------------------------------------------
# The client


class Dav:
    """One keep-alive HTTP connection to mailark's DAV listener."""

    def __init__(self, port, user=None, password=PW, host="127.0.0.1", tls=False, context=None,
                 source=None, timeout=30):
        self.port, self.host, self.tls, self.source, self.timeout = port, host, tls, source, timeout
        self.context = context
        self.user, self.password = user, password
        self.conn = None

    def _connect(self):
        src = (self.source, 0) if self.source else None
        if self.tls:
            ctx = self.context or insecure_context()
            self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                    context=ctx, source_address=src)
        else:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout,
                                                   source_address=src)

    def auth_header(self, user=None, password=None):
        u = self.user if user is None else user
        p = self.password if password is None else password
        return "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()

    def request(self, method, path, body=None, headers=None, depth=None, auth=True,
                content_type=None):
        hdrs = {}
        if auth and self.user is not None:
            hdrs["Authorization"] = self.auth_header()
        if depth is not None:
            hdrs["Depth"] = str(depth)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is not None:
            hdrs["Content-Type"] = content_type or "application/xml; charset=utf-8"
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                res = Response(method, path, r.status, r.reason, r.getheaders(), data)
                if r.will_close:
                    self.close()
                return res
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    # convenience
    def options(self, path, **kw):
        return self.request("OPTIONS", path, **kw)

    def propfind(self, path, props=None, depth=0, body=None, **kw):
        if body is None:
            body = propfind_body(props)
        return self.request("PROPFIND", path, body, depth=depth, **kw)

    def props(self, path, props, depth=0):
        """PROPFIND that must succeed; returns the Multistatus."""
        r = self.propfind(path, props, depth)
        if r.status != 207:
            raise AssertionError(f"PROPFIND failed\n{r}")
        return r.multistatus()

    def proppatch(self, path, set_=(), remove=(), body=None, **kw):
        return self.request("PROPPATCH", path, body or proppatch_body(set_, remove), **kw)

    def report(self, path, body, depth=None, **kw):
        return self.request("REPORT", path, body, depth=depth, **kw)

    def get(self, path, headers=None, **kw):
        return self.request("GET", path, headers=headers, **kw)

    def head(self, path, headers=None, **kw):
        return self.request("HEAD", path, headers=headers, **kw)

    def put(self, path, data, content_type=None, if_match=None, if_none_match=None, headers=None,
            **kw):
        if content_type is None:
            content_type = ("text/vcard; charset=utf-8" if path.endswith(".vcf")
                            else "text/calendar; charset=utf-8")
        hdrs = dict(headers or {})
        if if_match is not None:
            hdrs["If-Match"] = if_match
        if if_none_match is not None:
            hdrs["If-None-Match"] = if_none_match
        return self.request("PUT", path, data, headers=hdrs, content_type=content_type, **kw)

    def delete(self, path, if_match=None, **kw):
        return self.request("DELETE", path, headers={"If-Match": if_match} if if_match else None,
                            **kw)

    def mkcalendar(self, path, displayname=None, components=None, body=None, **kw):
        if body is None and (displayname is not None or components is not None):
            body = mkcalendar_body(displayname, components)
        return self.request("MKCALENDAR", path, body, **kw)

    def mkcol(self, path, resourcetypes=None, displayname=None, body=None, **kw):
        if body is None and resourcetypes is not None:
            body = mkcol_body(resourcetypes, displayname)
        return self.request("MKCOL", path, body, **kw)

    def sync(self, path, token, props=(d("getetag"),), limit=None):
        return self.report(path, sync_body(token, props, limit), depth=0)

    def listing(self, path):
        """{href: getetag} of a collection's members (PROPFIND Depth 1), the collection excluded."""
        ms = self.props(path, [d("getetag"), d("resourcetype")], depth=1)
        return {h: e.text(d("getetag")) for h, e in ms.entries.items() if h != path}

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


def insecure_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def raw_request(port, data: bytes, host="127.0.0.1", timeout=20):
    """Sends bytes as they are and returns (status, headers dict lower-case, body) of the first
    response; status None when the server closed without one."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        if b"\r\n\r\n" not in buf:
            return None, {}, buf
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, hdrs, rest[:n]
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# Paths


def principal(addr):
    return f"/dav/principals/{addr}/"


def cal_home(addr):
    return f"/dav/calendars/{addr}/"


def book_home(addr):
    return f"/dav/addressbooks/{addr}/"


def cal(addr, segment="default"):
    return f"/dav/calendars/{addr}/{segment}/"


def book(addr, segment="default"):
    return f"/dav/addressbooks/{addr}/{segment}/"


# ---------------------------------------------------------------------------------------------
# iCalendar / vCard text


def unfold(text):
    return re.sub(r"\r?\n[ \t]", "", text)


def parse_line(line):
    """'DTSTART;TZID=Europe/Berlin:2026...' -> ('DTSTART', {'TZID': 'Europe/Berlin'}, '2026...')"""
    # the value starts at the first colon outside a quoted parameter value
    inq, i = False, 0
    for i, ch in enumerate(line):
        if ch == '"':
            inq = not inq
        elif ch == ":" and not inq:
            break
    head, value = line[:i], line[i + 1:]
    parts = re.findall(r'(?:[^;"]|"[^"]*")+', head)
    name = parts[0].upper() if parts else ""
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.upper()] = v.strip('"')
    return name, params, value


def ics_components(text):
    """Every component of an iCalendar text as (NAME, {PROP: [(params, value)]}), in order;
    properties belong to the innermost open component."""
    out, stack = [], []
    for line in unfold(text).splitlines():
        if not line.strip():
            continue
        name, params, value = parse_line(line)
        if name == "BEGIN":
            comp = (value.upper(), {})
            out.append(comp)
            stack.append(comp)
        elif name == "END":
            if stack:
                stack.pop()
        elif stack:
            stack[-1][1].setdefault(name, []).append((params, value))
    return out


def components(text, name):
    return [props for n, props in ics_components(text) if n == name]


def prop1(comp, name):
    v = comp.get(name)
    return v[0][1] if v else None


_DUR = re.compile(r"([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(text):
    """Seconds of an iCalendar DURATION."""
    m = _DUR.match(text)
    if not m:
        raise AssertionError(f"bad duration {text!r}")
    sign, w, dd, hh, mm, ss = m.groups()
    secs = (int(w or 0) * 7 * 86400 + int(dd or 0) * 86400 + int(hh or 0) * 3600 +
            int(mm or 0) * 60 + int(ss or 0))
    return -secs if sign == "-" else secs


def utc_seconds(text):
    import calendar
    import time
    return calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ"))


def utc_text(secs):
    import time
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(secs))


def freebusy_periods(text):
    """Sorted (FBTYPE, start, end) of every FREEBUSY period in the VFREEBUSY components, with
    durations resolved to end times (UTC text)."""
    out = []
    for fb in components(text, "VFREEBUSY"):
        for params, value in fb.get("FREEBUSY", []):
            fbtype = params.get("FBTYPE", "BUSY").upper()
            for period in value.split(","):
                start, _, end = period.strip().partition("/")
                if end.startswith(("P", "+P", "-P")):
                    end = utc_text(utc_seconds(start) + parse_duration(end))
                out.append((fbtype, start, end))
    return sorted(out)


def fold(line):
    """Folds a content line at 75 octets (RFC 5545 3.1), never inside a UTF-8 sequence."""
    raw = line.encode()
    if len(raw) <= 75:
        return line
    out, cur = [], b""
    for ch in line:
        b = ch.encode()
        if len(cur) + len(b) > (75 if not out else 74):
            out.append(cur)
            cur = b""
        cur += b
    out.append(cur)
    return "\r\n ".join(x.decode() for x in out)


def vcard(uid, fn, *lines, version="3.0"):
    body = ["BEGIN:VCARD", f"VERSION:{version}", f"UID:{uid}", f"FN:{fn}"]
    if version == "3.0" and not any(l.startswith("N:") for l in lines):
        parts = fn.split(" ", 1)
        body.append(f"N:{parts[1] if len(parts) > 1 else ''};{parts[0]};;;")
    body += list(lines)
    body.append("END:VCARD")
    return ("\r\n".join(fold(l) for l in body) + "\r\n").encode()


def vcalendar(*components, tz=None):
    """A VCALENDAR around components (each a list of lines or a str with CRLF-less lines)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mailark tests//EN"]
    if tz:
        lines += tz.strip().splitlines()
    for comp in components:
        lines += comp.strip().splitlines() if isinstance(comp, str) else list(comp)
    lines.append("END:VCALENDAR")
    return ("\r\n".join(fold(l.strip()) for l in lines) + "\r\n").encode()


def vevent(uid, *lines, dtstamp="20260101T000000Z"):
    return ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{dtstamp}"] + list(lines) + ["END:VEVENT"]


def vtodo(uid, *lines, dtstamp="20260101T000000Z"):
    return ["BEGIN:VTODO", f"UID:{uid}", f"DTSTAMP:{dtstamp}"] + list(lines) + ["END:VTODO"]


def event(uid, start="20260301T100000Z", end="20260301T110000Z", summary=None, extra=()):
    lines = [f"DTSTART:{start}", f"DTEND:{end}", f"SUMMARY:{summary or 'event ' + uid}"]
    return vcalendar(vevent(uid, *lines, *extra))


BERLIN_TZ = """
BEGIN:VTIMEZONE
TZID:{tzid}
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""


def berlin_tz(tzid="Europe/Berlin"):
    return BERLIN_TZ.format(tzid=tzid)


# ---------------------------------------------------------------------------------------------
# Servers


def start_server(name, users=("alice@acme.test",), tenants=("acme.test",), options=(),
                 password=PW):
    """A new instance with tenants, users and options [(section, key, toml value)], started
    (imap_client.start_server), with its HTTP listener; returns (inst, ports dict)."""
    inst, ports = imap_client.start_server(name, users=users, tenants=tenants, options=options,
                                           password=password)
    if "http" not in ports:
        raise AssertionError(f"no http port in ports.json: {ports}\n" + inst.log_tail())
    return inst, ports


def dump_folders(inst, addr, db="db1"):
    """{folder name: folder dict} of one account in `mailark db dump DB --user ADDR`."""
    out = json.loads(inst.cli("db", "dump", db, "--user", addr).out)
    for a in out["accounts"]:
        if a["address"] == addr:
            return {f["name"]: f for f in a["folders"]}
    return {}
