// IMAP modified UTF-7 mailbox names and UTF-8 validation (RFC 3501 5.1.3, RFC 2152, RFC 3629).
#include "protocol/imap/mutf7.h"

#include <cstdint>

namespace mailark::imap {
namespace {

constexpr char32_t kReplacement = 0xfffd;
constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

bool is_printable_ascii(char32_t c) {
  return c >= 0x20 && c <= 0x7e;
}
bool is_high_surrogate(char32_t u) {
  return u >= 0xd800 && u <= 0xdbff;
}
bool is_low_surrogate(char32_t u) {
  return u >= 0xdc00 && u <= 0xdfff;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

struct Decoded {
  char32_t code_point;  // kReplacement when !well_formed
  size_t length;        // bytes consumed, >= 1
  bool well_formed;
};

// Decodes the UTF-8 sequence at `pos`. An ill-formed one consumes its maximal subpart
// (the longest prefix that could start a well-formed sequence, at least one byte), which
// is the unit the Unicode standard recommends replacing by one U+FFFD (Table 3-7).
Decoded decode_utf8(std::string_view s, size_t pos) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  if (lead < 0x80) return {lead, 1, true};
  size_t trailing;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the first trailing byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    trailing = 1;
    cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    trailing = 2;
    cp = lead & 0x0f;
    if (lead == 0xe0) lo = 0xa0;  // overlong
    if (lead == 0xed) hi = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    trailing = 3;
    cp = lead & 0x07;
    if (lead == 0xf0) lo = 0x90;  // overlong
    if (lead == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return {kReplacement, 1, false};
  }
  size_t length = 1;
  for (size_t k = 0; k < trailing; ++k) {
    if (pos + length >= s.size()) return {kReplacement, length, false};
    const auto b = static_cast<unsigned char>(s[pos + length]);
    if (b < lo || b > hi) return {kReplacement, length, false};
    cp = (cp << 6) | (b & 0x3f);
    ++length;
    lo = 0x80;
    hi = 0xbf;
  }
  return {cp, length, true};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Builds one "&...-" run from UTF-16 code units.
class RunEncoder {
 public:
  explicit RunEncoder(std::string& out) : out_(out) {}
  bool open() const { return open_; }

  void add(char32_t cp) {
    if (!open_) {
      out_ += '&';
      open_ = true;
    }
    if (cp >= 0x10000) {
      const char32_t v = cp - 0x10000;
      add_unit(0xd800 + (v >> 10));
      add_unit(0xdc00 + (v & 0x3ff));
    } else {
      add_unit(cp);
    }
  }

  // Flushes the spare bits, zero-padded to a whole base64 character, and closes the run.
  void close() {
    if (!open_) return;
    if (bits_ > 0) out_ += kBase64[(buffer_ << (6 - bits_)) & 0x3f];
    out_ += '-';
    open_ = false;
    buffer_ = 0;
    bits_ = 0;
  }

 private:
  void add_unit(char32_t unit) {
    buffer_ = (buffer_ << 16) | unit;
    bits_ += 16;
    while (bits_ >= 6) {
      bits_ -= 6;
      out_ += kBase64[(buffer_ >> bits_) & 0x3f];
    }
    buffer_ &= (1u << bits_) - 1;
  }

  std::string& out_;
  bool open_ = false;
  uint32_t buffer_ = 0;
  int bits_ = 0;  // always < 6 between calls
};

// Decodes the base64 between '&' and '-' (non-empty) and appends it as UTF-8. False when
// the run is not the canonical encoding of what it holds.
bool decode_run(std::string_view b64, std::string& out) {
  uint32_t buffer = 0;
  int bits = 0;
  char32_t high = 0;  // pending high surrogate
  for (char c : b64) {
    const int v = base64_value(c);
    if (v < 0) return false;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits < 16) continue;
    bits -= 16;
    const char32_t unit = (buffer >> bits) & 0xffff;
    buffer &= (1u << bits) - 1;
    if (high != 0) {
      if (!is_low_surrogate(unit)) return false;
      append_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
      high = 0;
    } else if (is_high_surrogate(unit)) {
      high = unit;
    } else if (is_low_surrogate(unit) || is_printable_ascii(unit)) {
      return false;  // unpaired, or a character that must stand for itself
    } else {
      append_utf8(out, unit);
    }
  }
  // Six or more spare bits mean a superfluous base64 character (this also rejects runs too
  // short to hold one unit); spare bits must be zero (RFC 2152).
  return high == 0 && bits < 6 && buffer == 0;
}

}  // namespace

std::string utf8_to_mutf7(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size() + utf8.size() / 2);
  RunEncoder run(out);
  for (size_t pos = 0; pos < utf8.size();) {
    const Decoded d = decode_utf8(utf8, pos);
    pos += d.length;
    if (is_printable_ascii(d.code_point)) {
      run.close();
      if (d.code_point == '&') {
        out += "&-";
      } else {
        out += static_cast<char>(d.code_point);
      }
    } else {
      run.add(d.code_point);
    }
  }
  run.close();
  return out;
}

std::optional<std::string> mutf7_to_utf8(std::string_view mutf7) {
  std::string out;
  out.reserve(mutf7.size());
  bool after_run = false;  // the previous token was an encoded (non-empty) run
  size_t pos = 0;
  while (pos < mutf7.size()) {
    const char c = mutf7[pos];
    if (!is_printable_ascii(static_cast<unsigned char>(c))) return std::nullopt;
    if (c != '&') {
      out += c;
      after_run = false;
      ++pos;
      continue;
    }
    // '-' is outside the base64 alphabet, so the first one ends the run.
    const size_t end = mutf7.find('-', pos + 1);
    if (end == std::string_view::npos) return std::nullopt;
    if (end == pos + 1) {
      out += '&';
      after_run = false;
    } else {
      if (after_run) return std::nullopt;  // two runs back to back must be one
      if (!decode_run(mutf7.substr(pos + 1, end - pos - 1), out)) return std::nullopt;
      after_run = true;
    }
    pos = end + 1;
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const Decoded d = decode_utf8(s, pos);
    if (!d.well_formed) return false;
    pos += d.length;
  }
  return true;
}

}  // namespace mailark::imap
