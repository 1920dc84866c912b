// SEARCH key parsing and evaluation (imap_search.h). Choices where the RFCs leave room are
// listed in the header; those made here:
// - Keys nested more than kMaxNesting deep (NOT, OR and parenthesized lists each add a level)
//   are BAD, so hostile input cannot exhaust the stack here or in evaluation.
// - KEYWORD takes an atom (RFC 3501 flag-keyword); a quoted keyword or "\Seen" is BAD.
// - RETURN options may repeat ("RETURN (SAVE SAVE)"); a repeat changes nothing.
// - Dates are 1-2 digit day, English month (any case), 4-digit year; "1-Feb-94" is BAD.
// - Within an AND (and OR), keys that only look at flags, sets, sizes and dates run before
//   those that read the parse cache, and those before BODY/TEXT; results are the same.
// - The body text comes from the parse cache's part offsets (the project's own MIME scan,
//   the same parts BODYSTRUCTURE shows); GMime decodes the transfer encodings, the RFC 2047
//   words and converts charsets.
#include "protocol/imap/imap_search.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>
#include <mutex>
#include <optional>
#include <utility>

namespace mailark::imap {

struct SearchProgram::Node {
  enum class Kind {
    kAll,
    kAnd,          // children: all match
    kOr,           // children[0] or children[1]
    kNot,          // not children[0]
    kSequenceSet,  // ranges / star_ranges: message sequence numbers
    kUidSet,       // the same for UIDs
    kSaved,        // "$" or "UID $": the UID is in SearchView::saved_uids
    kFlag,         // name: "\\Seen" (canonical spelling) or a keyword
    kRecent,
    kBefore,  // day: the internal date's UTC day is earlier
    kOn,
    kSince,
    kSentBefore,  // day: the Date header's own day
    kSentOn,
    kSentSince,
    kLarger,   // number: size > number
    kSmaller,  // number: size < number
    kHeader,   // name: field name, upper case; needle
    kBody,     // needle
    kText,     // needle
    kModseq,   // number: modseq >= number
  };
  Kind kind = Kind::kAll;
  std::vector<Node> children;
  std::vector<SeqRange> ranges;       // without '*': sorted by lo, disjoint, not adjacent
  std::vector<SeqRange> star_ranges;  // with '*' (UINT32_MAX) at one end
  std::string name;
  std::optional<HeaderField>
      field;           // kHeader: the name's code when the header fields record keeps it
  std::string needle;  // case-folded (fold())
  uint64_t number = 0;
  int64_t day = 0;  // days since 1970-01-01
  // What evaluating it reads: 0 message attributes, 1 the parse cache, 2 the body.
  int cost = 0;
};

namespace {

using Node = SearchProgram::Node;
using Kind = Node::Kind;

constexpr int kMaxNesting = 64;
constexpr uint64_t kMaxNumber64 = INT64_MAX;  // RFC 9051 number64, RFC 7162 mod-sequence-value
constexpr int64_t kMsPerDay = 86'400'000;

// ---------------------------------------------------------------------------------------
// Text helpers.

struct GFree {
  void operator()(void* p) const { g_free(p); }
};
using GText = std::unique_ptr<char, GFree>;

void init_gmime_once() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}
bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}
bool is_utf8(std::string_view s) {
  return g_utf8_validate(s.data(), static_cast<gssize>(s.size()), nullptr);
}

void fold_unicode(std::string_view s, std::string& out) {
  GText folded(g_utf8_casefold(s.data(), static_cast<gssize>(s.size())));
  GText composed(g_utf8_normalize(folded.get(), -1, G_NORMALIZE_DEFAULT_COMPOSE));
  out.append(composed ? composed.get() : folded.get());
}

void append_lower(std::string_view s, std::string& out) {
  const size_t old = out.size();
  out.append(s);
  for (size_t i = old; i < out.size(); ++i) out[i] = ascii_lower(out[i]);
}

// The folded form of each two-byte UTF-8 character (U+0080..U+07FF: Latin, Greek, Cyrillic,
// Armenian, Hebrew, Arabic...), taken from GLib once, for the characters that can be folded
// on their own: where NFC cannot join anything before them to them. That holds when the first
// character of their case folding is a starter (combining class 0) that does not compose
// with a preceding character, and neither does the first character of its decomposition.
// Text made only of those, between ASCII, folds character by character without GLib.
class TwoByteFolds {
 public:
  static const TwoByteFolds& get() {
    static const TwoByteFolds folds;
    return folds;
  }
  // Null when `cp` must go through GLib with its neighbours.
  const std::string* of(uint32_t cp) const {
    return cp < kEnd && simple_[cp] ? &folded_[cp] : nullptr;
  }

 private:
  static constexpr uint32_t kEnd = 0x800;

  TwoByteFolds() {
    // The second characters of canonical compositions: they may join what precedes them.
    // Canonical composites are all below U+30000.
    std::vector<bool> composes_backward(0x30000, false);
    for (gunichar cp = 0xC0; cp < 0x30000; ++cp) {
      gunichar a = 0, b = 0;
      if (g_unichar_decompose(cp, &a, &b) && b != 0 && b < composes_backward.size())
        composes_backward[b] = true;
    }
    auto boundary_before = [&](gunichar c) {
      for (int depth = 0; depth < 8; ++depth) {
        if (g_unichar_combining_class(c) != 0) return false;
        if (c < composes_backward.size() && composes_backward[c]) return false;
        gunichar a = 0, b = 0;
        if (!g_unichar_decompose(c, &a, &b) || a == c) return true;
        c = a;
      }
      return false;
    };
    for (uint32_t cp = 0x80; cp < kEnd; ++cp) {
      char utf8[8];
      const int n = g_unichar_to_utf8(cp, utf8);
      GText folded(g_utf8_casefold(utf8, n));
      if (!folded || !*folded.get()) continue;
      if (!boundary_before(g_utf8_get_char(folded.get()))) continue;
      fold_unicode(std::string_view(utf8, static_cast<size_t>(n)), folded_[cp]);
      simple_[cp] = true;
    }
  }

  std::array<std::string, kEnd> folded_;
  std::array<bool, kEnd> simple_{};
};

// fold() for text known to be valid UTF-8.
std::string fold_utf8(std::string s) {
  auto is_high = [](char c) { return static_cast<unsigned char>(c) >= 0x80; };
  if (std::none_of(s.begin(), s.end(), is_high)) {
    for (char& c : s) c = ascii_lower(c);
    return s;
  }
  const TwoByteFolds& folds = TwoByteFolds::get();
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  const std::string_view text(s);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t run = pos;
    while (run < text.size() && !is_high(text[run])) ++run;
    if (run == text.size()) {
      append_lower(text.substr(pos), out);
      break;
    }
    size_t end = run;
    while (end < text.size() && is_high(text[end])) ++end;  // whole characters: valid UTF-8
    // Two-byte characters that fold on their own need neither GLib nor the character before.
    bool simple = true;
    for (size_t i = run; i < end && simple; i += 2) {
      const auto lead = static_cast<unsigned char>(text[i]);
      simple = lead >= 0xC2 && lead <= 0xDF && i + 1 < end &&
               folds.of(((lead & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu));
    }
    if (simple) {
      append_lower(text.substr(pos, run - pos), out);
      for (size_t i = run; i < end; i += 2) {
        const auto lead = static_cast<unsigned char>(text[i]);
        out += *folds.of(((lead & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu));
      }
    } else {
      // GLib sees the run with the character before it (a base letter a combining mark may
      // compose with): folding is per character and NFC never joins anything else across an
      // ASCII character, so the result is the same as folding the whole text.
      const size_t ascii_end = run > pos ? run - 1 : run;
      append_lower(text.substr(pos, ascii_end - pos), out);
      fold_unicode(text.substr(ascii_end, end - ascii_end), out);
    }
    pos = end;
  }
  return out;
}

}  // namespace

// Unicode case folding then NFC for UTF-8, ASCII lower case of the bytes otherwise. GLib only
// sees the runs of characters that need it, so mostly-ASCII or Latin mail folds many times
// faster than folding the whole text, with the same result.
std::string fold_for_search(std::string s) {
  if (!is_utf8(s)) {
    for (char& c : s) c = ascii_lower(c);
    return s;
  }
  return fold_utf8(std::move(s));
}

namespace {

std::string fold(std::string s) {
  return fold_for_search(std::move(s));
}

// `needle_lower` is ASCII lower case; `haystack` is ASCII. No allocation.
bool contains_ascii_ci(std::string_view haystack, std::string_view needle_lower) {
  if (needle_lower.size() > haystack.size()) return false;
  const size_t last = haystack.size() - needle_lower.size();
  for (size_t i = 0; i <= last; ++i) {
    size_t j = 0;
    while (j < needle_lower.size() && ascii_lower(haystack[i + j]) == needle_lower[j]) ++j;
    if (j == needle_lower.size()) return true;
  }
  return false;
}

// Whether `haystack` (not folded) contains `needle` (folded).
bool contains_folded(std::string_view haystack, std::string_view needle) {
  if (needle.empty()) return true;
  if (is_ascii(haystack)) {
    // Folding never turns ASCII into anything else, so a non-ASCII needle cannot occur.
    return is_ascii(needle) && contains_ascii_ci(haystack, needle);
  }
  return fold(std::string(haystack)).find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------
// Dates.

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kWeekdays = {"Mon", "Tue", "Wed", "Thu",
                                                       "Fri", "Sat", "Sun"};

// 1..12 for a month name or its first three letters (any case), 0 otherwise.
int month_number(std::string_view token) {
  if (token.size() < 3 || !std::all_of(token.begin(), token.end(), is_alpha)) return 0;
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (iequals(token.substr(0, 3), kMonths[i])) return static_cast<int>(i) + 1;
  }
  return 0;
}

std::optional<int64_t> civil_day(int year, int month, int day) {
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year},
                           std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;
  return sys_days(ymd).time_since_epoch().count();
}

std::string format_day(int64_t days) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{std::chrono::days{days}}};
  return std::to_string(static_cast<unsigned>(ymd.day())) + "-" +
         std::string(kMonths[static_cast<unsigned>(ymd.month()) - 1]) + "-" +
         std::to_string(static_cast<int>(ymd.year()));
}

int64_t utc_day(int64_t ms) {
  int64_t q = ms / kMsPerDay;
  if (ms % kMsPerDay < 0) --q;
  return q;
}

// Value of an all-digit string of at most 9 characters, or -1.
int small_number(std::string_view s) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), is_digit)) return -1;
  int n = 0;
  for (char c : s) n = n * 10 + (c - '0');
  return n;
}

// IMAP date-text "1-Feb-1994" (RFC 3501 9: date-day 1*2DIGIT, date-month, date-year 4DIGIT).
std::optional<int64_t> parse_search_date(std::string_view text) {
  const size_t dash1 = text.find('-');
  if (dash1 == std::string_view::npos) return std::nullopt;
  const size_t dash2 = text.find('-', dash1 + 1);
  if (dash2 == std::string_view::npos) return std::nullopt;
  const std::string_view day = text.substr(0, dash1);
  const std::string_view month = text.substr(dash1 + 1, dash2 - dash1 - 1);
  const std::string_view year = text.substr(dash2 + 1);
  if (day.empty() || day.size() > 2 || month.size() != 3 || year.size() != 4) {
    return std::nullopt;
  }
  const int d = small_number(day), m = month_number(month), y = small_number(year);
  if (d < 0 || m == 0 || y < 0) return std::nullopt;
  return civil_day(y, m, d);
}

// The calendar day written in an RFC 5322 date-time, in its own zone: [weekday[","]] day
// month year [hh:mm[:ss] [zone]]. Tolerates what RFC 5322 4.3 calls obsolete (2- and 3-digit
// years, any zone name, comments) and a missing weekday, time or zone. Written by hand rather
// than with g_mime_utils_header_decode_date: only the day as written is needed, and GMime maps
// two-digit years with a different pivot (70) than RFC 5322 (50). Allocation-free.
std::optional<int64_t> parse_sent_day(std::string_view text) {
  std::array<std::string_view, 5> tokens;
  size_t count = 0;
  size_t pos = 0;
  while (pos < text.size() && count < tokens.size()) {
    const char c = text[pos];
    if (c == '(') {  // comment, possibly nested, with quoted-pairs
      int depth = 0;
      for (; pos < text.size(); ++pos) {
        if (text[pos] == '\\') {
          ++pos;
        } else if (text[pos] == '(') {
          ++depth;
        } else if (text[pos] == ')' && --depth == 0) {
          ++pos;
          break;
        }
      }
      continue;
    }
    if (is_wsp(c) || c == ',' || c == '\r' || c == '\n') {
      ++pos;
      continue;
    }
    const size_t start = pos;
    while (pos < text.size() && !is_wsp(text[pos]) && text[pos] != ',' && text[pos] != '(' &&
           text[pos] != '\r' && text[pos] != '\n') {
      ++pos;
    }
    tokens[count++] = text.substr(start, pos - start);
  }
  size_t i = 0;
  if (i < count && is_alpha(tokens[i][0])) {
    const std::string_view weekday = tokens[i];
    if (weekday.size() < 3 || std::none_of(kWeekdays.begin(), kWeekdays.end(), [&](auto w) {
          return iequals(weekday.substr(0, 3), w);
        })) {
      return std::nullopt;
    }
    ++i;
  }
  if (count - i < 3) return std::nullopt;
  const std::string_view day = tokens[i], month = tokens[i + 1], year = tokens[i + 2];
  if (day.size() > 2) return std::nullopt;
  const int d = small_number(day), m = month_number(month);
  int y = year.size() >= 2 && year.size() <= 4 ? small_number(year) : -1;
  if (d < 0 || m == 0 || y < 0) return std::nullopt;
  if (year.size() == 2) y += y < 50 ? 2000 : 1900;
  if (year.size() == 3) y += 1900;
  i += 3;
  if (i < count) {  // the time, when present, must be one: "25:00" makes the date unusable
    const std::string_view time = tokens[i];
    const size_t colon1 = time.find(':');
    if (colon1 == std::string_view::npos) return std::nullopt;
    const int hour = colon1 <= 2 ? small_number(time.substr(0, colon1)) : -1;
    const std::string_view rest = time.substr(colon1 + 1);
    const int minute = rest.size() >= 2 ? small_number(rest.substr(0, 2)) : -1;
    int second = 0;
    if (rest.size() >= 3 && rest[2] == ':') {
      second = rest.size() >= 5 ? small_number(rest.substr(3, 2)) : -1;
    }
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) {
      return std::nullopt;
    }
  }
  return civil_day(y, m, d);
}

// ---------------------------------------------------------------------------------------
// Parsing.

struct FlagKey {
  std::string_view key;
  std::string_view flag;
  bool negated;
};
constexpr FlagKey kFlagKeys[] = {
    {"ANSWERED", "\\Answered", false}, {"UNANSWERED", "\\Answered", true},
    {"DELETED", "\\Deleted", false},   {"UNDELETED", "\\Deleted", true},
    {"DRAFT", "\\Draft", false},       {"UNDRAFT", "\\Draft", true},
    {"FLAGGED", "\\Flagged", false},   {"UNFLAGGED", "\\Flagged", true},
    {"SEEN", "\\Seen", false},         {"UNSEEN", "\\Seen", true},
};

struct DateKey {
  std::string_view key;
  Kind kind;
};
constexpr DateKey kDateKeys[] = {
    {"BEFORE", Kind::kBefore},         {"ON", Kind::kOn},         {"SINCE", Kind::kSince},
    {"SENTBEFORE", Kind::kSentBefore}, {"SENTON", Kind::kSentOn}, {"SENTSINCE", Kind::kSentSince},
};

constexpr std::string_view kAddressKeys[] = {"BCC", "CC", "FROM", "SUBJECT", "TO"};

Node leaf(Kind kind) {
  Node n;
  n.kind = kind;
  return n;
}

Node flag_node(std::string_view flag) {
  Node n = leaf(Kind::kFlag);
  n.name = flag;
  return n;
}

Node negate(Node child) {
  Node n = leaf(Kind::kNot);
  n.cost = child.cost;
  n.children.push_back(std::move(child));
  return n;
}

// Cheap keys first: evaluation stops at the first failing key of an AND.
Node conjunction(std::vector<Node> children) {
  if (children.size() == 1) return std::move(children.front());
  std::stable_sort(children.begin(), children.end(),
                   [](const Node& a, const Node& b) { return a.cost < b.cost; });
  Node n = leaf(Kind::kAnd);
  for (const Node& c : children) n.cost = std::max(n.cost, c.cost);
  n.children = std::move(children);
  return n;
}

Node disjunction(Node a, Node b) {
  if (b.cost < a.cost) std::swap(a, b);
  Node n = leaf(Kind::kOr);
  n.cost = b.cost;
  n.children.push_back(std::move(a));
  n.children.push_back(std::move(b));
  return n;
}

// Client text in a BAD response: short, printable.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 32)) {
    const bool printable = c >= 0x20 && c <= 0x7e;  // false for 8-bit bytes, signed char or not
    out.push_back(printable ? c : '?');
  }
  return out;
}

std::optional<uint64_t> parse_number(const Value& v, uint64_t max) {
  if (!v.is_atom() || v.text.empty() || v.text.size() > 20) return std::nullopt;
  uint64_t n = 0;
  for (char c : v.text) {
    if (!is_digit(c)) return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (n > (max - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
  }
  return n;
}

// astring: an atom or a string. NIL is the atom "NIL" here (the tokenizer marks it kNil).
bool is_astring(const Value& v) {
  return v.is_astring() || v.kind == Value::Kind::kNil;
}

// A sequence set key, or a UID set after "UID": numbers, or "$" alone (RFC 5182 3).
Result<Node> set_node(Kind kind, std::string_view text) {
  if (text == "$") return leaf(Kind::kSaved);
  std::optional<std::vector<SeqRange>> set = parse_sequence_set(text);
  if (!set) {
    const bool dollar = text.find('$') != std::string_view::npos;
    return invalid("invalid sequence set " + excerpt(text) +
                   (dollar ? " ($ must stand alone)" : ""));
  }
  Node n = leaf(kind);
  for (const SeqRange& r : *set) {
    (r.lo == UINT32_MAX || r.hi == UINT32_MAX ? n.star_ranges : n.ranges).push_back(r);
  }
  std::sort(n.ranges.begin(), n.ranges.end(),
            [](const SeqRange& a, const SeqRange& b) { return a.lo < b.lo; });
  std::vector<SeqRange> merged;
  for (const SeqRange& r : n.ranges) {
    // No range here holds UINT32_MAX, so hi + 1 cannot overflow.
    if (!merged.empty() && r.lo <= merged.back().hi + 1) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
    } else {
      merged.push_back(r);
    }
  }
  n.ranges = std::move(merged);
  return n;
}

Node text_node(Kind kind, std::string field, const Value& needle) {
  Node n = leaf(kind);
  n.name = std::move(field);
  if (kind == Kind::kHeader) n.field = header_field_code(n.name);
  n.needle = fold(needle.text);
  n.cost = kind == Kind::kHeader ? 1 : 2;
  return n;
}

bool valid_field_name(std::string_view name) {
  // RFC 5322 ftext: printable US-ASCII except ':'.
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f && c != ':';
  });
}

Result<Node> parse_keys(const std::vector<Value>& items, size_t pos, int depth);

// One search key starting at items[pos]; advances pos past it and its arguments.
Result<Node> parse_key(const std::vector<Value>& items, size_t& pos, int depth) {
  if (depth > kMaxNesting) return invalid("search keys nested too deeply");
  if (pos >= items.size()) return invalid("missing search key");
  const Value& v = items[pos++];
  if (v.is_list()) return parse_keys(v.items, 0, depth + 1);
  if (!v.is_atom()) return invalid("expected a search key");

  const std::string key = v.upper();
  auto next = [&]() -> const Value* { return pos < items.size() ? &items[pos++] : nullptr; };
  auto missing = [&]() { return invalid(key + " needs an argument"); };

  if (!key.empty() && (is_digit(key[0]) || key[0] == '*' || key[0] == '$')) {
    return set_node(Kind::kSequenceSet, v.text);
  }
  if (key == "ALL") return leaf(Kind::kAll);
  for (const FlagKey& f : kFlagKeys) {
    if (key == f.key) return f.negated ? negate(flag_node(f.flag)) : flag_node(f.flag);
  }
  if (key == "RECENT") return leaf(Kind::kRecent);
  if (key == "OLD") return negate(leaf(Kind::kRecent));
  if (key == "NEW") {
    std::vector<Node> both;
    both.push_back(leaf(Kind::kRecent));
    both.push_back(negate(flag_node("\\Seen")));
    return conjunction(std::move(both));
  }
  if (key == "KEYWORD" || key == "UNKEYWORD") {
    const Value* arg = next();
    if (!arg) return missing();
    if (!arg->is_atom() || arg->text.empty() || arg->text[0] == '\\') {
      return invalid(key + " needs a keyword");
    }
    Node n = flag_node(arg->text);
    return key == "KEYWORD" ? std::move(n) : negate(std::move(n));
  }
  for (std::string_view field : kAddressKeys) {
    if (key == field) {
      const Value* arg = next();
      if (!arg) return missing();
      if (!is_astring(*arg)) return invalid(key + " needs a string");
      return text_node(Kind::kHeader, key, *arg);
    }
  }
  if (key == "HEADER") {
    const Value* field = next();
    const Value* arg = field ? next() : nullptr;
    if (!arg) return invalid("HEADER needs a field name and a string");
    if (!is_astring(*field) || !valid_field_name(field->text) || !is_astring(*arg)) {
      return invalid("HEADER needs a field name and a string");
    }
    return text_node(Kind::kHeader, to_upper(field->text), *arg);
  }
  if (key == "BODY" || key == "TEXT") {
    const Value* arg = next();
    if (!arg) return missing();
    if (!is_astring(*arg)) return invalid(key + " needs a string");
    return text_node(key == "BODY" ? Kind::kBody : Kind::kText, "", *arg);
  }
  for (const DateKey& d : kDateKeys) {
    if (key == d.key) {
      const Value* arg = next();
      if (!arg) return missing();
      std::optional<int64_t> day;
      if (arg->is_astring()) day = parse_search_date(arg->text);
      if (!day) return invalid(key + " needs a date like 1-Feb-1994");
      Node n = leaf(d.kind);
      n.day = *day;
      const bool sent = d.key.starts_with("SENT");
      n.cost = sent ? 1 : 0;  // the Date header is in the parse cache
      return n;
    }
  }
  if (key == "LARGER" || key == "SMALLER") {
    const Value* arg = next();
    if (!arg) return missing();
    std::optional<uint64_t> size = parse_number(*arg, kMaxNumber64);
    if (!size) return invalid(key + " needs a number");
    Node n = leaf(key == "LARGER" ? Kind::kLarger : Kind::kSmaller);
    n.number = *size;
    return n;
  }
  if (key == "UID") {
    const Value* arg = next();
    if (!arg) return missing();
    if (!arg->is_atom()) return invalid("UID needs a sequence set");
    return set_node(Kind::kUidSet, arg->text);
  }
  if (key == "NOT") {
    MK_ASSIGN_OR_RETURN(Node child, parse_key(items, pos, depth + 1));
    return negate(std::move(child));
  }
  if (key == "OR") {
    MK_ASSIGN_OR_RETURN(Node a, parse_key(items, pos, depth + 1));
    MK_ASSIGN_OR_RETURN(Node b, parse_key(items, pos, depth + 1));
    return disjunction(std::move(a), std::move(b));
  }
  if (key == "MODSEQ") {
    // MODSEQ [entry-name entry-type-req] mod-sequence-valzer. The per-flag entry is accepted
    // and ignored: we keep one modseq per message, which RFC 7162 3.1.5 allows.
    const Value* arg = next();
    if (!arg) return missing();
    if (arg->is_string()) {
      if (arg->text.size() <= 7 || !iequals(std::string_view(arg->text).substr(0, 7), "/flags/")) {
        return invalid("MODSEQ entry name must be \"/flags/<flag>\"");
      }
      const Value* type = next();
      if (!type || !type->is_atom()) return invalid("MODSEQ needs an entry type");
      const std::string t = type->upper();
      if (t != "ALL" && t != "SHARED" && t != "PRIV") {
        return invalid("MODSEQ entry type must be all, shared or priv");
      }
      arg = next();
      if (!arg) return missing();
    }
    std::optional<uint64_t> modseq = parse_number(*arg, kMaxNumber64);
    if (!modseq) return invalid("MODSEQ needs a number");
    Node n = leaf(Kind::kModseq);
    n.number = *modseq;
    return n;
  }
  return invalid("unknown search key " + excerpt(v.text));
}

// One or more keys, items[pos..] to the end, ANDed.
Result<Node> parse_keys(const std::vector<Value>& items, size_t pos, int depth) {
  if (depth > kMaxNesting) return invalid("search keys nested too deeply");
  if (pos >= items.size()) return invalid("missing search key");
  std::vector<Node> keys;
  while (pos < items.size()) {
    MK_ASSIGN_OR_RETURN(Node key, parse_key(items, pos, depth));
    keys.push_back(std::move(key));
  }
  return conjunction(std::move(keys));
}

// RETURN (...) at args[pos], when there; advances pos past it. Without RETURN: all false.
Result<SearchReturn> parse_return(const std::vector<Value>& args, size_t& pos) {
  SearchReturn ret;
  if (pos >= args.size() || !args[pos].is_atom() || args[pos].upper() != "RETURN") return ret;
  ++pos;
  if (pos >= args.size() || !args[pos].is_list()) return invalid("RETURN needs a list of options");
  ret.esearch = true;
  for (const Value& option : args[pos].items) {
    const std::string name = option.is_atom() ? option.upper() : std::string();
    if (name == "MIN") {
      ret.min = true;
    } else if (name == "MAX") {
      ret.max = true;
    } else if (name == "COUNT") {
      ret.count = true;
    } else if (name == "ALL") {
      ret.all = true;
    } else if (name == "SAVE") {
      ret.save = true;
    } else {
      return invalid("unknown RETURN option " + excerpt(option.text));
    }
  }
  ++pos;
  // RFC 4731 3.1: no option means ALL. SAVE is an option, and alone asks for no result data
  // (RFC 5182 1).
  if (!ret.min && !ret.max && !ret.count && !ret.all && !ret.save) ret.all = true;
  return ret;
}

// ---------------------------------------------------------------------------------------
// Rendering (to_string).

std::string format_ranges(const Node& n) {
  auto number = [](uint32_t v) { return v == UINT32_MAX ? std::string("*") : std::to_string(v); };
  std::string out;
  for (const auto* list : {&n.ranges, &n.star_ranges}) {
    for (const SeqRange& r : *list) {
      if (!out.empty()) out.push_back(',');
      out += number(r.lo);
      if (r.hi != r.lo) out += ":" + number(r.hi);
    }
  }
  return out;
}

bool atom_safe(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '.';
  });
}

void render(const Node& n, bool top, std::string& out) {
  switch (n.kind) {
    case Kind::kAll:
      out += "ALL";
      return;
    case Kind::kAnd:
      if (!top) out += "(";
      for (size_t i = 0; i < n.children.size(); ++i) {
        if (i) out += " ";
        render(n.children[i], false, out);
      }
      if (!top) out += ")";
      return;
    case Kind::kOr:
      out += "OR ";
      render(n.children[0], false, out);
      out += " ";
      render(n.children[1], false, out);
      return;
    case Kind::kNot:
      out += "NOT ";
      render(n.children[0], false, out);
      return;
    case Kind::kSequenceSet:
      out += format_ranges(n);
      return;
    case Kind::kUidSet:
      out += "UID " + format_ranges(n);
      return;
    case Kind::kSaved:
      out += "$";
      return;
    case Kind::kFlag:
      for (const FlagKey& f : kFlagKeys) {
        if (!f.negated && f.flag == n.name) {
          out += f.key;
          return;
        }
      }
      out += "KEYWORD " + n.name;
      return;
    case Kind::kRecent:
      out += "RECENT";
      return;
    case Kind::kBefore:
    case Kind::kOn:
    case Kind::kSince:
    case Kind::kSentBefore:
    case Kind::kSentOn:
    case Kind::kSentSince:
      for (const DateKey& d : kDateKeys) {
        if (d.kind == n.kind) out += std::string(d.key) + " " + format_day(n.day);
      }
      return;
    case Kind::kLarger:
      out += "LARGER " + std::to_string(n.number);
      return;
    case Kind::kSmaller:
      out += "SMALLER " + std::to_string(n.number);
      return;
    case Kind::kHeader:
      out += "HEADER " + (atom_safe(n.name) ? n.name : quote(n.name)) + " " + quote(n.needle);
      return;
    case Kind::kBody:
      out += "BODY " + quote(n.needle);
      return;
    case Kind::kText:
      out += "TEXT " + quote(n.needle);
      return;
    case Kind::kModseq:
      out += "MODSEQ " + std::to_string(n.number);
      return;
  }
}

// ---------------------------------------------------------------------------------------
// Evaluation.

bool in_set(const Node& n, uint32_t value, uint32_t max) {
  // ranges is sorted and disjoint: the candidate is the last range starting at or before value.
  auto it = std::upper_bound(n.ranges.begin(), n.ranges.end(), value,
                             [](uint32_t v, const SeqRange& r) { return v < r.lo; });
  if (it != n.ranges.begin() && std::prev(it)->hi >= value) return true;
  for (const SeqRange& r : n.star_ranges) {
    uint32_t lo = r.lo == UINT32_MAX ? max : r.lo;
    uint32_t hi = r.hi == UINT32_MAX ? max : r.hi;
    if (lo > hi) std::swap(lo, hi);
    if (value >= lo && value <= hi) return true;
  }
  return false;
}

// "Name: value\n" for every field of a header block, values as header_field_text() gives them.
void append_header_text(std::string_view header, std::string& out) {
  for_each_header_field(header, [&](std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    out.append(header_field_text(value));
    out.push_back('\n');
    return false;
  });
}

// The body with its transfer encoding undone: a view of `body` itself, or of `decoded`.
std::string_view decode_transfer_encoding(std::string_view body, const std::string& encoding,
                                          std::string& decoded) {
  const GMimeContentEncoding e = g_mime_content_encoding_from_string(encoding.c_str());
  // x-uuencode is left as it is: it needs the "begin" line found first, and is not a MIME
  // transfer encoding anyway.
  if (e != GMIME_CONTENT_ENCODING_BASE64 && e != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) {
    return body;
  }
  GMimeEncoding state;
  g_mime_encoding_init_decode(&state, e);
  decoded.resize(g_mime_encoding_outlen(&state, body.size()));
  decoded.resize(g_mime_encoding_flush(&state, body.data(), body.size(), decoded.data()));
  return decoded;
}

std::string to_utf8(std::string bytes, std::string_view charset) {
  if (auto clean = convert_to_utf8(charset, bytes)) return make_valid_utf8(std::move(*clean));
  // Bytes the charset does not have, or a name only GMime's aliases know: GMime skips what
  // it cannot convert.
  const std::string name(charset);
  iconv_t cd = g_mime_iconv_open("UTF-8", name.c_str());
  // NOLINTNEXTLINE(performance-no-int-to-ptr): (iconv_t)-1 is how iconv reports failure
  if (cd == reinterpret_cast<iconv_t>(-1)) return make_valid_utf8(std::move(bytes));
  GText converted(g_mime_iconv_strndup(cd, bytes.data(), bytes.size()));
  g_mime_iconv_close(cd);
  // Bytes the charset does not have: search what is there rather than nothing.
  if (!converted) return make_valid_utf8(std::move(bytes));
  return make_valid_utf8(converted.get());
}

std::string_view param(const MimeParams& params, std::string_view name) {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return {};
}

// The slice [begin, begin + size) of raw, or nullopt when the cache does not fit raw.
std::optional<std::string_view> slice(std::string_view raw, uint64_t begin, uint64_t size) {
  if (begin > raw.size() || size > raw.size() - begin) return std::nullopt;
  return raw.substr(begin, size);
}

void append_body_text(std::string_view raw, const MimePart& part, std::string& out) {
  if (part.type == "multipart") {
    for (const MimePart& child : part.children) append_body_text(raw, child, out);
  } else if (part.type == "message" && !part.children.empty()) {
    const MimePart& inner = part.children.front();
    if (inner.body_offset >= inner.header_offset) {
      if (auto header = slice(raw, inner.header_offset, inner.body_offset - inner.header_offset)) {
        append_header_text(*header, out);
      }
    }
    append_body_text(raw, inner, out);
  } else if (part.type == "text") {
    std::optional<std::string_view> body = slice(raw, part.body_offset, part.body_size);
    if (!body) return;
    std::string decoded;
    const std::string_view bytes = decode_transfer_encoding(*body, part.encoding, decoded);
    const std::string_view charset = param(part.params, "charset");
    if (charset.empty() || iequals(charset, "us-ascii") || iequals(charset, "utf-8") ||
        iequals(charset, "utf8") || !is_ascii(charset)) {
      if (is_ascii(bytes) || is_utf8(bytes))
        out.append(bytes);
      else
        out += make_valid_utf8(std::string(bytes));
    } else {
      out += to_utf8(std::string(bytes), charset);
    }
    out.push_back('\n');  // no match across parts
  }
}

// The state of evaluating one program against one message: what is expensive to compute is
// computed at most once, however many keys need it.
class Evaluation {
 public:
  Evaluation(const SearchView& view, const SearchMessage& m) : view_(view), m_(m) {}

  bool matches(const Node& n) {
    switch (n.kind) {
      case Kind::kAll:
        return true;
      case Kind::kAnd:
        return std::all_of(n.children.begin(), n.children.end(),
                           [&](const Node& c) { return matches(c); });
      case Kind::kOr:
        return matches(n.children[0]) || matches(n.children[1]);
      case Kind::kNot:
        return !matches(n.children[0]);
      case Kind::kSequenceSet:
        return in_set(n, m_.seq, view_.max_seq);
      case Kind::kUidSet:
        return in_set(n, m_.uid, view_.max_uid);
      case Kind::kSaved:
        return view_.saved_uids &&
               std::binary_search(view_.saved_uids->begin(), view_.saved_uids->end(), m_.uid);
      case Kind::kFlag:
        return m_.flags && std::any_of(m_.flags->begin(), m_.flags->end(),
                                       [&](const std::string& f) { return iequals(f, n.name); });
      case Kind::kRecent:
        return m_.recent;
      case Kind::kBefore:
        return utc_day(m_.internal_date_ms) < n.day;
      case Kind::kOn:
        return utc_day(m_.internal_date_ms) == n.day;
      case Kind::kSince:
        return utc_day(m_.internal_date_ms) >= n.day;
      case Kind::kSentBefore:
        return sent_day() && *sent_day() < n.day;
      case Kind::kSentOn:
        return sent_day() && *sent_day() == n.day;
      case Kind::kSentSince:
        return sent_day() && *sent_day() >= n.day;
      case Kind::kLarger:
        return m_.size > n.number;
      case Kind::kSmaller:
        return m_.size < n.number;
      case Kind::kHeader:
        return header_matches(n);
      case Kind::kBody:
        return body().find(n.needle) != std::string::npos;
      case Kind::kText:
        return header_text().find(n.needle) != std::string::npos ||
               body().find(n.needle) != std::string::npos;
      case Kind::kModseq:
        return m_.modseq >= n.number;
    }
    return false;
  }

 private:
  const MessageInfo* info() {
    if (m_.info) return m_.info;
    if (!parsed_ && !m_.raw.empty()) parsed_ = parse_message(m_.raw);
    return parsed_ ? &*parsed_ : nullptr;
  }

  bool header_matches(const Node& n) {
    if (n.field && m_.fields) {
      return std::any_of(m_.fields->fields.begin(), m_.fields->fields.end(), [&](const auto& f) {
        return f.first == *n.field && (n.needle.empty() || contains_folded(f.second, n.needle));
      });
    }
    const MessageInfo* i = info();
    if (!i) return false;
    return for_each_header_field(i->header, [&](std::string_view name, std::string_view value) {
      return iequals(name, n.name) &&
             (n.needle.empty() || contains_folded(header_field_text(value), n.needle));
    });
  }

  const std::optional<int64_t>& sent_day() {
    if (!sent_day_known_) {
      sent_day_known_ = true;
      const MessageInfo* i = info();
      if (i && i->envelope.date) sent_day_ = parse_sent_day(*i->envelope.date);
    }
    return sent_day_;
  }

  const std::string& body() {
    if (!body_) {
      std::string text;
      if (const MessageInfo* i = info()) {
        init_gmime_once();
        append_body_text(m_.raw, i->body, text);
      }
      body_ = fold_utf8(std::move(text));  // valid UTF-8: made so part by part
    }
    return *body_;
  }

  const std::string& header_text() {
    if (!header_text_) {
      std::string text;
      if (const MessageInfo* i = info()) append_header_text(i->header, text);
      header_text_ = fold_utf8(std::move(text));  // valid UTF-8: header_field_text()
    }
    return *header_text_;
  }

  const SearchView& view_;
  const SearchMessage& m_;
  std::optional<MessageInfo> parsed_;
  std::optional<std::string> body_;         // folded decoded text of the text parts
  std::optional<std::string> header_text_;  // folded decoded top-level header
  bool sent_day_known_ = false;
  std::optional<int64_t> sent_day_;
};

struct Needs {
  bool info = false, header_fields = false, body = false, modseq = false;
};

void collect_needs(const Node& n, Needs& needs) {
  switch (n.kind) {
    case Kind::kHeader:
      (n.field ? needs.header_fields : needs.info) = true;
      break;
    case Kind::kSentBefore:
    case Kind::kSentOn:
    case Kind::kSentSince:
      needs.info = true;
      break;
    case Kind::kBody:
    case Kind::kText:
      needs.info = needs.body = true;
      break;
    case Kind::kModseq:
      needs.modseq = true;
      break;
    default:
      break;
  }
  for (const Node& c : n.children) collect_needs(c, needs);
}

}  // namespace

SearchProgram::SearchProgram() : root_(std::make_shared<const Node>()) {}

SearchProgram::SearchProgram(std::shared_ptr<const Node> root)
    : root_(root ? std::move(root) : std::make_shared<const Node>()) {
  Needs needs;
  collect_needs(*root_, needs);
  needs_info_ = needs.info;
  needs_header_fields_ = needs.header_fields && !needs.info;
  needs_body_ = needs.body;
  uses_modseq_ = needs.modseq;
}

std::string SearchProgram::to_string() const {
  std::string out;
  render(*root_, /*top=*/true, out);
  return out;
}

Result<SearchCommand> parse_search_command(const std::vector<Value>& args) {
  SearchCommand cmd;
  size_t pos = 0;
  MK_ASSIGN_OR_RETURN(cmd.ret, parse_return(args, pos));
  if (pos < args.size() && args[pos].is_atom() && args[pos].upper() == "CHARSET") {
    ++pos;
    if (pos >= args.size() || !is_astring(args[pos])) return invalid("CHARSET needs a name");
    cmd.charset = to_upper(args[pos].text);
    if (cmd.charset != "UTF-8" && cmd.charset != "US-ASCII") {
      return Status(ErrorCode::kNotFound, "unsupported charset");
    }
    ++pos;
  }
  MK_ASSIGN_OR_RETURN(Node root, parse_keys(args, pos, 0));
  cmd.program = SearchProgram(std::make_shared<const Node>(std::move(root)));
  return cmd;
}

bool search_requests_save(const std::vector<Value>& args) {
  size_t pos = 0;
  Result<SearchReturn> ret = parse_return(args, pos);
  return ret.is_ok() && ret->save;
}

std::vector<uint32_t> saved_search_result(const SearchReturn& ret,
                                          const std::vector<uint32_t>& matched_uids) {
  if (!ret.save || matched_uids.empty()) return {};
  if (ret.all || ret.count || (!ret.min && !ret.max)) return matched_uids;
  std::vector<uint32_t> saved;
  if (ret.min) saved.push_back(matched_uids.front());
  if (ret.max && (saved.empty() || saved.front() != matched_uids.back())) {
    saved.push_back(matched_uids.back());
  }
  return saved;
}

bool search_matches(const SearchProgram& program, const SearchView& view, const SearchMessage& m) {
  Evaluation evaluation(view, m);
  return evaluation.matches(program.root());
}

}  // namespace mailark::imap
