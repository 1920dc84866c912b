// The MIME parse cache (mime.h): a hand-written structural scan for exact part offsets, GMime
// for header values, and the versioned record of docs/formats/parse-cache.md.
#include "mailstore/mime.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "base/base64.h"
#include "base/hash.h"

namespace mailark {
namespace {

// Containers nested deeper than this are not parsed: their body is kept whole and they show
// one empty part, as a leaf would. It bounds recursion and the boundary stack against hostile
// input; real mail never comes close.
constexpr int kMaxDepth = 100;

void init_gmime_once() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string_view trim_wsp(std::string_view s) {
  while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 5322 unfolding: drop every line break (LF or CRLF) of a folded field. A NUL, which no
// IMAP string may carry, becomes U+FFFD as Dovecot does.
std::string unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\n') continue;
    if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') continue;
    if (c == '\0') {
      out.append("\xEF\xBF\xBD");
      continue;
    }
    out.push_back(c);
  }
  return out;
}

uint64_t count_lf(std::string_view raw, size_t begin, size_t end) {
  // memchr jumps a line at a time (vectorized in libc); std::count went byte by byte.
  uint64_t n = 0;
  const char* p = raw.data() + begin;
  const char* stop = raw.data() + end;
  while (p < stop) {
    const void* lf = std::memchr(p, '\n', static_cast<size_t>(stop - p));
    if (!lf) break;
    ++n;
    p = static_cast<const char*>(lf) + 1;
  }
  return n;
}

// First byte after the line starting at `pos` (after its LF), or raw.size() for a last line
// without a line break.
size_t next_line(std::string_view raw, size_t pos) {
  const void* lf = std::memchr(raw.data() + pos, '\n', raw.size() - pos);
  return lf ? static_cast<size_t>(static_cast<const char*>(lf) - raw.data()) + 1 : raw.size();
}

// ---------------------------------------------------------------------------------------
// Header fields of one entity.

class HeaderFields {
 public:
  // `field` is one whole field: "Name: value" including its continuation lines.
  void add(std::string_view field) {
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) return;  // not a field; kept in the raw header only
    std::string_view name = field.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    fields_.push_back({to_lower(name), std::string(trim_wsp(unfold(field.substr(colon + 1))))});
  }

  // The first field called `name` (lower case), or nullptr.
  const std::string* first(std::string_view name) const {
    for (const auto& [field_name, value] : fields_) {
      if (field_name == name) return &value;
    }
    return nullptr;
  }

  std::optional<std::string> first_value(std::string_view name) const {
    const std::string* v = first(name);
    return v ? std::optional<std::string>(*v) : std::nullopt;
  }

  // The last field called `name`, or nullopt.
  std::optional<std::string> last_value(std::string_view name) const {
    for (auto it = fields_.rbegin(); it != fields_.rend(); ++it) {
      if (it->first == name) return it->second;
    }
    return std::nullopt;
  }

  // Every field called `name`, in order.
  std::vector<std::string_view> all(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const auto& [field_name, value] : fields_) {
      if (field_name == name) out.push_back(value);
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;  // (lower-case name, value)
};

// ---------------------------------------------------------------------------------------
// GMime for header values. One per parse_message call: the parser options carry a warning
// callback that points at this object, so concurrent parses never share state.

struct GObjectUnref {
  void operator()(void* p) const {
    if (p) g_object_unref(p);
  }
};
struct GFree {
  void operator()(void* p) const { g_free(p); }
};
using GText = std::unique_ptr<char, GFree>;

// RFC 5322 3.2.2 comments "(...)" (nested, with quoted pairs) outside quoted strings, which
// GMime would otherwise keep inside parameter values ("charset=us-ascii (ascii)").
std::string strip_comments(const std::string& value) {
  if (value.find('(') == std::string::npos) return value;
  std::string out;
  out.reserve(value.size());
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (depth == 0 && c == '"') quoted = !quoted;
    if ((quoted || depth > 0) && c == '\\' && i + 1 < value.size()) {
      if (depth == 0) {
        out += c;
        out += value[i + 1];
      }
      ++i;
      continue;
    }
    if (!quoted && c == '(') {
      ++depth;
      continue;
    }
    if (!quoted && c == ')' && depth > 0) {
      if (--depth == 0) out += ' ';
      continue;
    }
    if (depth == 0) out += c;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
  return out;
}

// ---------------------------------------------------------------------------------------
// RFC 2047 without GMime for the common case. GMime opens (and closes) an iconv converter
// for every encoded word, even UTF-8 to UTF-8, and for a legacy charset that loads its
// conversion module again each time: most of a header search. Here UTF-8 and US-ASCII need
// no converter and other charsets keep theirs open, one per thread.

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

bool valid_utf8(std::string_view s) {
  return g_utf8_validate(s.data(), static_cast<gssize>(s.size()), nullptr);
}

// Open converters to UTF-8 by charset name as written (lower case), per thread: an iconv_t
// is not safe to share. Bounded; names past the bound are converted without caching.
class Converters {
 public:
  ~Converters() {
    for (auto& [name, cd] : open_) g_mime_iconv_close(cd);
  }
  // Appends `bytes` in `charset` as UTF-8; false when the charset is unknown or the bytes
  // are not valid in it.
  bool to_utf8(const std::string& charset, std::string_view bytes, std::string& out) {
    iconv_t cd = find(charset);
    // NOLINTNEXTLINE(performance-no-int-to-ptr): (iconv_t)-1 is how iconv reports failure
    if (cd == reinterpret_cast<iconv_t>(-1)) return false;
    iconv(cd, nullptr, nullptr, nullptr, nullptr);  // initial shift state
    char* in = const_cast<char*>(bytes.data());
    size_t in_left = bytes.size();
    const size_t start = out.size();
    size_t room = bytes.size() * 4 + 16;
    out.resize(start + room);
    char* to = out.data() + start;
    size_t to_left = room;
    bool ok = iconv(cd, &in, &in_left, &to, &to_left) != static_cast<size_t>(-1) &&
              iconv(cd, nullptr, nullptr, &to, &to_left) != static_cast<size_t>(-1);
    out.resize(start + (room - to_left));
    if (!open_.count(charset)) g_mime_iconv_close(cd);
    if (!ok) out.resize(start);
    return ok && in_left == 0;
  }

 private:
  static constexpr size_t kMax = 16;
  iconv_t find(const std::string& charset) {
    if (auto it = open_.find(charset); it != open_.end()) return it->second;
    init_gmime_once();
    iconv_t cd = g_mime_iconv_open("UTF-8", g_mime_charset_iconv_name(charset.c_str()));
    // NOLINTNEXTLINE(performance-no-int-to-ptr)
    if (cd != reinterpret_cast<iconv_t>(-1) && open_.size() < kMax) open_.emplace(charset, cd);
    return cd;
  }
  std::map<std::string, iconv_t> open_;
};

Converters& thread_converters() {
  thread_local Converters converters;
  return converters;
}

// The bytes of one encoded word ("=?charset?B|Q?text?=", the whole token) appended to
// `out`, its charset (lower case) in `charset`. False for anything malformed or unusual
// (empty text, RFC 2231 language tags, unpadded base64, bad hex), which GMime then decodes.
bool decode_word_bytes(std::string_view token, std::string& charset, std::string& out) {
  if (token.size() < 8 || token.substr(0, 2) != "=?" || token.substr(token.size() - 2) != "?=")
    return false;
  const std::string_view inner = token.substr(2, token.size() - 4);
  const size_t q1 = inner.find('?');
  if (q1 == 0 || q1 == std::string_view::npos || q1 + 2 >= inner.size() || inner[q1 + 2] != '?')
    return false;
  charset = to_lower(inner.substr(0, q1));
  if (charset.find('*') != std::string::npos) return false;
  const char method = ascii_lower(inner[q1 + 1]);
  const std::string_view text = inner.substr(q1 + 3);
  if (text.empty() || text.find('?') != std::string_view::npos) return false;
  if (method == 'b') {
    auto bytes = base64_decode(text);
    if (!bytes) return false;
    out.append(*bytes);
    return true;
  }
  if (method != 'q') return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '_') {
      out.push_back(' ');
    } else if (c == '=') {
      if (i + 2 >= text.size()) return false;
      const int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f) {
      out.push_back(c);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

// The decoded text when `text` is valid UTF-8 without controls apart from whitespace-
// delimited encoded words; nullopt otherwise. Whitespace between two encoded words is
// dropped (RFC 2047 6.2), all other text is kept as it is. The bytes of adjacent words in
// one charset are converted together (a character may be split between them), and each
// word's bytes are decoded on their own.
std::optional<std::string> decode_simple_header_text(std::string_view text) {
  Converters& converters = thread_converters();
  std::string out, run, charset, run_charset;
  out.reserve(text.size());
  // Converts the pending run of encoded words; false when it is not valid in its charset.
  auto flush = [&]() -> bool {
    if (run_charset.empty()) return true;
    const size_t start = out.size();
    if (run_charset == "utf-8" || run_charset == "us-ascii") {
      if (!valid_utf8(run) || (run_charset == "us-ascii" && !is_ascii(run))) return false;
      out.append(run);
    } else if (!converters.to_utf8(run_charset, run, out) ||
               !valid_utf8(std::string_view(out).substr(start))) {
      return false;
    }
    for (size_t i = start; i < out.size(); ++i)
      if (is_control(static_cast<unsigned char>(out[i]))) return false;
    run.clear();
    run_charset.clear();
    return true;
  };
  size_t i = 0;
  bool previous_encoded = false;
  while (i < text.size()) {
    const size_t ws_start = i;
    while (i < text.size() && is_wsp(text[i])) ++i;
    const std::string_view ws = text.substr(ws_start, i - ws_start);
    const size_t token_start = i;
    while (i < text.size() && !is_wsp(text[i])) ++i;
    const std::string_view token = text.substr(token_start, i - token_start);
    if (token.empty()) {  // trailing whitespace
      if (!flush()) return std::nullopt;
      out.append(ws);
      break;
    }
    if (token.find("=?") == std::string_view::npos) {
      if (!flush()) return std::nullopt;
      for (char c : token)
        if (is_control(static_cast<unsigned char>(c))) return std::nullopt;
      out.append(ws);
      out.append(token);
      previous_encoded = false;
      continue;
    }
    const size_t word_start = run.size();
    if (!decode_word_bytes(token, charset, run)) return std::nullopt;
    if (charset != run_charset) {
      // A new run: the previous one (if any) is converted first, from its own bytes.
      std::string word = run.substr(word_start);
      run.resize(word_start);
      if (!flush()) return std::nullopt;
      run = std::move(word);
      run_charset = charset;
    }
    // Whitespace after ordinary text is kept (the run's text follows it once converted);
    // between two encoded words it is dropped.
    if (!previous_encoded) out.append(ws);
    previous_encoded = true;
  }
  if (!flush() || !valid_utf8(out)) return std::nullopt;
  return out;
}

namespace {

class FieldDecoder {
 public:
  FieldDecoder() {
    init_gmime_once();
    options_ = g_mime_parser_options_new();
    g_mime_parser_options_set_warning_callback(options_, &FieldDecoder::on_warning, this);
    format_ = g_mime_format_options_new();
  }
  ~FieldDecoder() {
    g_mime_parser_options_free(options_);
    g_mime_format_options_free(format_);
  }
  FieldDecoder(const FieldDecoder&) = delete;
  FieldDecoder& operator=(const FieldDecoder&) = delete;

  struct ContentType {
    std::string type, subtype;
    MimeParams params;
  };

  // nullopt when the value is not a valid type/subtype (the caller applies the default,
  // RFC 2045 5.2). GMime itself would silently answer application/octet-stream.
  std::optional<ContentType> content_type(const std::string& value) {
    invalid_content_type_ = false;
    std::unique_ptr<GMimeContentType, GObjectUnref> ct(
        g_mime_content_type_parse(options_, strip_comments(value).c_str()));
    if (!ct || invalid_content_type_) return std::nullopt;
    const char* type = g_mime_content_type_get_media_type(ct.get());
    const char* subtype = g_mime_content_type_get_media_subtype(ct.get());
    if (!type || !subtype || !*type || !*subtype) return std::nullopt;
    return ContentType{to_lower(type), to_lower(subtype),
                       params(g_mime_content_type_get_parameters(ct.get()))};
  }

  struct Disposition {
    std::string value;
    MimeParams params;
  };

  std::optional<Disposition> disposition(const std::string& value) {
    std::unique_ptr<GMimeContentDisposition, GObjectUnref> cd(
        g_mime_content_disposition_parse(options_, strip_comments(value).c_str()));
    if (!cd) return std::nullopt;
    const char* name = g_mime_content_disposition_get_disposition(cd.get());
    if (!name || !*name) return std::nullopt;
    return Disposition{to_lower(name), params(g_mime_content_disposition_get_parameters(cd.get()))};
  }

  // Appends an address list as IMAP's ENVELOPE wants it: groups become a start entry
  // (mailbox = group name, no host) and an end entry (all NIL). Unparsable input adds nothing.
  void append_addresses(std::string_view value, std::vector<MimeAddress>& out) {
    const std::string text(value);
    std::unique_ptr<InternetAddressList, GObjectUnref> list(
        internet_address_list_parse(options_, text.c_str()));
    if (list) append_addresses(list.get(), /*in_group=*/false, out);
  }

  // Encoded words decoded, 8-bit text converted to UTF-8 (GMime's fallback charsets).
  std::string decode_text(const std::string& value) {
    return decode_header_text(value).value_or("");
  }

  // 0 when unparsable, which is also what an absent Date gives.
  int64_t date_ms(const std::string& value) {
    GDateTime* date = g_mime_utils_header_decode_date(value.c_str());
    if (!date) return 0;
    const int64_t ms = g_date_time_to_unix(date) * 1000 + g_date_time_get_microsecond(date) / 1000;
    g_date_time_unref(date);
    return ms;
  }

 private:
  static void on_warning(gint64 /*offset*/, GMimeParserWarning code, const gchar* /*item*/,
                         gpointer self) {
    if (code == GMIME_WARN_INVALID_CONTENT_TYPE) {
      static_cast<FieldDecoder*>(self)->invalid_content_type_ = true;
    }
  }

  // Parameter names are case-insensitive (RFC 2045 5.1), so they are stored lower case;
  // values are RFC 2231 / RFC 2047 decoded to UTF-8 by GMime.
  static MimeParams params(GMimeParamList* list) {
    MimeParams out;
    if (!list) return out;
    const int n = g_mime_param_list_length(list);
    for (int i = 0; i < n; ++i) {
      GMimeParam* param = g_mime_param_list_get_parameter_at(list, i);
      const char* name = param ? g_mime_param_get_name(param) : nullptr;
      if (!name || !*name) continue;
      const char* value = g_mime_param_get_value(param);
      out.emplace_back(to_lower(name), value ? value : "");
    }
    return out;
  }

  // IMAP's addr-name is a plain string shown to the user: GMime hands us the decoded phrase,
  // so non-ASCII names go back out as RFC 2047 encoded words (UTF-8) to keep the ENVELOPE
  // 7-bit for every client. encode_text, not encode_phrase: a phrase would add quotes that
  // IMAP clients would display literally.
  std::optional<std::string> imap_name(const char* name) {
    if (!name || !*name) return std::nullopt;
    if (is_ascii(name)) return std::string(name);
    GText encoded(g_mime_utils_header_encode_text(format_, name, "utf-8"));
    if (!encoded) return std::string(name);
    return unfold(encoded.get());
  }

  void append_addresses(InternetAddressList* list, bool in_group, std::vector<MimeAddress>& out) {
    const int n = internet_address_list_length(list);
    for (int i = 0; i < n; ++i) {
      InternetAddress* address = internet_address_list_get_address(list, i);
      if (!address) continue;
      if (INTERNET_ADDRESS_IS_GROUP(address)) {
        InternetAddressList* members =
            internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address));
        // IMAP cannot nest groups: members of an inner group join the outer one.
        if (!in_group) {
          MimeAddress start;
          start.mailbox = imap_name(internet_address_get_name(address)).value_or("");
          out.push_back(std::move(start));
        }
        if (members) append_addresses(members, /*in_group=*/true, out);
        if (!in_group) out.push_back(MimeAddress{});
      } else if (INTERNET_ADDRESS_IS_MAILBOX(address)) {
        // GMime decodes punycode domains to UTF-8 in get_addr(); the IDN form keeps the
        // ASCII spelling clients (and Dovecot) show in ENVELOPE.
        InternetAddressMailbox* box = INTERNET_ADDRESS_MAILBOX(address);
        const char* addr = internet_address_mailbox_get_idn_addr(box);
        if (!addr) addr = internet_address_mailbox_get_addr(box);
        const std::string_view spec = addr ? addr : "";
        // Mailbox and host are never NIL for a real address (NIL marks a group boundary):
        // missing ones get Dovecot's placeholders.
        const size_t at = spec.rfind('@');
        const std::string_view local = spec.substr(0, at);
        const std::string_view domain =
            at == std::string_view::npos ? std::string_view() : spec.substr(at + 1);
        MimeAddress mailbox;
        mailbox.name = imap_name(internet_address_get_name(address));
        mailbox.mailbox = local.empty() ? "MISSING_MAILBOX" : std::string(local);
        mailbox.host = domain.empty() ? "MISSING_DOMAIN" : std::string(domain);
        out.push_back(std::move(mailbox));
      }
    }
  }

  GMimeParserOptions* options_ = nullptr;
  GMimeFormatOptions* format_ = nullptr;
  bool invalid_content_type_ = false;
};

// Duplicated fields are resolved as Dovecot does, so clients see the same ENVELOPE: the last
// Date, Subject, In-Reply-To and Message-ID win, and repeated address fields are concatenated.
MimeEnvelope build_envelope(const HeaderFields& fields, FieldDecoder& decoder) {
  auto addresses = [&](std::string_view name) {
    std::vector<MimeAddress> out;
    for (std::string_view value : fields.all(name)) decoder.append_addresses(value, out);
    return out;
  };
  MimeEnvelope env;
  env.date = fields.last_value("date");
  env.subject = fields.last_value("subject");
  env.from = addresses("from");
  env.sender = addresses("sender");
  env.reply_to = addresses("reply-to");
  env.to = addresses("to");
  env.cc = addresses("cc");
  env.bcc = addresses("bcc");
  env.in_reply_to = fields.last_value("in-reply-to");
  env.message_id = fields.last_value("message-id");
  // RFC 3501 7.4.2: an absent or empty Sender / Reply-To is reported as From.
  if (env.sender.empty()) env.sender = env.from;
  if (env.reply_to.empty()) env.reply_to = env.from;
  return env;
}

// ---------------------------------------------------------------------------------------
// The structural scan. Written by hand because GMime's parser does not report the byte
// offsets of each part's header and body, which FETCH BODY[n] and BODYSTRUCTURE sizes need
// exactly. It follows Dovecot's lib-mail message parser so that sizes and line counts match
// what clients already cached from Dovecot: boundaries match as line prefixes (longest
// wins, innermost on a tie), the line break before a delimiter belongs to the delimiter, and
// a delimiter of an enclosing multipart ends every part nested inside it.

// A delimiter line ("--boundary" or "--boundary--") that ended the scan of a region.
struct Delimiter {
  size_t level = 0;     // index in the boundary stack of the multipart it belongs to
  bool close = false;   // "--boundary--": the last delimiter of that multipart
  size_t next = 0;      // first byte after the delimiter line
  bool has_lf = false;  // the delimiter line ends with a line break (not end of input)
  // Where the interrupted region (a body, preamble or epilogue) ends: before the line break
  // that precedes the delimiter, or at the delimiter when it is the region's first line.
  size_t region_end = 0;
};

class StructureScanner {
 public:
  StructureScanner(std::string_view raw, FieldDecoder& decoder) : raw_(raw), decoder_(decoder) {}

  // Parses the entity (header and body) that starts at `start`, a line start, into `part`,
  // and its header fields into `fields`. Returns the delimiter of an enclosing multipart that
  // ended it, or nullopt when it ran to the end of the input.
  std::optional<Delimiter> parse_entity(size_t start, int depth, bool in_digest, MimePart& part,
                                        HeaderFields& fields) {
    part.header_offset = start;
    size_t body_offset = start;
    std::optional<Delimiter> ended_by = scan_header(start, fields, body_offset);
    part.body_offset = body_offset;
    apply_content_fields(fields, in_digest, part);

    const bool header_cut = ended_by.has_value();  // a delimiter inside the header: no body
    const std::string_view boundary = boundary_of(part);
    if (header_cut) {
      set_body_end(part, part.body_offset, 0);
    } else if (depth < kMaxDepth && part.type == "multipart" && !boundary.empty()) {
      ended_by = parse_multipart_body(part, depth, boundary);
    } else if (depth < kMaxDepth && is_message(part)) {
      ended_by = parse_message_body(part, depth);
    } else {
      ended_by = find_delimiter(part.body_offset);
      const size_t end = ended_by ? ended_by->region_end : raw_.size();
      set_body_end(part, end, count_lf(raw_, part.body_offset, end));
    }

    // IMAP's grammar needs at least one part in a multipart, and an envelope and a body in a
    // message/rfc822. Containers that were cut short, had no boundary or no parts, or sit
    // below the nesting limit get what Dovecot shows for them: one empty text/plain part.
    if (part.type == "multipart" && part.children.empty()) {
      part.children.push_back(empty_part(part.body_offset));
    } else if (is_message(part) && part.children.empty()) {
      part.children.push_back(empty_part(part.body_offset));
      part.envelope = MimeEnvelope{};
    }
    return ended_by;
  }

 private:
  void set_body_end(MimePart& part, size_t end, uint64_t lines) {
    part.body_size = end - part.body_offset;
    part.body_lines = lines;
  }

  static std::string_view boundary_of(const MimePart& part) {
    for (const auto& [name, value] : part.params) {
      if (name == "boundary") return value;
    }
    return {};
  }

  // message/rfc822 and its RFC 6532 twin message/global. Parsed as a message whatever the
  // Content-Transfer-Encoding, as Dovecot does: a (rare, invalid) base64 body then yields an
  // empty-looking message instead of a BODYSTRUCTURE without the envelope IMAP requires.
  static bool is_message(const MimePart& part) {
    return part.type == "message" && (part.subtype == "rfc822" || part.subtype == "global");
  }

  static MimePart empty_part(size_t offset) {
    MimePart part;
    part.params.emplace_back("charset", "us-ascii");
    part.header_offset = offset;
    part.body_offset = offset;
    return part;
  }

  // The delimiter on the line at `line_start`, if that line is one.
  std::optional<Delimiter> match_delimiter(size_t line_start) const {
    if (boundaries_.empty() || raw_.size() - line_start < 2 || raw_[line_start] != '-' ||
        raw_[line_start + 1] != '-') {
      return std::nullopt;
    }
    const size_t next = next_line(raw_, line_start);
    const bool has_lf = raw_[next - 1] == '\n';
    const std::string_view text =
        raw_.substr(line_start + 2, next - (has_lf ? 1 : 0) - (line_start + 2));
    // MIME only requires the boundary to be a prefix of the line, so a shorter boundary can
    // match a longer one's line: take the longest match, the innermost on a tie.
    std::optional<size_t> best;
    for (size_t i = boundaries_.size(); i-- > 0;) {
      const std::string& b = boundaries_[i];
      if (text.starts_with(b) && (!best || b.size() > boundaries_[*best].size())) best = i;
    }
    if (!best) return std::nullopt;
    Delimiter d;
    d.level = *best;
    d.close = text.substr(boundaries_[*best].size()).starts_with("--");
    d.next = next;
    d.has_lf = has_lf;
    return d;
  }

  // The first delimiter line at or after `region_start` (a line start), or nullopt.
  std::optional<Delimiter> find_delimiter(size_t region_start) const {
    if (boundaries_.empty()) return std::nullopt;
    for (size_t pos = region_start; pos < raw_.size(); pos = next_line(raw_, pos)) {
      std::optional<Delimiter> d = match_delimiter(pos);
      if (!d) continue;
      d->region_end = pos;
      if (pos > region_start) {
        d->region_end = pos - 1;  // the LF ending the previous line
        if (d->region_end > region_start && raw_[d->region_end - 1] == '\r') --d->region_end;
      }
      return d;
    }
    return std::nullopt;
  }

  // Reads header lines from `start` up to the blank line, the end of input, or a delimiter
  // of an enclosing multipart. Sets `body_offset` and returns that delimiter if there was one.
  std::optional<Delimiter> scan_header(size_t start, HeaderFields& fields, size_t& body_offset) {
    size_t field_start = std::string_view::npos;
    auto flush = [&](size_t end) {
      if (field_start != std::string_view::npos) {
        fields.add(raw_.substr(field_start, end - field_start));
      }
      field_start = std::string_view::npos;
    };
    for (size_t pos = start; pos < raw_.size();) {
      const size_t next = next_line(raw_, pos);
      const char c = raw_[pos];
      if (c == '\n' || (c == '\r' && pos + 1 < raw_.size() && raw_[pos + 1] == '\n')) {
        flush(pos);
        body_offset = next;
        return std::nullopt;
      }
      if (std::optional<Delimiter> d = match_delimiter(pos)) {
        flush(pos);
        // As Dovecot: the line break before the delimiter leaves the header (it belongs to
        // the delimiter), the body is empty, and the enclosing parts end at the delimiter.
        body_offset = pos;
        if (pos > start) {
          body_offset = pos - 1;
          if (body_offset > start && raw_[body_offset - 1] == '\r') --body_offset;
        }
        d->region_end = pos;
        return d;
      }
      // A line that does not start with whitespace starts a new field; a continuation line
      // with nothing to continue is kept on its own (it can never match a field name).
      if (!is_wsp(c) || field_start == std::string_view::npos) {
        flush(pos);
        field_start = pos;
      }
      pos = next;
    }
    flush(raw_.size());
    body_offset = raw_.size();  // no blank line: everything is header, the body is empty
    return std::nullopt;
  }

  void apply_content_fields(const HeaderFields& fields, bool in_digest, MimePart& part) {
    std::optional<FieldDecoder::ContentType> ct;
    if (const std::string* v = fields.first("content-type")) ct = decoder_.content_type(*v);
    if (ct) {
      part.type = std::move(ct->type);
      part.subtype = std::move(ct->subtype);
      part.params = std::move(ct->params);
    } else if (in_digest) {  // RFC 2046 5.1.5
      part.type = "message";
      part.subtype = "rfc822";
    } else {  // RFC 2045 5.2
      part.type = "text";
      part.subtype = "plain";
    }
    // Like Dovecot: every text part reports a charset, us-ascii when the header names none.
    if (part.type == "text" && std::none_of(part.params.begin(), part.params.end(),
                                            [](const auto& p) { return p.first == "charset"; })) {
      part.params.emplace_back("charset", "us-ascii");
    }

    if (const std::string* v = fields.first("content-transfer-encoding")) {
      // The mechanism is one token; anything after it (comments, junk) is ignored.
      const size_t end = v->find_first_of(" \t;(");
      const std::string token = to_lower(std::string_view(*v).substr(0, end));
      if (!token.empty()) part.encoding = token;
    }
    part.id = fields.first_value("content-id");
    part.description = fields.first_value("content-description");
    part.md5 = fields.first_value("content-md5");
    part.language = fields.first_value("content-language");
    part.location = fields.first_value("content-location");
    if (const std::string* v = fields.first("content-disposition")) {
      if (std::optional<FieldDecoder::Disposition> d = decoder_.disposition(*v)) {
        part.disposition = std::move(d->value);
        part.disposition_params = std::move(d->params);
      }
    }
  }

  std::optional<Delimiter> parse_multipart_body(MimePart& part, int depth,
                                                std::string_view boundary) {
    boundaries_.emplace_back(boundary);
    const size_t level = boundaries_.size() - 1;
    const bool digest = part.subtype == "digest";

    // Lines are summed from the children so that each byte is counted once, not once per
    // nesting level. `counted` is the offset up to which lines are in `lines`.
    uint64_t lines = 0;
    size_t counted = part.body_offset;
    size_t end = raw_.size();
    std::optional<Delimiter> ended_by;

    std::optional<Delimiter> d = find_delimiter(part.body_offset);  // skips the preamble
    while (d) {
      if (d->level < level) {  // an enclosing multipart's delimiter: we end too
        ended_by = d;
        end = d->region_end;
        break;
      }
      if (d->close) {
        // The epilogue runs to an enclosing multipart's delimiter or the end of input.
        boundaries_.resize(level);
        ended_by = find_delimiter(d->next);
        end = ended_by ? ended_by->region_end : raw_.size();
        break;
      }
      if (!d->has_lf) break;  // "--boundary" at the very end starts no part (as Dovecot)

      MimePart child;
      HeaderFields child_fields;
      std::optional<Delimiter> next = parse_entity(d->next, depth + 1, digest, child, child_fields);
      lines += count_lf(raw_, counted, child.body_offset) + child.body_lines;
      counted = child.body_offset + child.body_size;
      part.children.push_back(std::move(child));
      d = next;
    }
    boundaries_.resize(level);
    set_body_end(part, end, lines + count_lf(raw_, counted, end));
    return ended_by;
  }

  std::optional<Delimiter> parse_message_body(MimePart& part, int depth) {
    MimePart child;
    HeaderFields child_fields;
    const std::optional<Delimiter> ended_by =
        parse_entity(part.body_offset, depth + 1, /*in_digest=*/false, child, child_fields);
    const size_t end = ended_by ? ended_by->region_end : raw_.size();
    const size_t child_end = child.body_offset + child.body_size;
    set_body_end(part, end,
                 count_lf(raw_, part.body_offset, child.body_offset) + child.body_lines +
                     count_lf(raw_, child_end, end));
    part.envelope = build_envelope(child_fields, decoder_);
    part.children.push_back(std::move(child));
    return ended_by;
  }

  std::string_view raw_;
  FieldDecoder& decoder_;
  std::vector<std::string> boundaries_;  // boundaries of the enclosing multiparts, outermost first
};

// ---------------------------------------------------------------------------------------
// Serialized form (docs/formats/parse-cache.md):
//   "MKPC" | version u8 | payload length (varint) | payload | checksum of everything before:
//   version 2 (written): CRC-32C, 4 bytes little-endian; version 1 (still read): the first 8
//   bytes of SHA-256. The payload is the same in both. SHA-256 cost an eighth of an IMAP
//   FETCH of ENVELOPE and BODYSTRUCTURE, which checks one record per message; the record is
//   derived data, and CRC-32C is what catches accidental damage.

constexpr std::string_view kMagic = "MKPC";
constexpr uint8_t kFormatVersion = 2;
constexpr uint8_t kSha256Version = 1;
constexpr size_t kSha256ChecksumSize = 8;
constexpr size_t kCrcChecksumSize = 4;
// Deeper part trees are rejected; parse_message never produces more than kMaxDepth + 1.
constexpr int kMaxSerializedDepth = 128;
// Bytes of the smallest serialized part: eleven strings, options and lists that are empty or
// absent, four varints, the child count and the envelope flag.
constexpr uint64_t kMinSerializedPart = 17;

std::string checksum(uint8_t version, std::string_view bytes) {
  if (version == kSha256Version) {
    const Digest digest = sha256(bytes);
    return std::string(reinterpret_cast<const char*>(digest.data()), kSha256ChecksumSize);
  }
  const uint32_t crc = crc32c(bytes);
  std::string out(kCrcChecksumSize, '\0');
  for (size_t i = 0; i < kCrcChecksumSize; ++i) out[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return out;
}

class Writer {
 public:
  std::string& out() { return out_; }

  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void signed_varint(int64_t v) {  // zigzag
    varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void bytes(std::string_view s) {
    varint(s.size());
    out_.append(s);
  }
  void optional_bytes(const std::optional<std::string>& s) {
    out_.push_back(s ? 1 : 0);
    if (s) bytes(*s);
  }
  void params(const MimeParams& params) {
    varint(params.size());
    for (const auto& [name, value] : params) {
      bytes(name);
      bytes(value);
    }
  }
  void addresses(const std::vector<MimeAddress>& list) {
    varint(list.size());
    for (const MimeAddress& a : list) {
      optional_bytes(a.name);
      optional_bytes(a.adl);
      optional_bytes(a.mailbox);
      optional_bytes(a.host);
    }
  }
  void envelope(const MimeEnvelope& e) {
    optional_bytes(e.date);
    optional_bytes(e.subject);
    for (const auto* list : {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc}) {
      addresses(*list);
    }
    optional_bytes(e.in_reply_to);
    optional_bytes(e.message_id);
  }
  void part(const MimePart& p) {
    bytes(p.type);
    bytes(p.subtype);
    params(p.params);
    optional_bytes(p.id);
    optional_bytes(p.description);
    bytes(p.encoding);
    optional_bytes(p.md5);
    optional_bytes(p.language);
    optional_bytes(p.location);
    optional_bytes(p.disposition);
    params(p.disposition_params);
    varint(p.header_offset);
    varint(p.body_offset);
    varint(p.body_size);
    varint(p.body_lines);
    varint(p.children.size());
    for (const MimePart& child : p.children) part(child);
    out_.push_back(p.envelope ? 1 : 0);
    if (p.envelope) envelope(*p.envelope);
  }
  void message_info(const MessageInfo& info) {
    envelope(info.envelope);
    part(info.body);
    varint(info.header_size);
    bytes(info.header);
    bytes(info.subject_text);
    signed_varint(info.date_ms);
  }

 private:
  std::string out_;
};

// Reads what Writer wrote. Every method returns false on malformed or truncated input and
// never reads past the end; element counts are checked against the bytes left, so garbage
// cannot make it allocate or loop much.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool at_end() const { return pos_ == in_.size(); }
  size_t left() const { return in_.size() - pos_; }

  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return false;
      const uint8_t byte = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && byte > 1) return false;  // more than 64 bits
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool signed_varint(int64_t& v) {
    uint64_t u = 0;
    if (!varint(u)) return false;
    v = static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
    return true;
  }
  bool count(uint64_t& n) { return varint(n) && n <= left(); }
  bool bytes(std::string& s) {
    uint64_t n = 0;
    if (!count(n)) return false;
    s.assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool flag(bool& present) {
    if (pos_ >= in_.size()) return false;
    const char c = in_[pos_++];
    if (c != 0 && c != 1) return false;
    present = c == 1;
    return true;
  }
  bool optional_bytes(std::optional<std::string>& s) {
    bool present = false;
    if (!flag(present)) return false;
    if (!present) {
      s.reset();
      return true;
    }
    if (!s) s.emplace();
    return bytes(*s);
  }
  bool params(MimeParams& params) {
    uint64_t n = 0;
    if (!count(n)) return false;
    // Sized up front (reusing what a previous record left), so the count is first held to
    // what the bytes left can encode: a pair takes at least two.
    if (n > left() / 2) return false;
    params.resize(n);
    for (auto& [name, value] : params) {
      if (!bytes(name) || !bytes(value)) return false;
    }
    return true;
  }
  bool addresses(std::vector<MimeAddress>& list) {
    uint64_t n = 0;
    if (!count(n)) return false;
    if (n > left() / 4) return false;  // four flags at least per address
    list.resize(n);
    for (MimeAddress& a : list) {
      if (!optional_bytes(a.name) || !optional_bytes(a.adl) || !optional_bytes(a.mailbox) ||
          !optional_bytes(a.host)) {
        return false;
      }
    }
    return true;
  }
  bool envelope(MimeEnvelope& e) {
    if (!optional_bytes(e.date) || !optional_bytes(e.subject)) return false;
    for (auto* list : {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc}) {
      if (!addresses(*list)) return false;
    }
    return optional_bytes(e.in_reply_to) && optional_bytes(e.message_id);
  }
  bool part(MimePart& p, int depth) {
    if (depth > kMaxSerializedDepth) return false;
    if (!bytes(p.type) || !bytes(p.subtype) || !params(p.params) || !optional_bytes(p.id) ||
        !optional_bytes(p.description) || !bytes(p.encoding) || !optional_bytes(p.md5) ||
        !optional_bytes(p.language) || !optional_bytes(p.location) ||
        !optional_bytes(p.disposition) || !params(p.disposition_params) ||
        !varint(p.header_offset) || !varint(p.body_offset) || !varint(p.body_size) ||
        !varint(p.body_lines)) {
      return false;
    }
    uint64_t n = 0;
    if (!count(n)) return false;
    if (n > left() / kMinSerializedPart) return false;
    p.children.resize(n);
    for (MimePart& child : p.children) {
      if (!part(child, depth + 1)) return false;
    }
    bool has_envelope = false;
    if (!flag(has_envelope)) return false;
    if (!has_envelope) {
      p.envelope.reset();
      return true;
    }
    if (!p.envelope) p.envelope.emplace();
    return envelope(*p.envelope);
  }
  bool message_info(MessageInfo& info) {
    return envelope(info.envelope) && part(info.body, 0) && varint(info.header_size) &&
           bytes(info.header) && bytes(info.subject_text) && signed_varint(info.date_ms);
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

std::optional<std::string> convert_to_utf8(std::string_view charset, std::string_view bytes) {
  std::string out;
  if (!thread_converters().to_utf8(to_lower(charset), bytes, out)) return std::nullopt;
  return out;
}

std::string make_valid_utf8(std::string s) {
  if (is_ascii(s) || valid_utf8(s)) return s;
  GText valid(g_utf8_make_valid(s.data(), static_cast<gssize>(s.size())));
  return std::string(valid.get());
}

std::optional<std::string> decode_header_text(std::string_view text) {
  if (auto simple = decode_simple_header_text(text)) return simple;
  init_gmime_once();
  const std::string value(text);
  GText decoded(g_mime_utils_header_decode_text(nullptr, value.c_str()));
  if (!decoded) return std::nullopt;
  return std::string(decoded.get());
}

MessageInfo parse_message(std::string_view raw) {
  MessageInfo info;
  FieldDecoder decoder;
  StructureScanner scanner(raw, decoder);
  HeaderFields fields;
  // Nothing encloses the top-level entity, so it always runs to the end of the input.
  (void)scanner.parse_entity(0, 0, /*in_digest=*/false, info.body, fields);
  info.envelope = build_envelope(fields, decoder);
  info.header_size = info.body.body_offset;
  info.header = std::string(raw.substr(0, info.header_size));
  if (info.envelope.subject) info.subject_text = decoder.decode_text(*info.envelope.subject);
  if (info.envelope.date) info.date_ms = decoder.date_ms(*info.envelope.date);
  return info;
}

std::string serialize_message_info(const MessageInfo& info) {
  Writer payload;
  payload.message_info(info);
  Writer out;
  out.out().append(kMagic);
  out.out().push_back(static_cast<char>(kFormatVersion));
  out.bytes(payload.out());
  out.out().append(checksum(kFormatVersion, out.out()));
  return std::move(out.out());
}

Status deserialize_message_info(std::string_view bytes, MessageInfo& into) {
  if (bytes.size() < kMagic.size() + 1 + 1 + kCrcChecksumSize) {
    return corrupt("parse cache: truncated record");
  }
  if (bytes.substr(0, kMagic.size()) != kMagic) return corrupt("parse cache: bad magic");
  const uint8_t version = static_cast<uint8_t>(bytes[kMagic.size()]);
  if (version != kFormatVersion && version != kSha256Version) {
    return corrupt("parse cache: unsupported version " + std::to_string(version));
  }
  const size_t checksum_size = version == kSha256Version ? kSha256ChecksumSize : kCrcChecksumSize;
  if (bytes.size() < kMagic.size() + 1 + 1 + checksum_size) {
    return corrupt("parse cache: truncated record");
  }
  const std::string_view body = bytes.substr(0, bytes.size() - checksum_size);
  Reader framing(body.substr(kMagic.size() + 1));
  uint64_t payload_size = 0;
  if (!framing.varint(payload_size) || payload_size != framing.left()) {
    return corrupt("parse cache: length does not match record size");
  }
  if (checksum(version, body) != bytes.substr(body.size())) {
    return corrupt("parse cache: checksum mismatch");
  }
  Reader reader(body.substr(body.size() - payload_size));
  if (!reader.message_info(into)) return corrupt("parse cache: malformed payload");
  if (!reader.at_end()) return corrupt("parse cache: trailing bytes in payload");
  return Status::ok();
}

Result<MessageInfo> deserialize_message_info(std::string_view bytes) {
  MessageInfo info;
  MK_RETURN_IF_ERROR(deserialize_message_info(bytes, info));
  return info;
}

}  // namespace mailark
