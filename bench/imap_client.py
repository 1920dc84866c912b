"""A small IMAP client for benchmarks (raw sockets, stdlib only).

Each `Conn` sends one command at a time and reads every response line up to the tagged
reply, following literals ({n} / {n+}) so that a FETCH of 20,000 messages costs the client
one readline() per line. Responses are kept as raw bytes; `parse_fetch` turns one FETCH
response into a dict after the clock has stopped. APPEND uses LITERAL+ (RFC 7888): the
message follows the command in the same write, without waiting for a continuation.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Dict, List, Optional, Tuple

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")


class ImapError(Exception):
    pass


def quote(s: str) -> bytes:
    """An IMAP quoted string (RFC 3501 quoted; only for text without CR/LF)."""
    return b'"' + s.encode("utf-8").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 600.0, bufsize: int = 1 << 16):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb", buffering=bufsize)
        self.n = 0
        self.greeting = self.response()
        if not self.greeting.startswith((b"* OK", b"* PREAUTH")):
            raise ImapError("greeting: %r" % self.greeting[:200])

    # --- wire ----------------------------------------------------------------------------
    def response(self) -> bytes:
        """One response: a line plus, for every literal it announces, the literal's octets
        and the rest of the line after it."""
        line = self.rfile.readline()
        if not line:
            raise ImapError("connection closed by server")
        if not line.endswith(b"}\r\n"):
            return line
        parts = [line]
        while True:
            m = _LITERAL.search(line)
            if not m:
                break
            n = int(m.group(1))
            data = self.rfile.read(n)
            if len(data) != n:
                raise ImapError("connection closed inside a literal")
            parts.append(data)
            line = self.rfile.readline()
            if not line:
                raise ImapError("connection closed by server")
            parts.append(line)
        return b"".join(parts)

    def send(self, tag: bytes, command: bytes, literal: Optional[bytes] = None):
        if literal is None:
            self.sock.sendall(tag + b" " + command + b"\r\n")
        else:
            # LITERAL+: "{n+}" and the octets right away, then the end of the command line.
            self.sock.sendall(b"%s %s {%d+}\r\n%s\r\n" % (tag, command, len(literal), literal))

    def next_tag(self) -> bytes:
        self.n += 1
        return b"A%d" % self.n

    def finish(self, tag: bytes, collect: bool = True) -> Tuple[bytes, List[bytes]]:
        """Read responses up to the tagged reply for tag. Returns (tagged line, untagged
        responses). Raises ImapError unless the reply is OK."""
        untagged: List[bytes] = []
        prefix = tag + b" "
        while True:
            r = self.response()
            if r.startswith(prefix):
                if r[len(prefix):len(prefix) + 2] != b"OK":
                    raise ImapError("%s -> %s" % (tag.decode(), r.decode("utf-8", "replace").strip()))
                return r, untagged
            if r.startswith(b"+"):
                raise ImapError("unexpected continuation request: %r" % r[:200])
            if collect:
                untagged.append(r)

    def command(self, command: bytes, literal: Optional[bytes] = None,
                collect: bool = True) -> Tuple[bytes, List[bytes]]:
        tag = self.next_tag()
        self.send(tag, command, literal)
        try:
            return self.finish(tag, collect)
        except ImapError as e:
            raise ImapError("%s: %s" % (command[:60].decode("utf-8", "replace"), e)) from None

    # --- commands --------------------------------------------------------------------------
    def login(self, user: str, password: str) -> bytes:
        tagged, _ = self.command(b"LOGIN " + quote(user) + b" " + quote(password))
        return tagged

    def capabilities(self) -> List[str]:
        _, untagged = self.command(b"CAPABILITY")
        for r in untagged:
            if r.upper().startswith(b"* CAPABILITY "):
                return r[13:].decode().split()
        return []

    def logout(self):
        try:
            self.command(b"LOGOUT")
        except (ImapError, OSError):
            pass
        self.close()

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


def wait_for_greeting(host: str, port: int, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            c = Conn(host, port, 5.0)
            c.logout()
            return
        except (OSError, ImapError) as e:
            last = str(e)
        time.sleep(0.05)
    raise ImapError("no IMAP greeting on %s:%d within %.0f s (%s)" % (host, port, deadline_s, last))


# --- response parsing --------------------------------------------------------------------

def _skip_spaces(buf: bytes, i: int) -> int:
    while i < len(buf) and buf[i] == 0x20:
        i += 1
    return i


def parse_value(buf: bytes, i: int):
    """One value at buf[i:]: a parenthesized list (Python list), a quoted string or literal
    (bytes), NIL (None) or an atom (bytes; brackets such as BODY[HEADER.FIELDS (X)] stay part
    of the atom). Returns (value, index after it)."""
    c = buf[i]
    if c == 0x28:  # (
        items = []
        i += 1
        while True:
            i = _skip_spaces(buf, i)
            if buf[i] == 0x29:  # )
                return items, i + 1
            v, i = parse_value(buf, i)
            items.append(v)
    if c == 0x22:  # "
        out = bytearray()
        i += 1
        while True:
            ch = buf[i]
            if ch == 0x5C:  # backslash
                out.append(buf[i + 1])
                i += 2
            elif ch == 0x22:
                return bytes(out), i + 1
            else:
                out.append(ch)
                i += 1
    if c == 0x7B:  # {
        j = buf.index(b"}", i)
        n = int(buf[i + 1:j].rstrip(b"+"))
        start = j + 3  # "}\r\n"
        return buf[start:start + n], start + n
    j, depth = i, 0
    while j < len(buf):
        ch = buf[j]
        if ch == 0x5B:  # [
            depth += 1
        elif ch == 0x5D:
            depth -= 1
        elif depth == 0 and ch in (0x20, 0x28, 0x29, 0x0D, 0x0A):
            break
        j += 1
    atom = buf[i:j]
    return (None if atom.upper() == b"NIL" else atom), j


_FETCH = re.compile(rb"\* (\d+) FETCH ")


def parse_fetch(resp: bytes) -> Optional[Tuple[int, Dict[str, object]]]:
    """(sequence number, {ITEM: value}) of a "* n FETCH (...)" response, else None."""
    m = _FETCH.match(resp)
    if not m:
        return None
    items, _ = parse_value(resp, m.end())
    out: Dict[str, object] = {}
    for k in range(0, len(items) - 1, 2):
        out[items[k].decode("ascii", "replace").upper()] = items[k + 1]
    return int(m.group(1)), out


def response_code(untagged: List[bytes], tagged: bytes, name: bytes) -> Optional[bytes]:
    """The argument of a response code such as [HIGHESTMODSEQ 123] in any of the lines."""
    pat = re.compile(rb"\[" + name + rb" ([^\]]*)\]", re.I)
    for r in untagged + [tagged]:
        m = pat.search(r)
        if m:
            return m.group(1)
    return None
