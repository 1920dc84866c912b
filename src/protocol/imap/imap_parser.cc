// IMAP command tokenizer and framing.
#include "protocol/imap/imap_parser.h"

#include <cctype>
#include <charconv>

namespace mailark::imap {
namespace {

constexpr int kMaxDepth = 32;
// Values in one command: far beyond any real client, and it bounds what parsing a hostile
// command can allocate (each value costs more than the two bytes "x " that make it).
constexpr size_t kMaxValues = 10000;

bool is_atom_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u == 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '"':
    case '\\':
    case ']':
      return false;
    default:
      return true;
  }
}

bool is_tag_char(char c) {
  return is_atom_char(c) && c != '+' && c != '%' && c != '*';
}

class Tokenizer {
 public:
  explicit Tokenizer(std::string_view in) : in_(in) {}

  bool at_end() const { return pos_ >= in_.size(); }
  char peek() const { return pos_ < in_.size() ? in_[pos_] : '\0'; }

  std::string take_while(bool (*pred)(char)) {
    size_t start = pos_;
    while (pos_ < in_.size() && pred(in_[pos_])) ++pos_;
    return std::string(in_.substr(start, pos_ - start));
  }
  bool consume(char c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }

  // Parses one value; false with `error_` set on malformed input.
  bool value(Value* out, int depth) {
    if (at_end()) return fail("missing argument");
    if (++values_ > kMaxValues) return fail("too many arguments");
    char c = peek();
    if (c == '(') {
      if (depth >= kMaxDepth) return fail("lists nested too deeply");
      ++pos_;
      out->kind = Value::Kind::kList;
      if (consume(')')) return true;
      while (true) {
        Value item;
        if (!value(&item, depth + 1)) return false;
        out->items.push_back(std::move(item));
        if (consume(')')) return true;
        if (!consume(' ')) return fail("expected space or ')' in list");
      }
    }
    if (c == '"') return quoted(out);
    if (c == '{') return literal(out, false);
    if (c == '~' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '{') {
      ++pos_;
      return literal(out, true);
    }
    return atom(out);
  }

  const std::string& error() const { return error_; }

 private:
  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }

  bool quoted(Value* out) {
    ++pos_;  // opening quote
    out->kind = Value::Kind::kString;
    while (pos_ < in_.size()) {
      char c = in_[pos_++];
      if (c == '"') return true;
      if (c == '\r' || c == '\n' || c == '\0') return fail("invalid character in quoted string");
      if (c == '\\') {
        if (pos_ >= in_.size()) break;
        char e = in_[pos_++];
        if (e != '"' && e != '\\') return fail("invalid escape in quoted string");
        c = e;
      }
      out->text.push_back(c);
    }
    return fail("unterminated quoted string");
  }

  bool literal(Value* out, bool binary) {
    ++pos_;  // '{'
    size_t start = pos_;
    while (pos_ < in_.size() && std::isdigit(static_cast<unsigned char>(in_[pos_]))) ++pos_;
    if (pos_ == start || pos_ - start > 19) return fail("invalid literal size");
    uint64_t n = 0;
    std::from_chars(in_.data() + start, in_.data() + pos_, n);
    consume('+');  // LITERAL+ / LITERAL-: non-synchronizing
    if (!consume('}')) return fail("invalid literal");
    if (!consume('\r') || !consume('\n')) return fail("literal must end its line");
    if (in_.size() - pos_ < n) return fail("literal shorter than announced");
    out->kind = Value::Kind::kString;
    out->literal8 = binary;
    out->text.assign(in_.substr(pos_, static_cast<size_t>(n)));
    pos_ += static_cast<size_t>(n);
    return true;
  }

  // An atom, which may carry a bracketed section with spaces and parentheses inside
  // ("BODY[HEADER.FIELDS (FROM TO)]<0.100>") and flags starting with a backslash.
  bool atom(Value* out) {
    size_t start = pos_;
    std::string text;  // built up only when a section holds a literal
    bool rewritten = false;
    if (peek() == '\\') ++pos_;
    int brackets = 0;
    while (pos_ < in_.size()) {
      char c = in_[pos_];
      if (c == '[') {
        ++brackets;
      } else if (c == ']') {
        if (brackets == 0) return fail("unexpected ']'");
        --brackets;
      } else if (brackets > 0 && c == '{') {
        // A header field name sent as a literal (header-fld-name is an astring): carried on
        // inside the atom as the equivalent quoted string.
        if (!rewritten) text.assign(in_.substr(start, pos_ - start));
        rewritten = true;
        Value name;
        if (!literal(&name, false)) return false;
        text += quote_simple(name.text);
        continue;
      } else if (brackets > 0) {
        if (c == '\r' || c == '\n' || c == '\0') return fail("invalid character in section");
      } else if (!is_atom_char(c)) {
        break;
      }
      if (rewritten) text.push_back(c);
      ++pos_;
    }
    if (brackets) return fail("unterminated '['");
    if (pos_ == start) return fail(std::string("unexpected character '") + peek() + "'");
    out->kind = Value::Kind::kAtom;
    if (rewritten)
      out->text = std::move(text);
    else
      out->text.assign(in_.substr(start, pos_ - start));
    if (out->text.size() == 3) {
      std::string u = out->upper();
      if (u == "NIL") out->kind = Value::Kind::kNil;
    }
    return true;
  }

  static std::string quote_simple(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
    return out;
  }

  std::string_view in_;
  size_t pos_ = 0;
  size_t values_ = 0;
  std::string error_;
};

}  // namespace

std::string Value::upper() const {
  std::string out = text;
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

ParseResult parse_command(std::string_view input) {
  ParseResult r;
  r.tag = "*";
  Tokenizer t(input);
  std::string tag = t.take_while(is_tag_char);
  if (tag.empty() || !t.consume(' ')) {
    r.error = "Missing or invalid tag";
    return r;
  }
  r.tag = tag;
  auto is_name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.';
  };
  Command cmd;
  cmd.tag = tag;
  std::string name = t.take_while(+is_name_char);
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.empty()) {
    r.error = "Missing command";
    return r;
  }
  if (name == "UID") {
    if (!t.consume(' ')) {
      r.error = "UID needs a command";
      return r;
    }
    cmd.uid = true;
    name = t.take_while(+is_name_char);
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (name.empty()) {
      r.error = "UID needs a command";
      return r;
    }
  }
  cmd.name = name;
  while (!t.at_end()) {
    if (!t.consume(' ')) {
      r.error = "Expected a space between arguments";
      return r;
    }
    Value v;
    if (!t.value(&v, 0)) {
      r.error = t.error().empty() ? "Invalid arguments" : t.error();
      return r;
    }
    cmd.args.push_back(std::move(v));
  }
  r.command = std::move(cmd);
  return r;
}

CommandFramer::Step CommandFramer::feed_line(std::string_view line) {
  if (line.size() > limits_.max_line || buffer_.size() + line.size() > limits_.max_command)
    return Step::kTooLarge;
  buffer_.append(line);
  literal_ = 0;
  // A line announcing a literal ends in "{N}" or "{N+}" (or "~{N}").
  if (line.empty() || line.back() != '}') return Step::kComplete;
  size_t open = line.rfind('{');
  if (open == std::string_view::npos) return Step::kComplete;
  std::string_view inside = line.substr(open + 1, line.size() - open - 2);
  bool sync = true;
  if (!inside.empty() && inside.back() == '+') {
    sync = false;
    inside.remove_suffix(1);
  }
  if (inside.empty() || inside.size() > 19) return Step::kComplete;
  for (char c : inside)
    if (!std::isdigit(static_cast<unsigned char>(c))) return Step::kComplete;
  uint64_t n = 0;
  std::from_chars(inside.data(), inside.data() + inside.size(), n);
  if (n > limits_.max_literal || buffer_.size() + n > limits_.max_command) return Step::kTooLarge;
  literal_ = n;
  buffer_.append("\r\n");
  return sync ? Step::kSyncLiteral : Step::kLiteral;
}

void CommandFramer::feed_literal(std::string_view bytes) {
  buffer_.append(bytes);
}

void CommandFramer::reset() {
  // An idle session keeps no large command buffer.
  if (buffer_.capacity() > 4096)
    std::string().swap(buffer_);
  else
    buffer_.clear();
  literal_ = 0;
}

std::string format_sequence_set(const std::vector<uint32_t>& sorted) {
  std::string out;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j] != UINT32_MAX && sorted[j + 1] == sorted[j] + 1) {
      ++j;
    }
    if (!out.empty()) out.push_back(',');
    out += std::to_string(sorted[i]);
    if (j > i) out += ":" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return out;
}

std::optional<std::vector<SeqRange>> parse_sequence_set(std::string_view text) {
  std::vector<SeqRange> out;
  if (text.empty()) return std::nullopt;
  size_t pos = 0;
  auto number = [&](uint32_t* v) -> bool {
    if (pos < text.size() && text[pos] == '*') {
      ++pos;
      *v = UINT32_MAX;
      return true;
    }
    size_t start = pos;
    uint64_t n = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      n = n * 10 + static_cast<uint64_t>(text[pos] - '0');
      if (n > UINT32_MAX) return false;
      ++pos;
    }
    if (pos == start || n == 0 || text[start] == '0') return false;
    *v = static_cast<uint32_t>(n);
    return true;
  };
  while (true) {
    SeqRange r;
    if (!number(&r.lo)) return std::nullopt;
    r.hi = r.lo;
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!number(&r.hi)) return std::nullopt;
      if (r.lo > r.hi) std::swap(r.lo, r.hi);
    }
    out.push_back(r);
    if (pos == text.size()) break;
    if (text[pos] != ',') return std::nullopt;
    ++pos;
  }
  return out;
}

void append_quoted(std::string& out, std::string_view s) {
  bool needs_literal = false;
  size_t escapes = 0;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u == '\r' || u == '\n' || u == 0 || u >= 0x80) {
      needs_literal = true;
      break;
    }
    if (c == '"' || c == '\\') ++escapes;
  }
  if (needs_literal) {
    out += '{';
    out += std::to_string(s.size());
    out += "}\r\n";
    out.append(s);
    return;
  }
  out += '"';
  if (escapes == 0) {
    out.append(s);
  } else {
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
  }
  out += '"';
}

std::string quote(std::string_view s) {
  std::string out;
  append_quoted(out, s);
  return out;
}

void append_nstring(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    append_quoted(out, *s);
  } else {
    out += "NIL";
  }
}

std::string nstring(const std::optional<std::string>& s) {
  return s ? quote(*s) : "NIL";
}

}  // namespace mailark::imap
