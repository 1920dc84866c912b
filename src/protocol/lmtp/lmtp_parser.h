// LMTP (RFC 2033) / SMTP (RFC 5321) wire parsing, pure: bytes in, commands and message out.
// No I/O and no store access, so it is unit-tested and fuzzed on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailark::lmtp {

inline constexpr size_t kMaxCommandLine = 2048;  // RFC 5321 says 512; extensions add params
inline constexpr size_t kMaxPath = 256;

enum class Verb { kLhlo, kHelo, kEhlo, kMail, kRcpt, kData, kBdat, kRset, kNoop, kQuit, kVrfy, kHelp, kUnknown };

struct Command {
  Verb verb = Verb::kUnknown;
  std::string argument;  // text after the verb, trimmed
  // MAIL / RCPT: the path without brackets ("" for the null path <>), and ESMTP params.
  std::string path;
  std::vector<std::pair<std::string, std::string>> params;  // keys upper-cased
};

struct ParseError {
  std::string reply;  // complete reply line without CRLF, e.g. "501 5.5.4 Syntax: ..."
};

// Parses one command line (without its line end). Returns the command, or the error reply.
struct ParsedCommand {
  std::optional<Command> command;
  std::optional<ParseError> error;
};
ParsedCommand parse_command(std::string_view line);

// Reads a DATA section: dot-unstuffing, end on <CRLF>.<CRLF> only (a "." line that follows
// a bare LF is content, which closes the SMTP smuggling hole), lines ending in a bare LF are
// stored with CRLF (Postfix's "normalize" policy). Stops collecting past `max_size` but keeps
// reading to the end marker so the reply can say 552.
class DataReader {
 public:
  explicit DataReader(uint64_t max_size) : max_size_(max_size) {}
  // Consumes bytes up to and including the end marker; returns how many were used.
  size_t feed(std::string_view bytes);
  bool done() const { return state_ == State::kDone; }
  bool too_large() const { return too_large_; }
  bool has_nul() const { return has_nul_; }
  uint64_t bare_lf_lines() const { return bare_lf_; }
  uint64_t received_bytes() const { return received_; }
  std::string take_message() { return std::move(message_); }

 private:
  enum class State { kLineStart, kMid, kCR, kDot, kDotCR, kDone };
  void put(char c);
  void put(std::string_view s);

  uint64_t max_size_;
  State state_ = State::kLineStart;
  bool prev_crlf_ = true;  // the previous line ended in CRLF (or we are at the start)
  bool too_large_ = false;
  bool has_nul_ = false;
  uint64_t bare_lf_ = 0;
  uint64_t received_ = 0;
  std::string message_;
};

// Wraps text into a (multi-line) reply: "250-a\r\n250 b\r\n".
std::string reply(int code, const std::vector<std::string>& lines);
std::string reply(int code, std::string_view line);

}  // namespace mailark::lmtp
