// WebDAV/CalDAV/CardDAV XML bodies (RFC 4918, 4791, 5689, 6352, 6578), pure: request bodies in,
// typed requests out; multistatus and DAV:error responses out. Knows nothing of HTTP or storage.
// XML itself is parsed by expat with namespace processing; DOCTYPEs are refused outright.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/status.h"

namespace mailark::dav {

// Namespace URIs (arrays, so that PropName{kDav, "getetag"} and ns == kDav both read well).
inline constexpr char kDav[] = "DAV:";
inline constexpr char kCalDav[] = "urn:ietf:params:xml:ns:caldav";
inline constexpr char kCardDav[] = "urn:ietf:params:xml:ns:carddav";
inline constexpr char kCalServer[] = "http://calendarserver.org/ns/";
inline constexpr char kApple[] = "http://apple.com/ns/ical/";

// A property or element name: namespace URI ("" for none) and local name.
struct PropName {
  std::string ns;
  std::string name;
  auto operator<=>(const PropName&) const = default;
};

// ---------------------------------------------------------------------------------------------
// A tiny DOM.

struct Element {
  std::string ns;    // namespace URI, "" when the element is in no namespace
  std::string name;  // local name
  // Attributes without a namespace by local name ("name", "start"); attributes in a namespace
  // by Clark name ("{http://www.w3.org/XML/1998/namespace}lang") so none is lost or confused.
  std::map<std::string, std::string> attrs;
  std::vector<Element> children;
  // This element's own character data, concatenated, exactly as the XML infoset has it (entity
  // and character references resolved, line ends normalized to LF, nothing trimmed).
  std::string text;
  // Where this element starts within its parent's `text` (so mixed content serializes back in
  // document order). 0 for hand-built elements.
  size_t text_offset = 0;

  bool is(std::string_view want_ns, std::string_view want_name) const {
    return ns == want_ns && name == want_name;
  }
  PropName prop_name() const { return {ns, name}; }
  // First child with that name, or nullptr.
  const Element* child(std::string_view want_ns, std::string_view want_name) const;
  // The attribute's value, or `fallback` when absent.
  std::string attr(const std::string& key, std::string_view fallback = {}) const;

  bool operator==(const Element&) const = default;
};

// The tree is built and walked recursively, so max_depth also bounds stack use: keep it small.
struct XmlLimits {
  size_t max_bytes = 1 << 20;     // larger bodies: kTooLarge, before parsing starts
  int max_depth = 32;             // deeper nesting: kInvalid
  size_t max_elements = 100'000;  // more elements: kTooLarge
};

// Parses a whole document into its root element. kInvalid (with a short reason) for an empty
// body, malformed XML, an unbound prefix, a DOCTYPE (refused so that no entity can be declared,
// which rules out entity-expansion attacks), an encoding other than UTF-8, invalid UTF-8, or
// nesting beyond max_depth; kTooLarge beyond max_bytes or max_elements.
Result<Element> parse_xml(std::string_view body, const XmlLimits& limits = {});

// The element as a self-contained XML fragment: namespaces are declared on it (well-known ones
// with the prefixes MultistatusWriter uses: d, cal, card, cs, ical; others as x0, x1, ...).
// Elements in no namespace are written unprefixed, so the fragment must not be placed under a
// default namespace declaration (nothing in this module writes one). parse_xml(serialize(e))
// gives back e.
std::string serialize(const Element& element);
// The element's content (text and children, each child self-contained as above): what a dead
// property's value is stored as, and what PropValue::xml_value takes back when it is served.
std::string inner_xml(const Element& element);

// ---------------------------------------------------------------------------------------------
// Requests. Every parser returns kInvalid with a reason for a body that does not parse, has
// the wrong root element, or misses a required part; kTooLarge as parse_xml does. Elements
// they do not know are ignored (RFC 4918 section 17). An empty body is the caller's case.

// PROPFIND (RFC 4918 9.1).
struct PropfindRequest {
  enum class Type { kAllProp, kPropName, kProp };
  Type type = Type::kAllProp;
  std::vector<PropName> props;    // kProp: requested names, document order, without duplicates
  std::vector<PropName> include;  // kAllProp: DAV:include names
};
// What an empty PROPFIND body means (RFC 4918 9.1: treat it as allprop).
PropfindRequest propfind_allprop();
// A DAV:propfind without prop, allprop or propname is taken as allprop (as SabreDAV does);
// more than one of them is kInvalid.
Result<PropfindRequest> parse_propfind(std::string_view body, const XmlLimits& limits = {});

// PROPPATCH (RFC 4918 9.2): the instructions in document order, to be applied in that order
// and atomically.
struct ProppatchRequest {
  struct Op {
    bool remove = false;
    PropName name;
    std::string value_text;  // the property element's own text (displayname, calendar-color)
    std::string value_xml;   // inner_xml(element): the value as a dead property is stored
    Element element;         // the property element itself
  };
  std::vector<Op> ops;
};
Result<ProppatchRequest> parse_proppatch(std::string_view body, const XmlLimits& limits = {});

// MKCALENDAR (RFC 4791 5.3.1, root CALDAV:mkcalendar) and extended MKCOL (RFC 5689, root
// DAV:mkcol). An empty body is the caller's case (a plain calendar or collection).
struct MkcolRequest {
  bool mkcalendar = false;  // root was CALDAV:mkcalendar
  // Every property of every DAV:set/DAV:prop in document order (remove is false throughout),
  // including DAV:resourcetype and supported-calendar-component-set, so the caller can answer
  // each one in its mkcol-response.
  std::vector<ProppatchRequest::Op> set;
  // The children of DAV:resourcetype, when it was set ({DAV:,collection}, {CALDAV:,calendar}).
  // Empty when not given: MKCALENDAR implies collection + calendar.
  std::vector<PropName> resourcetype;
  // CALDAV:supported-calendar-component-set comp names ("VEVENT", "VTODO"), when given.
  std::vector<std::string> components;
};
Result<MkcolRequest> parse_mkcol(std::string_view body, const XmlLimits& limits = {});

// REPORT bodies.

// A time range as the client wrote it (RFC 4791 9.9 UTC date-times like "20060104T000000Z");
// the caller parses it. Empty means absent. At least one of the two is present wherever the
// RFC requires it (both for expand and limit-*-set).
struct TimeRangeText {
  std::string start;
  std::string end;
  bool operator==(const TimeRangeText&) const = default;
};

struct TextMatch {
  std::string text;  // exactly as sent, not trimmed
  // As sent, or the default: "i;ascii-casemap" in CalDAV, "i;unicode-casemap" in CardDAV.
  // Whether it is supported is the caller's question (supported-collation precondition).
  std::string collation;
  // "equals", "contains", "starts-with" or "ends-with" (anything else is kInvalid);
  // "contains" when absent, and CalDAV (which defines no match-type) always means that.
  std::string match_type = "contains";
  bool negate = false;  // negate-condition="yes"
};

struct ParamFilter {
  std::string name;
  bool is_not_defined = false;
  std::optional<TextMatch> text_match;
};

// CALDAV:prop-filter (RFC 4791 9.7.2).
struct PropFilter {
  std::string name;
  bool is_not_defined = false;
  std::optional<TimeRangeText> time_range;
  std::optional<TextMatch> text_match;
  std::vector<ParamFilter> params;
};

// CALDAV:comp-filter (RFC 4791 9.7.1).
struct CompFilter {
  std::string name;
  bool is_not_defined = false;
  std::optional<TimeRangeText> time_range;
  std::vector<PropFilter> props;
  std::vector<CompFilter> comps;
};

// CALDAV:comp inside CALDAV:calendar-data (RFC 4791 9.6.1): which parts of the data to return.
struct CalendarComp {
  std::string name;
  bool allprop = false;
  bool allcomp = false;
  std::vector<std::string> props;  // CALDAV:prop names (empty and !allprop: no properties)
  std::vector<CalendarComp> comps;
};

// CALDAV:calendar-data in a REPORT's DAV:prop (RFC 4791 9.6).
struct CalendarDataRequest {
  std::string content_type = "text/calendar";
  std::string version = "2.0";
  std::optional<CalendarComp> comp;  // absent: the whole object
  std::optional<TimeRangeText> expand;
  std::optional<TimeRangeText> limit_recurrence_set;
  std::optional<TimeRangeText> limit_freebusy_set;
};

// CARDDAV:address-data in a REPORT's DAV:prop (RFC 6352 10.4).
struct AddressDataRequest {
  std::string content_type = "text/vcard";
  std::string version = "3.0";
  bool allprop = true;             // CARDDAV:allprop, or no CARDDAV:prop given
  std::vector<std::string> props;  // CARDDAV:prop names when !allprop
};

// The property part of a REPORT: DAV:prop, DAV:allprop or DAV:propname. When the report has
// none of them: type kProp with no props (the caller answers with hrefs and no properties).
struct ReportProps {
  PropfindRequest::Type type = PropfindRequest::Type::kProp;
  std::vector<PropName> props;  // includes calendar-data / address-data when requested
  std::optional<CalendarDataRequest> calendar_data;
  std::optional<AddressDataRequest> address_data;
};

// CALDAV:calendar-query (RFC 4791 7.8). `filter` is the single top comp-filter, VCALENDAR.
struct CalendarQuery {
  ReportProps props;
  CompFilter filter;
  std::optional<std::string> timezone;     // CALDAV:timezone text (a VCALENDAR with VTIMEZONE)
  std::optional<std::string> timezone_id;  // CALDAV:timezone-id (RFC 7809)
};

// CALDAV:calendar-multiget (RFC 4791 7.9) and CARDDAV:addressbook-multiget (RFC 6352 8.7).
struct Multiget {
  ReportProps props;
  // At least one. Trimmed but otherwise as sent (absolute paths or URIs, percent-encoded):
  // echo them in the response, resolve them with href_decode(href_path(h)).
  std::vector<std::string> hrefs;
};

// CALDAV:free-busy-query (RFC 4791 7.10).
struct FreeBusyQuery {
  TimeRangeText time_range;
};

enum class FilterTest { kAnyOf, kAllOf };

// CARDDAV:prop-filter (RFC 6352 10.5.1).
struct CardPropFilter {
  std::string name;
  FilterTest test = FilterTest::kAnyOf;  // how its text-matches combine
  bool is_not_defined = false;
  std::vector<TextMatch> text_matches;
  std::vector<ParamFilter> params;
};

// CARDDAV:addressbook-query (RFC 6352 8.6).
struct AddressbookQuery {
  ReportProps props;
  FilterTest test = FilterTest::kAnyOf;  // how the prop-filters combine
  std::vector<CardPropFilter> filters;   // none: every card matches
  std::optional<uint32_t> limit;         // CARDDAV:limit/nresults
};

// DAV:sync-collection (RFC 6578 3.2).
struct SyncCollection {
  std::string sync_token;  // trimmed; empty for the initial sync
  bool infinite = false;   // sync-level "infinite" (else "1"; "1" when the element is absent)
  std::optional<uint32_t> limit;  // DAV:limit/nresults
  ReportProps props;
};

struct ReportRequest {
  enum class Kind {
    kCalendarQuery,
    kCalendarMultiget,
    kFreeBusyQuery,
    kAddressbookQuery,
    kAddressbookMultiget,
    kSyncCollection,
    kExpandProperty,              // DAV: (RFC 3253 3.8), recognized but not parsed
    kPrincipalPropertySearch,     // DAV: (RFC 3744 9.4), recognized but not parsed
    kPrincipalSearchPropertySet,  // DAV: (RFC 3744 9.5), recognized but not parsed
    kUnknown,  // any other root: the caller answers 403 with DAV:supported-report
  };
  Kind kind = Kind::kUnknown;
  PropName root;  // the root element's name
  // CalendarQuery, Multiget (both multigets), FreeBusyQuery, AddressbookQuery, SyncCollection;
  // monostate for the recognized-only kinds and kUnknown.
  std::variant<std::monostate, CalendarQuery, Multiget, FreeBusyQuery, AddressbookQuery,
               SyncCollection>
      body;
};
Result<ReportRequest> parse_report(std::string_view body, const XmlLimits& limits = {});

// Which RFC precondition a parse_report error stands for, when the protocol names one:
// {CALDAV:, valid-filter} (answer 403 with error_body) for a calendar-query whose filter is
// missing, is not exactly one VCALENDAR comp-filter, or is malformed inside. nullopt for every
// other error (malformed XML, a bad addressbook-query filter, ...): those are a plain 400.
std::optional<PropName> failed_precondition(const Status& status);

// ---------------------------------------------------------------------------------------------
// Responses.

// Escapes text for element content (also usable in a double-quoted attribute, where a parser
// will turn tab and LF into spaces): & < > " become entities, CR becomes &#13; (so CRLF in
// calendar data survives parsing), and what XML 1.0 cannot carry (control characters other
// than tab, LF and CR, U+FFFE/U+FFFF, invalid UTF-8) becomes U+FFFD.
std::string xml_escape(std::string_view text);
// <d:href>href</d:href>, the href already percent-encoded (d: as in every body built here).
std::string href_xml(std::string_view href);

// "HTTP/1.1 404 Not Found"; an unknown code gets an empty reason ("HTTP/1.1 299 ").
std::string status_line(int code);

// A property in a propstat: either xml_value, already-serialized content written verbatim
// (e.g. "<d:href>/dav/x/</d:href>", using the multistatus prefixes, or a stored inner_xml), or
// text, escaped by the writer. Both empty: an empty element (<d:getetag/>), as for 404s and
// PROPFIND propname.
struct PropValue {
  PropName name;
  std::string xml_value;
  std::string text;
  // Instead of `text`, when set: text owned elsewhere (a resource body the request read)
  // that outlives the value's writing.
  const std::string* borrowed_text = nullptr;
};

// Builds a DAV:multistatus body. The root declares d: (DAV:), cal:, card:, cs: and ical:;
// properties in other namespaces declare their own prefix on the property element. Hrefs are
// taken already percent-encoded (href_encode, or as a client sent them) and are XML-escaped
// here. Calls: (begin_response propstat* | response_status)* sync_token? finish.
class MultistatusWriter {
 public:
  MultistatusWriter();

  // Opens a DAV:response (closing any open one).
  void begin_response(std::string_view href);
  // Adds a DAV:propstat to the open response; nothing when `props` is empty. `error`, when
  // given, adds <d:error><precondition/></d:error> (e.g. cannot-modify-protected-property).
  void propstat(int status_code, const std::vector<PropValue>& props,
                const std::optional<PropName>& error = std::nullopt);
  // A whole DAV:response with only a status (404 for a sync-collection removal or a multiget
  // href that does not exist).
  void response_status(std::string_view href, int status_code);
  // The DAV:sync-token that ends a sync-collection multistatus.
  void sync_token(std::string_view token);
  // Closes everything and returns the document. The writer is spent afterwards.
  std::string finish();
  // Room for a document of about `bytes`, so that a large one is not copied as it grows.
  void reserve(size_t bytes) { out_.reserve(bytes); }

 private:
  void close_response();

  std::string out_;
  bool in_response_ = false;
};

// A DAV:error body (RFC 4918 16) naming one precondition, e.g. {kCalDav,
// "valid-calendar-data"}: <d:error ...><cal:valid-calendar-data/></d:error>. `inner_xml`, when
// given, goes inside the precondition element (e.g. "<d:href>/x.ics</d:href>" for
// CALDAV:no-uid-conflict).
std::string error_body(const PropName& precondition, std::string_view inner_xml = {});

// ---------------------------------------------------------------------------------------------
// Hrefs.

// Percent-encodes a decoded path for an href: keeps ALPHA DIGIT - . _ ~ / and ! $ ' ( ) * , = :
// @, encodes every other byte (including % space " < > # ? & + ; and all non-ASCII) as %XX.
std::string href_encode(std::string_view path);
// Decodes %XX (either case). kInvalid for a malformed escape, a decoded NUL, invalid UTF-8, or
// a "." or ".." segment after decoding (so %2e%2e and %2F cannot climb out of a collection).
Result<std::string> href_decode(std::string_view href);
// What href_decode checks of its result: no NUL, valid UTF-8, no "." or ".." segment. For a
// text without escapes, which decodes to itself.
Status check_decoded_href(std::string_view decoded);
// The path of an href: strips "scheme://authority" (and "//authority"), and any "?query" or
// "#fragment". Returns "/" for an absolute URI without a path. Still percent-encoded; a view
// into `href` (or of a literal "/").
std::string_view href_path(std::string_view href);

}  // namespace mailark::dav
