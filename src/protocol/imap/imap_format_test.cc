// Tests for imap_format: exact ENVELOPE / BODY / BODYSTRUCTURE strings and BODY[section]
// extraction, on structures produced by the real parse_message(). Expected strings were
// checked against Dovecot 2.3.19 (same bytes except the differences listed in
// docs/formats/parse-cache.md: lower case, decoded RFC 2231 values, re-encoded names).
#include "protocol/imap/imap_format.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace mailark::imap {
namespace {

std::string bodystructure(std::string_view raw) {
  return format_bodystructure(parse_message(raw).body, /*extensible=*/true);
}
std::string body(std::string_view raw) {
  return format_bodystructure(parse_message(raw).body, /*extensible=*/false);
}
std::string envelope(std::string_view raw) {
  return format_envelope(parse_message(raw).envelope);
}

// The bytes from the first occurrence of `from` up to (excluding) the first occurrence of
// `to` after it, or to the end when `to` is empty: how the tests slice expected sections out
// of the raw message by hand.
std::string slice(std::string_view raw, std::string_view from, std::string_view to = {}) {
  const size_t begin = raw.find(from);
  EXPECT_NE(begin, std::string_view::npos) << from;
  if (to.empty()) return std::string(raw.substr(begin));
  const size_t end = raw.find(to, begin);
  EXPECT_NE(end, std::string_view::npos) << to;
  return std::string(raw.substr(begin, end - begin));
}

std::string section(std::string_view raw, std::string_view spec) {
  Result<Section> s = parse_section(spec);
  EXPECT_TRUE(s.is_ok()) << spec << ": " << s.status().to_string();
  if (!s.is_ok()) return "<bad spec>";
  Result<std::string> out = extract_section(raw, parse_message(raw), *s);
  EXPECT_TRUE(out.is_ok()) << spec << ": " << out.status().to_string();
  return out.is_ok() ? *out : "<error>";
}

constexpr std::string_view kSimple =
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    "From: \"Alice Example\" <alice@example.test>\r\n"
    "To: bob@example.test\r\n"
    "Subject: Hello\r\n"
    "Message-ID: <m1@example.test>\r\n"
    "\r\n"
    "Hi Bob,\r\n"
    "see you.\r\n";

constexpr std::string_view kAlternative =
    "From: a@x.test\r\n"
    "Subject: alt\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "plain =C3=A9\r\n"
    "--b1\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>html</p>\r\n"
    "--b1--\r\n";

constexpr std::string_view kMixed =
    "From: a@x.test\r\n"
    "To: b@x.test\r\n"
    "Subject: att\r\n"
    "Content-Type: multipart/mixed; boundary=mix\r\n"
    "\r\n"
    "--mix\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Language: en, de (German)\r\n"
    "\r\n"
    "see attached\r\n"
    "--mix\r\n"
    "Content-Type: application/pdf; name=\"r.pdf\"\r\n"
    "Content-Disposition: attachment; filename=\"report 2024.pdf\"; size=4\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-ID: <att1@x.test>\r\n"
    "Content-Description: The report\r\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    "Content-Location: http://x.test/r.pdf\r\n"
    "\r\n"
    "JVBE\r\n"
    "Ri0x\r\n"
    "--mix--\r\n";

// A forwarded message: text part, then a message/rfc822 whose body is multipart/alternative.
constexpr std::string_view kNested =
    "From: outer@x.test\r\n"
    "To: b@x.test\r\n"
    "Subject: fwd\r\n"
    "Content-Type: multipart/mixed; boundary=outer\r\n"
    "\r\n"
    "--outer\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "forwarded below\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "Content-Description: fwd msg\r\n"
    "\r\n"
    "From: Inner Sender <inner@y.test>\r\n"
    "To: c@y.test\r\n"
    "Subject: inner subject\r\n"
    "X-Fold: one\r\n"
    "  two\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "inner plain\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<b>inner</b>\r\n"
    "--inner--\r\n"
    "\r\n"
    "--outer--\r\n";

TEST(ImapFormatTest, SimpleTextMessage) {
  EXPECT_EQ(bodystructure(kSimple),
            R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 19 2 NIL NIL NIL NIL))");
  EXPECT_EQ(body(kSimple), R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 19 2))");
  EXPECT_EQ(envelope(kSimple),
            R"(("Mon, 1 Jan 2024 10:00:00 +0000" "Hello" )"
            R"((("Alice Example" NIL "alice" "example.test")) )"
            R"((("Alice Example" NIL "alice" "example.test")) )"
            R"((("Alice Example" NIL "alice" "example.test")) )"
            R"(((NIL NIL "bob" "example.test")) NIL NIL NIL "<m1@example.test>"))");
}

TEST(ImapFormatTest, MultipartAlternative) {
  EXPECT_EQ(
      bodystructure(kAlternative),
      R"((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 12 0 NIL NIL NIL NIL))"
      R"(("text" "html" ("charset" "utf-8") NIL NIL "7bit" 11 0 NIL NIL NIL NIL) )"
      R"("alternative" ("boundary" "b1") NIL NIL NIL))");
  EXPECT_EQ(body(kAlternative),
            R"((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 12 0))"
            R"(("text" "html" ("charset" "utf-8") NIL NIL "7bit" 11 0) "alternative"))");
}

TEST(ImapFormatTest, MixedWithAttachmentAndExtensionFields) {
  EXPECT_EQ(
      bodystructure(kMixed),
      R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 0 NIL NIL ("en" "de") NIL))"
      R"(("application" "pdf" ("name" "r.pdf") "<att1@x.test>" "The report" "base64" 10 )"
      R"("Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report 2024.pdf" "size" "4")) )"
      R"(NIL "http://x.test/r.pdf") "mixed" ("boundary" "mix") NIL NIL NIL))");
  // BODY has no extension data, also not for the parts.
  EXPECT_EQ(body(kMixed),
            R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 0))"
            R"(("application" "pdf" ("name" "r.pdf") "<att1@x.test>" "The report" "base64" 10) )"
            R"("mixed"))");
}

TEST(ImapFormatTest, NestedMessage) {
  const std::string inner_envelope =
      R"((NIL "inner subject" (("Inner Sender" NIL "inner" "y.test")) )"
      R"((("Inner Sender" NIL "inner" "y.test")) (("Inner Sender" NIL "inner" "y.test")) )"
      R"(((NIL NIL "c" "y.test")) NIL NIL NIL NIL))";
  EXPECT_EQ(bodystructure(kNested),
            R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 0 NIL NIL NIL NIL))"
            R"(("message" "rfc822" NIL NIL "fwd msg" "7bit" 259 )" +
                inner_envelope +
                R"( (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL))"
                R"(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 12 0 NIL NIL NIL NIL) )"
                R"("alternative" ("boundary" "inner") NIL NIL NIL) 16 NIL NIL NIL NIL) )"
                R"("mixed" ("boundary" "outer") NIL NIL NIL))");
  EXPECT_EQ(body(kNested),
            R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 15 0))"
            R"(("message" "rfc822" NIL NIL "fwd msg" "7bit" 259 )" +
                inner_envelope +
                R"( (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 11 0))"
                R"(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 12 0) "alternative") 16) )"
                R"("mixed"))");
}

TEST(ImapFormatTest, MessageRfc822AtTopLevel) {
  constexpr std::string_view raw =
      "From: a@x.test\r\n"
      "Subject:\r\n"
      "Content-Type: message/rfc822\r\n"
      "\r\n"
      "Subject: top-level inner\r\n"
      "\r\n"
      "inner body\r\n";
  EXPECT_EQ(bodystructure(raw),
            R"(("message" "rfc822" NIL NIL NIL "7bit" 40 )"
            R"((NIL "top-level inner" NIL NIL NIL NIL NIL NIL NIL NIL) )"
            R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL) 3 )"
            R"(NIL NIL NIL NIL))");
  // An empty Subject is "", not NIL.
  EXPECT_EQ(envelope(raw),
            R"((NIL "" ((NIL NIL "a" "x.test")) ((NIL NIL "a" "x.test")) ((NIL NIL "a" "x.test")) )"
            R"(NIL NIL NIL NIL NIL))");
  // "1" is the message/rfc822 body (the whole inner message); "1.1" its body.
  EXPECT_EQ(section(raw, "1"), slice(raw, "Subject: top-level"));
  EXPECT_EQ(section(raw, "1.1"), "inner body\r\n");
  EXPECT_EQ(section(raw, "1.HEADER"), "Subject: top-level inner\r\n\r\n");
  EXPECT_EQ(section(raw, "1.TEXT"), "inner body\r\n");
  EXPECT_EQ(section(raw, "1.1.MIME"), "Subject: top-level inner\r\n\r\n");
}

TEST(ImapFormatTest, AddressGroups) {
  constexpr std::string_view raw =
      "From: a@x.test\r\n"
      "To: Friends: a@x.test, \"B B\" <b@y.test>;, c@z.test\r\n"
      "Cc: undisclosed-recipients:;\r\n"
      "Subject: groups\r\n"
      "\r\n"
      "x\r\n";
  EXPECT_EQ(envelope(raw),
            R"((NIL "groups" ((NIL NIL "a" "x.test")) ((NIL NIL "a" "x.test")) )"
            R"(((NIL NIL "a" "x.test")) )"
            R"(((NIL NIL "Friends" NIL)(NIL NIL "a" "x.test")("B B" NIL "b" "y.test"))"
            R"((NIL NIL NIL NIL)(NIL NIL "c" "z.test")) )"
            R"(((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL))");
}

TEST(ImapFormatTest, NonAsciiSubjectIsALiteral) {
  constexpr std::string_view raw =
      "From: =?utf-8?q?J=C3=BCrgen?= <j@x.test>\r\n"
      "To: M\xc3\xbcller <m@x.test>\r\n"
      "Subject: Gr\xc3\xbc\xc3\x9f"
      "e\r\n"
      "\r\n"
      "x\r\n";
  // The 8-bit subject goes out as a literal; names are 7-bit encoded words (the parse cache
  // re-encodes them, so they differ in form from the header's).
  EXPECT_EQ(envelope(raw),
            "(NIL {7}\r\nGr\xc3\xbc\xc3\x9f"
            "e "
            R"((("=?UTF-8?b?SsO8cmdlbg==?=" NIL "j" "x.test")) )"
            R"((("=?UTF-8?b?SsO8cmdlbg==?=" NIL "j" "x.test")) )"
            R"((("=?UTF-8?b?SsO8cmdlbg==?=" NIL "j" "x.test")) )"
            R"((("=?UTF-8?b?TcO8bGxlcg==?=" NIL "m" "x.test")) NIL NIL NIL NIL))");
}

TEST(ImapFormatTest, QuotedSpecialsAreEscaped) {
  constexpr std::string_view raw =
      "From: a@x.test\r\n"
      "Subject: \"quoted\" \\\\ back\r\n"
      "In-Reply-To: <p@x.test>\r\n"
      "\r\n";
  EXPECT_EQ(envelope(raw),
            R"((NIL "\"quoted\" \\\\ back" ((NIL NIL "a" "x.test")) ((NIL NIL "a" "x.test")) )"
            R"(((NIL NIL "a" "x.test")) NIL NIL NIL "<p@x.test>" NIL))");
  EXPECT_EQ(body(raw), R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0))");
}

TEST(ImapFormatTest, Rfc2231ParametersAreDecoded) {
  constexpr std::string_view raw =
      "From: a@x.test\r\n"
      "Content-Type: application/octet-stream;\r\n"
      " title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A\r\n"
      "Content-Disposition: attachment;\r\n"
      " filename*0*=UTF-8''na%C3%AF;\r\n"
      " filename*1=ve.txt\r\n"
      "\r\n"
      "data\r\n";
  EXPECT_EQ(bodystructure(raw),
            R"(("application" "octet-stream" ("title" "This is ***fun***") NIL NIL "7bit" 6 NIL )"
            "(\"attachment\" (\"filename\" {10}\r\nna\xc3\xafve.txt)) NIL NIL)");
  EXPECT_EQ(body(raw),
            R"(("application" "octet-stream" ("title" "This is ***fun***") NIL NIL "7bit" 6))");
}

TEST(ImapFormatTest, EmptyMultipartShowsOneEmptyTextPart) {
  constexpr std::string_view raw =
      "From: a@x.test\r\n"
      "Content-Type: multipart/mixed; boundary=zz\r\n"
      "\r\n"
      "no parts here\r\n";
  EXPECT_EQ(bodystructure(raw),
            R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) )"
            R"("mixed" ("boundary" "zz") NIL NIL NIL))");
  EXPECT_EQ(body(raw), R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed"))");
}

TEST(ImapFormatTest, MultipartExtensionData) {
  constexpr std::string_view raw =
      "From: a@x.test\r\n"
      "Content-Type: multipart/mixed; boundary=o\r\n"
      "Content-Disposition: inline\r\n"
      "Content-Language: en\r\n"
      "Content-Location: loc\r\n"
      "\r\n"
      "--o\r\n"
      "Content-Type: text/plain; format=flowed; delsp=yes\r\n"
      "\r\n"
      "x\r\n"
      "--o--\r\n";
  EXPECT_EQ(bodystructure(raw),
            R"((("text" "plain" ("format" "flowed" "delsp" "yes" "charset" "us-ascii") NIL NIL )"
            R"("7bit" 1 0 NIL NIL NIL NIL) "mixed" ("boundary" "o") ("inline" NIL) ("en") "loc"))");
}

TEST(ImapFormatTest, ContentLanguageForms) {
  struct Case {
    std::optional<std::string> value;
    std::string want;
  };
  const Case cases[] = {
      {std::nullopt, "NIL"},
      {"", "NIL"},
      {"en", R"(("en"))"},  // a list even for one tag, as Dovecot sends it
      {"en, de", R"(("en" "de"))"},
      {"en de,fr-CA", R"(("en" "de" "fr-CA"))"},
      {"(comment) en, de (German (Deutsch))", R"(("en" "de"))"},
      {" , ", "NIL"},
  };
  for (const Case& c : cases) {
    MimePart part;
    part.params.emplace_back("charset", "us-ascii");
    part.language = c.value;
    EXPECT_EQ(
        format_bodystructure(part, true),
        R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL )" + c.want + " NIL)")
        << c.value.value_or("<absent>");
  }
}

// Records that break the parser's guarantees (hand-built, or from a future parser) must
// still produce responses a client can parse.
TEST(ImapFormatTest, MalformedRecordsStillGiveValidGrammar) {
  MimePart multipart;
  multipart.type = "multipart";
  multipart.subtype = "mixed";
  EXPECT_EQ(format_bodystructure(multipart, false),
            R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed"))");
  EXPECT_EQ(format_bodystructure(multipart, true),
            R"((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) )"
            R"("mixed" NIL NIL NIL NIL))");

  MimePart message;
  message.type = "message";
  message.subtype = "rfc822";
  EXPECT_EQ(format_bodystructure(message, false),
            R"(("message" "rfc822" NIL NIL NIL "7bit" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) )"
            R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) 0))");
}

TEST(ImapFormatTest, EnvelopeFieldsFromStruct) {
  MimeEnvelope e;
  e.date = "d";
  e.subject = "line\r\nbreak";  // never produced by the parser, but must not break the line
  MimeAddress a;
  a.name = "N";
  a.adl = "@route";
  a.mailbox = "m";
  a.host = "h";
  e.bcc.push_back(a);
  EXPECT_EQ(format_envelope(e),
            "(\"d\" {11}\r\nline\r\nbreak NIL NIL NIL NIL NIL ((\"N\" \"@route\" \"m\" \"h\")) "
            "NIL NIL)");
}

// ---------------------------------------------------------------------------------------
// Section specs

TEST(SectionTest, ParsesValidSpecs) {
  using T = Section::Text;
  struct Case {
    std::string spec;
    std::vector<uint32_t> part;
    T text;
    std::vector<std::string> fields;
    std::string name;  // section_name()
  };
  const Case cases[] = {
      {"", {}, T::kNone, {}, ""},
      {"HEADER", {}, T::kHeader, {}, "HEADER"},
      {"header", {}, T::kHeader, {}, "HEADER"},
      {"TEXT", {}, T::kText, {}, "TEXT"},
      {"HEADER.FIELDS (A B)", {}, T::kHeaderFields, {"A", "B"}, "HEADER.FIELDS (A B)"},
      {"header.fields.not (from \"To\")",
       {},
       T::kHeaderFieldsNot,
       {"FROM", "TO"},
       "HEADER.FIELDS.NOT (FROM \"TO\")"},
      {"HEADER.FIELDS (\"A B\" \"q\\\"\")",
       {},
       T::kHeaderFields,
       {"A B", "Q\""},
       "HEADER.FIELDS (\"A B\" \"Q\\\"\")"},
      {"1", {1}, T::kNone, {}, "1"},
      {"1.2", {1, 2}, T::kNone, {}, "1.2"},
      {"1.2.MIME", {1, 2}, T::kMime, {}, "1.2.MIME"},
      {"1.2.mime", {1, 2}, T::kMime, {}, "1.2.MIME"},
      {"1.2.HEADER", {1, 2}, T::kHeader, {}, "1.2.HEADER"},
      {"1.2.TEXT", {1, 2}, T::kText, {}, "1.2.TEXT"},
      {"1.HEADER.FIELDS (X)", {1}, T::kHeaderFields, {"X"}, "1.HEADER.FIELDS (X)"},
      {"4294967295", {4294967295u}, T::kNone, {}, "4294967295"},
  };
  for (const Case& c : cases) {
    Result<Section> s = parse_section(c.spec);
    ASSERT_TRUE(s.is_ok()) << c.spec << ": " << s.status().to_string();
    EXPECT_EQ(s->part, c.part) << c.spec;
    EXPECT_EQ(s->text, c.text) << c.spec;
    EXPECT_EQ(s->fields, c.fields) << c.spec;
    EXPECT_EQ(section_name(*s), c.name) << c.spec;
  }
}

TEST(SectionTest, RejectsInvalidSpecs) {
  const char* cases[] = {
      "0",
      "01",
      "1.0",
      "1.",
      ".1",
      "1..2",
      "MIME",
      "TEXT.1",
      "HEADERS",
      "1.BODY",
      "HEADER.FIELDS",
      "HEADER.FIELDS ()",
      "HEADER.FIELDS(A)",
      "HEADER.FIELDS (A  B)",
      "HEADER.FIELDS (A B) ",
      "HEADER.FIELDS (A",
      "HEADER.FIELDS (\"A)",
      "HEADER.FIELDS (X*)",
      "HEADER.FIELDS.NOT",
      "4294967296",
      "1.2.3.HEADER.FIELDS.NOT",
      "HEADER ",
      " HEADER",
      "1 ",
  };
  for (const char* spec : cases) {
    Result<Section> s = parse_section(spec);
    EXPECT_FALSE(s.is_ok()) << spec;
    EXPECT_EQ(s.status().code(), ErrorCode::kInvalid) << spec;
  }
}

// ---------------------------------------------------------------------------------------
// Extraction

TEST(ExtractSectionTest, EverySectionKindOnANestedMessage) {
  const std::string_view raw = kNested;
  const std::string inner_message = slice(raw, "From: Inner", "\r\n--outer--");
  const std::string inner_header = slice(raw, "From: Inner", "--inner\r\n");
  struct Case {
    std::string spec;
    std::string want;
  };
  const Case cases[] = {
      {"", std::string(raw)},
      {"HEADER", slice(raw, "From: outer", "--outer\r\n")},
      {"TEXT", slice(raw, "--outer\r\n")},
      {"HEADER.FIELDS (subject TO)", "To: b@x.test\r\nSubject: fwd\r\n\r\n"},
      {"HEADER.FIELDS.NOT (Content-Type)",
       "From: outer@x.test\r\nTo: b@x.test\r\nSubject: fwd\r\n\r\n"},
      {"1", "forwarded below"},
      {"1.MIME", "Content-Type: text/plain\r\n\r\n"},
      {"2", inner_message},
      {"2.MIME", "Content-Type: message/rfc822\r\nContent-Description: fwd msg\r\n\r\n"},
      {"2.HEADER", inner_header},
      {"2.TEXT", slice(inner_message, "--inner\r\n")},
      {"2.HEADER.FIELDS (SUBJECT X-FOLD)",
       "Subject: inner subject\r\nX-Fold: one\r\n  two\r\n\r\n"},
      {"2.HEADER.FIELDS.NOT (SUBJECT X-FOLD CONTENT-TYPE)",
       "From: Inner Sender <inner@y.test>\r\nTo: c@y.test\r\n\r\n"},
      {"2.1", "inner plain"},
      {"2.1.MIME", "Content-Type: text/plain\r\n\r\n"},
      {"2.2", "<b>inner</b>"},
      {"2.2.MIME", "Content-Type: text/html\r\n\r\n"},
      // As Dovecot: a leaf's only part is itself, so "1.1" is "1" when 1 is not multipart.
      {"1.1", "forwarded below"},
      {"2.1.1", "inner plain"},
      // HEADER and TEXT exist only for message/rfc822 parts; missing parts are empty.
      {"1.HEADER", ""},
      {"1.TEXT", ""},
      {"1.HEADER.FIELDS (CONTENT-TYPE)", ""},
      {"3", ""},
      {"3.MIME", ""},
      {"2.3", ""},
      {"1.2", ""},
      {"2.1.2", ""},
  };
  for (const Case& c : cases) EXPECT_EQ(section(raw, c.spec), c.want) << c.spec;
}

TEST(ExtractSectionTest, SinglePartMessage) {
  const std::string_view raw = kSimple;
  const std::string header = slice(raw, "Date:", "Hi Bob");
  EXPECT_EQ(section(raw, "1"), "Hi Bob,\r\nsee you.\r\n");
  EXPECT_EQ(section(raw, "TEXT"), "Hi Bob,\r\nsee you.\r\n");
  EXPECT_EQ(section(raw, "1.MIME"), header);  // the message header, as Dovecot
  EXPECT_EQ(section(raw, "HEADER"), header);
  EXPECT_EQ(section(raw, "1.1"), "");
  EXPECT_EQ(section(raw, "2"), "");
  EXPECT_EQ(section(raw, "1.HEADER"), "");
  EXPECT_EQ(section(raw, "1.TEXT"), "");
}

TEST(ExtractSectionTest, HeaderFieldsKeepFoldingAndOrder) {
  constexpr std::string_view raw =
      "Received: from a\r\n"
      "\tby b; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
      "From: a@x.test\r\n"
      "Subject : spaced name\r\n"
      "received: from c\r\n"
      "  by d\r\n"
      "not a field\r\n"
      "To: b@x.test\r\n"
      "\r\n"
      "Received: in the body\r\n";
  EXPECT_EQ(section(raw, "HEADER.FIELDS (RECEIVED)"),
            "Received: from a\r\n\tby b; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
            "received: from c\r\n  by d\r\n\r\n");
  EXPECT_EQ(section(raw, "HEADER.FIELDS (subject \"To\")"),
            "Subject : spaced name\r\nTo: b@x.test\r\n\r\n");
  // A line without a colon matches no name, and .NOT keeps it (as Dovecot).
  EXPECT_EQ(section(raw, "HEADER.FIELDS (not a field)"), "\r\n");
  EXPECT_EQ(section(raw, "HEADER.FIELDS.NOT (Received From Subject)"),
            "not a field\r\nTo: b@x.test\r\n\r\n");
  EXPECT_EQ(section(raw, "HEADER.FIELDS (X-Absent)"), "\r\n");
}

TEST(ExtractSectionTest, HeaderWithoutBlankLine) {
  // The whole message is header and its last line has no line break: the selected fields
  // still end with a line break and the blank line.
  constexpr std::string_view raw = "From: a@x.test\r\nTo: b@x.test\r\nSubject: s";
  EXPECT_EQ(section(raw, "HEADER"), std::string(raw));
  EXPECT_EQ(section(raw, "TEXT"), "");
  EXPECT_EQ(section(raw, "HEADER.FIELDS (SUBJECT FROM)"), "From: a@x.test\r\nSubject: s\r\n\r\n");
  EXPECT_EQ(section(raw, "HEADER.FIELDS.NOT (FROM)"), "To: b@x.test\r\nSubject: s\r\n\r\n");
}

TEST(ExtractSectionTest, HeaderSectionsFromCacheMatchTheMessage) {
  const std::string_view raw = kNested;
  const MessageInfo info = parse_message(raw);
  for (const char* spec : {"HEADER", "HEADER.FIELDS (FROM SUBJECT)", "HEADER.FIELDS.NOT (TO)",
                           "HEADER.FIELDS (X-NONE)"}) {
    Result<Section> s = parse_section(spec);
    ASSERT_TRUE(s.is_ok()) << spec;
    std::optional<std::string> cached = header_section_from_cache(info, *s);
    ASSERT_TRUE(cached.has_value()) << spec;
    EXPECT_EQ(*cached, *extract_section(raw, info, *s)) << spec;
  }
  // Everything else needs the message.
  for (const char* spec : {"", "TEXT", "1", "1.MIME", "2.HEADER", "2.HEADER.FIELDS (FROM)"}) {
    Result<Section> s = parse_section(spec);
    ASSERT_TRUE(s.is_ok()) << spec;
    EXPECT_FALSE(header_section_from_cache(info, *s).has_value()) << spec;
  }
}

TEST(ExtractSectionTest, CacheOfOtherBytesIsCorrupt) {
  const MessageInfo info = parse_message(kNested);
  const Section whole;
  Result<std::string> shorter = extract_section(kNested.substr(0, kNested.size() - 1), info, whole);
  ASSERT_FALSE(shorter.is_ok());
  EXPECT_EQ(shorter.status().code(), ErrorCode::kCorrupt);

  // Same size, but a part's offsets point past the end.
  MessageInfo bad = info;
  bad.body.children[1].body_offset = kNested.size() + 10;
  Result<Section> s = parse_section("2");
  ASSERT_TRUE(s.is_ok());
  Result<std::string> out = extract_section(kNested, bad, *s);
  ASSERT_FALSE(out.is_ok());
  EXPECT_EQ(out.status().code(), ErrorCode::kCorrupt);
}

// ---------------------------------------------------------------------------------------
// Partial fetches and response names

TEST(PartialTest, ParsesAndApplies) {
  Result<Partial> p = parse_partial("<0.100>");
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(*p, (Partial{0, 100}));
  p = parse_partial("<18446744073709551.1>");
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->origin, 18446744073709551u);
  for (const char* bad : {"<0.0>", "<1>", "<.5>", "<5.>", "<-1.2>", "0.1", "<0.1", "<a.1>",
                          "<1.2.3>", "<99999999999999999999.1>", "<0. 1>"}) {
    EXPECT_FALSE(parse_partial(bad).is_ok()) << bad;
  }

  constexpr std::string_view bytes = "0123456789";
  EXPECT_EQ(apply_partial(bytes, std::nullopt), bytes);
  EXPECT_EQ(apply_partial(bytes, Partial{0, 3}), "012");
  EXPECT_EQ(apply_partial(bytes, Partial{8, 5}), "89");
  EXPECT_EQ(apply_partial(bytes, Partial{9, 1}), "9");
  EXPECT_EQ(apply_partial(bytes, Partial{10, 1}), "");  // origin at the end
  EXPECT_EQ(apply_partial(bytes, Partial{4000000000u, 1}), "");
  EXPECT_EQ(apply_partial(bytes, Partial{2, UINT64_MAX}), "23456789");
}

TEST(PartialTest, ResponseNameEchoesOnlyTheOrigin) {
  Result<Section> s = parse_section("1.text");
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(body_response_name(*s, std::nullopt), "BODY[1.TEXT]");
  EXPECT_EQ(body_response_name(*s, Partial{10, 20}), "BODY[1.TEXT]<10>");
  EXPECT_EQ(body_response_name(Section{}, Partial{0, 1}), "BODY[]<0>");
}

TEST(BodyFetchTest, ParsesAttributes) {
  Result<BodyFetch> f = parse_body_fetch("BODY[]");
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(*f, BodyFetch{});

  f = parse_body_fetch("body.peek[header.fields (from to)]<0.100>");
  ASSERT_TRUE(f.is_ok());
  EXPECT_TRUE(f->peek);
  EXPECT_EQ(f->section.text, Section::Text::kHeaderFields);
  EXPECT_EQ(f->section.fields, (std::vector<std::string>{"FROM", "TO"}));
  EXPECT_EQ(f->partial, (Partial{0, 100}));
  EXPECT_EQ(body_response_name(f->section, f->partial), "BODY[HEADER.FIELDS (FROM TO)]<0>");

  f = parse_body_fetch("BODY[1.2.MIME]");
  ASSERT_TRUE(f.is_ok());
  EXPECT_FALSE(f->peek);
  EXPECT_EQ(f->section.part, (std::vector<uint32_t>{1, 2}));
  EXPECT_FALSE(f->partial.has_value());

  for (const char* bad :
       {"BODY", "BODY[", "BODY[1", "BODY[]<0.0>", "BODY[]<1>", "BODY[0]", "BODY[]x", "BODY.PEEK",
        "BODYSTRUCTURE", "RFC822", "BODY[] <0.1>", "BODY[]<0.1>x", "BINARY[1]"}) {
    EXPECT_FALSE(parse_body_fetch(bad).is_ok()) << bad;
  }
}

}  // namespace
}  // namespace mailark::imap
