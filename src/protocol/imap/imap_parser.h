// IMAP4rev1/rev2 command syntax (RFC 3501 section 9, RFC 9051), pure: one complete command
// (its line with every literal inlined) in, a tag, a command name and a tree of values out.
// Command handlers interpret the values; this layer knows no command's meaning beyond the
// syntax shared by all of them. Also: the framing reader that finds where a command ends
// (lines and literals), so the session knows when to send "+ " continuations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailark::imap {

// One argument: an atom (incl. sequence sets, flags, BODY[...]<...> section specs), a
// quoted or literal string, NIL, or a parenthesized list.
struct Value {
  enum class Kind { kAtom, kString, kNil, kList };
  Kind kind = Kind::kAtom;
  std::string text;          // atom or string contents
  bool literal8 = false;     // ~{N} (BINARY/APPEND UTF8)
  std::vector<Value> items;  // kList

  bool is_atom() const { return kind == Kind::kAtom; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_astring() const { return kind == Kind::kAtom || kind == Kind::kString; }
  bool is_list() const { return kind == Kind::kList; }
  // Atom text upper-cased (for keyword comparison).
  std::string upper() const;
};

struct Command {
  std::string tag;
  std::string name;  // upper case; "UID FETCH" etc. are name "FETCH" with uid = true
  bool uid = false;
  std::vector<Value> args;
};

struct ParseResult {
  std::optional<Command> command;
  std::string tag;    // known even when parsing failed later, "*" when not even that
  std::string error;  // for a tagged BAD
};

// Parses one complete command (without its final CRLF). Literals appear inline as
// "{N}\r\n" or "{N+}\r\n" followed by N bytes.
ParseResult parse_command(std::string_view input);

// Where a command ends. Feed it each line (without CRLF) as it arrives; it says whether a
// literal follows (and whether the client waits for "+") or whether the command is complete.
class CommandFramer {
 public:
  struct Limits {
    size_t max_line = 64 * 1024;         // one line of a command
    uint64_t max_literal = 64ull << 20;  // one literal (APPEND can be large)
    uint64_t max_command = 96ull << 20;  // everything of one command
  };
  explicit CommandFramer(Limits limits) : limits_(limits) {}

  enum class Step {
    kComplete,     // command() holds the whole command
    kLiteral,      // read literal_size() bytes next, then feed_literal()
    kSyncLiteral,  // same, but send "+ Ready" first (synchronizing literal)
    kTooLarge,     // limits exceeded: answer BAD / disconnect
  };
  Step feed_line(std::string_view line);
  void feed_literal(std::string_view bytes);
  // Limits change with the session's state (tighter before authentication).
  void set_limits(Limits limits) { limits_ = limits; }
  uint64_t literal_size() const { return literal_; }
  const std::string& command() const { return buffer_; }
  void reset();

 private:
  Limits limits_;
  std::string buffer_;
  uint64_t literal_ = 0;
};

// RFC 3501 sequence-set: "1:5,7,9:*". `*` is represented as UINT32_MAX until resolved.
struct SeqRange {
  uint32_t lo = 0, hi = 0;
};
std::optional<std::vector<SeqRange>> parse_sequence_set(std::string_view text);
// "1:3,7": a compact sequence set of sorted, unique numbers; "" when empty.
std::string format_sequence_set(const std::vector<uint32_t>& sorted);

// Quotes a string for a response: an atom-safe quoted string, or a literal when it holds
// CR, LF, NUL or 8-bit bytes.
std::string quote(std::string_view s);
// quote() and nstring() appending to `out`, for answers built piece by piece.
void append_quoted(std::string& out, std::string_view s);
void append_nstring(std::string& out, const std::optional<std::string>& s);
// NIL for absent, else quote().
std::string nstring(const std::optional<std::string>& s);

}  // namespace mailark::imap
