// The MIME parse cache: what IMAP needs from a message, computed once when the message
// enters the store (delivery, APPEND, restore) and kept beside it, so FETCH ENVELOPE,
// BODYSTRUCTURE and header fields never re-read the body. Pure: bytes in, structure out,
// no I/O, fuzzable. Format of the serialized form: docs/formats/parse-cache.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace mailark {

// One address as IMAP's ENVELOPE shows it (RFC 3501 7.4.2). A group start has `mailbox`
// set to the group name and no host; a group end has neither mailbox nor host.
struct MimeAddress {
  std::optional<std::string> name;  // display name, as in the header (may hold encoded words)
  std::optional<std::string> adl;   // source route, almost always absent
  std::optional<std::string> mailbox;
  std::optional<std::string> host;
  bool operator==(const MimeAddress&) const = default;
};

// RFC 3501 ENVELOPE fields. Strings are the unfolded raw header values; absent headers
// are nullopt (NIL).
struct MimeEnvelope {
  std::optional<std::string> date;
  std::optional<std::string> subject;
  std::vector<MimeAddress> from, sender, reply_to, to, cc, bcc;
  std::optional<std::string> in_reply_to;
  std::optional<std::string> message_id;
  bool operator==(const MimeEnvelope&) const = default;
};

using MimeParams = std::vector<std::pair<std::string, std::string>>;

// One node of the body structure. Offsets are byte positions in the raw message.
struct MimePart {
  std::string type = "text";      // lower case
  std::string subtype = "plain";  // lower case
  MimeParams params;              // Content-Type parameters (RFC 2231 decoded), in order
  std::optional<std::string> id, description;
  std::string encoding = "7bit";  // Content-Transfer-Encoding, lower case
  std::optional<std::string> md5, language, location;
  std::optional<std::string> disposition;  // lower case
  MimeParams disposition_params;

  uint64_t header_offset = 0;  // first byte of this part's header (== body_offset if none)
  uint64_t body_offset = 0;    // first byte after the blank line ending the header
  uint64_t body_size = 0;      // octets of the body (IMAP body size)
  uint64_t body_lines = 0;     // lines of the body (for text/* and message/rfc822)

  // multipart/*: the parts; message/rfc822 (and message/global): exactly one, the top part
  // of the encapsulated message, whose envelope is `envelope`.
  std::vector<MimePart> children;
  std::optional<MimeEnvelope> envelope;  // only for message/rfc822
  bool operator==(const MimePart&) const = default;
};

struct MessageInfo {
  MimeEnvelope envelope;
  MimePart body;             // the top-level part; header_offset 0
  uint64_t header_size = 0;  // bytes of the top-level header including the blank line
  std::string header;        // the raw top-level header block (served for HEADER.FIELDS)
  std::string subject_text;  // Subject with encoded words decoded to UTF-8 (for SEARCH)
  int64_t date_ms = 0;       // Date header as ms since epoch; 0 when absent or unparsable
  bool operator==(const MessageInfo&) const = default;
};

// Unstructured header text (unfolded) as a reader sees it: RFC 2047 encoded words decoded
// and 8-bit text converted to UTF-8. UTF-8 text with whitespace-delimited encoded words in
// any charset iconv knows is decoded here, each word on its own (RFC 2047 6.2); the rest
// (malformed or embedded words, 8-bit text that is not UTF-8) by GMime's rules. nullopt when
// GMime gives nothing back.
std::optional<std::string> decode_header_text(std::string_view text);
// The part of decode_header_text() that needs no GMime parsing: nullopt for text it does not
// cover (malformed or embedded encoded words, unknown charsets, bytes a charset does not
// have, 8-bit text that is not UTF-8, control characters). Exposed for the test that holds
// it to GMime's answers.
std::optional<std::string> decode_simple_header_text(std::string_view text);
// `bytes` in `charset` as UTF-8 through a converter kept open per thread; nullopt when iconv
// does not know the charset or the bytes are not valid in it.
std::optional<std::string> convert_to_utf8(std::string_view charset, std::string_view bytes);

// `s` unchanged when it is valid UTF-8 (ASCII included); otherwise with each invalid byte
// replaced by U+FFFD (GLib's g_utf8_make_valid).
std::string make_valid_utf8(std::string s);

// Never fails on malformed MIME: a missing boundary, a truncated part or garbage headers
// produce the best structure a mail client would show (Dovecot-compatible choices).
MessageInfo parse_message(std::string_view raw);

// Versioned, self-delimiting encoding of a MessageInfo (docs/formats/parse-cache.md).
std::string serialize_message_info(const MessageInfo& info);
Result<MessageInfo> deserialize_message_info(std::string_view bytes);
// The same into an existing record, reusing its strings and vectors (for scans over many
// records); on failure `into` holds an unspecified mix.
Status deserialize_message_info(std::string_view bytes, MessageInfo& into);

}  // namespace mailark
