// Modified UTF-7 tests: known pairs both ways, malformed encodings, ill-formed UTF-8, and
// randomized round trips proving the encoding is canonical.
#include "protocol/imap/mutf7.h"

#include <gtest/gtest.h>

#include <random>

namespace mailark::imap {
namespace {

// Source is UTF-8. Expected encodings cross-checked against Python's UTF-7 codec with ',' for '/'.
struct Pair {
  std::string utf8;
  std::string mutf7;
};
const Pair kPairs[] = {
    {"", ""},
    {"INBOX", "INBOX"},
    {"&", "&-"},
    {"a&b", "a&-b"},
    {"&&", "&-&-"},
    {"-", "-"},
    {"a-b&-", "a-b&--"},
    {"Entwürfe", "Entw&APw-rfe"},
    {"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
    {"ä", "&AOQ-"},
    {"äöü", "&AOQA9gD8-"},  // one run, not three
    {"&ä&", "&-&AOQ-&-"},   // "&-" may touch a run
    {"Привет", "&BB8EQAQ4BDIENQRC-"},
    {"Входящие", "&BBIERQQ+BDQETwRJBDgENQ-"},  // '+' in base64
    {"€", "&IKw-"},
    {"😀", "&2D3eAA-"},  // U+1F600: a surrogate pair
    {"a😀b", "a&2D3eAA-b"},
    {"\xf4\x8f\xbf\xbf", "&2,,f,w-"},  // U+10FFFF
    {"\xef\xbf\xbf", "&,,8-"},         // U+FFFF
    {"\xef\xbf\xbd", "&,,0-"},         // U+FFFD
    {std::string("\0", 1), "&AAA-"},   // controls are encoded
    {"\x7f", "&AH8-"},
    {"tab\there", "tab&AAk-here"},
};

TEST(Mutf7, KnownPairsBothWays) {
  for (const Pair& p : kPairs) {
    EXPECT_EQ(utf8_to_mutf7(p.utf8), p.mutf7) << p.mutf7;
    auto back = mutf7_to_utf8(p.mutf7);
    ASSERT_TRUE(back.has_value()) << p.mutf7;
    EXPECT_EQ(*back, p.utf8) << p.mutf7;
    EXPECT_TRUE(is_valid_utf8(p.utf8)) << p.mutf7;
  }
}

TEST(Mutf7, MalformedIsRejected) {
  const char* cases[] = {
      "&",            // unterminated
      "abc&",         //
      "&AOQ",         // run without '-'
      "&AOQ-&AOQ",    //
      "&A-",          // 6 bits: no unit, superfluous character
      "&AO-",         // 12 bits
      "&AOR-",        // non-zero spare bits (U+00E4 is AOQ)
      "&AOQA-",       // 8 spare bits: superfluous character
      "&AOQ=-",       // '=' padding is not modified base64
      "&AOQ/-",       // '/' instead of ','
      "&AO Q-",       // space inside a run
      "&AGE-",        // 'a' must stand for itself
      "&ACY-",        // '&' must be "&-"
      "&ACAA5A-",     // " ä": the space must stand for itself
      "&AOQ-&APY-",   // two adjacent runs must be one: "&AOQA9g-"
      "&2D0-",        // lone high surrogate
      "&2D0AYQ-",     // high surrogate followed by a non-surrogate
      "&3gA-",        // lone low surrogate
      "&2D3YPQ-",     // high followed by high
      "\xc3\xa4",     // raw 8-bit bytes
      "Entw\xfcrfe",  //
      "a\tb",         // raw control characters must be encoded
      "a\x7f",        //
  };
  for (const char* in : cases) {
    EXPECT_FALSE(mutf7_to_utf8(in).has_value()) << in;
  }
  EXPECT_FALSE(mutf7_to_utf8(std::string_view("a\0b", 3)).has_value());
}

TEST(Mutf7, IllFormedUtf8EncodesReplacementPerMaximalSubpart) {
  struct Case {
    std::string in;
    std::string out;
  } cases[] = {
      {"a\xff"
       "b",
       "a&,,0-b"},               // invalid lead byte
      {"\x80\x80", "&,,3,,Q-"},  // two stray continuation bytes: two U+FFFD
      {"\xc3", "&,,0-"},         // truncated at end
      {"\xc3"
       "a",
       "&,,0-a"},  // truncated before ASCII
      {"\xe6\x97"
       "x",
       "&,,0-x"},                             // truncated 3-byte: one U+FFFD
      {"\xc0\xaf", "&,,3,,Q-"},               // overlong '/': C0 and AF each
      {"\xe0\x80\xaf", "&,,3,,f,9-"},         // overlong: E0 80 rejects at 80
      {"\xed\xa0\x80", "&,,3,,f,9-"},         // encoded surrogate U+D800
      {"\xf4\x90\x80\x80", "&,,3,,f,9,,0-"},  // above U+10FFFF
      {"\xf0\x9f\x98", "&,,0-"},              // truncated 4-byte
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(is_valid_utf8(c.in)) << c.out;
    EXPECT_EQ(utf8_to_mutf7(c.in), c.out);
    auto back = mutf7_to_utf8(utf8_to_mutf7(c.in));
    ASSERT_TRUE(back.has_value()) << c.out;
    EXPECT_TRUE(is_valid_utf8(*back));
  }
}

TEST(Mutf7, IsValidUtf8Boundaries) {
  const std::string valid[] = {"",
                               "abc",
                               std::string("\0", 1),
                               "\xc2\x80",
                               "\xdf\xbf",
                               "\xe0\xa0\x80",
                               "\xed\x9f\xbf",
                               "\xee\x80\x80",
                               "\xef\xbf\xbf",
                               "\xf0\x90\x80\x80",
                               "\xf4\x8f\xbf\xbf"};
  for (const auto& s : valid) EXPECT_TRUE(is_valid_utf8(s)) << s.size();
  const std::string invalid[] = {"\x80",
                                 "\xc1\xbf",
                                 "\xc2",
                                 "\xe0\x9f\xbf",
                                 "\xed\xa0\x80",
                                 "\xed\xbf\xbf",
                                 "\xf0\x8f\xbf\xbf",
                                 "\xf4\x90\x80\x80",
                                 "\xf5\x80\x80\x80",
                                 "\xff",
                                 "\xe2\x82"};
  for (const auto& s : invalid) EXPECT_FALSE(is_valid_utf8(s)) << s.size();
}

// Random valid UTF-8 (all lengths, controls, '&', surrogate-pair code points) survives
// encode + decode unchanged.
TEST(Mutf7, RandomUtf8RoundTrips) {
  std::mt19937 rng(20240501);
  const char32_t pool[] = {'a',    'Z',    ' ',    '&',    '-',     '~',     0,
                           0x1f,   0x7f,   0x80,   0xe4,   0x7ff,   0x800,   0x53f0,
                           0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff};
  for (int iter = 0; iter < 20000; ++iter) {
    std::u32string cps;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      cps += (rng() % 3 == 0) ? static_cast<char32_t>(rng() % 0x110000)
                              : pool[rng() % std::size(pool)];
    }
    std::string utf8;
    for (char32_t cp : cps) {
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
      if (cp < 0x80) {
        utf8 += static_cast<char>(cp);
      } else if (cp < 0x800) {
        utf8 += static_cast<char>(0xc0 | (cp >> 6));
        utf8 += static_cast<char>(0x80 | (cp & 0x3f));
      } else if (cp < 0x10000) {
        utf8 += static_cast<char>(0xe0 | (cp >> 12));
        utf8 += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        utf8 += static_cast<char>(0x80 | (cp & 0x3f));
      } else {
        utf8 += static_cast<char>(0xf0 | (cp >> 18));
        utf8 += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        utf8 += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        utf8 += static_cast<char>(0x80 | (cp & 0x3f));
      }
    }
    ASSERT_TRUE(is_valid_utf8(utf8));
    const std::string encoded = utf8_to_mutf7(utf8);
    auto decoded = mutf7_to_utf8(encoded);
    ASSERT_TRUE(decoded.has_value()) << encoded;
    ASSERT_EQ(*decoded, utf8) << encoded;
  }
}

// Whatever the decoder accepts re-encodes to the very same bytes: there is exactly one
// spelling per name. Inputs are valid encodings with one character replaced, inserted or
// deleted, so many are near misses of the canonical form.
TEST(Mutf7, AcceptedInputIsCanonical) {
  std::mt19937 rng(7);
  const std::string alphabet = "&-AaQ,+9/= \x80";
  const std::string seeds[] = {
      "Entw&APw-rfe", "&AOQA9gD8-",          "&2D3eAA-", "a&-b&BB8EQAQ4BDIENQRC-",
      "&2,,f,w-x",    "&U,BTFw-/&ZeVnLIqe-", "&AAA-&-"};
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 50000; ++iter) {
    std::string s = seeds[rng() % std::size(seeds)];
    const int edits = 1 + static_cast<int>(rng() % 2);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % (s.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          if (at < s.size()) s[at] = c;
          break;
        case 1:
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          if (at < s.size()) s.erase(at, 1);
      }
    }
    auto decoded = mutf7_to_utf8(s);
    if (!decoded) {
      ++rejected;
      continue;
    }
    ++accepted;
    ASSERT_TRUE(is_valid_utf8(*decoded)) << s;
    ASSERT_EQ(utf8_to_mutf7(*decoded), s);
  }
  // Both outcomes must be common, or the test proves nothing.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace mailark::imap
