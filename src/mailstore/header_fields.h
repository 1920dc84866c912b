// The header fields that searches ask for most (Subject, the address fields, Message-ID), as a
// reader sees them, kept per message in a short record beside the parse cache. A SEARCH on one
// of them reads a few hundred bytes per message instead of the parse-cache record with the
// whole raw header. Pure: bytes in, bytes out. Format: docs/formats/header-fields.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace mailark {

// The fields the record keeps. The values are stored: never renumber.
enum class HeaderField : uint8_t {
  kSubject = 1,
  kFrom = 2,
  kSender = 3,
  kReplyTo = 4,
  kTo = 5,
  kCc = 6,
  kBcc = 7,
  kMessageId = 8,
};

// The code of a field name in any case ("subject", "REPLY-TO"); nullopt for a field the
// record does not keep.
std::optional<HeaderField> header_field_code(std::string_view name);

// Calls f(name, raw value) for each field of a header block (CRLF or LF line ends, up to the
// blank line or the end) until f returns true; returns whether it did. The name has trailing
// blanks removed; the value is everything after the colon, folding line breaks included.
// Lines that are not fields (no colon) are skipped.
template <typename F>
bool for_each_header_field(std::string_view header, F&& f) {
  constexpr size_t npos = std::string_view::npos;
  auto is_wsp = [](char c) { return c == ' ' || c == '\t'; };
  size_t field_start = npos;
  auto flush = [&](size_t end) {
    if (field_start == npos) return false;
    const std::string_view field = header.substr(field_start, end - field_start);
    field_start = npos;
    const size_t colon = field.find(':');
    if (colon == npos) return false;
    std::string_view name = field.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    return f(name, field.substr(colon + 1));
  };
  size_t pos = 0;
  while (pos < header.size()) {
    const size_t lf = header.find('\n', pos);
    const size_t line_end = lf == npos ? header.size() : lf;
    const size_t next = lf == npos ? header.size() : lf + 1;
    std::string_view line = header.substr(pos, line_end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the blank line ending the header
    if (!is_wsp(line[0]) || field_start == npos) {
      if (flush(pos)) return true;
      field_start = pos;
    }
    pos = next;
  }
  return flush(pos);
}

// A field value as a reader sees it: unfolded (line breaks removed), trimmed, RFC 2047
// encoded words decoded and 8-bit text converted to valid UTF-8.
std::string header_field_text(std::string_view raw_value);

// The record of a raw top-level header block: every occurrence of the kept fields, in header
// order, as header_field_text() gives it.
std::string encode_header_fields(std::string_view header);

// A decoded record. The texts point into the record's bytes.
struct HeaderFieldValues {
  std::vector<std::pair<HeaderField, std::string_view>> fields;  // in header order
};
// kCorrupt when the bytes are not a whole record of a known version with a matching checksum;
// `into` is then empty. Reuses `into`'s storage.
Status decode_header_fields(std::string_view bytes, HeaderFieldValues& into);

}  // namespace mailark
