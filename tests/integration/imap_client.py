"""A raw IMAP client for mailark's black-box IMAP tests (Python stdlib only).

`Imap` sends exact bytes and returns every response: `cmd("SELECT INBOX")` sends a tagged
command and collects the untagged responses (with their literals inline) until the tagged
reply. Synchronizing literals wait for the "+" continuation, non-synchronizing ones
(LITERAL+) do not. `parse()` turns response text into Python values and `parse_fetch()` splits
a FETCH response into its items, keeping each item's raw text for exact comparisons.

Also here: starting a server for IMAP tests (`start_server`), delivering over LMTP
(`deliver`), and normalising a BODYSTRUCTURE for comparison (`norm_bodystructure`).
"""

import base64
import json
import re
import socket
import ssl
import time

import harness as h

CRLF = b"\r\n"
DEFAULT_TIMEOUT = 20


class ConnectionClosed(Exception):
    pass


class Lit:
    """A literal to send inside a command: {n} (synchronizing) or {n+} (LITERAL+)."""

    def __init__(self, data, sync=True):
        self.data = data.encode() if isinstance(data, str) else data
        self.sync = sync


class Result:
    """The answer to one tagged command."""

    def __init__(self, tag, line, untagged, continuations):
        self.tag = tag
        self.line = line  # the tagged line, decoded, without CRLF
        self.untagged = untagged  # list of str: "* ..." responses, literals inline
        self.continuations = continuations  # list of str: "+ ..." lines seen
        rest = line[len(tag) + 1:] if line.startswith(tag + " ") else line
        parts = rest.split(" ", 1)
        self.status = parts[0].upper()
        self.text = parts[1] if len(parts) > 1 else ""
        m = re.match(r"\[([^\]]*)\]", self.text)
        self.code = m.group(1) if m else None

    @property
    def ok(self):
        return self.status == "OK"

    def code_name(self):
        return self.code.split(" ", 1)[0].upper() if self.code else None

    def lines(self, kind=None):
        """Untagged responses, optionally only those whose first word after '*' (or after the
        number) is `kind` (case-insensitive), e.g. lines("FETCH"), lines("LIST")."""
        if kind is None:
            return list(self.untagged)
        kind = kind.upper()
        out = []
        for u in self.untagged:
            w = u.split(" ", 3)
            if len(w) > 1 and w[1].upper() == kind:
                out.append(u)
            elif len(w) > 2 and w[1].isdigit() and w[2].upper().rstrip(")") == kind:
                out.append(u)
        return out

    def __str__(self):
        return "\n".join(self.untagged + [self.line])

    __repr__ = __str__


class Imap:
    """One IMAP connection. Every response is collected, nothing is hidden."""

    def __init__(self, port, host="127.0.0.1", tls=False, timeout=DEFAULT_TIMEOUT, greeting=True,
                 source=None):
        """`source`: local address to connect from (e.g. "127.0.0.7", to look like another
        client to per-address limits)."""
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            sock = insecure_context().wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buf = b""
        self.serial = 0
        self.pending_untagged = []  # untagged responses read outside of a command (IDLE)
        self.greeting = self.read_response() if greeting else None

    # ---- low level
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionClosed(str(e)) from e

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as e:
            raise ConnectionClosed(str(e)) from e
        if not chunk:
            raise ConnectionClosed("connection closed by server")
        self.buf += chunk

    def read_line_bytes(self):
        while CRLF not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(CRLF, 1)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response_bytes(self):
        """One response with its literals inline (literal announcements kept, CRLF kept after
        them), without the final CRLF."""
        out = b""
        while True:
            line = self.read_line_bytes()
            out += line
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            out += CRLF + self.read_exact(int(m.group(1)))

    def read_response(self):
        return self.read_response_bytes().decode("utf-8", errors="surrogateescape")

    def closed_by_server(self, timeout=5):
        """True when the server closes the connection within `timeout` (data read meanwhile
        is kept in self.buf)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._fill()
        except ConnectionClosed:
            return True
        except (socket.timeout, TimeoutError):
            return False
        finally:
            try:
                self.sock.settimeout(DEFAULT_TIMEOUT)
            except OSError:
                pass

    def rest_lines(self):
        """Whatever is buffered, split into lines (after closed_by_server)."""
        return [l.decode(errors="replace") for l in self.buf.split(CRLF) if l]

    def next_tag(self):
        self.serial += 1
        return f"t{self.serial}"

    # ---- commands
    def cmd(self, *parts, tag=None):
        """Sends one tagged command made of str/bytes parts and Lit literals, returns a Result.

        Parts are joined without separators: cmd("APPEND INBOX ", Lit(msg)). A synchronizing
        literal waits for the '+' continuation; if a tagged reply comes instead, it is
        returned (the rest of the command is not sent)."""
        tag = self.next_tag() if tag is None else tag
        untagged, conts = [], []
        chunk = tag.encode() + b" " if tag != "" else b""
        for p in parts:
            if isinstance(p, Lit):
                chunk += b"{%d%s}\r\n" % (len(p.data), b"" if p.sync else b"+")
                if p.sync:
                    self.send(chunk)
                    chunk = b""
                    while True:
                        r = self.read_response()
                        if r.startswith("+"):
                            conts.append(r)
                            break
                        if r.startswith("* "):
                            untagged.append(r)
                            continue
                        return Result(tag, r, untagged, conts)
                chunk += p.data
            else:
                chunk += p.encode() if isinstance(p, str) else p
        self.send(chunk + CRLF)
        return self.collect(tag, untagged, conts)

    def collect(self, tag, untagged=None, conts=None):
        """Reads responses until the tagged reply for `tag`."""
        untagged = [] if untagged is None else untagged
        conts = [] if conts is None else conts
        while True:
            r = self.read_response()
            if r.startswith("* "):
                untagged.append(r)
            elif r.startswith("+"):
                conts.append(r)
            elif r.split(" ", 1)[0] == tag:
                return Result(tag, r, untagged, conts)
            else:
                raise AssertionError(f"unexpected response while waiting for {tag}: {r!r}")

    def raw(self, data, tag):
        """Sends raw bytes (a whole command with CRLF) and collects until `tag` answers."""
        self.send(data)
        return self.collect(tag)

    # ---- conveniences
    def login(self, user, password):
        r = self.cmd(f"LOGIN {quote(user)} {quote(password)}")
        if not r.ok:
            raise AssertionError(f"LOGIN {user} failed: {r}")
        return r

    def select(self, box, examine=False, params=""):
        r = self.cmd(f"{'EXAMINE' if examine else 'SELECT'} {quote(box)}{params}")
        if not r.ok:
            raise AssertionError(f"SELECT {box} failed: {r}")
        return r

    def must(self, *parts):
        r = self.cmd(*parts)
        if not r.ok:
            raise AssertionError(f"command {parts!r} failed: {r}")
        return r

    def append(self, box, message, flags=None, date=None, sync=True):
        args = f"APPEND {quote(box)}"
        if flags is not None:
            args += f" ({flags})"
        if date is not None:
            args += f' "{date}"'
        return self.cmd(args + " ", Lit(message, sync))

    def fetch(self, seqset, items, uid=False):
        """FETCH and return {seq: {ITEM: value}} of the FETCH responses (merged per seq)."""
        r = self.must(f"{'UID ' if uid else ''}FETCH {seqset} {items}")
        return fetch_map(r)

    def starttls(self):
        r = self.cmd("STARTTLS")
        if not r.ok:
            raise AssertionError(f"STARTTLS failed: {r}")
        if self.buf:
            raise AssertionError(f"data after STARTTLS OK: {self.buf!r}")
        self.sock = insecure_context().wrap_socket(self.sock, server_hostname="localhost")
        return r

    def logout(self):
        try:
            self.cmd("LOGOUT")
        except (ConnectionClosed, OSError):
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def insecure_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plain_b64(user, password, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# Response parsing


class QStr(str):
    """A quoted string (as opposed to an atom)."""


class LitStr(bytes):
    """A literal string (bytes as sent)."""


class ParseError(Exception):
    pass


class _Parser:
    def __init__(self, data):
        self.d = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
        self.i = 0

    def peek(self):
        return self.d[self.i:self.i + 1]

    def sp(self):
        if self.peek() != b" ":
            raise ParseError(f"expected SP at {self.i}: {self.d[self.i:self.i + 40]!r}")
        self.i += 1

    def value(self):
        c = self.peek()
        if c == b"(":
            self.i += 1
            out = []
            if self.peek() == b")":
                self.i += 1
                return out
            while True:
                out.append(self.value())
                c = self.peek()
                if c == b")":
                    self.i += 1
                    return out
                if c == b"(" and isinstance(out[-1], list):
                    continue  # address lists and multipart bodies: "(...)(...)"
                if c != b" ":
                    raise ParseError(f"expected SP or ) at {self.i}: {self.d[self.i:self.i + 40]!r}")
                self.i += 1
        if c == b'"':
            self.i += 1
            s = bytearray()
            while True:
                if self.i >= len(self.d):
                    raise ParseError("unterminated quoted string")
                b = self.d[self.i]
                self.i += 1
                if b == 0x22:
                    return QStr(bytes(s).decode("utf-8", "surrogateescape"))
                if b == 0x5C:
                    b = self.d[self.i]
                    self.i += 1
                s.append(b)
        if c in (b"{", b"~") and re.match(rb"~?\{\d+\}\r\n", self.d[self.i:]):
            m = re.match(rb"~?\{(\d+)\}\r\n", self.d[self.i:])
            n = int(m.group(1))
            start = self.i + m.end()
            self.i = start + n
            if self.i > len(self.d):
                raise ParseError("literal shorter than announced")
            return LitStr(self.d[start:start + n])
        return self.atom()

    def atom(self):
        start = self.i
        depth = 0
        while self.i < len(self.d):
            b = self.d[self.i:self.i + 1]
            if b == b"[":
                depth += 1
            elif b == b"]":
                depth -= 1
            elif depth == 0 and (b in b" ()\"{" or b == b"\r" or b == b"\n"):
                break
            self.i += 1
        a = self.d[start:self.i].decode("utf-8", "surrogateescape")
        if not a:
            raise ParseError(f"empty atom at {start}: {self.d[start:start + 40]!r}")
        if a.upper() == "NIL":
            return None
        if a.isdigit():
            return int(a)
        return a


def parse(text):
    """Parses one IMAP value (list, string, atom, number, NIL) from the start of `text`."""
    p = _Parser(text)
    v = p.value()
    if p.i != len(p.d):
        raise ParseError(f"trailing data after value: {p.d[p.i:p.i + 60]!r}")
    return v


def parse_values(text):
    """Parses SP-separated values up to the end of `text`."""
    p = _Parser(text)
    out = []
    while p.i < len(p.d):
        out.append(p.value())
        if p.i < len(p.d):
            p.sp()
    return out


_FETCH_RE = re.compile(r"^\* (\d+) FETCH \(", re.I)


def parse_fetch(line):
    """'* n FETCH (...)' -> (n, {NAME: value}, {NAME: raw text of value}). Names are
    upper-cased item names with section and origin, e.g. 'BODY[HEADER.FIELDS (FROM)]',
    'BODY[]<0>'. Values: str/QStr/int/None/list/LitStr."""
    m = _FETCH_RE.match(line)
    if not m:
        raise ParseError(f"not a FETCH response: {line[:80]!r}")
    seq = int(m.group(1))
    p = _Parser(line)
    p.i = len(line[:m.end()].encode("utf-8", "surrogateescape"))
    items, raws = {}, {}
    if p.peek() == b")":
        p.i += 1
    else:
        while True:
            name = p.atom()
            if isinstance(name, int) or name is None:
                raise ParseError(f"bad FETCH item name in {line[:120]!r}")
            p.sp()
            vstart = p.i
            val = p.value()
            raws[name.upper()] = p.d[vstart:p.i].decode("utf-8", "surrogateescape")
            items[name.upper()] = val
            c = p.peek()
            if c == b")":
                p.i += 1
                break
            p.sp()
    if p.i != len(p.d):
        raise ParseError(f"trailing data after FETCH: {p.d[p.i:p.i + 60]!r}")
    return seq, items, raws


def fetch_map(result, raw=False):
    """{seq: {ITEM: value}} from every FETCH response of a Result (merged per seq)."""
    out = {}
    for u in result.untagged:
        if _FETCH_RE.match(u):
            seq, items, raws = parse_fetch(u)
            out.setdefault(seq, {}).update(raws if raw else items)
    return out


def text(v):
    """A parsed string value as str (literals decoded as UTF-8)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    return v


def deep_text(v):
    if isinstance(v, list):
        return [deep_text(x) for x in v]
    if isinstance(v, (bytes, str)):
        return str(text(v))
    return v


def seq_set(text_value):
    """'1:3,7' -> [1, 2, 3, 7]."""
    out = []
    for part in str(text_value).split(","):
        if ":" in part:
            a, b = part.split(":")
            a, b = int(a), int(b)
            out += list(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


def search_numbers(result):
    """Numbers of the untagged SEARCH response(s) of a Result (RFC 3501 7.2.5)."""
    lines = result.lines("SEARCH")
    if len(lines) != 1:
        raise AssertionError(f"expected exactly one untagged SEARCH, got:\n{result}")
    parts = lines[0].split()[2:]
    # CONDSTORE: "(MODSEQ n)" at the end
    nums = []
    for p in parts:
        if p.startswith("("):
            break
        nums.append(int(p))
    return nums


def esearch(result):
    """The single ESEARCH response as (tag or None, uid: bool, {NAME: value})."""
    lines = result.lines("ESEARCH")
    if len(lines) != 1:
        raise AssertionError(f"expected exactly one untagged ESEARCH, got:\n{result}")
    vals = parse_values(lines[0][len("* ESEARCH"):].lstrip(" "))
    tag = None
    if vals and isinstance(vals[0], list):
        corr = vals.pop(0)
        if len(corr) != 2 or str(corr[0]).upper() != "TAG":
            raise AssertionError(f"bad search correlator in {lines[0]}")
        tag = str(corr[1])
    uid = False
    if vals and isinstance(vals[0], str) and vals[0].upper() == "UID":
        uid = True
        vals.pop(0)
    if len(vals) % 2:
        raise AssertionError(f"odd ESEARCH return data in {lines[0]}")
    data = {}
    for i in range(0, len(vals), 2):
        data[str(vals[i]).upper()] = vals[i + 1]
    return tag, uid, data


def status_items(result, box=None):
    """{ITEM: int} of the untagged STATUS response."""
    lines = result.lines("STATUS")
    if len(lines) != 1:
        raise AssertionError(f"expected exactly one untagged STATUS, got:\n{result}")
    vals = parse_values(lines[0][len("* STATUS "):])
    if len(vals) != 2 or not isinstance(vals[1], list):
        raise AssertionError(f"bad STATUS response {lines[0]}")
    if box is not None and text(vals[0]) != box:
        raise AssertionError(f"STATUS for {vals[0]!r}, expected {box!r}")
    it = vals[1]
    return {str(it[i]).upper(): it[i + 1] for i in range(0, len(it), 2)}


def list_entries(result, kind="LIST"):
    """[(flags lowercased set, delimiter, name, extended-data list)] of LIST/LSUB responses."""
    out = []
    for line in result.lines(kind):
        vals = parse_values(line[len(f"* {kind} "):])
        flags = {str(f).lower() for f in vals[0]}
        out.append((flags, text(vals[1]), text(vals[2]), vals[3:]))
    return out


def list_names(result, kind="LIST"):
    return [e[2] for e in list_entries(result, kind)]


# ---------------------------------------------------------------------------------------------
# BODYSTRUCTURE normalisation


def _lower(v):
    return v.lower() if isinstance(v, str) else v


def _decode_2047(v):
    import email.header
    if "=?" not in v:
        return v
    try:
        return str(email.header.make_header(email.header.decode_header(v)))
    except Exception:
        return v


def _norm_params(p):
    """A parameter list as [(name, value)] with RFC 2231 continuations and charsets and RFC
    2047 words decoded: ("name*" "UTF-8''%E2%82%AC") and ("name" "\u20ac") are the same
    parameter, and so are ("n*0" "a" "n*1" "b") and ("n" "ab")."""
    if not isinstance(p, list):
        return p
    import urllib.parse
    pairs = [(str(text(p[i])).lower(), text(p[i + 1])) for i in range(0, len(p) - 1, 2)]
    out, segs = [], {}
    for name, value in pairs:
        m = re.fullmatch(r"([^*]+)(?:\*(\d+))?(\*)?", name)
        if not m or (m.group(2) is None and m.group(3) is None):
            out.append((name, value))
            continue
        base = m.group(1)
        if base not in segs:
            segs[base] = []
            out.append((base, None))
        segs[base].append((int(m.group(2) or 0), bool(m.group(3)), value))
    result = []
    for name, value in out:
        if value is None:
            parts = sorted(segs[name], key=lambda x: x[0])
            charset = "us-ascii"
            raw = b""
            for i, (n, ext, v) in enumerate(parts):
                if ext:
                    if i == 0 and v.count("'") >= 2:
                        charset, _, v = v.split("'", 2)
                    raw += urllib.parse.unquote_to_bytes(v)
                else:
                    raw += v.encode("utf-8", "surrogateescape")
            try:
                value = raw.decode(charset or "us-ascii")
            except (LookupError, UnicodeDecodeError):
                value = raw.decode("utf-8", "replace")
        result.append((name, _decode_2047(value)))
    return result


def _norm_disp(d):
    if isinstance(d, list) and len(d) == 2:
        return [_lower(text(d[0])), _norm_params(d[1])]
    return deep_text(d)


def _norm_lang(l):
    if isinstance(l, (str, bytes)):
        return [text(l).lower()]
    if isinstance(l, list):
        return [text(x).lower() for x in l]
    return l


def _pad(ext, n):
    return list(ext) + [None] * (n - len(ext))


def norm_body(b, pad=True):
    """Normalises a parsed BODY or BODYSTRUCTURE for comparison: what RFC 3501 / 9051 leave
    open is made uniform. Case-insensitive tokens (type, subtype, encoding, parameter names,
    disposition type, language tags) are lower-cased; a single language string becomes a
    one-element list (body-fld-lang allows both); parameters are RFC 2231/2047-decoded;
    literals become str; omitted trailing extension fields become NIL (the grammar makes
    them optional) unless pad=False."""
    if not isinstance(b, list):
        raise AssertionError(f"not a body structure: {b!r}")
    if b and isinstance(b[0], list):  # multipart
        i = 0
        parts = []
        while i < len(b) and isinstance(b[i], list):
            parts.append(norm_body(b[i], pad))
            i += 1
        out = parts + [_lower(text(b[i]))]
        ext = list(b[i + 1:])
        if ext or pad:
            ext = _pad(ext, 4) if pad else ext
            out.append(_norm_params(ext[0]))
            if len(ext) > 1:
                out.append(_norm_disp(ext[1]))
            if len(ext) > 2:
                out.append(_norm_lang(ext[2]))
            out += [deep_text(x) for x in ext[3:]]
        return out
    t, st = _lower(text(b[0])), _lower(text(b[1]))
    out = [t, st, _norm_params(b[2]), deep_text(b[3]), deep_text(b[4]), _lower(text(b[5])), b[6]]
    i = 7
    if t == "message" and st in ("rfc822", "global"):
        out += [deep_text(b[7]), norm_body(b[8], pad), b[9]]
        i = 10
    elif t == "text":
        out.append(b[7])
        i = 8
    ext = list(b[i:])
    if ext or pad:
        ext = _pad(ext, 4) if pad else ext
        out.append(deep_text(ext[0]))  # md5
        if len(ext) > 1:
            out.append(_norm_disp(ext[1]))
        if len(ext) > 2:
            out.append(_norm_lang(ext[2]))
        out += [deep_text(x) for x in ext[3:]]
    return out


def strip_extensions(b):
    """BODYSTRUCTURE -> BODY: the same structure without extension data (RFC 3501 7.4.2)."""
    if b and isinstance(b[0], list):
        i = 0
        parts = []
        while i < len(b) and isinstance(b[i], list):
            parts.append(strip_extensions(b[i]))
            i += 1
        return parts + [b[i]]
    t, st = _lower(text(b[0])), _lower(text(b[1]))
    if t == "message" and st in ("rfc822", "global"):
        return list(b[:8]) + [strip_extensions(b[8]), b[9]]
    if t == "text":
        return list(b[:8])
    return list(b[:7])


def has_extensions(b):
    return norm_body(b, pad=False) != norm_body(strip_extensions(b), pad=False)


def eight_bit_in_quoted(raw):
    """Quoted strings in a response that hold 8-bit octets (RFC 3501 9: a quoted string is
    7-bit; 8-bit text must be a literal unless UTF8=ACCEPT is enabled)."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    bad, i = [], 0
    while i < len(data):
        m = re.match(rb"\{(\d+)\}\r\n", data[i:])
        if data[i:i + 1] == b"{" and m:
            i += m.end() + int(m.group(1))
            continue
        if data[i:i + 1] == b'"':
            j = i + 1
            while j < len(data) and data[j:j + 1] != b'"':
                j += 2 if data[j:j + 1] == b"\\" else 1
            if any(c >= 0x80 for c in data[i:j]):
                bad.append(data[i:j + 1].decode("utf-8", "replace"))
            i = j + 1
            continue
        i += 1
    return bad


# ---------------------------------------------------------------------------------------------
# Servers and delivery


def start_server(name, users=("alice@acme.test",), tenants=("acme.test",), options=(),
                 password="secret-pw", quotas=None):
    """A new instance with tenants, users (password `password`) and options
    [(section, key, toml_value)]; returns (inst, ports dict)."""
    inst = h.Instance(name)
    for section, key, value in options:
        inst.set_option(section, key, value)
    for t in tenants:
        inst.add_tenant(t)
    for u in users:
        inst.add_user(u, password=password, quota=(quotas or {}).get(u))
    inst.start()
    with open(inst.ports_file) as f:
        ports = json.load(f)
    return inst, ports


def deliver(lmtp_port, rcpt, message, mail_from="sender@remote.test"):
    c = h.LMTP(lmtp_port)
    try:
        _, rr, dr = c.transaction(mail_from, [rcpt], message)
        if rcpt not in dr or dr[rcpt].code != 250:
            raise AssertionError(f"LMTP delivery to {rcpt} failed: {rr} {dr}")
        c.cmd("QUIT")
    finally:
        c.close()


def msg(subject="hello", body="Hello world.\r\n", frm="Alice <alice@remote.test>",
        to="Bob <bob@acme.test>", date="Mon, 7 Feb 1994 21:52:25 -0800", extra=(),
        message_id=None):
    """A small CRLF message."""
    hdrs = [f"From: {frm}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if message_id:
        hdrs.append(f"Message-ID: {message_id}")
    hdrs += list(extra)
    return ("\r\n".join(hdrs) + "\r\n\r\n" + body).encode()


def wait_for(pred, timeout=5.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


class UserPool:
    """Users created by background threads (`mailark user add` takes a moment each) and
    handed out one per test, so that tests do not see each other's mail. take() waits for
    the next user that is ready; tests run while the rest are still being created."""

    def __init__(self, inst, domain="acme.test", count=40, prefix="u", password="secret-pw",
                 threads=8):
        import concurrent.futures
        import queue
        self.inst, self.domain, self.prefix, self.password = inst, domain, prefix, password
        self.serial = 0
        self.ready = queue.Queue()
        self.pending = count
        self.executor = concurrent.futures.ThreadPoolExecutor(threads)
        for _ in range(count):
            self.executor.submit(self._background, self._name())

    def _background(self, address):
        try:
            self._add(address)
            self.ready.put(address)
        except BaseException as e:  # handed to the test that takes this slot
            self.ready.put(e)

    def _add(self, address, quota=None):
        # concurrent `user add` runs may find the directory locked ("database is locked"):
        # retry those
        for attempt in range(40):
            r = self.inst.cli("user", "add", address, "--password-stdin",
                              *(["--quota", quota] if quota else []),
                              input=self.password + "\n", expect=None)
            if r.rc == 0:
                return
            if "locked" not in r.err or attempt == 39:
                raise AssertionError(f"user add failed\n{r}")
            time.sleep(0.05 * (attempt + 1))

    def _name(self):
        self.serial += 1
        return f"{self.prefix}{self.serial}@{self.domain}"

    def take(self, quota=None):
        if quota is None and self.pending > 0:
            self.pending -= 1
            got = self.ready.get(timeout=300)
            if isinstance(got, BaseException):
                raise got
            return got
        a = self._name()
        self._add(a, quota)
        return a

    def close(self):
        self.executor.shutdown(wait=True, cancel_futures=True)


def apply_expunges(uids, lines):
    """Applies '* n EXPUNGE' responses (in order) to a list of UIDs in sequence order."""
    uids = list(uids)
    for l in lines:
        m = re.match(r"^\* (\d+) EXPUNGE$", l, re.I)
        if m:
            n = int(m.group(1))
            if not 1 <= n <= len(uids):
                raise AssertionError(f"EXPUNGE of sequence number {n} with {len(uids)} messages")
            del uids[n - 1]
    return uids


def vanished(result, earlier=None):
    """UIDs listed by the VANISHED responses of a Result (earlier: only (EARLIER) ones when
    True, only live ones when False)."""
    out = []
    for l in result.untagged:
        m = re.match(r"^\* VANISHED (\(EARLIER\) )?([0-9:,]+)$", l, re.I)
        if m and (earlier is None or bool(m.group(1)) == earlier):
            out += seq_set(m.group(2))
    return out
