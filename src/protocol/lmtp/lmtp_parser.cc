// LMTP command and DATA parsing.
#include "protocol/lmtp/lmtp_parser.h"

#include <cctype>
#include <cstring>

namespace mailark::lmtp {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ParsedCommand fail(std::string reply_line) {
  ParsedCommand p;
  p.error = ParseError{std::move(reply_line)};
  return p;
}

// Parses "<path> params" after "FROM:" / "TO:".
bool parse_path_and_params(std::string_view rest, bool allow_null, Command* cmd, std::string* why) {
  rest = trim(rest);
  if (rest.empty() || rest.front() != '<') {
    *why = "path must be enclosed in <>";
    return false;
  }
  // Find the closing '>' outside a quoted local part.
  size_t i = 1;
  bool quoted = false;
  for (; i < rest.size(); ++i) {
    char c = rest[i];
    if (quoted) {
      if (c == '\\' && i + 1 < rest.size()) ++i;
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '>') {
      break;
    }
  }
  if (i >= rest.size()) {
    *why = "unterminated path";
    return false;
  }
  std::string_view path = rest.substr(1, i - 1);
  if (path.size() > kMaxPath) {
    *why = "path too long";
    return false;
  }
  // Strip an obsolete source route "@a,@b:".
  if (!path.empty() && path.front() == '@') {
    size_t colon = path.find(':');
    if (colon == std::string_view::npos) {
      *why = "malformed source route";
      return false;
    }
    path.remove_prefix(colon + 1);
  }
  if (path.empty()) {
    if (!allow_null) {
      *why = "empty path not allowed here";
      return false;
    }
  } else if (path.size() == 10 && upper(path) == "POSTMASTER") {
    // RFC 5321 4.5.1: <Postmaster> without a domain must be accepted as a recipient.
  } else {
    size_t at = path.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == path.size()) {
      *why = "address must be local@domain";
      return false;
    }
    for (char c : path) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f || c == ' ' || c == '<' || c == '>') {
        if (c == ' ' && path.front() == '"') continue;
        *why = "address contains invalid characters";
        return false;
      }
    }
  }
  cmd->path = std::string(path);
  std::string_view params = trim(rest.substr(i + 1));
  while (!params.empty()) {
    size_t sp = params.find(' ');
    std::string_view p = params.substr(0, sp);
    size_t eq = p.find('=');
    std::string key = upper(p.substr(0, eq));
    if (key.empty()) {
      *why = "malformed parameter";
      return false;
    }
    for (char c : key)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
        *why = "malformed parameter";
        return false;
      }
    cmd->params.emplace_back(key, eq == std::string_view::npos ? "" : std::string(p.substr(eq + 1)));
    if (sp == std::string_view::npos) break;
    params = trim(params.substr(sp));
  }
  return true;
}

}  // namespace

ParsedCommand parse_command(std::string_view line) {
  if (line.size() > kMaxCommandLine) return fail("500 5.5.2 Line too long");
  for (char c : line)
    if (c == '\0') return fail("500 5.5.2 NUL in command");
  size_t sp = line.find(' ');
  std::string verb = upper(line.substr(0, sp));
  std::string_view rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  Command cmd;
  cmd.argument = std::string(trim(rest));
  static const std::pair<const char*, Verb> kVerbs[] = {
      {"LHLO", Verb::kLhlo}, {"HELO", Verb::kHelo}, {"EHLO", Verb::kEhlo}, {"MAIL", Verb::kMail},
      {"RCPT", Verb::kRcpt}, {"DATA", Verb::kData}, {"BDAT", Verb::kBdat}, {"RSET", Verb::kRset},
      {"NOOP", Verb::kNoop}, {"QUIT", Verb::kQuit}, {"VRFY", Verb::kVrfy}, {"HELP", Verb::kHelp}};
  for (const auto& [name, v] : kVerbs)
    if (verb == name) cmd.verb = v;
  if (cmd.verb == Verb::kUnknown) return fail("500 5.5.1 Unknown command");
  std::string why;
  switch (cmd.verb) {
    case Verb::kLhlo:
      if (cmd.argument.empty()) return fail("501 5.5.4 Syntax: LHLO hostname");
      break;
    case Verb::kMail: {
      std::string up = upper(rest.substr(0, std::min<size_t>(rest.size(), 5)));
      if (up != "FROM:") return fail("501 5.5.4 Syntax: MAIL FROM:<address>");
      if (!parse_path_and_params(rest.substr(5), true, &cmd, &why))
        return fail("501 5.1.7 Bad sender address syntax: " + why);
      break;
    }
    case Verb::kRcpt: {
      std::string up = upper(rest.substr(0, std::min<size_t>(rest.size(), 3)));
      if (up != "TO:") return fail("501 5.5.4 Syntax: RCPT TO:<address>");
      if (!parse_path_and_params(rest.substr(3), false, &cmd, &why))
        return fail("501 5.1.3 Bad recipient address syntax: " + why);
      break;
    }
    case Verb::kData:
    case Verb::kRset:
    case Verb::kQuit:
      if (!cmd.argument.empty()) return fail("501 5.5.4 Syntax: no parameters allowed");
      break;
    default:
      break;
  }
  ParsedCommand p;
  p.command = std::move(cmd);
  return p;
}

void DataReader::put(char c) { put(std::string_view(&c, 1)); }

void DataReader::put(std::string_view s) {
  if (too_large_) return;
  if (message_.size() + s.size() > max_size_) {
    too_large_ = true;
    message_.clear();
    message_.shrink_to_fit();
    return;
  }
  message_.append(s);
}

size_t DataReader::feed(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size() && state_ != State::kDone) {
    if (state_ == State::kMid) {
      // Fast path through the rest of a line: only its end (CRLF or a bare LF) and NUL
      // bytes matter; everything else, bare CRs included, is copied as it is.
      const char* start = bytes.data() + i;
      size_t left = bytes.size() - i;
      const char* lf = static_cast<const char*>(std::memchr(start, '\n', left));
      size_t len = lf ? static_cast<size_t>(lf - start) : left;
      if (std::memchr(start, '\0', len)) has_nul_ = true;
      if (!lf) {
        // No line end yet; hold back a final CR, it may be the first half of CRLF.
        bool cr = len > 0 && start[len - 1] == '\r';
        put(std::string_view(start, cr ? len - 1 : len));
        if (cr) state_ = State::kCR;
        received_ += len;
        i += len;
        continue;
      }
      bool crlf = len > 0 && start[len - 1] == '\r';
      put(std::string_view(start, crlf ? len - 1 : len));
      put("\r\n");
      if (!crlf) ++bare_lf_;
      prev_crlf_ = crlf;
      state_ = State::kLineStart;
      received_ += len + 1;
      i += len + 1;
      continue;
    }
    char c = bytes[i++];
    ++received_;
    if (c == '\0') has_nul_ = true;
    switch (state_) {
      case State::kLineStart:
        if (c == '.') {
          state_ = State::kDot;
          break;
        }
        [[fallthrough]];
      case State::kMid:
        if (c == '\r') {
          state_ = State::kCR;
        } else if (c == '\n') {
          ++bare_lf_;
          put("\r\n");
          prev_crlf_ = false;
          state_ = State::kLineStart;
        } else {
          put(c);
          state_ = State::kMid;
        }
        break;
      case State::kCR:
        if (c == '\n') {
          put("\r\n");
          prev_crlf_ = true;
          state_ = State::kLineStart;
        } else {
          put('\r');  // a bare CR is content
          if (c == '\r') {
            state_ = State::kCR;
          } else {
            put(c);
            state_ = State::kMid;
          }
        }
        break;
      case State::kDot:
        // The leading dot was stuffing (or the start of the end marker): drop it.
        if (c == '\r') {
          state_ = State::kDotCR;
        } else if (c == '\n') {
          // ".<LF>": a line of a single dot, but not the end marker: content, kept as ".".
          ++bare_lf_;
          put(".\r\n");
          prev_crlf_ = false;
          state_ = State::kLineStart;
        } else {
          put(c);
          state_ = State::kMid;
        }
        break;
      case State::kDotCR:
        if (c == '\n' && prev_crlf_) {
          state_ = State::kDone;
        } else if (c == '\n') {
          put(".\r\n");  // "." after a bare LF line: content, never the end marker
          prev_crlf_ = true;
          state_ = State::kLineStart;
        } else {
          put('\r');
          if (c == '\r') {
            state_ = State::kCR;
          } else {
            put(c);
            state_ = State::kMid;
          }
        }
        break;
      case State::kDone:
        break;
    }
  }
  return i;
}

std::string reply(int code, const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += std::to_string(code);
    out += (i + 1 < lines.size()) ? '-' : ' ';
    out += lines[i];
    out += "\r\n";
  }
  return out;
}

std::string reply(int code, std::string_view line) {
  return std::to_string(code) + " " + std::string(line) + "\r\n";
}

}  // namespace mailark::lmtp
