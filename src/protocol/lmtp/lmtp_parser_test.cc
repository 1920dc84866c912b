// LMTP parser tests: a table of command lines and the DATA reader's edge cases (dot
// stuffing, bare LF, smuggling, size limit, NUL, split feeds).
#include "protocol/lmtp/lmtp_parser.h"

#include <gtest/gtest.h>

namespace mailark::lmtp {
namespace {

TEST(LmtpParser, CommandTable) {
  struct Case {
    std::string line;
    Verb verb;             // when accepted
    const char* path;      // expected path, or nullptr
    const char* error;     // expected reply prefix when rejected
  } cases[] = {
      {"LHLO client.test", Verb::kLhlo, nullptr, nullptr},
      {"lhlo x", Verb::kLhlo, nullptr, nullptr},
      {"LHLO", Verb::kUnknown, nullptr, "501 5.5.4"},
      {"MAIL FROM:<a@b.c>", Verb::kMail, "a@b.c", nullptr},
      {"mail from:<> BODY=8BITMIME", Verb::kMail, "", nullptr},
      {"MAIL FROM: <a@b.c> SIZE=100", Verb::kMail, "a@b.c", nullptr},
      {"MAIL FROM:<@relay.x:a@b.c>", Verb::kMail, "a@b.c", nullptr},
      {"MAIL FROM:a@b.c", Verb::kUnknown, nullptr, "501 5.1.7"},
      {"MAIL TO:<a@b.c>", Verb::kUnknown, nullptr, "501 5.5.4"},
      {"MAIL FROM:<a@b.c", Verb::kUnknown, nullptr, "501 5.1.7"},
      {"RCPT TO:<u@acme.test>", Verb::kRcpt, "u@acme.test", nullptr},
      {"RCPT TO:<\"odd name\"@acme.test>", Verb::kRcpt, "\"odd name\"@acme.test", nullptr},
      {"RCPT TO:<>", Verb::kUnknown, nullptr, "501 5.1.3"},
      {"RCPT TO:<Postmaster>", Verb::kRcpt, "Postmaster", nullptr},
      {"RCPT TO:<nodomain>", Verb::kUnknown, nullptr, "501 5.1.3"},
      {"RCPT TO:<a@>", Verb::kUnknown, nullptr, "501 5.1.3"},
      {"RCPT TO:<a@b.c> =x", Verb::kUnknown, nullptr, "501 5.1.3"},
      {"DATA", Verb::kData, nullptr, nullptr},
      {"DATA now", Verb::kUnknown, nullptr, "501 5.5.4"},
      {"RSET", Verb::kRset, nullptr, nullptr},
      {"NOOP anything", Verb::kNoop, nullptr, nullptr},
      {"QUIT", Verb::kQuit, nullptr, nullptr},
      {"EHLO x", Verb::kEhlo, nullptr, nullptr},
      {"STARTTLS", Verb::kUnknown, nullptr, "500 5.5.1"},
      {"", Verb::kUnknown, nullptr, "500 5.5.1"},
      {std::string("NOOP \0", 6), Verb::kUnknown, nullptr, "500 5.5.2"},
      {"NOOP " + std::string(3000, 'x'), Verb::kUnknown, nullptr, "500 5.5.2"},
      {"RCPT TO:<" + std::string(300, 'a') + "@b.c>", Verb::kUnknown, nullptr, "501 5.1.3"},
  };
  for (const auto& c : cases) {
    ParsedCommand p = parse_command(c.line);
    if (c.error) {
      ASSERT_TRUE(p.error.has_value()) << c.line;
      EXPECT_EQ(p.error->reply.substr(0, 9), c.error) << c.line << " -> " << p.error->reply;
    } else {
      ASSERT_TRUE(p.command.has_value()) << c.line << " -> " << (p.error ? p.error->reply : "");
      EXPECT_EQ(p.command->verb, c.verb) << c.line;
      if (c.path) {
        EXPECT_EQ(p.command->path, c.path) << c.line;
      }
    }
  }
  auto p = parse_command("MAIL FROM:<a@b.c> size=10 body=8bitmime");
  ASSERT_TRUE(p.command);
  ASSERT_EQ(p.command->params.size(), 2u);
  EXPECT_EQ(p.command->params[0].first, "SIZE");
  EXPECT_EQ(p.command->params[0].second, "10");
}

struct DataCase {
  const char* name;
  std::string wire;
  std::string message;
  bool done;
  size_t tail = 0;  // bytes left unconsumed after the marker
};

TEST(DataReader, Table) {
  DataCase cases[] = {
      {"simple", "a\r\nb\r\n.\r\n", "a\r\nb\r\n", true},
      {"empty", ".\r\n", "", true},
      {"dot stuffed", "..x\r\n..\r\n.\r\n", ".x\r\n.\r\n", true},
      {"bare LF normalized", "a\nb\r\n.\r\n", "a\r\nb\r\n", true},
      {"dot after bare LF is content", "a\n.\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true},
      {"LF dot LF is not the end", "a\r\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true},
      {"bare CR kept", "a\rb\r\n.\r\n", "a\rb\r\n", true},
      {"CR dot not end", "a\r\n.\rx\r\n.\r\n", "a\r\n\rx\r\n", true},
      {"pipelined tail", "a\r\n.\r\nQUIT\r\n", "a\r\n", true, 6},
      {"unterminated", "a\r\nb\r\n", "a\r\nb\r\n", false},
  };
  for (const auto& c : cases) {
    DataReader r(1 << 20);
    size_t used = r.feed(c.wire);
    EXPECT_EQ(r.done(), c.done) << c.name;
    EXPECT_EQ(c.wire.size() - used, c.tail) << c.name;
    EXPECT_EQ(r.take_message(), c.message) << c.name;
    // The same bytes fed one at a time give the same result.
    DataReader s(1 << 20);
    size_t total = 0;
    for (char ch : c.wire) {
      if (s.done()) break;
      total += s.feed(std::string_view(&ch, 1));
    }
    EXPECT_EQ(s.done(), c.done) << c.name;
    EXPECT_EQ(s.take_message(), c.message) << c.name << " (byte at a time)";
  }
}

TEST(DataReader, SizeLimitAndNul) {
  DataReader r(10);
  r.feed("0123456789abcdef\r\n.\r\n");
  EXPECT_TRUE(r.done());
  EXPECT_TRUE(r.too_large());
  EXPECT_TRUE(r.take_message().empty());
  DataReader n(100);
  n.feed(std::string("a\0b\r\n.\r\n", 8));
  EXPECT_TRUE(n.done());
  EXPECT_TRUE(n.has_nul());
  DataReader lf(100);
  lf.feed("x\ny\n.\r\n");
  EXPECT_FALSE(lf.done()) << "end marker after bare LF is content";
  EXPECT_EQ(lf.bare_lf_lines(), 2u);
}

TEST(Reply, MultiLine) {
  EXPECT_EQ(reply(250, std::vector<std::string>{"a", "b"}), "250-a\r\n250 b\r\n");
  EXPECT_EQ(reply(221, "bye"), "221 bye\r\n");
}

}  // namespace
}  // namespace mailark::lmtp
