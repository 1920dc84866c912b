// Tests for imap_search: SEARCH arguments tokenized by the real parse_command(), compiled, and
// evaluated against messages whose parse cache comes from the real parse_message().
#include "protocol/imap/imap_search.h"

#include <glib.h>
#include <gtest/gtest.h>

#include <random>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailark::imap {
namespace {

// The arguments of "a SEARCH <text>" as the session would hand them over.
Result<SearchCommand> parse(std::string_view text) {
  const std::string line = text.empty() ? "a SEARCH" : "a SEARCH " + std::string(text);
  ParseResult r = parse_command(line);
  if (!r.command) {
    ADD_FAILURE() << "tokenizer rejected: " << text << ": " << r.error;
    return invalid("tokenizer: " + r.error);
  }
  return parse_search_command(r.command->args);
}

int64_t utc_ms(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  using namespace std::chrono;
  const sys_days day{year{y} / month{mo} / std::chrono::day{d}};
  return duration_cast<milliseconds>(day.time_since_epoch() + hours{h} + minutes{mi}).count();
}

// A message and its attributes; the SearchMessage is built per call, pointing in here.
struct Msg {
  uint32_t seq = 1, uid = 1;
  std::vector<std::string> flags;
  bool recent = false;
  uint64_t size = 0;
  int64_t internal_date_ms = 0;
  uint64_t modseq = 0;
  std::string raw;
  std::optional<MessageInfo> info;
};

Msg message(std::string_view raw) {
  Msg m;
  m.raw = std::string(raw);
  m.size = raw.size();
  m.info = parse_message(raw);
  return m;
}

constexpr SearchView kView{10, 100};

bool matches(std::string_view search, const Msg& msg, SearchView view = kView) {
  Result<SearchCommand> cmd = parse(search);
  EXPECT_TRUE(cmd.is_ok()) << search << ": " << cmd.status().to_string();
  if (!cmd.is_ok()) return false;
  SearchMessage m;
  m.seq = msg.seq;
  m.uid = msg.uid;
  m.flags = &msg.flags;
  m.recent = msg.recent;
  m.size = msg.size;
  m.internal_date_ms = msg.internal_date_ms;
  m.modseq = msg.modseq;
  m.info = msg.info ? &*msg.info : nullptr;
  m.raw = msg.raw;
  const bool with_info = search_matches(cmd->program, view, m);
  if (cmd->program.needs_header_fields() && msg.info) {
    // What the server does for such a program: the header fields record instead of the parse
    // cache. It must answer exactly as the parse cache does.
    const std::string record = encode_header_fields(msg.info->header);
    HeaderFieldValues fields;
    EXPECT_TRUE(decode_header_fields(record, fields).is_ok()) << search;
    m.info = nullptr;
    m.raw = {};
    m.fields = &fields;
    EXPECT_EQ(search_matches(cmd->program, view, m), with_info) << "header fields: " << search;
  }
  return with_info;
}

struct MatchCase {
  std::string search;
  bool expected;
};

void expect_matches(const Msg& msg, const std::vector<MatchCase>& cases, SearchView view = kView) {
  for (const MatchCase& c : cases) {
    EXPECT_EQ(matches(c.search, msg, view), c.expected) << c.search;
  }
}

// ---------------------------------------------------------------------------------------
// Parsing.

TEST(ImapSearchParse, ValidKeysCompileToCanonicalForm) {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"ALL", "ALL"},
      {"all", "ALL"},
      {"ANSWERED DELETED DRAFT FLAGGED SEEN RECENT", "ANSWERED DELETED DRAFT FLAGGED SEEN RECENT"},
      {"UNANSWERED", "NOT ANSWERED"},
      {"UNDELETED UNDRAFT UNFLAGGED UNSEEN", "NOT DELETED NOT DRAFT NOT FLAGGED NOT SEEN"},
      {"NEW", "RECENT NOT SEEN"},
      {"NOT NEW", "NOT (RECENT NOT SEEN)"},
      {"OLD", "NOT RECENT"},
      {"keyword $Label1 UNKEYWORD Junk", "KEYWORD $Label1 NOT KEYWORD Junk"},
      {"FROM Alice", "HEADER FROM \"alice\""},
      {"bcc a cc b to c subject d",
       "HEADER BCC \"a\" HEADER CC \"b\" HEADER TO \"c\" HEADER SUBJECT \"d\""},
      {"HEADER x-spam-flag YES", "HEADER X-SPAM-FLAG \"yes\""},
      {"HEADER \"List-Id\" \"\"", "HEADER LIST-ID \"\""},
      {"HEADER \"X(1)\" v", "HEADER \"X(1)\" \"v\""},
      {"SUBJECT NIL", "HEADER SUBJECT \"nil\""},
      {"SUBJECT {3}\r\nA\"B", "HEADER SUBJECT \"a\\\"b\""},
      {"SUBJECT \"CAF\xC3\x89\"", "HEADER SUBJECT {5}\r\ncaf\xC3\xA9"},
      {"BODY x TEXT \"Y z\"", "BODY \"x\" TEXT \"y z\""},
      {"BEFORE 1-Feb-1994 ON \"02-feb-1994\" SINCE 31-DEC-1999",
       "BEFORE 1-Feb-1994 ON 2-Feb-1994 SINCE 31-Dec-1999"},
      {"SENTBEFORE 1-Jan-2000 SENTON 29-Feb-2024 SENTSINCE 1-Mar-2024",
       "SENTBEFORE 1-Jan-2000 SENTON 29-Feb-2024 SENTSINCE 1-Mar-2024"},
      {"LARGER 100 SMALLER 9223372036854775807", "LARGER 100 SMALLER 9223372036854775807"},
      {"LARGER 007", "LARGER 7"},
      {"1:3,5", "1:3,5"},
      {"5:1", "1:5"},
      {"3,1:2,*,7:*", "1:3,*,7:*"},
      {"1:5,3:8,9,20", "1:9,20"},
      {"UID 1:*", "UID 1:*"},
      {"uid 9,8,7", "UID 7:9"},
      {"NOT SEEN", "NOT SEEN"},
      {"NOT (SEEN FLAGGED)", "NOT (SEEN FLAGGED)"},
      {"(SEEN)", "SEEN"},
      {"((SEEN))", "SEEN"},
      {"OR SEEN FLAGGED", "OR SEEN FLAGGED"},
      {"OR (FROM a) TO b", "OR HEADER FROM \"a\" HEADER TO \"b\""},
      // Cheap keys run first; the program means the same.
      {"OR BODY x SEEN", "OR SEEN BODY \"x\""},
      {"BODY x FROM y SEEN", "SEEN HEADER FROM \"y\" BODY \"x\""},
      {"SENTON 1-Feb-1994 ON 1-Feb-1994", "ON 1-Feb-1994 SENTON 1-Feb-1994"},
      {"MODSEQ 5", "MODSEQ 5"},
      {"MODSEQ \"/flags/\\\\Seen\" all 0", "MODSEQ 0"},
      {"MODSEQ \"/flags/$Label1\" PRIV 7", "MODSEQ 7"},
      {"MODSEQ \"/FLAGS/\\\\Answered\" shared 9223372036854775807", "MODSEQ 9223372036854775807"},
      {"CHARSET UTF-8 ALL", "ALL"},
      {"RETURN (MIN) ALL", "ALL"},
      // "$": the saved search result, wherever a sequence set may stand.
      {"$", "$"},
      {"UID $", "$"},
      {"uid $", "$"},
      {"($)", "$"},
      {"NOT $", "NOT $"},
      {"OR $ 1:3", "OR $ 1:3"},
      {"OR FLAGGED UID $", "OR FLAGGED $"},
      {"NOT (SEEN $)", "NOT (SEEN $)"},
      {"BODY x $ UID 5", "$ UID 5 BODY \"x\""},
      {"$ $", "$ $"},
      {"RETURN (SAVE) $ SEEN", "$ SEEN"},
  };
  for (const Case& c : cases) {
    Result<SearchCommand> cmd = parse(c.in);
    ASSERT_TRUE(cmd.is_ok()) << c.in << ": " << cmd.status().to_string();
    EXPECT_EQ(cmd->program.to_string(), c.out) << c.in;
    // The canonical form parses back to itself.
    Result<SearchCommand> again = parse(cmd->program.to_string());
    ASSERT_TRUE(again.is_ok()) << c.out << ": " << again.status().to_string();
    EXPECT_EQ(again->program.to_string(), c.out) << c.in;
  }
}

TEST(ImapSearchParse, ReturnOptionsAndCharset) {
  struct Case {
    std::string in;
    SearchReturn ret;
    std::string charset;
  };
  auto ret = [](bool min, bool max, bool count, bool all, bool save = false) {
    return SearchReturn{true, min, max, count, all, save};
  };
  const std::vector<Case> cases = {
      {"ALL", SearchReturn{}, ""},
      {"RETURN () ALL", ret(false, false, false, true), ""},
      {"RETURN (MIN MAX) ALL", ret(true, true, false, false), ""},
      {"return (count) 1:*", ret(false, false, true, false), ""},
      {"RETURN (ALL COUNT MIN MAX MIN) ALL", ret(true, true, true, true), ""},
      {"CHARSET utf-8 ALL", SearchReturn{}, "UTF-8"},
      {"CHARSET \"US-ASCII\" ALL", SearchReturn{}, "US-ASCII"},
      {"RETURN (MIN) CHARSET us-ascii SEEN", ret(true, false, false, false), "US-ASCII"},
      // SAVE alone is not "no option": it does not default to ALL.
      {"RETURN (SAVE) ALL", ret(false, false, false, false, true), ""},
      {"return (save) $", ret(false, false, false, false, true), ""},
      {"RETURN (SAVE SAVE) ALL", ret(false, false, false, false, true), ""},
      {"RETURN (SAVE MIN) ALL", ret(true, false, false, false, true), ""},
      {"RETURN (MAX SAVE) ALL", ret(false, true, false, false, true), ""},
      {"RETURN (SAVE MIN MAX) ALL", ret(true, true, false, false, true), ""},
      {"RETURN (COUNT SAVE) ALL", ret(false, false, true, false, true), ""},
      {"RETURN (SAVE ALL) ALL", ret(false, false, false, true, true), ""},
      {"RETURN (MIN SAVE COUNT MAX ALL) ALL", ret(true, true, true, true, true), ""},
      {"RETURN (SAVE) CHARSET UTF-8 UID $", ret(false, false, false, false, true), "UTF-8"},
  };
  for (const Case& c : cases) {
    Result<SearchCommand> cmd = parse(c.in);
    ASSERT_TRUE(cmd.is_ok()) << c.in << ": " << cmd.status().to_string();
    EXPECT_EQ(cmd->ret, c.ret) << c.in;
    EXPECT_EQ(cmd->charset, c.charset) << c.in;
  }
}

TEST(ImapSearchParse, SaveAloneSendsNoResponse) {
  struct Case {
    std::string in;
    bool sends_response;
  };
  const std::vector<Case> cases = {
      {"ALL", true},  // SEARCH, or ESEARCH under IMAP4rev2
      {"RETURN () ALL", true},
      {"RETURN (MIN) ALL", true},
      {"RETURN (SAVE) ALL", false},
      {"RETURN (SAVE SAVE) ALL", false},
      {"RETURN (SAVE MIN) ALL", true},
      {"RETURN (SAVE MAX) ALL", true},
      {"RETURN (SAVE COUNT) ALL", true},
      {"RETURN (SAVE ALL) ALL", true},
  };
  for (const Case& c : cases) {
    Result<SearchCommand> cmd = parse(c.in);
    ASSERT_TRUE(cmd.is_ok()) << c.in << ": " << cmd.status().to_string();
    EXPECT_EQ(cmd->ret.sends_response(), c.sends_response) << c.in;
  }
}

// Tokenized arguments of "a SEARCH <text>", for the functions that take them directly.
std::vector<Value> args_of(std::string_view text) {
  ParseResult r = parse_command("a SEARCH " + std::string(text));
  if (!r.command) {
    ADD_FAILURE() << "tokenizer rejected: " << text << ": " << r.error;
    return {};
  }
  return r.command->args;
}

TEST(ImapSearchParse, WhetherAFailedSearchAskedForSave) {
  struct Case {
    std::string in;
    bool save;
  };
  const std::vector<Case> cases = {
      // Unsupported charset (NO): with SAVE the search result variable must become empty.
      {"RETURN (SAVE) CHARSET KOI8-R ALL", true},
      {"RETURN (MIN SAVE) CHARSET KOI8-R ALL", true},
      {"return (save) CHARSET x ALL", true},
      {"RETURN (MIN) CHARSET KOI8-R ALL", false},
      {"CHARSET KOI8-R ALL", false},
      // Well-formed and parsed: the same answer as SearchReturn::save.
      {"RETURN (SAVE) ALL", true},
      {"ALL", false},
      // A malformed RETURN list is BAD, which never touches the variable.
      {"RETURN (SAVE FOO) ALL", false},
      {"RETURN SAVE ALL", false},
      {"ALL RETURN (SAVE)", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(search_requests_save(args_of(c.in)), c.save) << c.in;
  }
  EXPECT_FALSE(search_requests_save({}));
  // The kNotFound case really is what the caller sees for the first one.
  Result<SearchCommand> cmd = parse("RETURN (SAVE) CHARSET KOI8-R ALL");
  ASSERT_FALSE(cmd.is_ok());
  EXPECT_EQ(cmd.status().code(), ErrorCode::kNotFound);
}

TEST(ImapSearchSave, WhatIsSaved) {
  struct Case {
    std::string options;  // the RETURN list
    std::vector<uint32_t> matched, saved;
  };
  const std::vector<uint32_t> three = {4, 9, 20};
  const std::vector<Case> cases = {
      {"SAVE", three, three},
      {"SAVE ALL", three, three},
      {"SAVE COUNT", three, three},
      {"SAVE MIN", three, {4}},
      {"SAVE MAX", three, {20}},
      {"SAVE MIN MAX", three, {4, 20}},
      {"MAX SAVE MIN", three, {4, 20}},
      // With ALL or COUNT present, MIN/MAX no longer narrow what is saved.
      {"SAVE MIN ALL", three, three},
      {"SAVE MAX COUNT", three, three},
      {"SAVE MIN MAX COUNT ALL", three, three},
      // One match: MIN and MAX are the same message, saved once.
      {"SAVE MIN MAX", {7}, {7}},
      {"SAVE MIN", {7}, {7}},
      // No match: the empty set, whatever the options.
      {"SAVE", {}, {}},
      {"SAVE MIN", {}, {}},
      {"SAVE MIN MAX", {}, {}},
      // Without SAVE nothing is saved (the caller leaves the variable alone).
      {"MIN", three, {}},
      {"", three, {}},
  };
  for (const Case& c : cases) {
    Result<SearchCommand> cmd = parse("RETURN (" + c.options + ") ALL");
    ASSERT_TRUE(cmd.is_ok()) << c.options;
    EXPECT_EQ(saved_search_result(cmd->ret, c.matched), c.saved) << c.options;
  }
}

TEST(ImapSearchParse, MalformedIsInvalid) {
  const std::vector<std::string> cases = {
      "",
      "FOO",
      "\"ALL\"",
      "NIL",
      "*x",
      // "$" stands alone as a sequence set.
      "$,1:3",
      "1:3,$",
      "1,$,3",
      "$:5",
      "5:$",
      "$:*",
      "$$",
      "$1",
      "$,",
      "\"$\"",
      "UID $,1",
      "UID 1,$",
      "UID $:*",
      "UID \"$\"",
      "UID ($)",
      "OR $ $,1",
      "NOT 2,$",
      "0:3",
      "1:",
      "1,,2",
      "SUBJECT",
      "FROM",
      "SUBJECT (x)",
      "HEADER",
      "HEADER Subject",
      "HEADER \"\" x",
      "HEADER \"a:b\" x",
      "HEADER \"a b\" x",
      "HEADER (a) b",
      "BODY",
      "BODY (x)",
      "TEXT",
      "BEFORE",
      "BEFORE 1-Foo-1994",
      "BEFORE 32-Jan-1994",
      "BEFORE 0-Jan-1994",
      "BEFORE 29-Feb-2023",
      "BEFORE 1-Feb-94",
      "BEFORE 1994-02-01",
      "BEFORE 001-Feb-1994",
      "BEFORE 1-February-1994",
      "BEFORE 1-Feb-1994x",
      "SENTON x",
      "SINCE (1-Feb-1994)",
      "LARGER",
      "LARGER x",
      "LARGER -1",
      "LARGER 9223372036854775808",
      "SMALLER 1.5",
      "UID",
      "UID x",
      "UID 0",
      "UID \"1\"",
      "NOT",
      "OR",
      "OR SEEN",
      "()",
      "(SEEN) ()",
      "KEYWORD",
      "KEYWORD \"$x\"",
      "KEYWORD \\Seen",
      "MODSEQ",
      "MODSEQ x",
      "MODSEQ -1",
      "MODSEQ 9223372036854775808",
      "MODSEQ \"/flags/\\\\Seen\" bogus 5",
      "MODSEQ \"/flags/\\\\Seen\" all",
      "MODSEQ \"/flags/\\\\Seen\" 5",
      "MODSEQ \"/other/x\" all 5",
      "MODSEQ \"/flags/\" all 5",
      "RETURN",
      "RETURN MIN ALL",
      "RETURN (FOO) ALL",
      "RETURN (MIN)",
      "RETURN (SAVE)",
      "RETURN (SAVE (MIN)) ALL",
      "RETURN (\"SAVE\") ALL",
      "RETURN (SAVE FOO) ALL",
      "RETURN (SAVED) ALL",
      "RETURN (SAVE) FOO",
      "RETURN ((MIN)) ALL",
      "RETURN (MIN) RETURN (MAX) ALL",
      "CHARSET",
      "CHARSET UTF-8",
      "CHARSET (UTF-8) ALL",
      "ALL RETURN (MIN)",
      "ALL CHARSET UTF-8",
      "CHARSET UTF-8 RETURN (MIN) ALL",
  };
  for (const std::string& c : cases) {
    Result<SearchCommand> cmd = parse(c);
    ASSERT_FALSE(cmd.is_ok()) << c << " parsed as " << cmd->program.to_string();
    EXPECT_EQ(cmd.status().code(), ErrorCode::kInvalid) << c << ": " << cmd.status().to_string();
    EXPECT_FALSE(cmd.status().message().empty()) << c;
  }
}

TEST(ImapSearchParse, UnknownCharsetIsNotFound) {
  for (const char* c : {"CHARSET KOI8-R ALL", "CHARSET ISO-8859-1 SUBJECT x",
                        "RETURN (MIN) CHARSET x ALL", "CHARSET UTF8 ALL"}) {
    Result<SearchCommand> cmd = parse(c);
    ASSERT_FALSE(cmd.is_ok()) << c;
    EXPECT_EQ(cmd.status().code(), ErrorCode::kNotFound) << c;
  }
}

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// A parenthesized list nested `depth` deep around SEEN, built directly: the tokenizer
// stops at 32 levels, but parse_search_command must not rely on that.
std::vector<Value> nested_lists(int depth) {
  Value v;
  v.text = "SEEN";
  for (int i = 0; i < depth; ++i) {
    Value list;
    list.kind = Value::Kind::kList;
    list.items.push_back(std::move(v));
    v = std::move(list);
  }
  std::vector<Value> args;
  args.push_back(std::move(v));
  return args;
}

TEST(ImapSearchParse, NestingIsBounded) {
  Msg seen;
  seen.flags = {"\\Seen"};
  Msg unseen;
  // 64 levels are fine, and evaluate correctly (an even number of NOTs).
  EXPECT_TRUE(matches(repeat("NOT ", 64) + "SEEN", seen));
  EXPECT_FALSE(matches(repeat("NOT ", 64) + "SEEN", unseen));
  EXPECT_TRUE(matches(repeat("NOT ", 63) + "SEEN", unseen));
  EXPECT_TRUE(matches(repeat("OR SEEN ", 64) + "SEEN", seen));
  EXPECT_TRUE(parse_search_command(nested_lists(64)).is_ok());
  // Each "NOT (" is two levels; siblings do not add up.
  EXPECT_TRUE(
      matches(repeat("NOT (", 30) + repeat("NOT ", 4) + "UNSEEN" + repeat(")", 30), unseen));
  EXPECT_TRUE(matches(repeat("NOT ", 60) + "UNSEEN " + repeat("NOT ", 60) + "UNSEEN", unseen));

  for (const std::string& bomb :
       {repeat("NOT ", 65) + "SEEN",
        repeat("NOT ", 9000) + "SEEN",  // (the tokenizer refuses 10,000+ values)
        repeat("OR SEEN ", 100) + "SEEN",
        repeat("NOT (", 30) + repeat("NOT ", 5) + "SEEN" + repeat(")", 30)}) {
    Result<SearchCommand> cmd = parse(bomb);
    ASSERT_FALSE(cmd.is_ok()) << bomb.substr(0, 40);
    EXPECT_EQ(cmd.status().code(), ErrorCode::kInvalid);
  }
  for (int depth : {65, 100, 10000}) {
    Result<SearchCommand> cmd = parse_search_command(nested_lists(depth));
    ASSERT_FALSE(cmd.is_ok()) << depth;
    EXPECT_EQ(cmd.status().code(), ErrorCode::kInvalid);
  }
}

TEST(ImapSearchParse, WhatEvaluationNeeds) {
  struct Case {
    std::string in;
    bool info, header_fields, body, modseq;
  };
  const std::vector<Case> cases = {
      {"SEEN 1:* UID 5 LARGER 3", false, false, false, false},
      {"ON 1-Feb-1994", false, false, false, false},
      {"FROM x", false, true, false, false},
      {"OR TO x (CC y BCC z)", false, true, false, false},
      {"HEADER reply-TO x HEADER Sender y HEADER Message-ID z", false, true, false, false},
      {"NOT (HEADER X-A b)", true, false, false, false},
      {"FROM x HEADER X-A b", true, false, false, false},
      {"SENTON 1-Feb-1994", true, false, false, false},
      {"SUBJECT x SENTON 1-Feb-1994", true, false, false, false},
      {"BODY x", true, false, true, false},
      {"OR SEEN TEXT x", true, false, true, false},
      {"OR MODSEQ 5 SEEN", false, false, false, true},
      {"NOT MODSEQ 5 SUBJECT x", false, true, false, true},
  };
  for (const Case& c : cases) {
    Result<SearchCommand> cmd = parse(c.in);
    ASSERT_TRUE(cmd.is_ok()) << c.in;
    EXPECT_EQ(cmd->program.needs_info(), c.info) << c.in;
    EXPECT_EQ(cmd->program.needs_header_fields(), c.header_fields) << c.in;
    EXPECT_EQ(cmd->program.needs_body(), c.body) << c.in;
    EXPECT_EQ(cmd->program.uses_modseq(), c.modseq) << c.in;
  }
  const SearchProgram all;
  EXPECT_EQ(all.to_string(), "ALL");
  EXPECT_FALSE(all.needs_info());
}

// ---------------------------------------------------------------------------------------
// Evaluation.

TEST(ImapSearchEval, FlagsAndKeywords) {
  Msg m;
  m.flags = {"$Label1", "\\Answered", "\\SEEN"};
  expect_matches(m, {
                        {"ANSWERED", true},
                        {"answered", true},
                        {"UNANSWERED", false},
                        {"SEEN", true},
                        {"UNSEEN", false},
                        {"DELETED", false},
                        {"UNDELETED", true},
                        {"DRAFT", false},
                        {"UNDRAFT", true},
                        {"FLAGGED", false},
                        {"UNFLAGGED", true},
                        {"KEYWORD $label1", true},
                        {"KEYWORD $Label2", false},
                        {"UNKEYWORD $LABEL1", false},
                        {"UNKEYWORD $Label2", true},
                        {"KEYWORD Answered", false},
                        {"RECENT", false},
                        {"OLD", true},
                        {"NEW", false},
                    });
  Msg fresh;
  fresh.recent = true;
  expect_matches(fresh, {{"RECENT", true}, {"NEW", true}, {"OLD", false}, {"UNSEEN", true}});
  Msg fresh_seen;
  fresh_seen.recent = true;
  fresh_seen.flags = {"\\Seen"};
  expect_matches(fresh_seen, {{"RECENT", true}, {"NEW", false}, {"OLD", false}});

  // No flag list at all: nothing is set.
  Result<SearchCommand> cmd = parse("UNSEEN NOT KEYWORD x");
  ASSERT_TRUE(cmd.is_ok());
  SearchMessage bare;
  EXPECT_TRUE(search_matches(cmd->program, kView, bare));
  cmd = parse("SEEN");
  ASSERT_TRUE(cmd.is_ok());
  EXPECT_FALSE(search_matches(cmd->program, kView, bare));
}

TEST(ImapSearchEval, SequenceAndUidSetsResolveStar) {
  Msg last;
  last.seq = 10;
  last.uid = 100;
  expect_matches(last, {
                           {"*", true},
                           {"10", true},
                           {"9", false},
                           {"5:*", true},
                           {"*:5", true},
                           {"11:*", true},  // 10:11
                           {"12:20", false},
                           {"1,3,10", true},
                           {"UID *", true},
                           {"UID 200:*", true},  // 100:200
                           {"UID 1:99", false},
                           {"UID 100", true},
                           {"UID 101:*", true},
                           {"ALL", true},
                       });
  Msg third;
  third.seq = 3;
  third.uid = 30;
  expect_matches(third, {
                            {"1:2,4:*", false},
                            {"2:4", true},
                            {"4:2", true},
                            {"*", false},
                            {"3:*", true},
                            {"UID 30:*", true},
                            {"UID 31:*", false},
                            {"UID 1:29,31:*", false},
                            {"UID 29:31", true},
                        });
  // '*' is max_uid even below the set's other end (RFC 3501 6.4.8: 559:* always includes
  // the last message).
  expect_matches(third, {{"UID 40:*", true}, {"UID *:25", true}, {"UID 20:25", false}},
                 SearchView{3, 30});
  // An empty mailbox: '*' is 0, which no message has.
  expect_matches(third, {{"*", false}, {"3:*", true}}, SearchView{0, 0});

  std::string odd;
  for (int i = 1; i < 2000; i += 2) odd += (odd.empty() ? "" : ",") + std::to_string(i);
  for (uint32_t seq : {1u, 501u, 1999u}) {
    third.seq = seq;
    EXPECT_TRUE(matches(odd, third, SearchView{5000, 5000})) << seq;
  }
  for (uint32_t seq : {2u, 500u, 2000u, 4999u}) {
    third.seq = seq;
    EXPECT_FALSE(matches(odd, third, SearchView{5000, 5000})) << seq;
  }
}

TEST(ImapSearchEval, SavedResult) {
  const std::vector<uint32_t> saved = {3, 30, 100};
  const SearchView view{10, 100, &saved};
  Msg in;  // UID 30 is saved; its sequence number 4 is not a saved UID
  in.seq = 4;
  in.uid = 30;
  Msg out;  // sequence number 3 is a saved UID, but "$" compares UIDs
  out.seq = 3;
  out.uid = 31;
  out.flags = {"\\Seen"};
  const std::vector<MatchCase> in_cases = {
      {"$", true},
      {"UID $", true},
      {"($)", true},
      {"NOT $", false},
      {"OR $ 9", true},
      {"OR 9 UID $", true},
      {"$ UNSEEN", true},
      {"$ SEEN", false},
      {"$ 4", true},
      {"$ 5", false},
      {"UID $ UID 30", true},
      {"$ NOT (UID 1:29)", true},
      {"RETURN (SAVE MIN) $", true},
  };
  expect_matches(in, in_cases, view);
  expect_matches(out,
                 {
                     {"$", false},
                     {"UID $", false},
                     {"NOT $", true},
                     {"OR $ SEEN", true},
                     {"OR $ 3", true},
                     {"NOT (OR $ UNSEEN)", true},
                 },
                 view);
  // No saved result, or an empty one: "$" is the empty set, which is not an error.
  const std::vector<uint32_t> empty;
  for (const SearchView& none : {SearchView{10, 100}, SearchView{10, 100, &empty}}) {
    expect_matches(in, {{"$", false}, {"UID $", false}, {"NOT $", true}, {"OR $ 4", true}}, none);
  }
  // The last UID of the mailbox, the first, and one past the end of the saved list.
  Msg last;
  last.seq = 10;
  last.uid = 100;
  expect_matches(last, {{"$", true}}, view);
  last.uid = 3;
  expect_matches(last, {{"$", true}}, view);
  last.uid = 101;
  expect_matches(last, {{"$", false}}, view);
}

// A session's view of SEARCHRES: save, then use "$" in the next search.
TEST(ImapSearchEval, SaveThenReuse) {
  std::vector<Msg> mailbox;
  for (uint32_t i = 1; i <= 6; ++i) {
    Msg m;
    m.seq = i;
    m.uid = i * 10;
    if (i % 2 == 0) m.flags = {"\\Flagged"};
    mailbox.push_back(m);
  }
  auto run = [&](std::string_view search, const std::vector<uint32_t>* saved) {
    std::vector<uint32_t> uids;
    for (const Msg& m : mailbox) {
      if (matches(search, m, SearchView{6, 60, saved})) uids.push_back(m.uid);
    }
    return uids;
  };
  auto save = [&](std::string_view search, const std::vector<uint32_t>* saved) {
    Result<SearchCommand> cmd = parse(search);
    EXPECT_TRUE(cmd.is_ok()) << search;
    return cmd.is_ok() ? saved_search_result(cmd->ret, run(search, saved))
                       : std::vector<uint32_t>{};
  };
  std::vector<uint32_t> var = save("RETURN (SAVE) FLAGGED", nullptr);
  EXPECT_EQ(var, (std::vector<uint32_t>{20, 40, 60}));
  EXPECT_EQ(run("$ 1:4", &var), (std::vector<uint32_t>{20, 40}));
  EXPECT_EQ(run("NOT $", &var), (std::vector<uint32_t>{10, 30, 50}));
  // A SEARCH that uses "$" and saves reads the old value, then replaces it.
  var = save("RETURN (SAVE MAX) $ NOT UID 60", &var);
  EXPECT_EQ(var, (std::vector<uint32_t>{40}));
  EXPECT_EQ(run("UID $", &var), (std::vector<uint32_t>{40}));
  var = save("RETURN (SAVE MIN MAX) OR $ UNFLAGGED", &var);
  EXPECT_EQ(var, (std::vector<uint32_t>{10, 50}));
  EXPECT_EQ(run("$", &var), (std::vector<uint32_t>{10, 50}));
  var = save("RETURN (SAVE COUNT MIN) 2:*", &var);
  EXPECT_EQ(var, (std::vector<uint32_t>{20, 30, 40, 50, 60}));
  var = save("RETURN (SAVE) $ KEYWORD nothing", &var);
  EXPECT_TRUE(var.empty());
  EXPECT_TRUE(run("$", &var).empty());
}

TEST(ImapSearchEval, SizesAndModseq) {
  Msg m;
  m.size = 100;
  m.modseq = 5;
  expect_matches(m, {
                        {"LARGER 99", true},
                        {"LARGER 100", false},
                        {"SMALLER 100", false},
                        {"SMALLER 101", true},
                        {"LARGER 0", true},
                        {"MODSEQ 5", true},
                        {"MODSEQ 6", false},
                        {"MODSEQ 0", true},
                        {"MODSEQ \"/flags/\\\\Seen\" all 4", true},
                        {"MODSEQ \"/flags/\\\\Seen\" priv 6", false},
                    });
}

TEST(ImapSearchEval, OrNotAndPrecedence) {
  Msg none;
  expect_matches(none, {
                           {"NOT SEEN FLAGGED", false},  // (NOT SEEN) FLAGGED
                           {"NOT (SEEN FLAGGED)", true},
                           {"OR SEEN FLAGGED", false},
                           {"OR SEEN NOT FLAGGED", true},
                           {"OR SEEN FLAGGED UNDELETED", false},  // (OR SEEN FLAGGED) UNDELETED
                           {"UNDELETED OR SEEN FLAGGED", false},
                           {"OR (SEEN FLAGGED) UNDELETED", true},
                           {"OR (SEEN UNFLAGGED) (FLAGGED UNSEEN)", false},
                           {"NOT NOT UNSEEN", true},
                           {"NOT OR SEEN FLAGGED", true},
                           {"OR NOT SEEN SEEN", true},
                           {"OR OR SEEN FLAGGED DELETED", false},
                           {"OR OR SEEN FLAGGED UNDELETED", true},
                       });
  Msg seen;
  seen.flags = {"\\Seen"};
  expect_matches(seen, {
                           {"OR SEEN FLAGGED DELETED", false},
                           {"OR SEEN FLAGGED UNDELETED", true},
                           {"NOT SEEN FLAGGED", false},
                           {"OR (SEEN UNFLAGGED) (FLAGGED UNSEEN)", true},
                       });
}

constexpr std::string_view kPlain =
    "Date: Tue, 1 Feb 1994 23:30:00 -0800\r\n"
    "From: \"Alice Example\" <alice@example.test>\r\n"
    "To: bob@example.test\r\n"
    "Cc: Carol <carol@example.test>\r\n"
    "Bcc: dave@example.test\r\n"
    "Subject: =?iso-8859-1?q?Caf=E9_cr=E8me?= and more\r\n"
    "X-Folded: first\r\n"
    " second\r\n"
    "X-Empty:\r\n"
    "\r\n"
    "Hello World\r\n"
    "Second line\r\n";

TEST(ImapSearchEval, InternalAndSentDates) {
  Msg m = message(kPlain);
  // The Date header is 1 Feb in its own zone, 2 Feb in UTC; the internal date is 3 Feb UTC.
  m.internal_date_ms = utc_ms(1994, 2, 3, 0, 30);
  expect_matches(m, {
                        {"SENTON 1-Feb-1994", true},
                        {"SENTON 2-Feb-1994", false},
                        {"SENTBEFORE 1-Feb-1994", false},
                        {"SENTBEFORE 2-Feb-1994", true},
                        {"SENTSINCE 1-Feb-1994", true},
                        {"SENTSINCE 2-Feb-1994", false},
                        {"ON 3-Feb-1994", true},
                        {"ON 2-Feb-1994", false},
                        {"BEFORE 3-Feb-1994", false},
                        {"BEFORE 4-Feb-1994", true},
                        {"SINCE 3-Feb-1994", true},
                        {"SINCE 4-Feb-1994", false},
                    });
  // The last millisecond of a day and dates before 1970 fall on the right day.
  m.internal_date_ms = utc_ms(1994, 2, 4) - 1;
  expect_matches(m, {{"ON 3-Feb-1994", true}, {"BEFORE 4-Feb-1994", true}});
  m.internal_date_ms = -1;
  expect_matches(m, {{"ON 31-Dec-1969", true}, {"SINCE 1-Jan-1970", false}});
}

TEST(ImapSearchEval, SentDateForms) {
  struct Case {
    std::string date;    // the Date header's value; empty: no Date header
    std::string on;      // the day SENTON matches; empty: none
    std::string not_on;  // a day SENTON must not match (e.g. the UTC day)
  };
  const std::vector<Case> cases = {
      {"Tue, 1 Feb 1994 23:30:00 -0800", "1-Feb-1994", "2-Feb-1994"},
      {"1 Feb 1994 23:30:00 -0800", "1-Feb-1994", "2-Feb-1994"},
      {"tue, 01 FEB 94 23:30:00 EST", "1-Feb-1994", "1-Feb-2094"},
      {"Sat, 1 Jan 50 00:00:00 +0000", "1-Jan-1950", "1-Jan-2050"},
      {"1 Jan 49 00:00 GMT", "1-Jan-2049", "1-Jan-1949"},
      {"Fri, 1 Jan 102 00:00:00 +0000", "1-Jan-2002", "1-Jan-0102"},
      {"Mon, 31 Dec 2023 23:59:59 +1400 (LINT)", "31-Dec-2023", "30-Dec-2023"},
      {"Wed, 1 Jan 2025 00:30:00 +0900", "1-Jan-2025", "31-Dec-2024"},
      {"Tue,1 Feb 1994 23:30:00-0800", "1-Feb-1994", "2-Feb-1994"},
      {"(sent) Tue, 1 Feb (a (nested) comment) 1994 23:30 -0800", "1-Feb-1994", "2-Feb-1994"},
      {"Tue 1 Feb 1994", "1-Feb-1994", "2-Feb-1994"},
      {"Thu, 29 Feb 2024 12:00:60 +0000", "29-Feb-2024", "1-Mar-2024"},
      {"garbage", "", "1-Feb-1994"},
      {"Tue, 30 Feb 1994 10:00:00 +0000", "", "1-Mar-1994"},
      {"Tue, 1 Feb 1994 25:30:00 +0000", "", "1-Feb-1994"},
      {"Xyz, 1 Feb 1994 10:00:00 +0000", "", "1-Feb-1994"},
      {"2024-01-01 10:00:00", "", "1-Jan-2024"},
      {"1 Feb 19945 10:00 +0000", "", "1-Feb-1994"},
      {"", "", "1-Feb-1994"},
  };
  for (const Case& c : cases) {
    const std::string raw =
        (c.date.empty() ? "" : "Date: " + c.date + "\r\n") + "Subject: d\r\n\r\nbody\r\n";
    Msg m = message(raw);
    m.internal_date_ms = utc_ms(1994, 2, 1, 12);  // never used by SENT*
    if (c.on.empty()) {
      EXPECT_TRUE(matches("NOT SENTSINCE 1-Jan-1900 NOT SENTBEFORE 1-Jan-3000", m)) << c.date;
    } else {
      EXPECT_TRUE(matches("SENTON " + c.on, m)) << c.date;
      EXPECT_TRUE(matches("SENTSINCE " + c.on, m)) << c.date;
      EXPECT_FALSE(matches("SENTBEFORE " + c.on, m)) << c.date;
    }
    EXPECT_FALSE(matches("SENTON " + c.not_on, m)) << c.date;
  }
}

TEST(ImapSearchEval, HeaderFields) {
  const Msg m = message(kPlain);
  expect_matches(m, {
                        {"SUBJECT \"caf\xC3\xA9\"", true},
                        {"SUBJECT {12}\r\nCAF\xC3\x89 CR\xC3\x88ME", true},
                        {"SUBJECT \"cr\xC3\xA8me and more\"", true},
                        {"SUBJECT caf=E9", false},
                        {"SUBJECT iso-8859-1", false},
                        {"SUBJECT \"\"", true},
                        {"FROM \"alice example\"", true},
                        {"FROM ALICE@EXAMPLE.TEST", true},
                        {"FROM bob", false},
                        {"TO bob", true},
                        {"CC carol", true},
                        {"BCC dave", true},
                        {"BCC alice", false},
                        {"HEADER X-Folded \"first second\"", true},
                        {"HEADER x-folded \"\"", true},
                        {"HEADER X-Empty \"\"", true},
                        {"HEADER X-Empty a", false},
                        {"HEADER X-Missing \"\"", false},
                        {"NOT HEADER X-Missing \"\"", true},
                        {"HEADER Subject more", true},
                        {"HEADER Subj more", false},  // a name, not a prefix
                        {"HEADER Date \"-0800\"", true},
                    });
  // Every field of a repeated name counts, not just the one ENVELOPE shows.
  const Msg twice = message("Subject: first one\r\nSubject: second one\r\n\r\nx\r\n");
  expect_matches(twice, {{"SUBJECT first", true}, {"SUBJECT second", true}});
  // 8-bit header bytes and invalid UTF-8 do not break matching of the rest.
  const Msg eight_bit = message("Subject: bad \xff\xfe subject\r\n\r\nx\r\n");
  expect_matches(eight_bit, {{"SUBJECT \"bad\"", true},
                             {"SUBJECT subject", true},
                             {"SUBJECT {1}\r\n\xff", false},
                             {"SUBJECT zzz", false}});
  // The other fields the header fields record keeps, folded, encoded, in odd case, repeated.
  const Msg kept = message(
      "from: =?utf-8?b?SsO8cmdlbg==?= <j@example.test>\r\n"
      "SENDER : list-owner@example.test\r\n"
      "Reply-To: answers@example.test\r\n"
      "To: first@example.test,\r\n"
      "\tsecond@example.test\r\n"
      "To: third@example.test\r\n"
      "Message-ID: <abc.123@example.test>\r\n"
      "Cc:\r\n"
      "\r\nbody\r\n");
  expect_matches(kept, {{"FROM \"j\xC3\xBCrgen\"", true},
                        {"FROM SGVsbG8", false},
                        {"HEADER Sender list-owner", true},
                        {"HEADER reply-to answers", true},
                        {"HEADER Reply-To first", false},
                        {"TO \"test,\tsecond\"", true},  // unfolded: the tab stays
                        {"TO third", true},
                        {"TO fourth", false},
                        {"HEADER Message-ID \"<abc.123@example.test>\"", true},
                        {"HEADER MESSAGE-ID abd", false},
                        {"CC \"\"", true},
                        {"BCC \"\"", false},
                        {"NOT BCC \"\"", true},
                        {"OR SUBJECT x FROM example", true}});
}

TEST(ImapSearchEval, BodyAndText) {
  const Msg m = message(kPlain);
  expect_matches(m, {
                        {"BODY \"hello world\"", true},
                        {"BODY \"second LINE\"", true},
                        {"BODY alice", false},  // header, not body
                        {"BODY \"\"", true},
                        {"TEXT alice", true},
                        {"TEXT hello", true},
                        {"TEXT x-folded", true},  // field names are header text too
                        {"TEXT \"caf\xC3\xA9 cr\xC3\xA8me\"", true},
                        {"TEXT nowhere", false},
                        // Several body keys share one decoded body.
                        {"BODY hello BODY world NOT BODY zzz", true},
                        {"BODY hello BODY zzz", false},
                    });
}

constexpr std::string_view kBase64 =
    "From: x@example.test\r\n"
    "Subject: b64\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "R3LDvMOfZSBhdXMgS8O2bG4NCnp3ZWl0ZSBaZWlsZQ0K\r\n";  // "Grüße aus Köln\r\nzweite Zeile\r\n"

constexpr std::string_view kQuotedPrintable =
    "From: x@example.test\r\n"
    "Subject: qp\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=C3=A9 au lait, soft=\r\n"
    "break here=3D\r\n";

constexpr std::string_view kLatin1 =
    "From: x@example.test\r\n"
    "Subject: latin1\r\n"
    "Content-Type: text/plain; charset=ISO-8859-1\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Tr\xe8s bien, \xe7"
    "a va\r\n";

constexpr std::string_view kBadUtf8 =
    "From: x@example.test\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "ab\xff\xfe cd \xC3\x9Cn\xC3\xAF"
    "code\r\n";

TEST(ImapSearchEval, BodyTransferEncodingsAndCharsets) {
  expect_matches(message(kBase64), {
                                       {"BODY \"gr\xC3\xBC\xC3\x9F"
                                        "e\"",
                                        true},
                                       // Case folding maps sharp s to "ss".
                                       {"BODY \"GR\xC3\x9CSSE AUS\"", true},
                                       {"BODY \"k\xC3\xB6ln\"", true},
                                       {"BODY \"K\xC3\x96LN\"", true},
                                       {"BODY \"zweite zeile\"", true},
                                       {"BODY R3LDvMOfZSBh", false},
                                       {"BODY koln", false},
                                   });
  expect_matches(message(kQuotedPrintable), {
                                                {"BODY \"caf\xC3\xA9 au lait\"", true},
                                                {"BODY softbreak", true},
                                                {"BODY \"here=\"", true},
                                                {"BODY =C3", false},
                                                {"BODY =3D", false},
                                            });
  expect_matches(message(kLatin1), {
                                       {"BODY \"tr\xC3\xA8s bien\"", true},
                                       {"BODY \"\xC3\x87"
                                        "A VA\"",
                                        true},
                                       {"BODY {4}\r\ntr\xe8s", false},  // not UTF-8: bytes
                                   });
  expect_matches(message(kBadUtf8), {
                                        {"BODY ab", true},
                                        {"BODY cd", true},
                                        {"BODY \"\xC3\xBCn\xC3\xAF"
                                         "code\"",
                                         true},
                                        {"BODY {1}\r\n\xff", false},
                                        {"TEXT {2}\r\n\xff\xfe", false},
                                    });
}

// "café" with a combining acute after a plain e, and "Kelvin" with the Kelvin sign (U+212A),
// which case-folds to an ASCII k.
constexpr std::string_view kUnicodeForms =
    "Subject: Cafe\xCC\x81 \xE2\x84\xAA"
    "elvin\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Un cafe\xCC\x81 \xC3\xA0 \xE2\x84\xAA"
    "elvin\r\n";

TEST(ImapSearchEval, CaseFoldingAndNormalization) {
  expect_matches(message(kUnicodeForms), {
                                             {"BODY \"caf\xC3\xA9 \xC3\xA0\"", true},
                                             {"BODY \"CAF\xC3\x89\"", true},
                                             {"BODY \"un cafe\xCC\x81\"", true},
                                             {"BODY kelvin", true},
                                             {"BODY \"\xC3\xA9 \xC3\xA0 kel\"", true},
                                             {"BODY \"cafe \"", false},
                                             {"SUBJECT \"caf\xC3\xA9 kelvin\"", true},
                                             {"SUBJECT KELVIN", true},
                                             {"TEXT \"caf\xC3\xA9 k\"", true},
                                         });
}

constexpr std::string_view kMultipart =
    "From: m@example.test\r\n"
    "Subject: report\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "preamble words\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "See the attached report.\r\n"
    "--b1\r\n"
    "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "c2VjcmV0IGF0dGFjaG1lbnQgdGV4dA0K\r\n"  // "secret attachment text\r\n"
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: inner@example.test\r\n"
    "Subject: =?utf-8?q?Inner_=C3=BCber?=\r\n"
    "\r\n"
    "inner body words\r\n"
    "--b1\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "<p>html =E2=82=AC part</p>\r\n"
    "--b1--\r\n"
    "epilogue words\r\n";

// GLib folding the whole text at once: what fold_for_search() must always equal on UTF-8.
std::string reference_fold(const std::string& s) {
  gchar* folded = g_utf8_casefold(s.data(), static_cast<gssize>(s.size()));
  gchar* composed = g_utf8_normalize(folded, -1, G_NORMALIZE_DEFAULT_COMPOSE);
  std::string out = composed ? composed : folded;
  g_free(composed);
  g_free(folded);
  return out;
}

std::string utf8_of(gunichar c) {
  char buf[8];
  return std::string(buf, static_cast<size_t>(g_unichar_to_utf8(c, buf)));
}

TEST(ImapSearchFold, EqualsGLibOnTheWholeText) {
  // Every character below U+0800 alone, after each of a few letters, and before combining
  // marks that compose with some of them (U+0301 acute, U+0308 diaeresis, U+0327 cedilla,
  // U+0342 Greek perispomeni, U+0653 Arabic maddah).
  const std::vector<std::string> before = {"", "a", "E", "i", "o", "u", "n", "s", "K", " ", "\n"};
  const std::vector<gunichar> marks = {0x301, 0x308, 0x327, 0x342, 0x653, 0x345};
  for (gunichar c = 0x80; c < 0x800; ++c) {
    for (const std::string& b : before) {
      const std::string s = b + utf8_of(c) + "x";
      ASSERT_EQ(fold_for_search(s), reference_fold(s)) << std::hex << c;
    }
    for (gunichar m : marks) {
      const std::string s = utf8_of(c) + utf8_of(m) + utf8_of(0xE9) + utf8_of(m);
      ASSERT_EQ(fold_for_search(s), reference_fold(s)) << std::hex << c << " " << m;
    }
  }
  // Random text mixing ASCII, two-byte characters, combining marks, Hangul and other
  // three- and four-byte characters.
  std::mt19937 rng(20261130);
  const std::vector<std::pair<gunichar, gunichar>> ranges = {
      {0x20, 0x7E},     {0x20, 0x7E},     {0x80, 0x7FF},    {0xC0, 0x17F},     {0x370, 0x3FF},
      {0x400, 0x4FF},   {0x300, 0x36F},   {0x1100, 0x1112}, {0x1161, 0x1175},  {0xAC00, 0xAC40},
      {0x1E00, 0x1FFF}, {0x2126, 0x212B}, {0xFB00, 0xFB06}, {0x10400, 0x1044F}};
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 12) + 1;
    for (int j = 0; j < len; ++j) {
      const auto& [lo, hi] = ranges[rng() % ranges.size()];
      s += utf8_of(lo + rng() % (hi - lo + 1));
    }
    ASSERT_EQ(fold_for_search(s), reference_fold(s)) << testing::PrintToString(s);
  }
  // Not UTF-8: ASCII lower case of the bytes.
  EXPECT_EQ(fold_for_search("AbC \xff\xc3"), "abc \xff\xc3");
}

TEST(ImapSearchEval, MultipartWithAttachmentAndMessage) {
  const Msg m = message(kMultipart);
  expect_matches(m, {
                        {"BODY \"attached report\"", true},
                        {"BODY \"secret attachment\"", false},  // not a text part
                        {"BODY data.bin", false},               // part headers are not text
                        {"BODY \"inner body words\"", true},
                        {"BODY \"inner \xC3\xBC"
                         "ber\"",
                         true},  // attached message's header
                        {"BODY inner@example.test", true},
                        {"BODY \"html \xE2\x82\xAC part\"", true},
                        {"BODY preamble", false},
                        {"BODY epilogue", false},
                        {"BODY report.from", false},  // no match across parts
                        {"SUBJECT inner", false},     // top-level header only
                        {"SUBJECT report", true},
                        {"TEXT report", true},
                        {"TEXT \"inner body\"", true},
                    });
}

TEST(ImapSearchEval, WithoutOrWithStaleParseCache) {
  // No cache: the message is parsed from its bytes.
  Msg uncached = message(kPlain);
  uncached.info.reset();
  expect_matches(uncached, {{"SUBJECT \"caf\xC3\xA9\"", true},
                            {"BODY hello", true},
                            {"SENTON 1-Feb-1994", true},
                            {"FROM nobody", false}});
  // Neither cache nor bytes: header keys do not match.
  Msg empty;
  expect_matches(empty, {{"SUBJECT x", false},
                         {"NOT SUBJECT x", true},
                         {"SENTSINCE 1-Jan-1900", false},
                         {"BODY x", false}});
  // A cache that does not describe the bytes: no crash, no body match.
  Msg stale = message(kMultipart);
  stale.raw = "short";
  expect_matches(stale, {{"BODY report", false}, {"BODY inner", false}});
}

TEST(ImapSearchFormat, SequenceSets) {
  struct Case {
    std::vector<uint32_t> in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {{}, ""},
      {{1}, "1"},
      {{1, 2, 3, 7}, "1:3,7"},
      {{1, 3, 5}, "1,3,5"},
      {{2, 3, 5, 6, 7, 9}, "2:3,5:7,9"},
      {{4294967294u, 4294967295u}, "4294967294:4294967295"},
  };
  for (const Case& c : cases) EXPECT_EQ(format_sequence_set(c.in), c.out);
}

}  // namespace
}  // namespace mailark::imap
