#!/usr/bin/python3
"""Deterministic, realistic mail corpus for the delivery benchmarks.

Every message is built from one seeded random.Random, so the same (seed, count,
max_attachment) always yields byte-identical messages on any machine. The mix aims at what a
hosting provider's LMTP sees on a business day:

  * text/plain only, multipart/alternative (text + HTML), HTML newsletters with inline
    images (multipart/related), and multipart/mixed with attachments;
  * attachments from a few KB to several MB, base64 at 76 columns: "binary" ones (PDF, JPEG,
    PNG, ZIP, DOCX) are incompressible random bytes behind the right magic number, "text"
    ones (CSV, ICS, TXT) compress well;
  * non-ASCII everywhere: RFC 2047 encoded words (B and Q, UTF-8 and legacy charsets) in
    Subject/From/To, RFC 2231 file names, quoted-printable UTF-8 bodies, and a few raw UTF-8
    headers as sent by modern clients;
  * conversation threads (Re:/AW:/Fwd: with In-Reply-To and References and quoted text),
    mailing-list traffic (List-Id, List-Unsubscribe), Received chains, DKIM signatures;
  * a few hundred distinct senders across many domains.

Messages use CRLF line endings and never contain NUL or lines over 998 octets.

As a module: `generate(count, seed, max_attachment)` yields `Message` objects.
As a script: `corpus.py --count 50 --out DIR` writes .eml files; `--summary` prints sizes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import math
import os
import random
import re
import sys
import time
from typing import Iterator, List, Optional

CRLF = "\r\n"

# --- vocabulary --------------------------------------------------------------------------

FIRST_NAMES = [
    # plain ASCII
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Isabel", "Jack",
    "Karen", "Liam", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rachel", "Sam", "Tina",
    # Latin-1 and Latin Extended
    "Jürgen", "Müller", "Zoë", "François", "Hélène", "José", "Søren", "Åsa", "Łukasz",
    "Małgorzata", "Dvořák", "Ştefan", "Çağla", "Þórdís", "Íñigo",
    # other scripts
    "Дмитрий", "Анна", "Ελένη", "Γιώργος", "健太", "美咲", "李娜", "王伟", "محمد", "נועה",
]
LAST_NAMES = [
    "Smith", "Johnson", "Brown", "Taylor", "Anderson", "Clark", "Lewis", "Walker", "Young",
    "Schäfer", "Größe", "Lefèvre", "Nuñez", "Østergaard", "Kowalczyk", "Šimůnek", "Yılmaz",
    "Иванова", "Петров", "Παπαδόπουλος", "山田", "佐藤", "陈", "Haddad", "Levi",
]
DOMAINS = [
    "example.com", "example.org", "example.net", "acme-corp.test", "contoso.test",
    "fabrikam.test", "globex.test", "initech.test", "umbrella.test", "hooli.test",
    "müller-bau.test", "mail.example.de", "post.example.fr", "correo.example.es",
    "example.co.jp", "example.ru", "lists.example.org", "news.example.com",
    "billing.example.net", "noreply.example.com",
]
WORDS_EN = (
    "the of and to in is that for it as with was on be by this are from at or have an not "
    "which but all we your can more will about one there their our if has also been would "
    "project meeting report invoice budget quarter deadline contract customer review "
    "schedule attached please thanks regards update proposal draft team office client "
    "delivery server backup mailbox restore database tuesday friday morning afternoon "
    "agenda minutes follow-up question answer estimate figures revenue forecast action "
    "approval signature document version final changes comments feedback release plan"
).split()
WORDS_DE = (
    "und der die das ist nicht mit für auf Besprechung Rechnung Angebot Termin Grüße "
    "Änderungen Überprüfung Lösung Größe Straße Mängel Verfügung Bestätigung Prüfung "
    "bitte danke Anhang Unterlagen nächste Woche"
).split()
WORDS_FR = (
    "le la les et est pas avec pour sur réunion facture devis rendez-vous cordialement "
    "modifications vérification été déjà très préférence élément reçu à bientôt merci"
).split()
WORDS_RU = "и в не на что встреча счёт договор отчёт спасибо пожалуйста вложение завтра".split()
WORDS_JA = "会議 請求書 見積もり 添付 確認 よろしく お願いします 資料 来週 予定 変更".split()
SUBJECTS = [
    "Quarterly report {q}", "Invoice {n} for {month}", "Meeting notes {month} {d}",
    "Contract draft v{v}", "Budget {year} — final numbers", "Lunch on Friday?",
    "Server maintenance window {d}.{m}.", "Your order #{n} has shipped",
    "Besprechung am {d}.{m}. – Änderungen", "Rechnung Nr. {n} – Fälligkeit",
    "Réunion de lundi : compte rendu", "Devis n°{n} — révision", "Отчёт за {month}",
    "見積もりのご確認 ({n})", "Προσφορά {n}", "Photos from the offsite 📷",
    "Weekly newsletter #{n}", "Re-scheduled: project kick-off", "Backup status {d}/{m}",
    "Action required: sign the NDA", "Ticket [#{n}] printer on 3rd floor",
    "Fw: scanned documents", "Urlaubsvertretung {d}.–{d2}. {month}",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
RE_PREFIX = ["Re: ", "Re: ", "Re: ", "RE: ", "AW: ", "Réf : ", "Antw: ", "答复: "]
FWD_PREFIX = ["Fwd: ", "Fw: ", "WG: ", "TR: "]
MAILERS = [
    "Microsoft Outlook 16.0", "Apple Mail (2.3731.700.6)", "Mozilla Thunderbird 115.6.0",
    "Roundcube Webmail/1.6.5", "K-9 Mail for Android", "Evolution 3.46.4", None, None,
]
LISTS = ["announce.lists.example.org", "dev.lists.example.org", "newsletter.news.example.com"]
LEGACY_CHARSETS = ["iso-8859-1", "iso-8859-15", "windows-1252", "iso-8859-2", "koi8-r"]

ATTACHMENT_KINDS = [
    # (weight, content type, extension, magic prefix or None for text content)
    (30, "application/pdf", "pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    (20, "image/jpeg", "jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    (8, "image/png", "png", b"\x89PNG\r\n\x1a\n"),
    (8, "application/zip", "zip", b"PK\x03\x04"),
    (10, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx",
     b"PK\x03\x04"),
    (8, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx",
     b"PK\x03\x04"),
    (8, "text/csv", "csv", None),
    (4, "text/plain", "txt", None),
    (4, "application/octet-stream", "bin", b""),
]
FILE_STEMS = [
    "report", "invoice", "scan", "photo", "contract", "minutes", "Angebot", "Rechnung",
    "Übersicht", "présentation", "отчёт", "見積書", "budget_final_v3", "IMG_2024",
    "export", "Präsentation Q3", "données clients",
]


@dataclasses.dataclass
class Message:
    index: int
    sender: str          # envelope sender (MAIL FROM)
    data: bytes          # full message, CRLF line endings, not dot-stuffed
    kind: str            # structure label, for the summary
    attachments: int
    thread_depth: int    # 0 = starts a thread


@dataclasses.dataclass
class Person:
    name: str
    address: str


# --- header encoding ---------------------------------------------------------------------

_Q_SAFE = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _q_encode(raw: bytes) -> str:
    out = []
    for b in raw:
        if b == 0x20:
            out.append("_")
        elif b in _Q_SAFE:
            out.append(chr(b))
        else:
            out.append("=%02X" % b)
    return "".join(out)


def encode_words(text: str, charset: str, method: str) -> List[str]:
    """RFC 2047 encoded words for text, each at most 75 characters, never splitting a
    multi-byte character between words."""
    words: List[str] = []
    prefix = "=?%s?%s?" % (charset, method)
    budget = 75 - len(prefix) - 2
    chunk = ""
    for ch in text:
        trial = chunk + ch
        raw = trial.encode(charset)
        size = len(base64.b64encode(raw)) if method == "B" else len(_q_encode(raw))
        if size > budget and chunk:
            words.append(_encoded_word(chunk, charset, method))
            chunk = ch
        else:
            chunk = trial
    if chunk:
        words.append(_encoded_word(chunk, charset, method))
    return words


def _encoded_word(text: str, charset: str, method: str) -> str:
    raw = text.encode(charset)
    body = base64.b64encode(raw).decode() if method == "B" else _q_encode(raw)
    return "=?%s?%s?%s?=" % (charset, method, body)


def fold(name: str, value: str) -> str:
    """One header field, folded at whitespace so lines stay under 78 characters where
    possible (encoded words and long tokens may make a line longer, never over 998)."""
    line = name + ": "
    lines = []
    for i, token in enumerate(value.split(" ")):
        if i == 0:
            line += token
        elif len(line) + 1 + len(token) > 76:
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
    lines.append(line)
    return (CRLF).join(lines) + CRLF


def is_ascii(s: str) -> bool:
    return all(ord(c) < 128 for c in s)


class HeaderStyle:
    """How one sender's client encodes non-ASCII header text."""

    def __init__(self, rng: random.Random):
        r = rng.random()
        if r < 0.55:
            self.charset, self.method = "UTF-8", "B"
        elif r < 0.85:
            self.charset, self.method = "UTF-8", "Q"
        elif r < 0.95:
            self.charset, self.method = rng.choice(LEGACY_CHARSETS), rng.choice("BQ")
        else:
            self.charset, self.method = "raw", ""   # RFC 6532 style raw UTF-8

    def text(self, value: str) -> str:
        if is_ascii(value):
            return value
        if self.charset == "raw":
            return value
        charset = self.charset
        try:
            value.encode(charset)
        except UnicodeEncodeError:
            charset = "UTF-8"
        return " ".join(encode_words(value, charset, self.method))

    def phrase(self, name: str) -> str:
        if is_ascii(name):
            if any(c in name for c in ',.;:<>@"()[]'):
                return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return name
        return self.text(name)

    def mailbox(self, p: Person) -> str:
        return "%s <%s>" % (self.phrase(p.name), p.address)


# --- body pieces -------------------------------------------------------------------------

def qp_encode(text: str) -> str:
    """Quoted-printable (RFC 2045) of UTF-8 text, CRLF line breaks, soft breaks at 76."""
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii").replace("\n", CRLF)


def b64_lines(raw: bytes) -> str:
    return base64.encodebytes(raw).decode("ascii").replace("\n", CRLF)


def rfc2231_param(name: str, value: str) -> str:
    """filename="..." for ASCII, else filename*=UTF-8''... (split into continuations)."""
    if is_ascii(value) and '"' not in value:
        return '%s="%s"' % (name, value)
    pct = "".join(
        chr(b) if (chr(b).isalnum() and b < 128) or chr(b) in "-._~" else "%%%02X" % b
        for b in value.encode("utf-8"))
    if len(pct) <= 60:
        return "%s*=UTF-8''%s" % (name, pct)
    tokens = re.findall(r"%[0-9A-F]{2}|.", pct)
    chunks, cur = [], ""
    for tok in tokens:
        if len(cur) + len(tok) > 60:
            chunks.append(cur)
            cur = ""
        cur += tok
    chunks.append(cur)
    parts = ["%s*%d*=%s%s" % (name, n, "UTF-8''" if n == 0 else "", c)
             for n, c in enumerate(chunks)]
    return ("; ").join(parts)


class Generator:
    def __init__(self, seed: int, max_attachment: int):
        self.rng = random.Random(seed)
        self.seed = seed
        self.max_attachment = max(4096, max_attachment)
        self.people = self._make_people(320)
        self.colleagues = self._make_colleagues(60)
        self.styles = [HeaderStyle(self.rng) for _ in self.people]
        self.threads: List[dict] = []
        self.clock = 1_709_280_000  # 2024-03-01T08:00:00Z, advances per message

    # people ---------------------------------------------------------------------------
    def _make_people(self, n: int) -> List[Person]:
        rng = self.rng
        out = []
        for i in range(n):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            local = "%s.%s" % (self._asciify(first), self._asciify(last))
            if not local.strip(".") or local.startswith(".") or local.endswith("."):
                local = "user%d" % i
            local = "%s%d" % (local.lower(), i) if rng.random() < 0.3 else local.lower()
            domain = rng.choice(DOMAINS)
            try:
                domain.encode("ascii")
            except UnicodeEncodeError:
                domain = "xn--mller-bau-9db.test"  # punycode of müller-bau.test
            out.append(Person("%s %s" % (first, last), "%s@%s" % (local, domain)))
        return out

    def _make_colleagues(self, n: int) -> List[Person]:
        rng = self.rng
        out = []
        for i in range(n):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            out.append(Person("%s %s" % (first, last), "user%d@bench.test" % i))
        return out

    @staticmethod
    def _asciify(s: str) -> str:
        return "".join(c for c in s if c.isascii() and c.isalnum())

    # text ---------------------------------------------------------------------------
    def _language(self) -> List[str]:
        r = self.rng.random()
        if r < 0.70:
            return WORDS_EN
        if r < 0.82:
            return WORDS_EN + WORDS_DE
        if r < 0.90:
            return WORDS_EN + WORDS_FR
        if r < 0.95:
            return WORDS_RU + WORDS_EN
        return WORDS_JA + WORDS_EN

    def _paragraphs(self, words: List[str], target: int) -> List[str]:
        rng = self.rng
        paras, size = [], 0
        while size < target:
            sentences = []
            for _ in range(rng.randint(2, 6)):
                s = " ".join(rng.choices(words, k=rng.randint(6, 22)))
                sentences.append(s[:1].upper() + s[1:] + rng.choice(".....?!"))
            p = " ".join(sentences)
            paras.append(p)
            size += len(p.encode("utf-8")) + 2
        return paras

    @staticmethod
    def _wrap(paragraph: str, width: int = 72) -> str:
        lines, line = [], ""
        for w in paragraph.split(" "):
            if line and len(line) + 1 + len(w) > width:
                lines.append(line)
                line = w
            else:
                line = (line + " " + w) if line else w
        lines.append(line)
        return "\n".join(lines)

    def _signature(self, p: Person) -> str:
        return "-- \n%s\n%s\nTel. +49 30 %07d" % (
            p.name, self.rng.choice(["Sales", "Accounting", "IT", "Legal", "Operations",
                                     "Geschäftsführung", "Direction générale"]),
            self.rng.randint(0, 9_999_999))

    def _html(self, paras: List[str], sender: Person, newsletter: bool, cids: List[str]) -> str:
        rng = self.rng
        parts = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
                 "<style>body{font-family:Calibri,Arial,sans-serif;font-size:11pt}"
                 " .sig{color:#666} table.nl td{padding:8px;border-bottom:1px solid #ddd}"
                 "</style></head><body>"]
        if newsletter:
            parts.append('<table class="nl" width="600" cellpadding="0" cellspacing="0">')
            for i, p in enumerate(paras):
                img = ('<img src="cid:%s" width="560" alt="">' % cids[i % len(cids)]) if cids else ""
                parts.append('<tr><td>%s<h2 style="color:#%06x">%s</h2><p>%s</p>'
                             '<a href="https://news.example.com/a/%d?utm_source=mail">Read more'
                             ' &rarr;</a></td></tr>'
                             % (img, rng.randrange(1 << 24), self._esc(p[:60]), self._esc(p), i))
            parts.append('</table><p style="font-size:8pt">Unsubscribe: '
                         '<a href="https://news.example.com/u/%x">here</a></p>'
                         % rng.getrandbits(64))
        else:
            for p in paras:
                parts.append('<div><p class="MsoNormal" style="margin:0 0 8pt 0">%s</p></div>'
                             % self._esc(p))
            parts.append('<div class="sig"><p>%s<br>%s</p></div>'
                         % (self._esc(sender.name), self._esc(sender.address)))
        parts.append("</body></html>")
        # Keep HTML lines short, as real clients do.
        html = "\n".join(parts)
        return html.replace("><", ">\n<")

    @staticmethod
    def _esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    # attachments --------------------------------------------------------------------
    def _attachment_size(self) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.90:
            lo, hi = 2 * 1024, 256 * 1024
        elif r < 0.99:
            lo, hi = 256 * 1024, 1536 * 1024
        else:
            lo, hi = 1536 * 1024, self.max_attachment
        hi = min(hi, self.max_attachment)
        lo = min(lo, hi)
        return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    def _attachment(self, size: Optional[int] = None, kind=None) -> str:
        rng = self.rng
        if kind is None:
            weights = [k[0] for k in ATTACHMENT_KINDS]
            kind = rng.choices(ATTACHMENT_KINDS, weights=weights)[0]
        _, ctype, ext, magic = kind
        size = size or self._attachment_size()
        if magic is None:
            raw = self._text_file(ext, size)
        else:
            raw = magic + rng.randbytes(max(0, size - len(magic)))
        fname = "%s %d.%s" % (rng.choice(FILE_STEMS), rng.randint(1, 999), ext)
        disp = rfc2231_param("filename", fname)
        name = rfc2231_param("name", fname)
        if not is_ascii(fname) and rng.random() < 0.4:
            # Outlook-style: RFC 2047 inside the quoted parameter as well.
            name = 'name="%s"' % " ".join(encode_words(fname, "UTF-8", "B"))
        headers = ("Content-Type: %s; %s%s" % (ctype, name, CRLF)
                   + "Content-Disposition: attachment; %s%s" % (disp, CRLF)
                   + "Content-Transfer-Encoding: base64" + CRLF)
        return headers + CRLF + b64_lines(raw)

    def _text_file(self, ext: str, size: int) -> bytes:
        rng = self.rng
        if ext == "csv":
            pool = ["%d;2024-%02d-%02d;%s;%d.%02d;EUR;%s" % (
                rng.randint(1, 99999), rng.randint(1, 12), rng.randint(1, 28),
                rng.choice(LAST_NAMES), rng.randint(1, 99999), rng.randint(0, 99),
                rng.choice(["paid", "open", "overdue", "bezahlt"])) for _ in range(200)]
            rows = ["id;date;customer;amount;currency;status"]
            rows += rng.choices(pool, k=max(1, size // 40))
            return ("\r\n".join(rows) + "\r\n").encode("utf-8")
        paras = self._paragraphs(WORDS_EN, size)
        return "\r\n\r\n".join(self._wrap(p).replace("\n", "\r\n") for p in paras).encode("utf-8")

    def _inline_image(self, cid: str) -> str:
        rng = self.rng
        size = int(math.exp(rng.uniform(math.log(3 * 1024), math.log(60 * 1024))))
        raw = b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)
        return ("Content-Type: image/png; name=\"img%s.png\"%s" % (cid[:6], CRLF)
                + "Content-Disposition: inline; filename=\"img%s.png\"%s" % (cid[:6], CRLF)
                + "Content-ID: <%s>%s" % (cid, CRLF)
                + "Content-Transfer-Encoding: base64" + CRLF + CRLF + b64_lines(raw))

    def _calendar(self, sender: Person) -> str:
        rng = self.rng
        uid = "%032x" % rng.getrandbits(128)
        start = time.strftime("%Y%m%dT%H%M00Z", time.gmtime(self.clock + 86400 * rng.randint(1, 20)))
        ics = CRLF.join([
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example Corp//Calendar 1.0//EN",
            "METHOD:REQUEST", "BEGIN:VEVENT", "UID:" + uid, "DTSTAMP:" + start,
            "DTSTART:" + start, "DURATION:PT1H", "SUMMARY:Abstimmung Q%d / Réunion"
            % rng.randint(1, 4), "ORGANIZER;CN=%s:mailto:%s" % (sender.name, sender.address),
            "END:VEVENT", "END:VCALENDAR", ""])
        return ("Content-Type: text/calendar; charset=utf-8; method=REQUEST" + CRLF
                + "Content-Transfer-Encoding: base64" + CRLF + CRLF
                + b64_lines(ics.encode("utf-8")))

    # structure ---------------------------------------------------------------------
    def _boundary(self) -> str:
        return "----=_Part_%d_%x.%d" % (self.rng.randint(0, 99999), self.rng.getrandbits(48),
                                       self.clock)

    def _text_part(self, text: str) -> str:
        if is_ascii(text):
            return ("Content-Type: text/plain; charset=us-ascii; format=flowed" + CRLF
                    + "Content-Transfer-Encoding: 7bit" + CRLF + CRLF
                    + text.replace("\n", CRLF))
        if self.rng.random() < 0.25:
            return ("Content-Type: text/plain; charset=utf-8" + CRLF
                    + "Content-Transfer-Encoding: 8bit" + CRLF + CRLF
                    + text.replace("\n", CRLF))
        return ("Content-Type: text/plain; charset=utf-8" + CRLF
                + "Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF + qp_encode(text))

    def _html_part(self, html: str) -> str:
        if self.rng.random() < 0.15:
            return ("Content-Type: text/html; charset=utf-8" + CRLF
                    + "Content-Transfer-Encoding: base64" + CRLF + CRLF
                    + b64_lines(html.encode("utf-8")))
        return ("Content-Type: text/html; charset=utf-8" + CRLF
                + "Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF + qp_encode(html))

    @staticmethod
    def _multipart(subtype: str, boundary: str, parts: List[str], extra: str = "") -> str:
        head = 'Content-Type: multipart/%s;%s boundary="%s"%s%s' % (
            subtype, CRLF, boundary, extra, CRLF) + CRLF
        body = ""
        if subtype == "mixed":
            body += "This is a multi-part message in MIME format." + CRLF + CRLF
        for p in parts:
            body += "--" + boundary + CRLF + p + CRLF
        body += "--" + boundary + "--" + CRLF
        return head + body

    # one message -------------------------------------------------------------------
    def message(self, index: int) -> Message:
        rng = self.rng
        self.clock += rng.randint(5, 240)
        si = rng.randrange(len(self.people))
        sender, style = self.people[si], self.styles[si]
        to = rng.sample(self.colleagues, rng.choice([1, 1, 1, 2, 3]))
        cc = rng.sample(self.colleagues, rng.choice([0, 0, 0, 1, 2]))

        # thread handling
        parent = None
        if self.threads and rng.random() < 0.40:
            parent = rng.choice(self.threads[-40:])
        is_list = parent is None and rng.random() < 0.08
        msgid = "<%x.%x@%s>" % (self.clock, rng.getrandbits(64), sender.address.split("@")[1])
        if parent:
            forward = rng.random() < 0.1
            prefix = rng.choice(FWD_PREFIX if forward else RE_PREFIX)
            subject = prefix + parent["subject"]
            refs = (parent["refs"] + [parent["id"]])[-12:]
            depth = parent["depth"] + 1
        else:
            subject = rng.choice(SUBJECTS).format(
                q=rng.randint(1, 4), n=rng.randint(1000, 99999), month=rng.choice(MONTHS),
                d=rng.randint(1, 28), d2=rng.randint(1, 28), m=rng.randint(1, 12),
                v=rng.randint(1, 9), year=rng.randint(2023, 2025))
            if is_list:
                subject = "[%s] %s" % (rng.choice(["announce", "dev", "News"]), subject)
            refs, depth, forward = [], 0, False
        thread = {"id": msgid, "subject": subject if not parent else parent["subject"],
                  "refs": refs, "depth": depth, "text": None}

        # body text
        words = self._language()
        target = int(math.exp(rng.uniform(math.log(300), math.log(12_000))))
        paras = self._paragraphs(words, target)
        text = "\n\n".join(self._wrap(p) for p in paras) + "\n\n" + self._signature(sender) + "\n"
        if parent and parent.get("text"):
            quoted = "\n".join("> " + l for l in parent["text"].split("\n")[:200])
            text += "\nOn %s, %s wrote:\n%s\n" % (
                time.strftime("%a, %d %b %Y", time.gmtime(self.clock - 3600)),
                parent["from"], quoted)
        thread["text"] = text[:20_000]
        thread["from"] = sender.name
        self.threads.append(thread)
        if len(self.threads) > 400:
            self.threads = self.threads[-200:]

        # structure
        r = rng.random()
        if is_list:
            kind = "newsletter" if rng.random() < 0.6 else "plain"
        elif r < 0.18:
            kind = "plain"
        elif r < 0.68:
            kind = "alternative"
        elif r < 0.90:
            kind = "mixed"
        elif r < 0.96:
            kind = "plain+attachments"
        else:
            kind = "invite"
        if forward and kind in ("plain", "alternative"):
            kind = "mixed"

        attachments = 0
        if kind == "plain":
            body = self._text_part(text)
        elif kind == "alternative":
            body = self._multipart("alternative", self._boundary(), [
                self._text_part(text), self._html_part(self._html(paras, sender, False, []))])
        elif kind == "newsletter":
            cids = ["%x@news.example.com" % rng.getrandbits(64) for _ in range(rng.randint(1, 4))]
            html = self._html(paras, sender, True, cids)
            related = self._multipart("related", self._boundary(),
                                      [self._html_part(html)] + [self._inline_image(c) for c in cids],
                                      extra='; type="text/html"')
            body = self._multipart("alternative", self._boundary(),
                                   [self._text_part(text), related])
        elif kind == "invite":
            body = self._multipart("mixed", self._boundary(), [
                self._multipart("alternative", self._boundary(), [
                    self._text_part(text), self._calendar(sender)])])
        else:
            n = rng.choices([1, 2, 3, 4], weights=[70, 18, 8, 4])[0]
            attachments = n
            first = self._text_part(text) if kind == "plain+attachments" else \
                self._multipart("alternative", self._boundary(), [
                    self._text_part(text), self._html_part(self._html(paras, sender, False, []))])
            body = self._multipart("mixed", self._boundary(),
                                   [first] + [self._attachment() for _ in range(n)])

        # headers
        h = []
        hops = rng.randint(1, 3)
        t = self.clock
        h.append(fold("Received", "from mx%d.%s (mx%d.%s [192.0.2.%d]) by mx.bench.test "
                      "(Postfix) with ESMTPS id %X for <%s>; %s"
                      % (rng.randint(1, 4), sender.address.split("@")[1], rng.randint(1, 4),
                         sender.address.split("@")[1], rng.randint(1, 254), rng.getrandbits(40),
                         to[0].address, self._date(t + 2))))
        for k in range(hops):
            h.append(fold("Received", "from [10.%d.%d.%d] (unknown [198.51.100.%d]) by "
                          "smtp%d.%s (Postfix) with ESMTPSA id %X; %s"
                          % (rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254),
                             rng.randint(1, 254), k, sender.address.split("@")[1],
                             rng.getrandbits(40), self._date(t - k))))
        if rng.random() < 0.6:
            sig = base64.b64encode(rng.randbytes(256)).decode()
            h.append(fold("DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; "
                          "s=sel%d; t=%d; h=from:to:subject:date:message-id:mime-version; "
                          "bh=%s; b=%s" % (sender.address.split("@")[1], rng.randint(1, 9), t,
                                           base64.b64encode(rng.randbytes(32)).decode(),
                                           " ".join(sig[i:i + 64] for i in range(0, len(sig), 64)))))
            h.append(fold("Authentication-Results", "mx.bench.test; dkim=pass header.d=%s; "
                          "spf=pass smtp.mailfrom=%s; dmarc=pass"
                          % (sender.address.split("@")[1], sender.address)))
        h.append(fold("From", style.mailbox(sender)))
        h.append(fold("To", ", ".join(style.mailbox(p) for p in to)))
        if cc:
            h.append(fold("Cc", ", ".join(style.mailbox(p) for p in cc)))
        h.append(fold("Subject", style.text(subject)))
        h.append(fold("Date", self._date(t)))
        h.append(fold("Message-ID", msgid))
        if parent:
            h.append(fold("In-Reply-To", parent["id"]))
            h.append(fold("References", " ".join(refs)))
            h.append(fold("Thread-Topic", style.text(parent["subject"])))
        if is_list:
            lst = rng.choice(LISTS)
            h.append(fold("List-Id", "%s <%s>" % (style.text("Announcements – Ankündigungen"), lst)))
            h.append(fold("List-Unsubscribe", "<mailto:unsubscribe@%s>, <https://%s/u/%x>"
                          % (lst, lst, rng.getrandbits(64))))
            h.append("Precedence: list" + CRLF)
        mailer = rng.choice(MAILERS)
        if mailer:
            h.append(fold("X-Mailer", mailer))
        if rng.random() < 0.2:
            h.append(fold("X-Spam-Status", "No, score=%.1f required=5.0 tests=BAYES_00,"
                          "DKIM_SIGNED,DKIM_VALID,SPF_PASS autolearn=ham" % rng.uniform(-3, 2)))
        h.append("MIME-Version: 1.0" + CRLF)
        data = ("".join(h) + body).encode("utf-8")
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        return Message(index, sender.address, data, kind, attachments, depth)

    def _date(self, t: int) -> str:
        # Deterministic time zone per second, like a mix of senders around the world.
        offsets = [0, 60, 120, -300, -420, 330, 540, 600]
        off = offsets[t % len(offsets)]
        lt = time.gmtime(t + off * 60)
        sign = "+" if off >= 0 else "-"
        return time.strftime("%a, %d %b %Y %H:%M:%S ", lt) + "%s%02d%02d" % (
            sign, abs(off) // 60, abs(off) % 60)


def generate(count: int = 2000, seed: int = 1, max_attachment: int = 8 << 20) -> Iterator[Message]:
    gen = Generator(seed, max_attachment)
    for i in range(count):
        yield gen.message(i)


def parse_size(s: str) -> int:
    s = s.strip().upper().rstrip("B")
    mult = 1
    if s and s[-1] in "KMG":
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[s[-1]]
        s = s[:-1]
    return int(float(s) * mult)


def summarize(messages: List[Message]) -> str:
    sizes = sorted(len(m.data) for m in messages)
    total = sum(sizes)
    kinds = {}
    for m in messages:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    pct = lambda p: sizes[min(len(sizes) - 1, int(p * len(sizes)))]
    return ("%d messages, %.1f MB total, mean %.0f KB, median %.1f KB, p90 %.0f KB, "
            "p99 %.0f KB, max %.1f MB; %s; %d with attachments, %d replies"
            % (len(sizes), total / 1e6, total / len(sizes) / 1e3, pct(0.5) / 1e3,
               pct(0.9) / 1e3, pct(0.99) / 1e3, sizes[-1] / 1e6,
               ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
               sum(1 for m in messages if m.attachments),
               sum(1 for m in messages if m.thread_depth)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-attachment", default="8M", help="largest attachment, e.g. 8M")
    ap.add_argument("--out", help="write one .eml file per message into this directory")
    ap.add_argument("--summary", action="store_true", help="print size statistics")
    args = ap.parse_args()
    t0 = time.monotonic()
    msgs = list(generate(args.count, args.seed, parse_size(args.max_attachment)))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for m in msgs:
            with open(os.path.join(args.out, "%06d.eml" % m.index), "wb") as f:
                f.write(m.data)
    if args.summary or not args.out:
        print(summarize(msgs))
        print("generated in %.1f s" % (time.monotonic() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
