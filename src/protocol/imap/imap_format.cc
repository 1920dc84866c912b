// FETCH ENVELOPE / BODY / BODYSTRUCTURE writers and BODY[section]<partial> extraction
// (imap_format.h). Choices follow what Dovecot 2.3 sends, so clients migrating from it see the
// same answers (checked byte for byte over IMAP). Differences that come from the parse cache
// are in docs/formats/parse-cache.md; those made here, deliberately:
// - Strings are quoted unless they need a literal (8-bit, CR, LF); Dovecot also sends a
//   literal for values that were folded or hold '"' or '\'. Same value, other form.
// - Content-Language tags separated only by blanks ("en de") are all kept; Dovecot stops at
//   the first such tag.
// - HEADER.FIELDS[.NOT] always ends with a line break and the blank line, even when the
//   message's header has no blank line (Dovecot then omits it for .NOT, and sometimes for
//   HEADER.FIELDS, depending on its cache state).
// - Section specs and partials follow the RFC 3501 grammar strictly: BAD for part 0, leading
//   zeros, "<n>" without a count, a zero count, doubled spaces, '%'/'*' in field names
//   (Dovecot accepts these and answers an empty string or the remainder).
#include "protocol/imap/imap_format.h"

#include <gmime/gmime.h>

#include <charconv>

#include "protocol/imap/imap_parser.h"

namespace mailark::imap {
namespace {

char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

bool is_message(const MimePart& part) {
  return part.type == "message" && (part.subtype == "rfc822" || part.subtype == "global");
}

// ---------------------------------------------------------------------------------------
// ENVELOPE, BODY, BODYSTRUCTURE

void append_addresses(std::string& out, const std::vector<MimeAddress>& list) {
  if (list.empty()) {
    out += "NIL";
    return;
  }
  out += '(';
  for (const MimeAddress& a : list) {
    out += '(';
    append_nstring(out, a.name);
    out += ' ';
    append_nstring(out, a.adl);
    out += ' ';
    append_nstring(out, a.mailbox);
    out += ' ';
    append_nstring(out, a.host);
    out += ')';
  }
  out += ')';
}

void append_envelope(std::string& out, const MimeEnvelope& e) {
  out += '(';
  append_nstring(out, e.date);
  out += ' ';
  append_nstring(out, e.subject);
  for (const auto* list : {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc}) {
    out += ' ';
    append_addresses(out, *list);
  }
  out += ' ';
  append_nstring(out, e.in_reply_to);
  out += ' ';
  append_nstring(out, e.message_id);
  out += ')';
}

void append_params(std::string& out, const MimeParams& params) {
  if (params.empty()) {
    out += "NIL";
    return;
  }
  out += '(';
  bool first = true;
  for (const auto& [name, value] : params) {
    if (!first) out += ' ';
    first = false;
    append_quoted(out, name);
    out += ' ';
    append_quoted(out, value);
  }
  out += ')';
}

void append_disposition(std::string& out, const MimePart& part) {
  if (!part.disposition) {
    out += "NIL";
    return;
  }
  out += '(';
  append_quoted(out, *part.disposition);
  out += ' ';
  append_params(out, part.disposition_params);
  out += ')';
}

// Content-Language (RFC 3282) is a comma-separated list of tags with optional comments. The
// cache keeps the raw value; IMAP wants the tags. Dovecot always sends a list, even of one, and
// NIL when no tag is left, so we do too.
void append_language(std::string& out, const std::optional<std::string>& language) {
  std::vector<std::string_view> tags;
  if (language) {
    const std::string_view v = *language;
    int comment_depth = 0;
    size_t start = std::string_view::npos;
    auto end_tag = [&](size_t end) {
      if (start != std::string_view::npos) tags.push_back(v.substr(start, end - start));
      start = std::string_view::npos;
    };
    for (size_t i = 0; i < v.size(); ++i) {
      const char c = v[i];
      if (comment_depth > 0) {
        if (c == '\\' && i + 1 < v.size()) {
          ++i;
        } else if (c == '(') {
          ++comment_depth;
        } else if (c == ')') {
          --comment_depth;
        }
      } else if (c == '(') {
        end_tag(i);
        comment_depth = 1;
      } else if (c == ',' || is_wsp(c) || c == '\r' || c == '\n') {
        end_tag(i);
      } else if (start == std::string_view::npos) {
        start = i;
      }
    }
    end_tag(v.size());
  }
  if (tags.empty()) {
    out += "NIL";
    return;
  }
  out += '(';
  for (size_t i = 0; i < tags.size(); ++i) {
    if (i) out += ' ';
    append_quoted(out, tags[i]);
  }
  out += ')';
}

// IMAP's grammar needs a body in every multipart and an envelope and a body in every
// message/rfc822. The parser guarantees both; a record that lacks them anyway (hand-built or
// from another parser version) still yields a well-formed response with this placeholder.
const MimePart& empty_text_part() {
  static const MimePart part = [] {
    MimePart p;
    p.params.emplace_back("charset", "us-ascii");
    return p;
  }();
  return part;
}

void append_body(std::string& out, const MimePart& part, bool extensible) {
  out += '(';
  if (part.type == "multipart") {
    // body-type-mpart: the parts follow each other without a separator.
    if (part.children.empty()) {
      append_body(out, empty_text_part(), extensible);
    }
    for (const MimePart& child : part.children) append_body(out, child, extensible);
    out += ' ';
    append_quoted(out, part.subtype);
    if (extensible) {
      out += ' ';
      append_params(out, part.params);
      out += ' ';
      append_disposition(out, part);
      out += ' ';
      append_language(out, part.language);
      out += ' ';
      append_nstring(out, part.location);
    }
    out += ')';
    return;
  }

  append_quoted(out, part.type);
  out += ' ';
  append_quoted(out, part.subtype);
  out += ' ';
  append_params(out, part.params);
  out += ' ';
  append_nstring(out, part.id);
  out += ' ';
  append_nstring(out, part.description);
  out += ' ';
  append_quoted(out, part.encoding);
  out += ' ';
  out += std::to_string(part.body_size);
  if (is_message(part)) {
    out += ' ';
    append_envelope(out, part.envelope ? *part.envelope : MimeEnvelope{});
    out += ' ';
    append_body(out, part.children.empty() ? empty_text_part() : part.children.front(), extensible);
    out += ' ';
    out += std::to_string(part.body_lines);
  } else if (part.type == "text") {
    out += ' ';
    out += std::to_string(part.body_lines);
  }
  if (extensible) {
    out += ' ';
    append_nstring(out, part.md5);
    out += ' ';
    append_disposition(out, part);
    out += ' ';
    append_language(out, part.language);
    out += ' ';
    append_nstring(out, part.location);
  }
  out += ')';
}

// ---------------------------------------------------------------------------------------
// Section specs

// astring characters that may appear unquoted in a header-list (ATOM-CHAR, RFC 3501 9).
bool is_field_atom_char(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '%':
    case '*':
    case '"':
    case '\\':
    case ']':
      return false;
    default:
      return true;
  }
}

// header-list = "(" header-fld-name *(SP header-fld-name) ")", header-fld-name = astring.
// Literals cannot occur: the command tokenizer keeps a section inside one line.
Status parse_field_list(std::string_view text, Section& section) {
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') {
    return invalid("header list must be parenthesized");
  }
  size_t pos = 1;
  const size_t end = text.size() - 1;
  while (true) {
    std::string name;
    bool was_quoted = false;
    if (pos < end && text[pos] == '"') {
      was_quoted = true;
      ++pos;
      bool closed = false;
      while (pos < end) {
        char c = text[pos++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (pos >= end || (text[pos] != '"' && text[pos] != '\\')) {
            return invalid("invalid escape in header field name");
          }
          c = text[pos++];
        }
        if (c == '\r' || c == '\n' || c == '\0') return invalid("invalid header field name");
        name += c;
      }
      if (!closed) return invalid("unterminated header field name");
    } else {
      const size_t start = pos;
      while (pos < end && is_field_atom_char(text[pos])) ++pos;
      if (pos == start) return invalid("missing header field name");
      name.assign(text.substr(start, pos - start));
    }
    section.fields.push_back(to_upper(name));
    section.quoted.push_back(was_quoted);
    if (pos == end) return Status::ok();
    if (text[pos] != ' ') return invalid("expected a space between header field names");
    ++pos;
  }
}

// ---------------------------------------------------------------------------------------
// Extraction

// Walks a part path as Dovecot does (RFC 3501 6.4.5 leaves the corners open): a multipart
// selects its n-th child; any other part only has part 1, which is itself, and may be
// followed by more numbers only when it is a message/rfc822, whose numbers then address the
// encapsulated message. So on a single-part message "1" is its body and "1.1" does not exist,
// while "2.1" of a message/rfc822 part 2 is the encapsulated message's (first) body.
const MimePart* find_part(const MimePart& top, const std::vector<uint32_t>& path) {
  const MimePart* part = &top;
  for (size_t i = 0; i < path.size(); ++i) {
    const uint32_t n = path[i];
    const bool last = i + 1 == path.size();
    if (part->type == "multipart") {
      if (n == 0 || n > part->children.size()) return nullptr;
      part = &part->children[n - 1];
    } else if (n != 1 || (!last && !is_message(*part))) {
      return nullptr;
    }
    if (!last && is_message(*part)) {
      if (part->children.empty()) return nullptr;
      part = &part->children.front();
    }
  }
  return part;
}

// One field of a header block: its raw bytes including continuation lines and line ends.
struct RawField {
  std::string_view name;  // before the colon, trailing blanks removed; empty when none
  std::string_view bytes;
};

// Splits a header block (which may or may not end with its blank line) into fields. A line
// without a colon, and a continuation line with nothing before it, form entries without a
// name: no HEADER.FIELDS list matches them and HEADER.FIELDS.NOT keeps them (as Dovecot).
std::vector<RawField> split_fields(std::string_view header) {
  std::vector<RawField> fields;
  size_t pos = 0;
  while (pos < header.size()) {
    const char c = header[pos];
    if (c == '\n' || (c == '\r' && pos + 1 < header.size() && header[pos + 1] == '\n')) break;
    const size_t start = pos;
    // The field ends before the next line that does not start with a blank.
    do {
      const size_t lf = header.find('\n', pos);
      pos = lf == std::string_view::npos ? header.size() : lf + 1;
    } while (pos < header.size() && is_wsp(header[pos]));
    const std::string_view bytes = header.substr(start, pos - start);
    std::string_view name;
    const size_t colon = bytes.find(':');
    if (!is_wsp(c) && colon != std::string_view::npos && colon < bytes.find('\n')) {
      name = bytes.substr(0, colon);
      while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    }
    fields.push_back({name, bytes});
  }
  return fields;
}

// HEADER.FIELDS / HEADER.FIELDS.NOT of a header block: the selected fields in message order,
// folded lines as they are, then the blank line. A last field without a line end (a header
// that runs to the end of the message) gets one so the blank line stays a line of its own.
std::string select_fields(std::string_view header, const Section& section) {
  const bool exclude = section.text == Section::Text::kHeaderFieldsNot;
  std::string out;
  for (const RawField& field : split_fields(header)) {
    bool named = false;
    if (!field.name.empty()) {
      for (const std::string& wanted : section.fields) {
        if (iequals(field.name, wanted)) {
          named = true;
          break;
        }
      }
    }
    if (named == exclude) continue;
    out.append(field.bytes);
    if (field.bytes.back() != '\n') out += "\r\n";
  }
  out += "\r\n";
  return out;
}

bool is_header_text(Section::Text text) {
  return text == Section::Text::kHeader || text == Section::Text::kHeaderFields ||
         text == Section::Text::kHeaderFieldsNot;
}

}  // namespace

std::string format_envelope(const MimeEnvelope& envelope) {
  std::string out;
  append_envelope(out, envelope);
  return out;
}

void format_envelope_to(std::string& out, const MimeEnvelope& envelope) {
  append_envelope(out, envelope);
}

std::string format_bodystructure(const MimePart& part, bool extensible) {
  std::string out;
  append_body(out, part, extensible);
  return out;
}

void format_bodystructure_to(std::string& out, const MimePart& part, bool extensible) {
  append_body(out, part, extensible);
}

Result<Section> parse_section(std::string_view spec) {
  Section section;
  size_t pos = 0;
  // section-part = nz-number *("." nz-number), then optionally "." section-text.
  while (pos < spec.size() && is_digit(spec[pos])) {
    if (spec[pos] == '0') return invalid("part numbers start at 1");
    const size_t start = pos;
    while (pos < spec.size() && is_digit(spec[pos])) ++pos;
    uint32_t n = 0;
    const auto [ptr, ec] = std::from_chars(spec.data() + start, spec.data() + pos, n);
    if (ec != std::errc() || ptr != spec.data() + pos) return invalid("part number too large");
    section.part.push_back(n);
    if (pos == spec.size()) return section;
    if (spec[pos] != '.' || pos + 1 == spec.size()) return invalid("invalid section");
    ++pos;
  }

  const std::string_view rest = spec.substr(pos);
  if (rest.empty()) return section;  // "": the whole message
  if (iequals(rest, "HEADER")) {
    section.text = Section::Text::kHeader;
  } else if (iequals(rest, "TEXT")) {
    section.text = Section::Text::kText;
  } else if (iequals(rest, "MIME")) {
    if (section.part.empty()) return invalid("MIME needs a part number");
    section.text = Section::Text::kMime;
  } else if (starts_with_nocase(rest, "HEADER.FIELDS.NOT ")) {
    section.text = Section::Text::kHeaderFieldsNot;
    MK_RETURN_IF_ERROR(parse_field_list(rest.substr(18), section));
  } else if (starts_with_nocase(rest, "HEADER.FIELDS ")) {
    section.text = Section::Text::kHeaderFields;
    MK_RETURN_IF_ERROR(parse_field_list(rest.substr(14), section));
  } else {
    return invalid("invalid section");
  }
  return section;
}

std::string section_name(const Section& section) {
  std::string out;
  for (uint32_t n : section.part) {
    if (!out.empty()) out += '.';
    out += std::to_string(n);
  }
  const char* text = nullptr;
  switch (section.text) {
    case Section::Text::kNone:
      return out;
    case Section::Text::kHeader:
      text = "HEADER";
      break;
    case Section::Text::kHeaderFields:
      text = "HEADER.FIELDS";
      break;
    case Section::Text::kHeaderFieldsNot:
      text = "HEADER.FIELDS.NOT";
      break;
    case Section::Text::kText:
      text = "TEXT";
      break;
    case Section::Text::kMime:
      text = "MIME";
      break;
  }
  if (!out.empty()) out += '.';
  out += text;
  if (section.text == Section::Text::kHeaderFields ||
      section.text == Section::Text::kHeaderFieldsNot) {
    out += " (";
    for (size_t i = 0; i < section.fields.size(); ++i) {
      if (i) out += ' ';
      const std::string& name = section.fields[i];
      bool atom = !name.empty();
      for (char c : name) atom = atom && is_field_atom_char(c);
      const bool was_quoted = i < section.quoted.size() && section.quoted[i];
      out += (atom && !was_quoted) ? name : quote(name);
    }
    out += ')';
  }
  return out;
}

Result<std::string> extract_section(std::string_view raw, const MessageInfo& info,
                                    const Section& section) {
  // The top-level body always runs to the end of the message, so this one comparison catches
  // a cache that belongs to other bytes; the per-slice checks below catch the rest.
  if (info.body.body_offset > raw.size() ||
      info.body.body_size != raw.size() - info.body.body_offset) {
    return corrupt("parse cache does not match the message size");
  }
  auto slice = [&](uint64_t begin, uint64_t end) -> Result<std::string> {
    if (begin > end || end > raw.size()) {
      return corrupt("parse cache offsets out of range of the message");
    }
    return std::string(raw.substr(begin, end - begin));
  };

  // The message whose header/text a HEADER*/TEXT section means, as [header, body, end).
  uint64_t header_begin = 0, body_begin = info.body.body_offset, end = raw.size();
  if (!section.part.empty()) {
    const MimePart* part = find_part(info.body, section.part);
    if (!part) return std::string();  // as Dovecot: no such part is an empty section
    if (section.text == Section::Text::kNone) {
      return slice(part->body_offset, part->body_offset + part->body_size);
    }
    if (section.text == Section::Text::kMime) {
      return slice(part->header_offset, part->body_offset);
    }
    // HEADER and TEXT exist only for an encapsulated message (RFC 3501 6.4.5).
    if (!is_message(*part) || part->children.empty()) return std::string();
    const MimePart& inner = part->children.front();
    header_begin = inner.header_offset;
    body_begin = inner.body_offset;
    end = part->body_offset + part->body_size;
  } else if (section.text == Section::Text::kNone) {
    return std::string(raw);
  }

  switch (section.text) {
    case Section::Text::kHeader:
      return slice(header_begin, body_begin);
    case Section::Text::kHeaderFields:
    case Section::Text::kHeaderFieldsNot: {
      MK_ASSIGN_OR_RETURN(const std::string header, slice(header_begin, body_begin));
      return select_fields(header, section);
    }
    case Section::Text::kText:
      return slice(body_begin, end);
    case Section::Text::kNone:
    case Section::Text::kMime:
      break;  // handled above; MIME without a part number is refused by parse_section
  }
  return invalid("MIME needs a part number");
}

std::optional<std::string> header_section_from_cache(const MessageInfo& info,
                                                     const Section& section) {
  if (!section.part.empty() || !is_header_text(section.text)) return std::nullopt;
  if (section.text == Section::Text::kHeader) return info.header;
  return select_fields(info.header, section);
}

Result<Partial> parse_partial(std::string_view text) {
  if (text.size() < 5 || text.front() != '<' || text.back() != '>') {
    return invalid("invalid partial");
  }
  const std::string_view inside = text.substr(1, text.size() - 2);
  const size_t dot = inside.find('.');
  if (dot == std::string_view::npos) return invalid("invalid partial");
  Partial partial;
  auto number = [](std::string_view digits, uint64_t& n) {
    if (digits.empty() || digits.size() > 19) return false;
    for (char c : digits) {
      if (!is_digit(c)) return false;
    }
    std::from_chars(digits.data(), digits.data() + digits.size(), n);
    return true;
  };
  if (!number(inside.substr(0, dot), partial.origin) ||
      !number(inside.substr(dot + 1), partial.count)) {
    return invalid("invalid partial");
  }
  if (partial.count == 0) return invalid("partial count must not be zero");
  return partial;
}

std::string_view apply_partial(std::string_view bytes, const std::optional<Partial>& partial) {
  if (!partial) return bytes;
  if (partial->origin >= bytes.size()) return {};
  return bytes.substr(partial->origin, partial->count);
}

std::string body_response_name(const Section& section, const std::optional<Partial>& partial) {
  std::string out = "BODY[" + section_name(section) + "]";
  if (partial) out += "<" + std::to_string(partial->origin) + ">";
  return out;
}

Result<BodyFetch> parse_body_fetch(std::string_view attribute) {
  BodyFetch fetch;
  std::string_view rest;
  if (starts_with_nocase(attribute, "BODY.PEEK[")) {
    fetch.peek = true;
    rest = attribute.substr(10);
  } else if (starts_with_nocase(attribute, "BODY[")) {
    rest = attribute.substr(5);
  } else {
    return invalid("not a BODY[] fetch attribute");
  }
  // The partial, if any, is last; the section is everything up to the bracket before it.
  if (!rest.empty() && rest.back() == '>') {
    const size_t open = rest.rfind('<');
    if (open == std::string_view::npos) return invalid("invalid partial");
    MK_ASSIGN_OR_RETURN(fetch.partial, parse_partial(rest.substr(open)));
    rest = rest.substr(0, open);
  }
  if (rest.empty() || rest.back() != ']') return invalid("missing ']' after section");
  MK_ASSIGN_OR_RETURN(fetch.section, parse_section(rest.substr(0, rest.size() - 1)));
  return fetch;
}

Result<BinaryFetch> parse_binary_fetch(std::string_view attribute) {
  BinaryFetch fetch;
  std::string_view rest;
  if (starts_with_nocase(attribute, "BINARY.PEEK[")) {
    fetch.peek = true;
    rest = attribute.substr(12);
  } else if (starts_with_nocase(attribute, "BINARY.SIZE[")) {
    fetch.size_only = true;
    rest = attribute.substr(12);
  } else if (starts_with_nocase(attribute, "BINARY[")) {
    rest = attribute.substr(7);
  } else {
    return invalid("not a BINARY fetch attribute");
  }
  if (!rest.empty() && rest.back() == '>') {
    if (fetch.size_only) return invalid("BINARY.SIZE takes no partial");
    const size_t open = rest.rfind('<');
    if (open == std::string_view::npos) return invalid("invalid partial");
    MK_ASSIGN_OR_RETURN(fetch.partial, parse_partial(rest.substr(open)));
    rest = rest.substr(0, open);
  }
  if (rest.empty() || rest.back() != ']') return invalid("missing ']' after section");
  rest.remove_suffix(1);
  // section-binary = "[" [section-part] "]": part numbers only.
  MK_ASSIGN_OR_RETURN(Section section, parse_section(rest));
  if (section.text != Section::Text::kNone) return invalid("BINARY takes part numbers only");
  fetch.part = std::move(section.part);
  return fetch;
}

std::string binary_response_name(const BinaryFetch& fetch) {
  std::string out = fetch.size_only ? "BINARY.SIZE[" : "BINARY[";
  for (size_t i = 0; i < fetch.part.size(); ++i) {
    if (i) out += '.';
    out += std::to_string(fetch.part[i]);
  }
  out += ']';
  if (fetch.partial) out += "<" + std::to_string(fetch.partial->origin) + ">";
  return out;
}

Result<std::string> extract_binary(std::string_view raw, const MessageInfo& info,
                                   const std::vector<uint32_t>& part_path) {
  if (part_path.empty()) return std::string(raw);
  Section section;
  section.part = part_path;
  MK_ASSIGN_OR_RETURN(std::string body, extract_section(raw, info, section));
  const MimePart* part = find_part(info.body, part_path);
  if (!part) return body;
  GMimeContentEncoding encoding;
  if (part->encoding == "7bit" || part->encoding == "8bit" || part->encoding == "binary") {
    return body;
  } else if (part->encoding == "base64") {
    encoding = GMIME_CONTENT_ENCODING_BASE64;
  } else if (part->encoding == "quoted-printable") {
    encoding = GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
  } else {
    return invalid("unknown Content-Transfer-Encoding " + part->encoding);
  }
  GMimeEncoding state;
  g_mime_encoding_init_decode(&state, encoding);
  std::string out(g_mime_encoding_outlen(&state, body.size()) + 16, '\0');
  size_t n = g_mime_encoding_flush(&state, body.data(), body.size(), out.data());
  out.resize(n);
  return out;
}

}  // namespace mailark::imap
