// FETCH response data from the MIME parse cache (mailstore/mime.h): ENVELOPE, BODY and
// BODYSTRUCTURE (RFC 3501 7.4.2, RFC 9051 7.5.2), and the bytes of BODY[section]<partial>
// (RFC 3501 6.4.5). Pure: no store access; the caller supplies the cache and, when a section
// needs them, the raw message bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "mailstore/mime.h"

namespace mailark::imap {

// "(date subject (from) (sender) (reply-to) (to) (cc) (bcc) in-reply-to message-id)", each
// string quoted, or a literal when it holds 8-bit bytes; NIL for absent fields and empty
// address lists.
std::string format_envelope(const MimeEnvelope& envelope);
// The same appended to `out` (FETCH builds each response line piece by piece).
void format_envelope_to(std::string& out, const MimeEnvelope& envelope);

// BODY (extensible = false) or BODYSTRUCTURE (true) of `part` and everything below it.
// Types, subtypes, encodings and parameter names are sent as the cache stores them (lower
// case); Content-Language is always sent as a list, as Dovecot does.
std::string format_bodystructure(const MimePart& part, bool extensible);
void format_bodystructure_to(std::string& out, const MimePart& part, bool extensible);

// The section spec of BODY[<spec>] (the text between the brackets).
struct Section {
  enum class Text {
    kNone,             // "" (whole message) or "1.2" (the part's body)
    kHeader,           // HEADER
    kHeaderFields,     // HEADER.FIELDS (names)
    kHeaderFieldsNot,  // HEADER.FIELDS.NOT (names)
    kText,             // TEXT
    kMime,             // MIME (only after a part number)
  };
  std::vector<uint32_t> part;  // "1.2" -> {1, 2}; empty: the message itself
  Text text = Text::kNone;
  // HEADER.FIELDS[.NOT]: the names, upper-cased (matching is case-insensitive), and for
  // each whether the client sent it as a quoted string, so that the response name echoes the
  // list the way Dovecot does.
  std::vector<std::string> fields;
  std::vector<bool> quoted;
  bool operator==(const Section&) const = default;
};

// Parses a section spec ("", "HEADER", "1.2.MIME", "HEADER.FIELDS (FROM \"TO\")", ...),
// keywords case-insensitive. An `invalid` status means the command gets a BAD.
Result<Section> parse_section(std::string_view spec);

// The canonical spec for the response: keywords and field names upper case
// ("1.HEADER.FIELDS (FROM TO)").
std::string section_name(const Section& section);

// The bytes of `section` of the message `raw`, whose parse cache is `info`. Follows Dovecot:
// a part number that does not exist, and HEADER/TEXT of a part that is not message/rfc822,
// give an empty string (not an error); on a non-multipart message "1" is its body and "1.MIME"
// its header. Returns a `corrupt` status when `info` does not describe `raw` (offsets out of
// range), so a stale cache is never served.
Result<std::string> extract_section(std::string_view raw, const MessageInfo& info,
                                    const Section& section);

// The same for HEADER and HEADER.FIELDS[.NOT] of the top-level message, from the cached
// header, so those fetches never read the blob. nullopt when the section needs the message.
std::optional<std::string> header_section_from_cache(const MessageInfo& info,
                                                     const Section& section);

// <origin.count> of BODY[...]<origin.count>.
struct Partial {
  uint64_t origin = 0;
  uint64_t count = 0;  // never 0 when parsed
  bool operator==(const Partial&) const = default;
};

// Parses "<origin.count>" (with the angle brackets); count must be non-zero.
Result<Partial> parse_partial(std::string_view text);

// The slice the partial selects; empty when the origin is at or past the end. Without a
// partial, all of `bytes`.
std::string_view apply_partial(std::string_view bytes, const std::optional<Partial>& partial);

// The name of the response item: "BODY[1.TEXT]", or "BODY[]<0>" with a partial, which RFC 3501
// echoes with the origin only.
std::string body_response_name(const Section& section, const std::optional<Partial>& partial);

// A whole BODY[...] / BODY.PEEK[...] fetch attribute as the command parser hands it over (one
// atom: "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>"), case-insensitive.
struct BodyFetch {
  bool peek = false;
  Section section;
  std::optional<Partial> partial;
  bool operator==(const BodyFetch&) const = default;
};
Result<BodyFetch> parse_body_fetch(std::string_view attribute);

// BINARY[part]<partial>, BINARY.PEEK[part]<partial> and BINARY.SIZE[part] (RFC 3516,
// RFC 9051 6.4.5): a part's content with its Content-Transfer-Encoding undone.
struct BinaryFetch {
  bool size_only = false;  // BINARY.SIZE
  bool peek = false;
  std::vector<uint32_t> part;  // empty: the whole message, as it is
  std::optional<Partial> partial;
  bool operator==(const BinaryFetch&) const = default;
};
Result<BinaryFetch> parse_binary_fetch(std::string_view attribute);
// "BINARY[1.2]", "BINARY[1]<0>" (origin only, as for BODY) or "BINARY.SIZE[1]".
std::string binary_response_name(const BinaryFetch& fetch);
// The decoded content of `part` (7bit, 8bit and binary as they are; base64 and
// quoted-printable decoded). A part that does not exist is empty, as for BODY[]. kInvalid
// for any other encoding: the command answers NO [UNKNOWN-CTE].
Result<std::string> extract_binary(std::string_view raw, const MessageInfo& info,
                                   const std::vector<uint32_t>& part);

}  // namespace mailark::imap
