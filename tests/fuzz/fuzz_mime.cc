// libFuzzer target for the MIME parse cache (src/mailstore/mime.h) and the header fields record
// made from it (src/mailstore/header_fields.h): no crash, no offset outside the message, exact
// round trips. Seed with real mail (test_email/data/msg_*.txt).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailstore/header_fields.h"
#include "mailstore/mime.h"

namespace {

// Offsets stay inside the parent's body and the message; children keep their order.
void check_part(const mailark::MimePart& part, uint64_t begin, uint64_t end) {
  const uint64_t part_end = part.body_offset + part.body_size;
  if (part.header_offset < begin || part.body_offset < part.header_offset || part_end > end ||
      part_end < part.body_offset) {
    std::abort();
  }
  uint64_t previous = part.body_offset;
  for (const mailark::MimePart& child : part.children) {
    if (child.header_offset < previous) std::abort();
    check_part(child, part.body_offset, part_end);
    previous = child.body_offset + child.body_size;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view raw(reinterpret_cast<const char*>(data), size);
  const mailark::MessageInfo info = mailark::parse_message(raw);
  if (info.header_size != info.body.body_offset || info.header != raw.substr(0, info.header_size) ||
      info.body.body_offset + info.body.body_size != raw.size()) {
    std::abort();
  }
  check_part(info.body, 0, raw.size());

  const std::string bytes = mailark::serialize_message_info(info);
  mailark::Result<mailark::MessageInfo> back = mailark::deserialize_message_info(bytes);
  if (!back.is_ok() || !(*back == info)) std::abort();

  // The header fields record decodes to what it was made of: one entry per kept field, texts
  // valid UTF-8 as the encoder made them.
  const std::string record = mailark::encode_header_fields(info.header);
  mailark::HeaderFieldValues fields;
  if (!mailark::decode_header_fields(record, fields).is_ok()) std::abort();
  size_t kept = 0;
  mailark::for_each_header_field(info.header, [&](std::string_view name, std::string_view value) {
    if (auto code = mailark::header_field_code(name)) {
      if (kept >= fields.fields.size() || fields.fields[kept].first != *code ||
          fields.fields[kept].second != mailark::header_field_text(value)) {
        std::abort();
      }
      ++kept;
    }
    return false;
  });
  if (kept != fields.fields.size()) std::abort();

  // The input taken as a serialized record of either kind: refused cleanly or decoded, never a
  // crash.
  (void)mailark::deserialize_message_info(raw);
  (void)mailark::decode_header_fields(raw, fields);
  return 0;
}
