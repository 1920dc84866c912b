// IMAP parser tests: a table of well-formed and malformed commands, literals, framing.
#include "protocol/imap/imap_parser.h"

#include <gtest/gtest.h>

namespace mailark::imap {
namespace {

TEST(ImapParser, WellFormed) {
  auto r = parse_command("a1 LOGIN alice \"se cr\\\"et\"");
  ASSERT_TRUE(r.command) << r.error;
  EXPECT_EQ(r.command->tag, "a1");
  EXPECT_EQ(r.command->name, "LOGIN");
  ASSERT_EQ(r.command->args.size(), 2u);
  EXPECT_EQ(r.command->args[0].text, "alice");
  EXPECT_TRUE(r.command->args[1].is_string());
  EXPECT_EQ(r.command->args[1].text, "se cr\"et");

  r = parse_command("x uid fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> UID)");
  ASSERT_TRUE(r.command) << r.error;
  EXPECT_TRUE(r.command->uid);
  EXPECT_EQ(r.command->name, "FETCH");
  ASSERT_EQ(r.command->args.size(), 2u);
  EXPECT_EQ(r.command->args[0].text, "1:*");
  ASSERT_TRUE(r.command->args[1].is_list());
  ASSERT_EQ(r.command->args[1].items.size(), 3u);
  EXPECT_EQ(r.command->args[1].items[1].text, "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>");

  r = parse_command("t APPEND INBOX (\\Seen) {5}\r\nhello");
  ASSERT_TRUE(r.command) << r.error;
  ASSERT_EQ(r.command->args.size(), 3u);
  EXPECT_EQ(r.command->args[1].items[0].text, "\\Seen");
  EXPECT_EQ(r.command->args[2].text, "hello");

  r = parse_command("t APPEND INBOX {3+}\r\na\r\n");
  ASSERT_TRUE(r.command) << r.error;
  EXPECT_EQ(r.command->args[1].text, "a\r\n");

  // A header field name as a literal inside a section becomes the quoted form.
  r = parse_command("f FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7}\r\nSubject \"X\")])");
  ASSERT_TRUE(r.command) << r.error;
  EXPECT_EQ(r.command->args[1].items[0].text, "BODY.PEEK[HEADER.FIELDS (\"Subject\" \"X\")]");

  // A command of very many tiny values is refused: parsing it would cost far more memory
  // than its bytes.
  std::string many = "t NOOP";
  for (int i = 0; i < 10001; ++i) many += " x";
  r = parse_command(many);
  EXPECT_FALSE(r.command);
  EXPECT_EQ(r.tag, "t");

  r = parse_command("t STATUS INBOX (MESSAGES UIDNEXT)");
  ASSERT_TRUE(r.command);
  r = parse_command("t LIST \"\" %");
  ASSERT_TRUE(r.command) << r.error;
  EXPECT_EQ(r.command->args[1].text, "%");
  r = parse_command("t SEARCH CHARSET UTF-8 SUBJECT nil");
  ASSERT_TRUE(r.command);
  EXPECT_EQ(r.command->args[3].kind, Value::Kind::kNil);
  r = parse_command("t NOOP");
  ASSERT_TRUE(r.command);
  EXPECT_TRUE(r.command->args.empty());
}

TEST(ImapParser, MalformedTable) {
  struct Case {
    std::string in;
    const char* tag;
  } cases[] = {
      {"", "*"},
      {"NOOP", "*"},
      {"+tag NOOP", "*"},
      {"a ", "a"},
      {"a FETCH 1 (FLAGS", "a"},
      {"a FETCH 1 FLAGS)", "a"},
      {"a LOGIN \"unterminated", "a"},
      {"a LOGIN \"bad\\escape\"", "a"},
      {"a APPEND INBOX {10}\r\nshort", "a"},
      {"a APPEND INBOX {x}\r\n", "a"},
      {"a APPEND INBOX {3}x", "a"},
      {"a FETCH 1 BODY[HEADER", "a"},
      {"a FETCH 1 BODY]", "a"},
      {"a  NOOP", "a"},
      {"a NOOP  x", "a"},
      {"a UID", "a"},
      {"a " + std::string(40, '(') + std::string(40, ')'), "a"},
  };
  for (const auto& c : cases) {
    auto r = parse_command(c.in);
    EXPECT_FALSE(r.command.has_value()) << c.in;
    EXPECT_FALSE(r.error.empty()) << c.in;
    EXPECT_EQ(r.tag, c.tag) << c.in;
  }
}

TEST(ImapParser, SequenceSets) {
  auto s = parse_sequence_set("1:5,7,*,9:3");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->size(), 4u);
  EXPECT_EQ((*s)[0].lo, 1u);
  EXPECT_EQ((*s)[0].hi, 5u);
  EXPECT_EQ((*s)[2].lo, UINT32_MAX);
  EXPECT_EQ((*s)[3].lo, 3u);
  EXPECT_EQ((*s)[3].hi, 9u);
  for (const char* bad : {"", "0", "1:", ",1", "1,,2", "a", "1:0", "01", "4294967296"})
    EXPECT_FALSE(parse_sequence_set(bad)) << bad;
}

TEST(ImapFramer, LiteralsAndLimits) {
  CommandFramer f({});
  EXPECT_EQ(f.feed_line("a APPEND INBOX {5}"), CommandFramer::Step::kSyncLiteral);
  EXPECT_EQ(f.literal_size(), 5u);
  f.feed_literal("hello");
  EXPECT_EQ(f.feed_line(""), CommandFramer::Step::kComplete);
  auto r = parse_command(f.command());
  ASSERT_TRUE(r.command) << r.error;
  EXPECT_EQ(r.command->args[1].text, "hello");
  f.reset();
  EXPECT_EQ(f.feed_line("a LOGIN {1+}"), CommandFramer::Step::kLiteral);
  f.feed_literal("x");
  EXPECT_EQ(f.feed_line(" {2}"), CommandFramer::Step::kSyncLiteral);
  f.feed_literal("yz");
  EXPECT_EQ(f.feed_line(""), CommandFramer::Step::kComplete);
  r = parse_command(f.command());
  ASSERT_TRUE(r.command) << r.error;
  EXPECT_EQ(r.command->args[0].text, "x");
  EXPECT_EQ(r.command->args[1].text, "yz");
  CommandFramer small({100, 10, 200});
  EXPECT_EQ(small.feed_line("a APPEND INBOX {11}"), CommandFramer::Step::kTooLarge);
  small.reset();
  EXPECT_EQ(small.feed_line(std::string(101, 'x')), CommandFramer::Step::kTooLarge);
}

TEST(ImapQuote, StringsAndLiterals) {
  EXPECT_EQ(quote("a b"), "\"a b\"");
  EXPECT_EQ(quote("q\"b\\"), "\"q\\\"b\\\\\"");
  EXPECT_EQ(quote("line\r\nbreak"), "{11}\r\nline\r\nbreak");
  EXPECT_EQ(quote("caf\xc3\xa9"), "{5}\r\ncaf\xc3\xa9");
  EXPECT_EQ(nstring(std::nullopt), "NIL");
}

}  // namespace
}  // namespace mailark::imap
