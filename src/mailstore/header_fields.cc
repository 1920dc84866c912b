// Header fields record: the fields searches ask for most, decoded once when a message is
// stored (docs/formats/header-fields.md).
#include "mailstore/header_fields.h"

#include <array>

#include "base/hash.h"
#include "mailstore/mime.h"

namespace mailark {
namespace {

constexpr uint8_t kVersion = 1;
constexpr size_t kChecksumSize = 4;
constexpr uint8_t kLastCode = static_cast<uint8_t>(HeaderField::kMessageId);

struct FieldName {
  std::string_view name;
  HeaderField code;
};
constexpr std::array<FieldName, 8> kFieldNames = {{
    {"subject", HeaderField::kSubject},
    {"from", HeaderField::kFrom},
    {"sender", HeaderField::kSender},
    {"reply-to", HeaderField::kReplyTo},
    {"to", HeaderField::kTo},
    {"cc", HeaderField::kCc},
    {"bcc", HeaderField::kBcc},
    {"message-id", HeaderField::kMessageId},
}};

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Reads a varint at `pos` of at most 10 bytes; false when it runs past the end or overflows.
bool get_varint(std::string_view in, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= in.size()) return false;
    const auto b = static_cast<uint8_t>(in[pos++]);
    if (shift == 63 && b > 1) return false;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

void put_checksum(std::string& out) {
  const uint32_t crc = crc32c(out);
  for (size_t i = 0; i < kChecksumSize; ++i)
    out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
}

}  // namespace

std::optional<HeaderField> header_field_code(std::string_view name) {
  for (const FieldName& f : kFieldNames) {
    if (f.name.size() != name.size()) continue;
    size_t i = 0;
    while (i < name.size() && ascii_lower(name[i]) == f.name[i]) ++i;
    if (i == name.size()) return f.code;
  }
  return std::nullopt;
}

std::string header_field_text(std::string_view raw_value) {
  std::string text;
  text.reserve(raw_value.size());
  for (char c : raw_value) {
    if (c != '\r' && c != '\n') text.push_back(c);
  }
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return {};
  text.erase(text.find_last_not_of(" \t") + 1);
  text.erase(0, begin);
  if (is_ascii(text) && text.find("=?") == std::string::npos) return text;
  auto decoded = decode_header_text(text);
  return make_valid_utf8(decoded ? std::move(*decoded) : std::move(text));
}

std::string encode_header_fields(std::string_view header) {
  std::string out;
  out.push_back(static_cast<char>(kVersion));
  for_each_header_field(header, [&](std::string_view name, std::string_view value) {
    if (auto code = header_field_code(name)) {
      const std::string text = header_field_text(value);
      out.push_back(static_cast<char>(*code));
      put_varint(out, text.size());
      out.append(text);
    }
    return false;
  });
  put_checksum(out);
  return out;
}

Status decode_header_fields(std::string_view bytes, HeaderFieldValues& into) {
  into.fields.clear();
  if (bytes.size() < 1 + kChecksumSize) return corrupt("header fields record is truncated");
  if (static_cast<uint8_t>(bytes[0]) != kVersion)
    return corrupt("header fields record has unknown version " +
                   std::to_string(static_cast<uint8_t>(bytes[0])));
  const std::string_view body = bytes.substr(0, bytes.size() - kChecksumSize);
  const uint32_t crc = crc32c(body);
  for (size_t i = 0; i < kChecksumSize; ++i) {
    if (static_cast<uint8_t>(bytes[body.size() + i]) != ((crc >> (8 * i)) & 0xff))
      return corrupt("header fields record checksum differs");
  }
  size_t pos = 1;
  while (pos < body.size()) {
    const auto code = static_cast<uint8_t>(body[pos++]);
    uint64_t len = 0;
    if (code == 0 || code > kLastCode || !get_varint(body, pos, len) || len > body.size() - pos) {
      into.fields.clear();
      return corrupt("header fields record does not decode");
    }
    into.fields.emplace_back(static_cast<HeaderField>(code), body.substr(pos, len));
    pos += len;
  }
  return Status::ok();
}

}  // namespace mailark
