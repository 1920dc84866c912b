// WebDAV/CalDAV/CardDAV XML bodies: expat builds the DOM, the request parsers walk it, the
// writer emits multistatus and DAV:error documents. See dav_xml.h for the contracts.
#include "protocol/dav/dav_xml.h"

#include <expat.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <type_traits>
#include <utility>

namespace mailark::dav {

namespace {

// Separates namespace URI and local name in the names expat reports. U+0001 cannot occur in
// an XML 1.0 document, not even as a character reference, so it cannot occur in a URI either.
constexpr char kNsSeparator = '\x01';
constexpr std::string_view kXmlNs = "http://www.w3.org/XML/1998/namespace";
constexpr std::string_view kXmlDecl = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
constexpr std::string_view kRootDecls =
    " xmlns:d=\"DAV:\" xmlns:cal=\"urn:ietf:params:xml:ns:caldav\""
    " xmlns:card=\"urn:ietf:params:xml:ns:carddav\" xmlns:cs=\"http://calendarserver.org/ns/\""
    " xmlns:ical=\"http://apple.com/ns/ical/\"";
// Message prefix of errors that stand for CALDAV:valid-filter (see failed_precondition).
constexpr std::string_view kValidFilter = "valid-filter: ";

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kSpace);
  return s.substr(b, e - b + 1);
}

// Length of the well-formed UTF-8 sequence (RFC 3629) starting at s[i], or 0.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (byte(k) & 0xC0) == 0x80; };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;  // overlong
    if (c == 0xED && c1 > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;  // overlong
    if (c == 0xF4 && c1 > 0x8F) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Escapes for element content, or (in_attribute) for a double-quoted attribute value, where
// tab and LF must be references too or attribute-value normalization turns them into spaces.
// Printable ASCII other than the four markup characters (and, in content, tab and LF) is
// copied as it is; calendar data is nearly all of that, so it goes in runs.
struct PlainBytes {
  bool content[256] = {};
  bool attribute[256] = {};
};

constexpr PlainBytes make_plain_bytes() {
  PlainBytes t;
  for (int c = 0x20; c < 0x7F; ++c)
    t.content[c] = t.attribute[c] = c != '&' && c != '<' && c != '>' && c != '"';
  t.content['\n'] = t.content['\t'] = true;
  return t;
}

constexpr PlainBytes kPlainBytes = make_plain_bytes();

// Whether any of the 8 bytes in `v` may need escaping: a control or non-ASCII byte, DEL, or
// one of & < > ". (Tab and LF are plain in content; the byte-wise check below lets them
// through.) Exact as a yes/no: the borrows of these SWAR tests never hide a match.
bool word_needs_look(uint64_t v) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  auto has_zero = [](uint64_t x) { return (x - kOnes) & ~x & kHigh; };
  auto has_byte = [&](unsigned char c) { return has_zero(v ^ (kOnes * c)); };
  return ((v & kHigh) | ((v - kOnes * 0x20) & ~v & kHigh) | has_byte('&') | has_byte('<') |
          has_byte('>') | has_byte('"') | has_byte(0x7F)) != 0;
}

// The end of the run of plain bytes starting at text[i]: eight at a time where the text is
// printable ASCII (calendar data is, between its CRLFs).
size_t plain_run_end(std::string_view text, size_t i, const bool* plain) {
  while (true) {
    uint64_t word;
    while (i + 8 <= text.size()) {
      std::memcpy(&word, text.data() + i, 8);
      if (word_needs_look(word)) break;
      i += 8;
    }
    if (i >= text.size() || !plain[static_cast<unsigned char>(text[i])]) return i;
    ++i;
  }
}

// Element content that is printable ASCII without markup characters, tab, LF and CR (what
// calendar data and vCards nearly always are) escapes to itself with each CR as "&#13;":
// one pass checks that and counts the CRs, a second copies the lines straight into their
// final place. False, with `out` untouched, for any other content.
bool append_plain_content(std::string& out, std::string_view text) {
  size_t crs = 0;
  auto allowed = [&crs](unsigned char c) {
    if (c == '\r') {
      ++crs;
      return true;
    }
    return kPlainBytes.content[c];
  };
  size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    if (!word_needs_look(word)) continue;
    for (size_t k = i; k < i + 8; ++k)
      if (!allowed(static_cast<unsigned char>(text[k]))) return false;
  }
  for (; i < text.size(); ++i)
    if (!allowed(static_cast<unsigned char>(text[i]))) return false;
  const size_t at = out.size();
  out.resize(at + text.size() + 4 * crs);
  char* to = out.data() + at;
  const char* from = text.data();
  const char* end = from + text.size();
  while (from < end) {
    const char* cr = static_cast<const char*>(std::memchr(from, '\r', end - from));
    const char* stop = cr ? cr : end;
    std::memcpy(to, from, stop - from);
    to += stop - from;
    if (!cr) break;
    std::memcpy(to, "&#13;", 5);
    to += 5;
    from = cr + 1;
  }
  return true;
}

void append_escaped(std::string& out, std::string_view text, bool in_attribute) {
  if (!in_attribute && append_plain_content(out, text)) return;
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  const bool* plain = in_attribute ? kPlainBytes.attribute : kPlainBytes.content;
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (plain[c]) {
      size_t run = plain_run_end(text, i + 1, plain);
      out.append(text.data() + i, run - i);
      i = run;
      continue;
    }
    size_t n = utf8_sequence_length(text, i);
    if (n == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (n == 3 && c == 0xEF && static_cast<unsigned char>(text[i + 1]) == 0xBF &&
        static_cast<unsigned char>(text[i + 2]) >= 0xBE) {  // U+FFFE, U+FFFF
      out += kReplacement;
      i += 3;
      continue;
    }
    if (n > 1) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\r':
        out += "&#13;";
        break;
      case '\t':
        out += in_attribute ? "&#9;" : "\t";
        break;
      case '\n':
        out += in_attribute ? "&#10;" : "\n";
        break;
      default:
        if (c < 0x20) {
          out += kReplacement;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

// The prefix this module always uses for a namespace, or nullptr for other namespaces.
const char* well_known_prefix(std::string_view ns) {
  if (ns == kDav) return "d";
  if (ns == kCalDav) return "cal";
  if (ns == kCardDav) return "card";
  if (ns == kCalServer) return "cs";
  if (ns == kApple) return "ical";
  if (ns == kXmlNs) return "xml";  // predeclared; must never be declared with another prefix
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// parse_xml

struct ParseState {
  XML_Parser parser = nullptr;
  const XmlLimits* limits = nullptr;
  std::vector<Element> open;  // the path from the root to the current element
  std::optional<Element> root;
  size_t elements = 0;
  Status error;  // set by a handler that stopped the parser
};

void stop(ParseState* state, Status status) {
  if (state->error.is_ok()) state->error = std::move(status);
  XML_StopParser(state->parser, XML_FALSE);
}

void split_name(const XML_Char* full, std::string& ns, std::string& local) {
  const char* sep = std::strchr(full, kNsSeparator);
  if (sep == nullptr) {
    ns.clear();
    local = full;
  } else {
    ns.assign(full, sep);
    local = sep + 1;
  }
}

void XMLCALL on_start(void* user, const XML_Char* name, const XML_Char** atts) {
  auto* state = static_cast<ParseState*>(user);
  if (!state->error.is_ok()) return;  // expat may deliver a few events after a stop
  if (++state->elements > state->limits->max_elements)
    return stop(state, too_large("too many XML elements"));
  if (state->open.size() >= static_cast<size_t>(std::max(state->limits->max_depth, 0)))
    return stop(state, invalid("XML nested too deeply"));
  Element element;
  split_name(name, element.ns, element.name);
  for (; atts[0] != nullptr; atts += 2) {
    std::string ns, local;
    split_name(atts[0], ns, local);
    element.attrs[ns.empty() ? local : "{" + ns + "}" + local] = atts[1];
  }
  if (!state->open.empty()) element.text_offset = state->open.back().text.size();
  state->open.push_back(std::move(element));
}

void XMLCALL on_end(void* user, const XML_Char*) {
  auto* state = static_cast<ParseState*>(user);
  if (!state->error.is_ok() || state->open.empty()) return;
  Element element = std::move(state->open.back());
  state->open.pop_back();
  if (state->open.empty()) {
    state->root = std::move(element);
  } else {
    state->open.back().children.push_back(std::move(element));
  }
}

void XMLCALL on_text(void* user, const XML_Char* s, int len) {
  auto* state = static_cast<ParseState*>(user);
  if (!state->error.is_ok() || state->open.empty()) return;
  state->open.back().text.append(s, static_cast<size_t>(len));
}

void XMLCALL on_doctype(void* user, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  stop(static_cast<ParseState*>(user), invalid("DOCTYPE not allowed"));
}

void XMLCALL on_entity_decl(void* user, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                            const XML_Char*, const XML_Char*, const XML_Char*) {
  stop(static_cast<ParseState*>(user), invalid("entity declarations not allowed"));
}

void XMLCALL on_xml_decl(void* user, const XML_Char*, const XML_Char* encoding, int) {
  // The parser decodes UTF-8 whatever the declaration says; refuse a claim of anything else
  // rather than misread it.
  if (encoding != nullptr && !ascii_iequals(encoding, "utf-8") &&
      !ascii_iequals(encoding, "us-ascii"))
    stop(static_cast<ParseState*>(user), invalid("XML encoding must be UTF-8"));
}

// ---------------------------------------------------------------------------------------------
// serialize

// Namespace URI -> prefix for one self-contained fragment; declared in order of first use.
// A map, not a list: a hostile document may use a fresh namespace on every element.
struct PrefixMap {
  std::map<std::string, std::string, std::less<>> prefix_of;
  std::vector<const std::pair<const std::string, std::string>*> in_order;
  int next_unknown = 0;

  void add(std::string_view ns) {
    if (ns.empty() || prefix_of.find(ns) != prefix_of.end()) return;
    const char* known = well_known_prefix(ns);
    auto [it, inserted] = prefix_of.emplace(
        std::string(ns), known != nullptr ? known : "x" + std::to_string(next_unknown++));
    in_order.push_back(&*it);
  }
};

void collect_namespaces(const Element& e, PrefixMap& map) {
  map.add(e.ns);
  for (const auto& [key, value] : e.attrs)
    if (!key.empty() && key[0] == '{') map.add(std::string_view(key).substr(1, key.find('}') - 1));
  for (const Element& child : e.children) collect_namespaces(child, map);
}

void append_qname(std::string& out, std::string_view ns, std::string_view local,
                  const PrefixMap& map) {
  if (!ns.empty()) {
    auto it = map.prefix_of.find(ns);
    assert(it != map.prefix_of.end() && "namespace not collected");
    out += it->second;
    out += ':';
  }
  out += local;
}

void append_element(std::string& out, const Element& e, const PrefixMap& map, bool declare);

void append_content(std::string& out, const Element& e, const PrefixMap* map) {
  size_t pos = 0;
  for (const Element& child : e.children) {
    size_t at = std::min(std::max(child.text_offset, pos), e.text.size());
    append_escaped(out, std::string_view(e.text).substr(pos, at - pos), false);
    pos = at;
    if (map != nullptr) {
      append_element(out, child, *map, false);
    } else {
      out += serialize(child);
    }
  }
  append_escaped(out, std::string_view(e.text).substr(pos), false);
}

void append_element(std::string& out, const Element& e, const PrefixMap& map, bool declare) {
  out += '<';
  append_qname(out, e.ns, e.name, map);
  if (declare) {
    for (const auto* decl : map.in_order) {
      if (decl->second == "xml") continue;
      out += " xmlns:" + decl->second + "=\"";
      append_escaped(out, decl->first, true);
      out += '"';
    }
  }
  for (const auto& [key, value] : e.attrs) {
    out += ' ';
    if (!key.empty() && key[0] == '{') {
      size_t close = key.find('}');
      append_qname(out, std::string_view(key).substr(1, close - 1),
                   std::string_view(key).substr(close + 1), map);
    } else {
      out += key;
    }
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
  if (e.children.empty() && e.text.empty()) {
    out += "/>";
    return;
  }
  out += '>';
  append_content(out, e, &map);
  out += "</";
  append_qname(out, e.ns, e.name, map);
  out += '>';
}

// <prefix:name xmlns:prefix="...">content</prefix:name> with this module's prefixes; the
// element declares its namespace itself when it is not one of the multistatus root's.
void append_named(std::string& out, const PropName& name, std::string_view content,
                  bool escape_content = false) {
  const char* known = well_known_prefix(name.ns);
  // Written in place, start and end tag: a multiget names two properties per resource.
  auto qname = [&] {
    if (known != nullptr) {
      out += known;
      out += ':';
    } else if (!name.ns.empty()) {
      out += "x:";
    }
    out += name.name;
  };
  out += '<';
  qname();
  if (known == nullptr && !name.ns.empty()) {
    out += " xmlns:x=\"";
    append_escaped(out, name.ns, true);
    out += '"';
  }
  if (content.empty()) {
    out += "/>";
    return;
  }
  out += '>';
  if (escape_content) {
    append_escaped(out, content, false);
  } else {
    out += content;
  }
  out += "</";
  qname();
  out += '>';
}

// ---------------------------------------------------------------------------------------------
// Request parsing helpers.

std::string clark(const PropName& n) {
  return "{" + n.ns + "}" + n.name;
}

Status wrong_root(const Element& root, std::string_view expected) {
  return invalid("expected " + std::string(expected) + " as root element, got " +
                 clark(root.prop_name()));
}

// Appends a property name once, keeping document order.
struct PropNameList {
  std::vector<PropName>* out;
  std::set<PropName> seen;
  void add(PropName name) {
    if (seen.insert(name).second) out->push_back(std::move(name));
  }
};

Result<uint32_t> parse_nresults(const Element& limit) {
  const Element* n = limit.child(limit.ns, "nresults");
  if (n == nullptr) return invalid("limit without nresults");
  std::string_view text = trim(n->text);
  if (text.empty() || text.size() > 10) return invalid("bad nresults");
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return invalid("bad nresults");
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > UINT32_MAX) return invalid("bad nresults");
  return static_cast<uint32_t>(value);
}

// time-range, expand, limit-recurrence-set, limit-freebusy-set.
Result<TimeRangeText> parse_time_range(const Element& e, bool both_required) {
  TimeRangeText range{e.attr("start"), e.attr("end")};
  if (both_required && (range.start.empty() || range.end.empty()))
    return invalid(e.name + " needs start and end");
  if (range.start.empty() && range.end.empty()) return invalid(e.name + " needs start or end");
  return range;
}

Result<std::string> required_name(const Element& e) {
  std::string name = e.attr("name");
  if (name.empty()) return invalid(e.name + " without name");
  return name;
}

Result<TextMatch> parse_text_match(const Element& e, bool carddav) {
  TextMatch m;
  m.text = e.text;
  m.collation = e.attr("collation", carddav ? "i;unicode-casemap" : "i;ascii-casemap");
  m.match_type = e.attr("match-type", "contains");
  if (m.match_type != "equals" && m.match_type != "contains" && m.match_type != "starts-with" &&
      m.match_type != "ends-with")
    return invalid("unknown match-type");
  std::string negate = e.attr("negate-condition", "no");
  if (negate != "yes" && negate != "no") return invalid("bad negate-condition");
  m.negate = negate == "yes";
  return m;
}

Result<ParamFilter> parse_param_filter(const Element& e, std::string_view ns) {
  ParamFilter f;
  MK_ASSIGN_OR_RETURN(f.name, required_name(e));
  for (const Element& c : e.children) {
    if (c.ns != ns) continue;
    if (c.name == "is-not-defined") {
      f.is_not_defined = true;
    } else if (c.name == "text-match") {
      MK_ASSIGN_OR_RETURN(f.text_match, parse_text_match(c, ns == kCardDav));
    }
  }
  return f;
}

Result<PropFilter> parse_prop_filter(const Element& e) {
  PropFilter f;
  MK_ASSIGN_OR_RETURN(f.name, required_name(e));
  for (const Element& c : e.children) {
    if (c.ns != kCalDav) continue;
    if (c.name == "is-not-defined") {
      f.is_not_defined = true;
    } else if (c.name == "time-range") {
      MK_ASSIGN_OR_RETURN(f.time_range, parse_time_range(c, false));
    } else if (c.name == "text-match") {
      MK_ASSIGN_OR_RETURN(f.text_match, parse_text_match(c, false));
    } else if (c.name == "param-filter") {
      MK_ASSIGN_OR_RETURN(ParamFilter p, parse_param_filter(c, kCalDav));
      f.params.push_back(std::move(p));
    }
  }
  return f;
}

Result<CompFilter> parse_comp_filter(const Element& e) {
  CompFilter f;
  MK_ASSIGN_OR_RETURN(f.name, required_name(e));
  for (const Element& c : e.children) {
    if (c.ns != kCalDav) continue;
    if (c.name == "is-not-defined") {
      f.is_not_defined = true;
    } else if (c.name == "time-range") {
      MK_ASSIGN_OR_RETURN(f.time_range, parse_time_range(c, false));
    } else if (c.name == "prop-filter") {
      MK_ASSIGN_OR_RETURN(PropFilter p, parse_prop_filter(c));
      f.props.push_back(std::move(p));
    } else if (c.name == "comp-filter") {
      MK_ASSIGN_OR_RETURN(CompFilter sub, parse_comp_filter(c));
      f.comps.push_back(std::move(sub));
    }
  }
  return f;
}

Result<CompFilter> parse_calendar_filter(const Element* filter) {
  if (filter == nullptr) return invalid("calendar-query without filter");
  const Element* top = nullptr;
  for (const Element& c : filter->children) {
    if (!c.is(kCalDav, "comp-filter")) continue;
    if (top != nullptr) return invalid("more than one top-level comp-filter");
    top = &c;
  }
  if (top == nullptr) return invalid("filter without comp-filter");
  MK_ASSIGN_OR_RETURN(CompFilter f, parse_comp_filter(*top));
  if (!ascii_iequals(f.name, "VCALENDAR")) return invalid("top-level comp-filter is not VCALENDAR");
  return f;
}

Result<FilterTest> parse_test(const Element& e) {
  std::string test = e.attr("test", "anyof");
  if (test == "anyof") return FilterTest::kAnyOf;
  if (test == "allof") return FilterTest::kAllOf;
  return invalid("test must be anyof or allof");
}

Result<CardPropFilter> parse_card_prop_filter(const Element& e) {
  CardPropFilter f;
  MK_ASSIGN_OR_RETURN(f.name, required_name(e));
  MK_ASSIGN_OR_RETURN(f.test, parse_test(e));
  for (const Element& c : e.children) {
    if (c.ns != kCardDav) continue;
    if (c.name == "is-not-defined") {
      f.is_not_defined = true;
    } else if (c.name == "text-match") {
      MK_ASSIGN_OR_RETURN(TextMatch m, parse_text_match(c, true));
      f.text_matches.push_back(std::move(m));
    } else if (c.name == "param-filter") {
      MK_ASSIGN_OR_RETURN(ParamFilter p, parse_param_filter(c, kCardDav));
      f.params.push_back(std::move(p));
    }
  }
  return f;
}

Result<CalendarComp> parse_calendar_comp(const Element& e) {
  CalendarComp comp;
  MK_ASSIGN_OR_RETURN(comp.name, required_name(e));
  for (const Element& c : e.children) {
    if (c.ns != kCalDav) continue;
    if (c.name == "allprop") {
      comp.allprop = true;
    } else if (c.name == "allcomp") {
      comp.allcomp = true;
    } else if (c.name == "prop") {
      MK_ASSIGN_OR_RETURN(std::string name, required_name(c));
      comp.props.push_back(std::move(name));
    } else if (c.name == "comp") {
      MK_ASSIGN_OR_RETURN(CalendarComp sub, parse_calendar_comp(c));
      comp.comps.push_back(std::move(sub));
    }
  }
  return comp;
}

Result<CalendarDataRequest> parse_calendar_data(const Element& e) {
  CalendarDataRequest r;
  r.content_type = e.attr("content-type", r.content_type);
  r.version = e.attr("version", r.version);
  for (const Element& c : e.children) {
    if (c.ns != kCalDav) continue;
    if (c.name == "comp") {
      MK_ASSIGN_OR_RETURN(r.comp, parse_calendar_comp(c));
    } else if (c.name == "expand") {
      MK_ASSIGN_OR_RETURN(r.expand, parse_time_range(c, true));
    } else if (c.name == "limit-recurrence-set") {
      MK_ASSIGN_OR_RETURN(r.limit_recurrence_set, parse_time_range(c, true));
    } else if (c.name == "limit-freebusy-set") {
      MK_ASSIGN_OR_RETURN(r.limit_freebusy_set, parse_time_range(c, true));
    }
  }
  return r;
}

Result<AddressDataRequest> parse_address_data(const Element& e) {
  AddressDataRequest r;
  r.content_type = e.attr("content-type", r.content_type);
  r.version = e.attr("version", r.version);
  bool allprop = false;
  for (const Element& c : e.children) {
    if (c.ns != kCardDav) continue;
    if (c.name == "allprop") {
      allprop = true;
    } else if (c.name == "prop") {
      MK_ASSIGN_OR_RETURN(std::string name, required_name(c));
      r.props.push_back(std::move(name));
    }
  }
  r.allprop = allprop || r.props.empty();
  if (r.allprop) r.props.clear();
  return r;
}

// DAV:prop / DAV:allprop / DAV:propname among the root's children, as PROPFIND and the REPORTs
// share them; `fallback` when none is there. `include` (PROPFIND) receives DAV:include names;
// `report` receives calendar-data / address-data requests.
Status parse_prop_selection(const Element& root, PropfindRequest::Type fallback,
                            PropfindRequest::Type& type, std::vector<PropName>& props,
                            std::vector<PropName>* include, ReportProps* report) {
  bool has_prop = false, has_allprop = false, has_propname = false;
  PropNameList list{&props, {}};
  PropNameList included{include, {}};
  for (const Element& c : root.children) {
    if (c.ns != kDav) continue;
    if (c.name == "prop") {
      has_prop = true;
      for (const Element& p : c.children) {
        list.add(p.prop_name());
        if (report == nullptr) continue;
        if (p.is(kCalDav, "calendar-data")) {
          MK_ASSIGN_OR_RETURN(report->calendar_data, parse_calendar_data(p));
        } else if (p.is(kCardDav, "address-data")) {
          MK_ASSIGN_OR_RETURN(report->address_data, parse_address_data(p));
        }
      }
    } else if (c.name == "allprop") {
      has_allprop = true;
    } else if (c.name == "propname") {
      has_propname = true;
    } else if (c.name == "include" && include != nullptr) {
      for (const Element& p : c.children) included.add(p.prop_name());
    }
  }
  if (int(has_prop) + int(has_allprop) + int(has_propname) > 1)
    return invalid("more than one of prop, allprop and propname");
  type = has_prop       ? PropfindRequest::Type::kProp
         : has_allprop  ? PropfindRequest::Type::kAllProp
         : has_propname ? PropfindRequest::Type::kPropName
                        : fallback;
  return Status::ok();
}

Result<ReportProps> parse_report_props(const Element& root) {
  ReportProps r;
  MK_RETURN_IF_ERROR(
      parse_prop_selection(root, PropfindRequest::Type::kProp, r.type, r.props, nullptr, &r));
  return r;
}

ProppatchRequest::Op make_op(Element&& property, bool remove) {
  ProppatchRequest::Op op;
  op.remove = remove;
  op.name = property.prop_name();
  if (!remove) {
    op.value_text = property.text;
    op.value_xml = inner_xml(property);
  }
  op.element = std::move(property);
  return op;
}

Result<CalendarQuery> parse_calendar_query(const Element& root) {
  CalendarQuery q;
  MK_ASSIGN_OR_RETURN(q.props, parse_report_props(root));
  auto filter = parse_calendar_filter(root.child(kCalDav, "filter"));
  if (!filter.is_ok()) return invalid(std::string(kValidFilter) + filter.status().message());
  q.filter = std::move(filter).value();
  if (const Element* tz = root.child(kCalDav, "timezone")) q.timezone = tz->text;
  if (const Element* id = root.child(kCalDav, "timezone-id"))
    q.timezone_id = std::string(trim(id->text));
  return q;
}

Result<Multiget> parse_multiget(const Element& root) {
  Multiget m;
  MK_ASSIGN_OR_RETURN(m.props, parse_report_props(root));
  for (const Element& c : root.children) {
    if (!c.is(kDav, "href")) continue;
    std::string_view href = trim(c.text);
    if (href.empty()) return invalid("empty href");
    m.hrefs.emplace_back(href);
  }
  if (m.hrefs.empty()) return invalid("multiget without href");
  return m;
}

Result<FreeBusyQuery> parse_free_busy_query(const Element& root) {
  const Element* range = root.child(kCalDav, "time-range");
  if (range == nullptr) return invalid("free-busy-query without time-range");
  FreeBusyQuery q;
  MK_ASSIGN_OR_RETURN(q.time_range, parse_time_range(*range, false));
  return q;
}

Result<AddressbookQuery> parse_addressbook_query(const Element& root) {
  AddressbookQuery q;
  MK_ASSIGN_OR_RETURN(q.props, parse_report_props(root));
  const Element* filter = root.child(kCardDav, "filter");
  if (filter == nullptr) return invalid("addressbook-query without filter");
  MK_ASSIGN_OR_RETURN(q.test, parse_test(*filter));
  for (const Element& c : filter->children) {
    if (!c.is(kCardDav, "prop-filter")) continue;
    MK_ASSIGN_OR_RETURN(CardPropFilter f, parse_card_prop_filter(c));
    q.filters.push_back(std::move(f));
  }
  if (const Element* limit = root.child(kCardDav, "limit")) {
    MK_ASSIGN_OR_RETURN(q.limit, parse_nresults(*limit));
  }
  return q;
}

Result<SyncCollection> parse_sync_collection(const Element& root) {
  SyncCollection s;
  const Element* token = root.child(kDav, "sync-token");
  if (token == nullptr) return invalid("sync-collection without sync-token");
  s.sync_token = std::string(trim(token->text));
  if (const Element* level = root.child(kDav, "sync-level")) {
    std::string_view text = trim(level->text);
    if (text == "infinite") {
      s.infinite = true;
    } else if (text != "1") {
      return invalid("sync-level must be 1 or infinite");
    }
  }
  if (const Element* limit = root.child(kDav, "limit")) {
    MK_ASSIGN_OR_RETURN(s.limit, parse_nresults(*limit));
  }
  MK_ASSIGN_OR_RETURN(s.props, parse_report_props(root));
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// DOM

const Element* Element::child(std::string_view want_ns, std::string_view want_name) const {
  for (const Element& c : children)
    if (c.is(want_ns, want_name)) return &c;
  return nullptr;
}

std::string Element::attr(const std::string& key, std::string_view fallback) const {
  auto it = attrs.find(key);
  return it != attrs.end() ? it->second : std::string(fallback);
}

Result<Element> parse_xml(std::string_view body, const XmlLimits& limits) {
  if (body.size() > limits.max_bytes || body.size() > static_cast<size_t>(INT_MAX))
    return too_large("XML body too large");
  if (trim(body).empty()) return invalid("empty XML body");
  // NUL is never legal in XML; it is what UTF-16 and UTF-32 documents are full of. Refusing
  // it keeps expat from honouring a UTF-16 byte-order mark.
  if (body.find('\0') != std::string_view::npos) return invalid("XML body is not UTF-8");

  std::unique_ptr<std::remove_pointer_t<XML_Parser>, decltype(&XML_ParserFree)> parser(
      XML_ParserCreateNS("UTF-8", kNsSeparator), &XML_ParserFree);
  if (!parser) return temporary("out of memory for the XML parser");
  ParseState state;
  state.parser = parser.get();
  state.limits = &limits;
  XML_SetUserData(parser.get(), &state);
  XML_SetElementHandler(parser.get(), on_start, on_end);
  XML_SetCharacterDataHandler(parser.get(), on_text);
  XML_SetStartDoctypeDeclHandler(parser.get(), on_doctype);
  XML_SetEntityDeclHandler(parser.get(), on_entity_decl);
  XML_SetXmlDeclHandler(parser.get(), on_xml_decl);
  XML_SetParamEntityParsing(parser.get(), XML_PARAM_ENTITY_PARSING_NEVER);

  XML_Status status = XML_Parse(parser.get(), body.data(), static_cast<int>(body.size()), XML_TRUE);
  if (!state.error.is_ok()) return state.error;
  if (status != XML_STATUS_OK) {
    return invalid(
        "malformed XML: " + std::string(XML_ErrorString(XML_GetErrorCode(parser.get()))) +
        " at line " + std::to_string(XML_GetCurrentLineNumber(parser.get())) + " column " +
        std::to_string(XML_GetCurrentColumnNumber(parser.get())));
  }
  if (!state.root) return invalid("malformed XML: no root element");
  return std::move(*state.root);
}

std::string serialize(const Element& element) {
  PrefixMap map;
  collect_namespaces(element, map);
  std::string out;
  append_element(out, element, map, true);
  return out;
}

std::string inner_xml(const Element& element) {
  std::string out;
  append_content(out, element, nullptr);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Requests

PropfindRequest propfind_allprop() {
  return PropfindRequest{};
}

Result<PropfindRequest> parse_propfind(std::string_view body, const XmlLimits& limits) {
  MK_ASSIGN_OR_RETURN(Element root, parse_xml(body, limits));
  if (!root.is(kDav, "propfind")) return wrong_root(root, "DAV:propfind");
  PropfindRequest r;
  MK_RETURN_IF_ERROR(parse_prop_selection(root, PropfindRequest::Type::kAllProp, r.type, r.props,
                                          &r.include, nullptr));
  return r;
}

Result<ProppatchRequest> parse_proppatch(std::string_view body, const XmlLimits& limits) {
  MK_ASSIGN_OR_RETURN(Element root, parse_xml(body, limits));
  if (!root.is(kDav, "propertyupdate")) return wrong_root(root, "DAV:propertyupdate");
  ProppatchRequest r;
  bool any = false;
  for (Element& instruction : root.children) {
    bool remove = instruction.is(kDav, "remove");
    if (!remove && !instruction.is(kDav, "set")) continue;
    any = true;
    for (Element& prop : instruction.children) {
      if (!prop.is(kDav, "prop")) continue;
      for (Element& property : prop.children) r.ops.push_back(make_op(std::move(property), remove));
    }
  }
  if (!any) return invalid("propertyupdate without set or remove");
  return r;
}

Result<MkcolRequest> parse_mkcol(std::string_view body, const XmlLimits& limits) {
  MK_ASSIGN_OR_RETURN(Element root, parse_xml(body, limits));
  MkcolRequest r;
  r.mkcalendar = root.is(kCalDav, "mkcalendar");
  if (!r.mkcalendar && !root.is(kDav, "mkcol"))
    return wrong_root(root, "CALDAV:mkcalendar or DAV:mkcol");
  for (Element& set : root.children) {
    if (!set.is(kDav, "set")) continue;
    for (Element& prop : set.children) {
      if (!prop.is(kDav, "prop")) continue;
      for (Element& property : prop.children) {
        if (property.is(kDav, "resourcetype")) {
          for (const Element& type : property.children) r.resourcetype.push_back(type.prop_name());
        } else if (property.is(kCalDav, "supported-calendar-component-set")) {
          for (const Element& comp : property.children) {
            if (!comp.is(kCalDav, "comp")) continue;
            MK_ASSIGN_OR_RETURN(std::string name, required_name(comp));
            r.components.push_back(std::move(name));
          }
        }
        r.set.push_back(make_op(std::move(property), false));
      }
    }
  }
  return r;
}

Result<ReportRequest> parse_report(std::string_view body, const XmlLimits& limits) {
  MK_ASSIGN_OR_RETURN(Element root, parse_xml(body, limits));
  using Kind = ReportRequest::Kind;
  ReportRequest r;
  r.root = root.prop_name();
  if (root.is(kCalDav, "calendar-query")) {
    r.kind = Kind::kCalendarQuery;
    MK_ASSIGN_OR_RETURN(r.body, parse_calendar_query(root));
  } else if (root.is(kCalDav, "calendar-multiget")) {
    r.kind = Kind::kCalendarMultiget;
    MK_ASSIGN_OR_RETURN(r.body, parse_multiget(root));
  } else if (root.is(kCalDav, "free-busy-query")) {
    r.kind = Kind::kFreeBusyQuery;
    MK_ASSIGN_OR_RETURN(r.body, parse_free_busy_query(root));
  } else if (root.is(kCardDav, "addressbook-query")) {
    r.kind = Kind::kAddressbookQuery;
    MK_ASSIGN_OR_RETURN(r.body, parse_addressbook_query(root));
  } else if (root.is(kCardDav, "addressbook-multiget")) {
    r.kind = Kind::kAddressbookMultiget;
    MK_ASSIGN_OR_RETURN(r.body, parse_multiget(root));
  } else if (root.is(kDav, "sync-collection")) {
    r.kind = Kind::kSyncCollection;
    MK_ASSIGN_OR_RETURN(r.body, parse_sync_collection(root));
  } else if (root.is(kDav, "expand-property")) {
    r.kind = Kind::kExpandProperty;
  } else if (root.is(kDav, "principal-property-search")) {
    r.kind = Kind::kPrincipalPropertySearch;
  } else if (root.is(kDav, "principal-search-property-set")) {
    r.kind = Kind::kPrincipalSearchPropertySet;
  }
  return r;
}

std::optional<PropName> failed_precondition(const Status& status) {
  if (status.code() == ErrorCode::kInvalid && status.message().starts_with(kValidFilter))
    return PropName{std::string(kCalDav), "valid-filter"};
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Responses

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_escaped(out, text, false);
  return out;
}

std::string href_xml(std::string_view href) {
  return "<d:href>" + xml_escape(href) + "</d:href>";
}

std::string status_line(int code) {
  static const std::pair<int, const char*> kReasons[] = {
      {200, "OK"},
      {201, "Created"},
      {204, "No Content"},
      {207, "Multi-Status"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {409, "Conflict"},
      {412, "Precondition Failed"},
      {413, "Content Too Large"},
      {415, "Unsupported Media Type"},
      {423, "Locked"},
      {424, "Failed Dependency"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {503, "Service Unavailable"},
      {507, "Insufficient Storage"},
  };
  std::string line = "HTTP/1.1 " + std::to_string(code) + " ";
  for (const auto& [known, reason] : kReasons)
    if (known == code) line += reason;
  return line;
}

MultistatusWriter::MultistatusWriter() {
  out_ = kXmlDecl;
  out_ += "<d:multistatus";
  out_ += kRootDecls;
  out_ += '>';
}

void MultistatusWriter::close_response() {
  if (in_response_) out_ += "</d:response>";
  in_response_ = false;
}

void MultistatusWriter::begin_response(std::string_view href) {
  close_response();
  out_ += "<d:response><d:href>";
  append_escaped(out_, href, false);
  out_ += "</d:href>";
  in_response_ = true;
}

void MultistatusWriter::propstat(int status_code, const std::vector<PropValue>& props,
                                 const std::optional<PropName>& error) {
  assert(in_response_ && "propstat outside a response");
  if (props.empty()) return;
  out_ += "<d:propstat><d:prop>";
  for (const PropValue& p : props) {
    if (p.xml_value.empty())
      append_named(out_, p.name, p.borrowed_text ? *p.borrowed_text : p.text,
                   /*escape_content=*/true);
    else
      append_named(out_, p.name, p.xml_value);
  }
  out_ += "</d:prop><d:status>";
  out_ += status_line(status_code);
  out_ += "</d:status>";
  if (error) {
    out_ += "<d:error>";
    append_named(out_, *error, {});
    out_ += "</d:error>";
  }
  out_ += "</d:propstat>";
}

void MultistatusWriter::response_status(std::string_view href, int status_code) {
  close_response();
  out_ += "<d:response><d:href>";
  append_escaped(out_, href, false);
  out_ += "</d:href><d:status>" + status_line(status_code) + "</d:status></d:response>";
}

void MultistatusWriter::sync_token(std::string_view token) {
  close_response();
  out_ += "<d:sync-token>";
  append_escaped(out_, token, false);
  out_ += "</d:sync-token>";
}

std::string MultistatusWriter::finish() {
  close_response();
  out_ += "</d:multistatus>";
  return std::move(out_);
}

std::string error_body(const PropName& precondition, std::string_view inner_xml) {
  std::string out(kXmlDecl);
  out += "<d:error";
  out += kRootDecls;
  out += '>';
  append_named(out, precondition, inner_xml);
  out += "</d:error>";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hrefs

std::string href_encode(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size());
  for (char ch : path) {
    unsigned char c = static_cast<unsigned char>(ch);
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                (c != 0 && std::strchr("-._~/!$'()*,=:@", c) != nullptr);
    if (keep) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<std::string> href_decode(std::string_view href) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(href.size());
  size_t i = 0;
  while (i < href.size()) {
    size_t escape = href.find('%', i);
    if (escape == std::string_view::npos) escape = href.size();
    out.append(href.substr(i, escape - i));  // the run up to the next escape, in one copy
    if (escape == href.size()) break;
    bool complete = escape + 2 < href.size();
    int hi = complete ? hex(href[escape + 1]) : -1;
    int lo = complete ? hex(href[escape + 2]) : -1;
    if (hi < 0 || lo < 0) return invalid("malformed percent-encoding in href");
    out += static_cast<char>(hi * 16 + lo);
    i = escape + 3;
  }
  MK_RETURN_IF_ERROR(check_decoded_href(out));
  return out;
}

Status check_decoded_href(std::string_view decoded) {
  if (decoded.find('\0') != std::string_view::npos) return invalid("NUL in href");
  if (!is_valid_utf8(decoded)) return invalid("href is not UTF-8");
  for (size_t start = 0; start <= decoded.size();) {
    size_t end = decoded.find('/', start);
    if (end == std::string_view::npos) end = decoded.size();
    std::string_view segment = decoded.substr(start, end - start);
    if (segment == "." || segment == "..") return invalid("dot segment in href");
    start = end + 1;
  }
  return Status::ok();
}

std::string_view href_path(std::string_view href) {
  bool had_authority = false;
  size_t colon = href.find(':');
  if (colon != std::string_view::npos && colon > 0 && href.substr(colon + 1, 2) == "//") {
    bool scheme = true;
    for (size_t i = 0; i < colon; ++i) {
      char c = href[i];
      bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
      if (!(alpha || (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))))
        scheme = false;
    }
    if (scheme) href.remove_prefix(colon + 1);
  }
  if (href.starts_with("//")) {
    size_t end = href.find_first_of("/?#", 2);
    href.remove_prefix(end == std::string_view::npos ? href.size() : end);
    had_authority = true;
  }
  href = href.substr(0, href.find_first_of("?#"));
  if (had_authority && href.empty()) return "/";
  return href;
}

}  // namespace mailark::dav
