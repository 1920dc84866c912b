// Unit tests for the MIME parse cache (mime.h): part offsets, sizes and line counts checked by
// slicing the raw message, header values, malformed input, and the serialized form.
#include "mailstore/mime.h"

#include <glib.h>
#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "base/hash.h"

namespace mailark {
namespace {

using Path = std::vector<size_t>;

// root.children[path[0]].children[path[1]]...; nullptr when a step does not exist.
const MimePart* part_at(const MimePart& root, const Path& path) {
  const MimePart* p = &root;
  for (size_t i : path) {
    if (i >= p->children.size()) return nullptr;
    p = &p->children[i];
  }
  return p;
}

std::string body_of(std::string_view raw, const MimePart& p) {
  return std::string(raw.substr(p.body_offset, p.body_size));
}

std::string header_of(std::string_view raw, const MimePart& p) {
  return std::string(raw.substr(p.header_offset, p.body_offset - p.header_offset));
}

std::string param(const MimeParams& params, std::string_view name) {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return "<absent>";
}

bool is_lower(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// What must hold for every part of every input, well-formed or not.
void expect_part_invariants(std::string_view raw, const MimePart& p, size_t parent_begin,
                            size_t parent_end, int depth) {
  ASSERT_LE(depth, 110) << "nesting limit not applied";
  const uint64_t end = p.body_offset + p.body_size;
  EXPECT_LE(parent_begin, p.header_offset);
  EXPECT_LE(p.header_offset, p.body_offset);
  EXPECT_LE(end, parent_end);
  EXPECT_LE(end, raw.size());
  if (end > raw.size() || p.body_offset > end) return;
  EXPECT_EQ(p.body_lines, static_cast<uint64_t>(
                              std::count(raw.begin() + p.body_offset, raw.begin() + end, '\n')));
  EXPECT_FALSE(p.type.empty());
  EXPECT_FALSE(p.subtype.empty());
  EXPECT_FALSE(p.encoding.empty());
  EXPECT_TRUE(is_lower(p.type) && is_lower(p.subtype) && is_lower(p.encoding)) << p.type;

  const bool message = p.type == "message" && (p.subtype == "rfc822" || p.subtype == "global");
  if (p.type == "multipart") {
    EXPECT_GE(p.children.size(), 1u);  // IMAP's grammar needs one
    EXPECT_FALSE(p.envelope.has_value());
  } else if (message) {
    EXPECT_EQ(p.children.size(), 1u);
    EXPECT_TRUE(p.envelope.has_value());
    if (!p.children.empty()) {
      EXPECT_EQ(p.children[0].header_offset, p.body_offset);
    }
  } else {
    EXPECT_TRUE(p.children.empty());
    EXPECT_FALSE(p.envelope.has_value());
  }
  size_t previous_end = p.body_offset;
  for (const MimePart& child : p.children) {
    EXPECT_GE(child.header_offset, previous_end) << "children overlap";
    expect_part_invariants(raw, child, p.body_offset, end, depth + 1);
    previous_end = child.body_offset + child.body_size;
  }
}

void expect_round_trip(const MessageInfo& info) {
  const std::string bytes = serialize_message_info(info);
  Result<MessageInfo> back = deserialize_message_info(bytes);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_TRUE(*back == info) << "serialized form does not round-trip";
}

void expect_invariants(std::string_view raw, const MessageInfo& info) {
  EXPECT_EQ(info.body.header_offset, 0u);
  EXPECT_EQ(info.header_size, info.body.body_offset);
  EXPECT_EQ(info.header, raw.substr(0, info.header_size));
  EXPECT_EQ(info.body.body_offset + info.body.body_size, raw.size());
  expect_part_invariants(raw, info.body, 0, raw.size(), 0);
  expect_round_trip(info);
}

// ---------------------------------------------------------------------------------------
// Structure: every expected part is found by path and its body checked by slicing.

struct PartExpectation {
  Path path;
  std::string type, subtype;
  std::string body;  // exactly raw.substr(body_offset, body_size)
  uint64_t lines;
};

struct StructureCase {
  const char* name;
  std::string raw;
  std::vector<PartExpectation> parts;
};

const std::vector<StructureCase>& structure_cases();

const StructureCase& structure_case(std::string_view name) {
  for (const StructureCase& c : structure_cases()) {
    if (name == c.name) return c;
  }
  ADD_FAILURE() << "no structure case " << name;
  return structure_cases().front();
}

const std::vector<StructureCase>& structure_cases() {
  static const std::vector<StructureCase> cases = {
      {"simple_text",
       "From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\nworld\r\n",
       {{{}, "text", "plain", "hello\r\nworld\r\n", 2}}},
      // Lines count line breaks: a last line without one is not counted (as Dovecot).
      {"final_partial_line",
       "Subject: x\r\n\r\nhello\r\nworld",
       {{{}, "text", "plain", "hello\r\nworld", 1}}},
      {"multipart_alternative",
       "From: a@example.com\r\n"
       "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
       "\r\n"
       "This is a preamble.\r\n"
       "--alt\r\n"
       "Content-Type: text/plain; charset=utf-8\r\n"
       "\r\n"
       "plain text\r\n"
       "--alt\r\n"
       "Content-Type: text/html\r\n"
       "\r\n"
       "<p>html</p>\r\n"
       "\r\n"
       "--alt--\r\n"
       "epilogue\r\n",
       {{{},
         "multipart",
         "alternative",
         "This is a preamble.\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         "plain text\r\n--alt\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n\r\n--alt--\r\n"
         "epilogue\r\n",
         12},
        {{0}, "text", "plain", "plain text", 0},
        {{1}, "text", "html", "<p>html</p>\r\n", 1}}},
      {"multipart_mixed_attachment",
       "Content-Type: multipart/mixed; boundary=\"=_mix\"\r\n"
       "\r\n"
       "--=_mix\r\n"
       "Content-Type: text/plain\r\n"
       "\r\n"
       "See attached.\r\n"
       "--=_mix\r\n"
       "Content-Type: application/pdf; name=\"r.pdf\"\r\n"
       "Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
       "Content-Transfer-Encoding: base64\r\n"
       "\r\n"
       "JVBERi0xLjQK\r\n"
       "JSVFT0YK\r\n"
       "--=_mix--\r\n",
       {{{0}, "text", "plain", "See attached.", 0},
        {{1}, "application", "pdf", "JVBERi0xLjQK\r\nJSVFT0YK", 1}}},
      {"nested_multipart",
       "Content-Type: multipart/mixed; boundary=outer\r\n"
       "\r\n"
       "--outer\r\n"
       "Content-Type: multipart/alternative; boundary=inner\r\n"
       "\r\n"
       "--inner\r\n"
       "\r\n"
       "text version\r\n"
       "--inner\r\n"
       "Content-Type: text/html\r\n"
       "\r\n"
       "<b>html</b>\r\n"
       "--inner--\r\n"
       "--outer\r\n"
       "Content-Type: image/png\r\n"
       "Content-Transfer-Encoding: base64\r\n"
       "\r\n"
       "iVBORw0KGgo=\r\n"
       "--outer--\r\n",
       {{{0},
         "multipart",
         "alternative",
         // The close delimiter's line break stays inside: "--outer" is the first line of
         // the (empty) epilogue, so no line break precedes it there.
         "--inner\r\n\r\ntext version\r\n--inner\r\nContent-Type: text/html\r\n\r\n"
         "<b>html</b>\r\n--inner--\r\n",
         8},
        {{0, 0}, "text", "plain", "text version", 0},
        {{0, 1}, "text", "html", "<b>html</b>", 0},
        {{1}, "image", "png", "iVBORw0KGgo=", 0}}},
      {"message_rfc822",
       "Subject: outer\r\n"
       "Content-Type: multipart/mixed; boundary=o\r\n"
       "\r\n"
       "--o\r\n"
       "\r\n"
       "see below\r\n"
       "--o\r\n"
       "Content-Type: message/rfc822\r\n"
       "\r\n"
       "From: Inner <inner@example.org>\r\n"
       "Subject: inner subject\r\n"
       "Message-ID: <inner@x>\r\n"
       "\r\n"
       "inner body\r\n"
       "--o--\r\n",
       {{{0}, "text", "plain", "see below", 0},
        {{1},
         "message",
         "rfc822",
         "From: Inner <inner@example.org>\r\nSubject: inner subject\r\nMessage-ID: <inner@x>\r\n"
         "\r\ninner body",
         4},
        {{1, 0}, "text", "plain", "inner body", 0}}},
      // RFC 2046 5.1.5: a part of multipart/digest without Content-Type is message/rfc822.
      {"digest_default_type",
       "Content-Type: multipart/digest; boundary=d\r\n"
       "\r\n"
       "--d\r\n"
       "\r\n"
       "Subject: one\r\n"
       "\r\n"
       "body one\r\n"
       "--d\r\n"
       "Content-Type: text/plain\r\n"
       "\r\n"
       "explicit text\r\n"
       "--d--\r\n",
       {{{0}, "message", "rfc822", "Subject: one\r\n\r\nbody one", 2},
        {{0, 0}, "text", "plain", "body one", 0},
        {{1}, "text", "plain", "explicit text", 0}}},
      {"missing_final_boundary",
       "Content-Type: multipart/mixed; boundary=b\r\n"
       "\r\n"
       "--b\r\n"
       "\r\n"
       "first\r\n"
       "--b\r\n"
       "\r\n"
       "last part\r\n"
       "no end\r\n",
       {{{0}, "text", "plain", "first", 0}, {{1}, "text", "plain", "last part\r\nno end\r\n", 2}}},
      // An enclosing boundary ends an unterminated inner multipart and its open part.
      {"unterminated_inner_multipart",
       "Content-Type: multipart/mixed; boundary=o\r\n"
       "\r\n"
       "--o\r\n"
       "Content-Type: multipart/alternative; boundary=i\r\n"
       "\r\n"
       "--i\r\n"
       "\r\n"
       "alt1\r\n"
       "--i\r\n"
       "\r\n"
       "alt2\r\n"
       "--o\r\n"
       "\r\n"
       "last\r\n",
       {{{0, 0}, "text", "plain", "alt1", 0},
        {{0, 1}, "text", "plain", "alt2", 0},
        {{1}, "text", "plain", "last\r\n", 1}}},
      {"no_header_body_separator", "Subject: x\r\nFrom: a@b.c\r\n", {{{}, "text", "plain", "", 0}}},
      {"empty_message", "", {{{}, "text", "plain", "", 0}}},
      {"bare_lf",
       "Content-Type: multipart/mixed; boundary=b\n"
       "\n"
       "--b\n"
       "Content-Type: text/plain\n"
       "\n"
       "line1\n"
       "line2\n"
       "--b\n"
       "\n"
       "second\n"
       "--b--\n",
       {{{0}, "text", "plain", "line1\nline2", 1}, {{1}, "text", "plain", "second", 0}}},
      // A delimiter inside a part's header: no body (and the header loses its last line
      // break to the delimiter, as Dovecot counts it).
      {"boundary_inside_part_header",
       "Content-Type: multipart/mixed; boundary=b\r\n"
       "\r\n"
       "--b\r\n"
       "Content-Type: text/html\r\n"
       "--b\r\n"
       "\r\n"
       "ok\r\n"
       "--b--\r\n",
       {{{0}, "text", "html", "", 0}, {{1}, "text", "plain", "ok", 0}}},
      // "--abc" is a prefix of "--abcdef": the longest boundary wins.
      {"prefix_boundaries",
       "Content-Type: multipart/mixed; boundary=abc\r\n"
       "\r\n"
       "pre\r\n"
       "--abc\r\n"
       "Content-Type: multipart/alternative; boundary=abcdef\r\n"
       "\r\n"
       "--abcdef\r\n"
       "\r\n"
       "one\r\n"
       "--abcdef\r\n"
       "\r\n"
       "two\r\n"
       "--abcdef--\r\n"
       "epi\r\n"
       "--abc\r\n"
       "\r\n"
       "three\r\n"
       "--abc--\r\n"
       "end\r\n",
       {{{0, 0}, "text", "plain", "one", 0},
        {{0, 1}, "text", "plain", "two", 0},
        {{1}, "text", "plain", "three", 0}}},
      // The same boundary nested: the innermost multipart owns it until closed.
      {"same_boundary_nested",
       "Content-Type: multipart/mixed; boundary=b\r\n"
       "\r\n"
       "--b\r\n"
       "Content-Type: multipart/mixed; boundary=b\r\n"
       "\r\n"
       "--b\r\n"
       "\r\n"
       "inner\r\n"
       "--b--\r\n"
       "--b\r\n"
       "\r\n"
       "outer2\r\n"
       "--b--\r\n",
       {{{0, 0}, "text", "plain", "inner", 0}, {{1}, "text", "plain", "outer2", 0}}},
      {"boundary_in_preamble_of_other",
       "Content-Type: multipart/mixed; boundary=o\r\n"
       "\r\n"
       "--o\r\n"
       "Content-Type: multipart/mixed; boundary=i\r\n"
       "\r\n"
       "--x not a boundary\r\n"
       "--o\r\n"
       "stray\r\n"
       "\r\n"
       "body\r\n"
       "--o--\r\n",
       {{{0}, "multipart", "mixed", "--x not a boundary", 0},
        {{0, 0}, "text", "plain", "", 0},
        {{1}, "text", "plain", "body", 0}}},
      {"empty_parts",
       "Content-Type: multipart/mixed; boundary=b\r\n"
       "\r\n"
       "--b\r\n"
       "--b\r\n"
       "\r\n"
       "--b\r\n"
       "\r\n"
       "\r\n"
       "--b--",
       {{{0}, "text", "plain", "", 0},
        {{1}, "text", "plain", "", 0},
        {{2}, "text", "plain", "", 0}}},
      // A delimiter at the very end without a line break starts no part.
      {"boundary_at_eof",
       "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b",
       {{{0}, "text", "plain", "x", 0}}},
      {"multipart_without_boundary",
       "Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n",
       {{{}, "multipart", "mixed", "--b\r\n\r\nx\r\n", 3}, {{0}, "text", "plain", "", 0}}},
      {"message_global",
       "Content-Type: message/global\r\n\r\nSubject: g\r\n\r\nbody\r\n",
       {{{}, "message", "global", "Subject: g\r\n\r\nbody\r\n", 3},
        {{0}, "text", "plain", "body\r\n", 1}}},
      {"invalid_content_type",
       "Content-Type: text\r\n\r\nx\r\n",
       {{{}, "text", "plain", "x\r\n", 1}}},
  };
  return cases;
}

void PrintTo(const StructureCase& c, std::ostream* os) {
  *os << c.name;
}

class StructureTest : public ::testing::TestWithParam<StructureCase> {};

TEST_P(StructureTest, PartsSliceToExpectedBodies) {
  const StructureCase& c = GetParam();
  const MessageInfo info = parse_message(c.raw);
  for (const PartExpectation& e : c.parts) {
    std::string where;
    for (size_t i : e.path) where += std::to_string(i) + ".";
    SCOPED_TRACE("part " + where);
    const MimePart* p = part_at(info.body, e.path);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->type, e.type);
    EXPECT_EQ(p->subtype, e.subtype);
    EXPECT_EQ(body_of(c.raw, *p), e.body);
    EXPECT_EQ(p->body_lines, e.lines);
  }
  expect_invariants(c.raw, info);
}

INSTANTIATE_TEST_SUITE_P(Mime, StructureTest, ::testing::ValuesIn(structure_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(MimeParse, SimpleMessageHeaderAndOffsets) {
  const std::string raw = "From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n";
  const MessageInfo info = parse_message(raw);
  EXPECT_EQ(info.header, "From: a@example.com\r\nSubject: hi\r\n\r\n");
  EXPECT_EQ(info.header_size, info.header.size());
  EXPECT_EQ(info.body.body_offset, info.header.size());
  EXPECT_EQ(info.body.body_size, 7u);
  EXPECT_EQ(info.body.params, (MimeParams{{"charset", "us-ascii"}}));
  EXPECT_EQ(info.body.encoding, "7bit");
}

TEST(MimeParse, PartHeadersSlice) {
  const StructureCase& c = structure_case("multipart_alternative");
  const MessageInfo info = parse_message(c.raw);
  ASSERT_EQ(info.body.children.size(), 2u);
  EXPECT_EQ(header_of(c.raw, info.body.children[0]),
            "Content-Type: text/plain; charset=utf-8\r\n\r\n");
  EXPECT_EQ(header_of(c.raw, info.body.children[1]), "Content-Type: text/html\r\n\r\n");

  const StructureCase& cut = structure_case("boundary_inside_part_header");
  const MessageInfo cut_info = parse_message(cut.raw);
  EXPECT_EQ(header_of(cut.raw, cut_info.body.children[0]), "Content-Type: text/html");
}

TEST(MimeParse, EmptyMessage) {
  const MessageInfo info = parse_message("");
  EXPECT_EQ(info.header_size, 0u);
  EXPECT_EQ(info.header, "");
  EXPECT_EQ(info.body.type, "text");
  EXPECT_EQ(info.body.body_size, 0u);
  EXPECT_FALSE(info.envelope.subject.has_value());
  EXPECT_TRUE(info.envelope.from.empty());
  EXPECT_EQ(info.date_ms, 0);
}

TEST(MimeParse, NoSeparatorMeansAllHeader) {
  const std::string raw = "Subject: x\r\nFrom: a@b.c";
  const MessageInfo info = parse_message(raw);
  EXPECT_EQ(info.header_size, raw.size());
  EXPECT_EQ(info.envelope.subject, "x");
  ASSERT_EQ(info.envelope.from.size(), 1u);
  EXPECT_EQ(info.envelope.from[0].host, "b.c");
}

TEST(MimeParse, BareLfHeaderSize) {
  const std::string raw = "Subject: lf\nFrom: a@b.c\n\nbody\n";
  const MessageInfo info = parse_message(raw);
  EXPECT_EQ(info.header, "Subject: lf\nFrom: a@b.c\n\n");
  EXPECT_EQ(info.envelope.subject, "lf");
  EXPECT_EQ(body_of(raw, info.body), "body\n");
}

// ---------------------------------------------------------------------------------------
// Header values.

TEST(MimeEnvelope, BasicFields) {
  const MessageInfo info = parse_message(
      "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
      "Subject: Hello\r\n"
      " folded\r\n"
      "FROM: \"Doe, John\" <john@example.com>\r\n"
      "to: jane@example.org, Bob <bob@example.net>\r\n"
      "Cc: carol@example.com\r\n"
      "Bcc: dave@example.com\r\n"
      "In-Reply-To: <prev@example.com>\r\n"
      "Message-Id: <id1@example.com>\r\n"
      "\r\n"
      "body\r\n");
  const MimeEnvelope& e = info.envelope;
  EXPECT_EQ(e.date, "Tue, 1 Jul 2003 10:52:37 +0200");
  EXPECT_EQ(e.subject, "Hello folded");
  ASSERT_EQ(e.from.size(), 1u);
  EXPECT_EQ(e.from[0].name, "Doe, John");
  EXPECT_FALSE(e.from[0].adl.has_value());
  EXPECT_EQ(e.from[0].mailbox, "john");
  EXPECT_EQ(e.from[0].host, "example.com");
  // RFC 3501: absent Sender and Reply-To are reported as From.
  EXPECT_EQ(e.sender, e.from);
  EXPECT_EQ(e.reply_to, e.from);
  ASSERT_EQ(e.to.size(), 2u);
  EXPECT_FALSE(e.to[0].name.has_value());
  EXPECT_EQ(e.to[1].name, "Bob");
  EXPECT_EQ(e.to[1].mailbox, "bob");
  ASSERT_EQ(e.cc.size(), 1u);
  ASSERT_EQ(e.bcc.size(), 1u);
  EXPECT_EQ(e.in_reply_to, "<prev@example.com>");
  EXPECT_EQ(e.message_id, "<id1@example.com>");
  EXPECT_EQ(info.date_ms, 1057049557000);
  EXPECT_EQ(info.subject_text, "Hello folded");
}

TEST(MimeEnvelope, ExplicitReplyToAndSender) {
  const MessageInfo info =
      parse_message("From: a@x.org\r\nSender: s@x.org\r\nReply-To: r@x.org\r\n\r\n");
  ASSERT_EQ(info.envelope.sender.size(), 1u);
  EXPECT_EQ(info.envelope.sender[0].mailbox, "s");
  ASSERT_EQ(info.envelope.reply_to.size(), 1u);
  EXPECT_EQ(info.envelope.reply_to[0].mailbox, "r");
}

TEST(MimeEnvelope, DuplicateFieldsResolvedAsDovecot) {
  const MessageInfo info = parse_message(
      "Subject: first\r\nSubject: second\r\nCc: a@x.org\r\nCC: b@x.org\r\n"
      "Content-Type: text/html\r\nContent-Type: image/png\r\n\r\nx");
  EXPECT_EQ(info.envelope.subject, "second");
  ASSERT_EQ(info.envelope.cc.size(), 2u);
  EXPECT_EQ(info.envelope.cc[1].mailbox, "b");
  EXPECT_EQ(info.body.subtype, "html");  // Content-* fields: the first wins
}

TEST(MimeEnvelope, EncodedWordSubject) {
  const MessageInfo info =
      parse_message("Subject: =?utf-8?q?h=C3=A9llo?= =?ISO-8859-1?B?d/ZybGQ=?=\r\n\r\n");
  // ENVELOPE keeps the raw value; SEARCH gets the decoded text.
  EXPECT_EQ(info.envelope.subject, "=?utf-8?q?h=C3=A9llo?= =?ISO-8859-1?B?d/ZybGQ=?=");
  EXPECT_EQ(info.subject_text, "h\xC3\xA9llow\xC3\xB6rld");
}

TEST(MimeEnvelope, EightBitSubjectBecomesUtf8) {
  const MessageInfo latin1 = parse_message("Subject: caf\xE9\r\n\r\n");
  EXPECT_EQ(latin1.subject_text, "caf\xC3\xA9");
  const MessageInfo utf8 = parse_message("Subject: caf\xC3\xA9\r\n\r\n");
  EXPECT_EQ(utf8.subject_text, "caf\xC3\xA9");
}

TEST(MimeEnvelope, AddressGroups) {
  const MessageInfo info = parse_message(
      "To: A Group: a@b.c, \"Doe, J\" <d@e.f>;, solo@x.y\r\n"
      "Cc: undisclosed-recipients:;\r\n\r\n");
  const auto& to = info.envelope.to;
  ASSERT_EQ(to.size(), 5u);
  EXPECT_EQ(to[0].mailbox, "A Group");  // group start: name in mailbox, host NIL
  EXPECT_FALSE(to[0].host.has_value());
  EXPECT_EQ(to[1].mailbox, "a");
  EXPECT_EQ(to[2].name, "Doe, J");
  EXPECT_EQ(to[3], MimeAddress{});  // group end: all NIL
  EXPECT_EQ(to[4].mailbox, "solo");
  EXPECT_EQ(to[4].host, "x.y");
  const auto& cc = info.envelope.cc;
  ASSERT_EQ(cc.size(), 2u);
  EXPECT_EQ(cc[0].mailbox, "undisclosed-recipients");
  EXPECT_FALSE(cc[0].host.has_value());
  EXPECT_EQ(cc[1], MimeAddress{});
}

TEST(MimeEnvelope, NamesStaySevenBit) {
  const MessageInfo info =
      parse_message("From: =?iso-8859-1?q?J=F6rg?= <j@x.de>, Gr\xC3\xBCn <g@x.de>, user\r\n\r\n");
  const auto& from = info.envelope.from;
  ASSERT_EQ(from.size(), 3u);
  // Non-ASCII names are re-encoded as UTF-8 encoded words.
  ASSERT_TRUE(from[0].name.has_value());
  EXPECT_EQ(*from[0].name, "=?UTF-8?b?SsO2cmc=?=");
  ASSERT_TRUE(from[1].name.has_value());
  EXPECT_EQ(*from[1].name, "=?UTF-8?b?R3LDvG4=?=");
  // A bare local part keeps a non-NIL host (NIL would mean a group start).
  EXPECT_EQ(from[2].mailbox, "user");
  EXPECT_EQ(from[2].host, "MISSING_DOMAIN");
}

TEST(MimeEnvelope, UnparsableAddressesAndDates) {
  const MessageInfo info = parse_message("From: @@@,,,<<<\r\nDate: not a date\r\n\r\n");
  EXPECT_TRUE(info.envelope.from.empty());
  EXPECT_EQ(info.envelope.date, "not a date");
  EXPECT_EQ(info.date_ms, 0);
}

TEST(MimeEnvelope, NulInHeaderBecomesReplacementCharacter) {
  const std::string raw("Subject: a\0b\r\n\r\nx\0y\r\n", 21);
  const MessageInfo info = parse_message(raw);
  EXPECT_EQ(info.envelope.subject,
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(info.header.size(), 16u);  // the raw header keeps its bytes
  EXPECT_EQ(info.body.body_size, 5u);
}

TEST(MimeEnvelope, NestedMessageHasItsOwnEnvelope) {
  const StructureCase& c = structure_case("message_rfc822");
  const MessageInfo info = parse_message(c.raw);
  EXPECT_EQ(info.envelope.subject, "outer");
  const MimePart* msg = part_at(info.body, {1});
  ASSERT_NE(msg, nullptr);
  ASSERT_TRUE(msg->envelope.has_value());
  EXPECT_EQ(msg->envelope->subject, "inner subject");
  EXPECT_EQ(msg->envelope->message_id, "<inner@x>");
  ASSERT_EQ(msg->envelope->from.size(), 1u);
  EXPECT_EQ(msg->envelope->from[0].name, "Inner");
  EXPECT_EQ(msg->envelope->from[0].host, "example.org");
}

TEST(MimeContent, Rfc2231Parameters) {
  const MessageInfo info = parse_message(
      "Content-Type: application/x-stuff;\r\n"
      " title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
      " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
      " title*2=\"isn't it!\"\r\n"
      "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rates.txt\r\n"
      "\r\n"
      "x");
  EXPECT_EQ(info.body.params, (MimeParams{{"title", "This is even more ***fun*** isn't it!"}}));
  EXPECT_EQ(info.body.disposition, "attachment");
  EXPECT_EQ(info.body.disposition_params, (MimeParams{{"filename", "\xE2\x82\xAC rates.txt"}}));
}

TEST(MimeContent, ExtensionFields) {
  const MessageInfo info = parse_message(
      "Content-Type: TEXT/HTML; Charset=\"ISO-8859-1\"; format=flowed\r\n"
      "Content-ID: <cid@x>\r\n"
      "Content-Description: a  desc\r\n"
      "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
      "Content-Language: en, de\r\n"
      "Content-Location: http://x/y\r\n"
      "Content-Disposition: INLINE; filename=\"a b.txt\"\r\n"
      "Content-Transfer-Encoding: QUOTED-PRINTABLE (comment)\r\n"
      "\r\n"
      "x\r\n");
  const MimePart& p = info.body;
  EXPECT_EQ(p.type, "text");
  EXPECT_EQ(p.subtype, "html");
  EXPECT_EQ(p.params, (MimeParams{{"charset", "ISO-8859-1"}, {"format", "flowed"}}));
  EXPECT_EQ(p.id, "<cid@x>");
  EXPECT_EQ(p.description, "a  desc");
  EXPECT_EQ(p.md5, "Q2hlY2sgSW50ZWdyaXR5IQ==");
  EXPECT_EQ(p.language, "en, de");
  EXPECT_EQ(p.location, "http://x/y");
  EXPECT_EQ(p.disposition, "inline");
  EXPECT_EQ(param(p.disposition_params, "filename"), "a b.txt");
  EXPECT_EQ(p.encoding, "quoted-printable");
}

TEST(MimeContent, Defaults) {
  const MessageInfo plain = parse_message("Subject: x\r\n\r\n");
  EXPECT_EQ(plain.body.type, "text");
  EXPECT_EQ(plain.body.subtype, "plain");
  EXPECT_EQ(plain.body.params, (MimeParams{{"charset", "us-ascii"}}));
  EXPECT_EQ(plain.body.encoding, "7bit");
  EXPECT_FALSE(plain.body.disposition.has_value());
  // A text part without charset reports us-ascii (as Dovecot); other types get nothing.
  const MessageInfo html = parse_message("Content-Type: text/html; format=x\r\n\r\n");
  EXPECT_EQ(html.body.params, (MimeParams{{"format", "x"}, {"charset", "us-ascii"}}));
  const MessageInfo image = parse_message("Content-Type: image/png\r\n\r\n");
  EXPECT_TRUE(image.body.params.empty());
}

// ---------------------------------------------------------------------------------------
// Malformed and hostile input: never a crash, never a loop, always the invariants.

TEST(MimeRobustness, DeepMultipartNestingIsCapped) {
  std::string raw;
  const int levels = 1000;
  for (int i = 0; i < levels; ++i) {
    raw += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" +
           std::to_string(i) + "\r\n";
  }
  raw += "\r\ndeep\r\n";
  const MessageInfo info = parse_message(raw);
  int depth = 0;
  for (const MimePart* p = &info.body; !p->children.empty(); p = &p->children[0]) ++depth;
  EXPECT_GE(depth, 100);
  EXPECT_LE(depth, 102);
  expect_invariants(raw, info);
}

TEST(MimeRobustness, DeepMessageNestingIsCapped) {
  std::string raw = "Subject: leaf\r\n\r\nleaf body\r\n";
  for (int i = 0; i < 1000; ++i) raw = "Content-Type: message/rfc822\r\n\r\n" + raw;
  const MessageInfo info = parse_message(raw);
  expect_invariants(raw, info);
}

TEST(MimeRobustness, ManyDelimiterLikeLinesStayFast) {
  std::string raw = "Content-Type: multipart/mixed; boundary=abcdefghij\r\n\r\n";
  for (int i = 0; i < 200000; ++i) raw += "--abcdefghi\r\n";
  const auto start = std::chrono::steady_clock::now();
  const MessageInfo info = parse_message(raw);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  expect_invariants(raw, info);
}

TEST(MimeRobustness, OddBytes) {
  const std::vector<std::string> inputs = {
      "\r",
      "\n",
      "\r\n",
      "\r\n\r\n",
      "\n\n\n",
      "\r\r\r\r",
      "--",
      " continuation first\r\n\r\n",
      ":\r\n\r\n",
      std::string("\0\0\0\r\n\r\n\0", 8),
      "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\n",
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b",
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--",
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
      "Content-Type: multipart/mixed; boundary=b\r\n--b\r\n\r\n",
      "Content-Type: message/rfc822\r\n\r\n",
      "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdA==\r\n",
      "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\nSubject: cut\r\n--d--\r\n",
      "Subject: \xFF\xFE\x80\r\nFrom: \xC3\x28 <\xFF@\xFE>\r\n\r\n\xFF",
  };
  for (const std::string& raw : inputs) {
    SCOPED_TRACE(::testing::PrintToString(raw));
    expect_invariants(raw, parse_message(raw));
  }
}

std::string complex_message() {
  return "From: =?utf-8?q?J=C3=B6rg?= <j@x.de>\r\n"
         "To: Group: a@b.c, d@e.f;\r\n"
         "Subject: complex\r\n"
         "Content-Type: multipart/mixed; boundary=\"o\"\r\n"
         "\r\n"
         "preamble\r\n"
         "--o\r\n"
         "Content-Type: multipart/alternative; boundary=i\r\n"
         "\r\n"
         "--i\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n"
         "\r\n"
         "text\r\n"
         "--i\r\n"
         "Content-Type: text/html\r\n"
         "\r\n"
         "<p>x</p>\r\n"
         "--i--\r\n"
         "--o\r\n"
         "Content-Type: message/rfc822\r\n"
         "\r\n"
         "Subject: inner\r\n"
         "Content-Type: multipart/digest; boundary=d\r\n"
         "\r\n"
         "--d\r\n"
         "\r\n"
         "Subject: digested\r\n"
         "\r\n"
         "d body\r\n"
         "--d--\r\n"
         "--o\r\n"
         "Content-Type: application/octet-stream; name*=utf-8''a%20b\r\n"
         "Content-Transfer-Encoding: base64\r\n"
         "\r\n"
         "AAEC\r\n"
         "--o--\r\n"
         "epilogue\r\n";
}

// One FieldDecoder per call keeps GMime state apart: parses on many threads agree.
TEST(MimeParse, ConcurrentParsesAgree) {
  const std::string raw = complex_message();
  const MessageInfo expected = parse_message(raw);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (!(parse_message(raw) == expected)) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(MimeRobustness, EveryTruncation) {
  const std::string full = complex_message();
  for (size_t n = 0; n <= full.size(); ++n) {
    SCOPED_TRACE("truncated to " + std::to_string(n));
    const std::string raw = full.substr(0, n);
    expect_invariants(raw, parse_message(raw));
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(MimeRobustness, RandomMutations) {
  const std::string full = complex_message();
  std::mt19937 rng(12345);
  const std::string alphabet = "-\r\n :;=\"bodi\x00\xFF";
  for (int round = 0; round < 3000; ++round) {
    std::string raw = full;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !raw.empty(); ++e) {
      const size_t at = rng() % raw.size();
      switch (rng() % 3) {
        case 0:
          raw[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          raw.erase(at, 1 + rng() % 16);
          break;
        default:
          raw.insert(at, raw.substr(rng() % raw.size(), 1 + rng() % 32));
          break;
      }
    }
    SCOPED_TRACE("round " + std::to_string(round));
    expect_invariants(raw, parse_message(raw));
    if (::testing::Test::HasFailure()) return;
  }
}

// ---------------------------------------------------------------------------------------
// Serialized form.

MessageInfo every_field_set() {
  MimeAddress full{"name", "@route", "box", "host"};
  MimeEnvelope env;
  env.date = "d";
  env.subject = std::string("s\0\xFF", 3);
  env.from = {full};
  env.sender = {MimeAddress{std::nullopt, std::nullopt, "group", std::nullopt}, MimeAddress{}};
  env.reply_to = {full, full};
  env.to = {MimeAddress{"", "", "", ""}};
  env.in_reply_to = "";
  env.message_id = "<m>";
  MimePart leaf;
  leaf.type = "application";
  leaf.subtype = "x";
  leaf.params = {{"a", ""}, {"", "b"}};
  leaf.id = "id";
  leaf.description = "desc";
  leaf.encoding = "base64";
  leaf.md5 = "md5";
  leaf.language = "en";
  leaf.location = "loc";
  leaf.disposition = "attachment";
  leaf.disposition_params = {{"filename", "f"}};
  leaf.header_offset = UINT64_MAX - 3;
  leaf.body_offset = UINT64_MAX - 2;
  leaf.body_size = UINT64_MAX;
  leaf.body_lines = 1ull << 63;
  MimePart message;
  message.type = "message";
  message.subtype = "rfc822";
  message.children = {leaf};
  message.envelope = env;
  MessageInfo info;
  info.envelope = env;
  info.body.type = "multipart";
  info.body.subtype = "mixed";
  info.body.children = {leaf, message, MimePart{}};
  info.header_size = 7;
  info.header = std::string("h\0eader\r\n", 9);
  info.subject_text = "\xC3\xA9";
  info.date_ms = -62135596800000;  // year 1
  return info;
}

TEST(MimeSerialize, RoundTripsEveryField) {
  const MessageInfo info = every_field_set();
  expect_round_trip(info);
  MessageInfo other = info;
  other.body.children[1].envelope->sender.pop_back();
  EXPECT_FALSE(other == info);  // the comparison can fail, so the round trip means something
  expect_round_trip(MessageInfo{});
}

TEST(MimeSerialize, RoundTripsParsedStructures) {
  for (const StructureCase& c : structure_cases()) {
    SCOPED_TRACE(c.name);
    expect_round_trip(parse_message(c.raw));
  }
}

TEST(MimeSerialize, RecordLayout) {
  const std::string bytes = serialize_message_info(parse_message("Subject: x\r\n\r\nbody"));
  ASSERT_GT(bytes.size(), 14u);
  EXPECT_EQ(bytes.substr(0, 4), "MKPC");
  EXPECT_EQ(bytes[4], 2);  // format version
  // CRC-32C (little-endian) of everything before it.
  const uint32_t crc = crc32c(std::string_view(bytes).substr(0, bytes.size() - 4));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(static_cast<uint8_t>(bytes[bytes.size() - 4 + i]), (crc >> (8 * i)) & 0xff);
}

void expect_corrupt(std::string_view bytes) {
  Result<MessageInfo> r = deserialize_message_info(bytes);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << r.status().to_string();
}

TEST(MimeSerialize, GarbageIsCorrupt) {
  expect_corrupt("");
  expect_corrupt("MKPC");
  expect_corrupt("hello, this is not a parse cache record at all");
  expect_corrupt(std::string(64, '\0'));
  expect_corrupt(std::string(64, '\xFF'));
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (i % 2) junk.replace(0, std::min<size_t>(5, junk.size()), std::string("MKPC\x01", 5));
    expect_corrupt(junk);
  }
}

TEST(MimeSerialize, EveryTruncationAndBitFlipIsCorrupt) {
  const std::string good = serialize_message_info(parse_message(complex_message()));
  for (size_t n = 0; n < good.size(); ++n) expect_corrupt(good.substr(0, n));
  expect_corrupt(good + "x");
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    expect_corrupt(bad);
  }
}

TEST(MimeSerialize, UnknownVersionIsCorrupt) {
  std::string bytes = serialize_message_info(MessageInfo{});
  bytes[4] = 3;
  expect_corrupt(bytes);
}

// Frames `payload` as docs/formats/parse-cache.md says for version 1 (SHA-256 checksum), so
// that the payload decoder itself is exercised.
std::string frame(std::string_view payload) {
  std::string out = "MKPC";
  out.push_back(1);
  uint64_t n = payload.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  out.append(payload);
  std::array<uint8_t, 32> digest{};
  gsize size = digest.size();
  GChecksum* sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, reinterpret_cast<const guchar*>(out.data()),
                    static_cast<gssize>(out.size()));
  g_checksum_get_digest(sum, digest.data(), &size);
  g_checksum_free(sum);
  out.append(reinterpret_cast<const char*>(digest.data()), 8);
  return out;
}

TEST(MimeSerialize, MalformedPayloadWithValidChecksumIsCorrupt) {
  const std::string good = serialize_message_info(parse_message(complex_message()));
  // Re-frame the genuine payload: it must still decode (the framing helper follows the spec).
  size_t pos = 5;
  uint64_t len = 0;
  for (int shift = 0;; shift += 7) {
    const uint8_t b = static_cast<uint8_t>(good[pos++]);
    len |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  const std::string payload = good.substr(pos, len);
  ASSERT_TRUE(deserialize_message_info(frame(payload)).is_ok());
  // Records of version 1 (SHA-256 checksum, written before 2026-11-30) still decode, to the
  // same information as the version 2 record of the same payload.
  EXPECT_EQ(deserialize_message_info(frame(payload)).value(),
            deserialize_message_info(good).value());

  for (size_t n = 0; n < payload.size(); ++n) expect_corrupt(frame(payload.substr(0, n)));
  expect_corrupt(frame(payload + '\0'));
  expect_corrupt(frame(std::string(40, '\xFF')));  // absurd counts and lengths
  expect_corrupt(frame(std::string(40, '\x02')));  // optional flags that are neither 0 nor 1
  // A part tree nested deeper than any parse produces is refused; a shallow one of the same
  // construction decodes, so it is the depth that is refused.
  auto nested = [](int levels) {
    const std::string empty_envelope(10, '\0');     // 4 absent strings, 6 empty lists
    const std::string empty_part_fields(15, '\0');  // type .. body_lines: empty, absent, 0
    std::string out = empty_envelope;
    for (int i = 0; i < levels; ++i) out += empty_part_fields + '\x01';  // one child
    out += empty_part_fields + '\0' + '\0';                              // no children, no envelope
    for (int i = 0; i < levels; ++i) out += '\0';                        // each parent: no envelope
    out += std::string(4, '\0');  // header_size, header, subject_text, date_ms
    return out;
  };
  EXPECT_TRUE(deserialize_message_info(frame(nested(50))).is_ok());
  expect_corrupt(frame(nested(1000)));
}

// ---------------------------------------------------------------------------------------
// Debian's Python email test corpus: real-world and deliberately broken messages.

std::optional<std::filesystem::path> python_email_corpus() {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("MAILARK_EMAIL_CORPUS")) candidates.emplace_back(dir);
  candidates.emplace_back("/usr/lib/python3.11/test/test_email/data");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib", ec)) {
    if (entry.path().filename().string().rfind("python3", 0) == 0) {
      candidates.push_back(entry.path() / "test/test_email/data");
    }
  }
  for (const fs::path& dir : candidates) {
    if (fs::exists(dir / "msg_01.txt", ec)) return dir;
  }
  return std::nullopt;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string to_crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n' && (out.empty() || out.back() != '\r')) out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

TEST(MimeCorpus, PythonEmailTestData) {
  const std::optional<std::filesystem::path> dir = python_email_corpus();
  if (!dir) GTEST_SKIP() << "libpython3-testsuite not installed (test_email/data)";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(*dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("msg_", 0) != 0 || entry.path().extension() != ".txt") continue;
    SCOPED_TRACE(name);
    ++files;
    const std::string raw = read_file(entry.path());
    expect_invariants(raw, parse_message(raw));
    const std::string crlf = to_crlf(raw);
    expect_invariants(crlf, parse_message(crlf));
  }
  EXPECT_GE(files, 40);
}

// Sizes and line counts that Dovecot 2.3.19 reports in BODYSTRUCTURE for the same files
// stored with CRLF line ends (its sizes are CRLF sizes). Dovecot reports no size for a
// multipart and no line count for non-text leaves, so those are not compared.
TEST(MimeCorpus, MatchesDovecotBodystructureSizes) {
  const std::optional<std::filesystem::path> dir = python_email_corpus();
  if (!dir) GTEST_SKIP() << "libpython3-testsuite not installed (test_email/data)";
  struct Leaf {
    std::string type;  // type/subtype
    uint64_t size;
    std::optional<uint64_t> lines;
  };
  const std::vector<std::pair<const char*, std::vector<Leaf>>> expected = {
      {"msg_02.txt",
       {{"text/plain", 419, 14},
        {"text/plain", 199, 7},
        {"message/rfc822", 247, 12},
        {"text/plain", 11, 3},
        {"message/rfc822", 220, 11},
        {"text/plain", 11, 3},
        {"message/rfc822", 247, 12},
        {"text/plain", 11, 3},
        {"message/rfc822", 247, 12},
        {"text/plain", 11, 3},
        {"message/rfc822", 251, 14},
        {"text/plain", 15, 5},
        {"text/plain", 123, 5}}},
      {"msg_07.txt", {{"text/plain", 39, 3}, {"image/gif", 4808, std::nullopt}}},
      {"msg_16.txt",
       {{"text/plain", 451, 13},
        {"message/delivery-status", 272, std::nullopt},
        {"message/rfc822", 2701, 55},
        {"text/plain", 206, 7}}},
      {"msg_42.txt", {{"text/plain", 7, 1}, {"message/rfc822", 107, 5}, {"text/plain", 0, 0}}},
  };
  for (const auto& [file, leaves] : expected) {
    SCOPED_TRACE(file);
    const MessageInfo info = parse_message(to_crlf(read_file(*dir / file)));
    std::vector<const MimePart*> actual;  // non-multipart parts in pre-order
    std::vector<const MimePart*> stack = {&info.body};
    while (!stack.empty()) {
      const MimePart* p = stack.back();
      stack.pop_back();
      if (p->type != "multipart") actual.push_back(p);
      for (auto it = p->children.rbegin(); it != p->children.rend(); ++it) stack.push_back(&*it);
    }
    ASSERT_EQ(actual.size(), leaves.size());
    for (size_t i = 0; i < leaves.size(); ++i) {
      SCOPED_TRACE("leaf " + std::to_string(i));
      EXPECT_EQ(actual[i]->type + "/" + actual[i]->subtype, leaves[i].type);
      EXPECT_EQ(actual[i]->body_size, leaves[i].size);
      if (leaves[i].lines) {
        EXPECT_EQ(actual[i]->body_lines, *leaves[i].lines);
      }
    }
  }
}

}  // namespace
}  // namespace mailark

namespace mailark {
namespace {

TEST(MimeEnvelope, InternationalDomainStaysAscii) {
  MessageInfo info = parse_message(
      "From: User <user169@xn--mller-bau-q9a.test>\r\nTo: plain@example.test\r\n"
      "Cc: odd@xn--mller-bau-9db.test\r\n\r\nbody\r\n");
  ASSERT_EQ(info.envelope.from.size(), 1u);
  EXPECT_EQ(info.envelope.from[0].mailbox, "user169");
  EXPECT_EQ(info.envelope.from[0].host, "xn--mller-bau-q9a.test");  // müller-bau
  EXPECT_EQ(info.envelope.to[0].host, "example.test");
  // A label that is not in IDNA normal form is re-encoded, but stays ASCII.
  ASSERT_EQ(info.envelope.cc.size(), 1u);
  for (char c : *info.envelope.cc[0].host) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
}

}  // namespace
}  // namespace mailark

namespace mailark {
namespace {

// ---------------------------------------------------------------------------------------
// RFC 2047 decoding without GMime must give GMime's answer wherever it gives one.

std::optional<std::string> gmime_decode(const std::string& text) {
  g_mime_init();  // counted: the store's own initialisation is unaffected
  char* decoded = g_mime_utils_header_decode_text(nullptr, text.c_str());
  if (!decoded) return std::nullopt;
  std::string out(decoded);
  g_free(decoded);
  return out;
}

TEST(HeaderText, SimpleDecoderAnswersTheCommonCasesAsGMimeDoes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"plain ASCII text", "plain ASCII text"},
      {"=?UTF-8?B?w6l0w6k=?=", "\xc3\xa9t\xc3\xa9"},
      {"=?utf-8?q?caf=C3=A9_au_lait?=", "caf\xc3\xa9 au lait"},
      {"=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"},  // whitespace between words dropped
      {"=?UTF-8?Q?a?=  \t =?UTF-8?B?Yg==?=", "ab"},
      {"x =?UTF-8?Q?a?= y", "x a y"},  // kept next to ordinary text
      {"Re:  two  spaces", "Re:  two  spaces"},
      {"=?us-ascii?q?plain?= text", "plain text"},
      // A character split between two words is whole again after both.
      {"=?UTF-8?B?w6jD?= =?UTF-8?B?qQ==?=", "\xc3\xa8\xc3\xa9"},
      {"=?UTF-8?Q?=C3?= =?UTF-8?Q?=A9?=", "\xc3\xa9"},
      {"Grüße =?UTF-8?Q?aus?= Köln", "Grüße aus Köln"},  // raw UTF-8 around words
      {"=?iso-8859-1?q?caf=E9?=", "caf\xc3\xa9"},        // other charsets: iconv
      {"=?windows-1252?Q?Budget_=97_final?=", "Budget \xe2\x80\x94 final"},
      {"=?koi8-r?B?79Teo9Q=?= x", "\xd0\x9e\xd1\x82\xd1\x87\xd1\x91\xd1\x82 x"},
      {"=?ISO-2022-JP?B?GyRCJEskWyRzGyhC?=", "\xe3\x81\xab\xe3\x81\xbb\xe3\x82\x93"},
      {"=?iso-8859-1?q?a?= =?utf-8?q?b?=", "ab"},  // a word in another charset ends a run
      {"=?UTF-8?B?RGV2aXMgbsKwODQ1NTMg4oCUIHLDqXZpc2lvbg==?=",
       "Devis n\xc2\xb0"
       "84553 \xe2\x80\x94 r\xc3\xa9vision"},
      {"=?UTF-8?Q?=5Bannounce=5D_Photos_from_the_offsite_=F0=9F=93=B7?=",
       "[announce] Photos from the offsite \xf0\x9f\x93\xb7"},
  };
  for (const auto& [in, want] : cases) {
    SCOPED_TRACE(in);
    auto simple = decode_simple_header_text(in);
    ASSERT_TRUE(simple.has_value());
    EXPECT_EQ(*simple, want);
    EXPECT_EQ(simple, gmime_decode(in));
    EXPECT_EQ(decode_header_text(in), want);
  }
}

// GMime joins the text of adjacent B words before decoding it, so padding at the end of the
// first word ends the second (GMime 3.2 answers only "è" here). Each word is decoded on its
// own (RFC 2047 6.2), as Dovecot does.
TEST(HeaderText, AdjacentBase64WordsWithPaddingAreEachDecoded) {
  const std::string in = "=?UTF-8?B?w6g=?= =?UTF-8?B?w6k=?=";
  EXPECT_EQ(decode_header_text(in), "\xc3\xa8\xc3\xa9");
}

TEST(HeaderText, SimpleDecoderLeavesTheRestToGMime) {
  const std::vector<std::string> others = {
      "=?UTF-8*en?Q?hello?=",  // RFC 2231 language
      "foo=?UTF-8?Q?bar?=",    // a word inside a token
      "=?UTF-8?Q?bar?=baz",
      "=?no-such-charset?q?abc?=",  // a charset iconv does not know
      "=?windows-1252?q?=81?=",     // a byte the charset does not have
      "=?UTF-8?Q?a=ZZ?=",           // bad hex
      "=?UTF-8?B?w6k?=",            // unpadded base64
      "=?UTF-8?X?abc?=",            // unknown encoding
      "=?UTF-8?Q?"
      "?=",                     // empty word
      "=?UTF-8?B?/w==?=",       // decodes to invalid UTF-8
      "=?UTF-8?Q?a=00b?=",      // a NUL
      "=?us-ascii?q?caf=E9?=",  // 8-bit in US-ASCII
      "caf\xe9",                // 8-bit text that is not UTF-8
      "tab\x01control",
  };
  for (const auto& in : others) {
    SCOPED_TRACE(in);
    EXPECT_FALSE(decode_simple_header_text(in).has_value());
    EXPECT_EQ(decode_header_text(in), gmime_decode(in));
  }
}

// True when two encoded words in B of one charset follow each other (only whitespace
// between) and the first ends in padding: the case where GMime loses text (above).
bool joins_padded_base64(const std::string& text) {
  std::vector<std::string> tokens;
  std::string token;
  for (char c : text + " ") {
    if (c == ' ' || c == '\t') {
      if (!token.empty()) tokens.push_back(token);
      token.clear();
    } else {
      token += c;
    }
  }
  auto b_word = [](const std::string& t, std::string* charset) {
    if (t.size() < 8 || t.rfind("=?", 0) != 0 || t.substr(t.size() - 2) != "?=") return false;
    size_t q = t.find('?', 2);
    if (q == std::string::npos || q + 2 >= t.size() || t[q + 2] != '?') return false;
    if (t[q + 1] != 'B' && t[q + 1] != 'b') return false;
    *charset = t.substr(2, q - 2);
    for (char& c : *charset) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return true;
  };
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    std::string a, b;
    if (b_word(tokens[i], &a) && b_word(tokens[i + 1], &b) && a == b &&
        tokens[i][tokens[i].size() - 3] == '=')
      return true;
  }
  return false;
}

// Random texts built from ordinary words, raw UTF-8, and encoded words that are well formed,
// damaged, split or in other charsets: wherever the simple decoder answers, GMime agrees.
TEST(HeaderText, SimpleDecoderAgreesWithGMimeOnRandomText) {
  const std::vector<std::string> pieces = {"Re:",
                                           "hello",
                                           "Fwd:",
                                           "(x)",
                                           "a=b",
                                           "\"q\"",
                                           "Gr\xc3\xbc\xc3\x9f"
                                           "e",
                                           "=?",
                                           "?=",
                                           "=?UTF-8?B?w6l0w6k=?=",
                                           "=?utf-8?b?4oKs?=",
                                           "=?UTF-8?Q?caf=C3=A9_au?=",
                                           "=?UTF-8?q?=e2=82=ac?=",
                                           "=?us-ascii?Q?plain_words?=",
                                           "=?US-ASCII?B?YWJj?=",
                                           "=?UTF-8?B?w6g=?=",
                                           "=?UTF-8?Q?=C3?=",
                                           "=?UTF-8?Q?=A9?=",
                                           "=?iso-8859-1?q?caf=E9?=",
                                           "=?windows-1252?Q?=96_F=E4lligkeit?=",
                                           "=?koi8-r?B?79Teo9Q=?=",
                                           "=?ISO-8859-2?B?6Q==?=",
                                           "=?iso-8859-15?q?=A4?=",
                                           "=?windows-1252?B?UulmIDo=?=",
                                           "=?UTF-8?Q?a?b?=",
                                           "=?UTF-8?B?***?=",
                                           "=?UTF-8?Q?x_y?=z",
                                           "=?UTF-8?B?"
                                           "?=",
                                           "=?utf-8?Q?=3D=3F?="};
  const std::vector<std::string> spaces = {" ", "  ", "\t", " \t "};
  std::mt19937 rng(2047);
  int answered = 0, gmime_differs = 0;
  for (int n = 0; n < 5000; ++n) {
    std::string text;
    const int words = 1 + static_cast<int>(rng() % 6);
    for (int w = 0; w < words; ++w) {
      if (w) text += spaces[rng() % spaces.size()];
      text += pieces[rng() % pieces.size()];
    }
    auto simple = decode_simple_header_text(text);
    if (!simple) continue;
    if (joins_padded_base64(text)) {
      ++gmime_differs;
      continue;
    }
    ++answered;
    ASSERT_EQ(simple, gmime_decode(text)) << text;
  }
  EXPECT_GT(answered, 500);  // the comparison covered the simple decoder, not only GMime
  EXPECT_GT(gmime_differs, 0);
}

}  // namespace
}  // namespace mailark
