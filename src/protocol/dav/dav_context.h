// What a DAV method handler works with: the authenticated user, the parsed target, the
// response being built, and the shared property and error helpers. Internal to
// src/protocol/dav.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "protocol/dav/dav_service.h"
#include "protocol/dav/dav_xml.h"

namespace mailark::dav {

struct DavContext {
  DavService& service;
  const http::Request& request;
  User user;
  Account account;
  Target target;
  http::Response response;

  MailStore& store() { return service.store(); }
  const DavOptions& options() { return service.options(); }

  // The Depth header: 0, 1, or -1 for infinity; `fallback` when absent. nullopt when it
  // is malformed (the caller answers 400).
  std::optional<int> depth(int fallback) const;

  // Plain answers.
  void status(int code, std::string_view text = {});
  // 403/409/412... with a DAV:error body naming the precondition (RFC 4918 16).
  void precondition(int code, const PropName& name, std::string_view inner_xml = {});
  void multistatus(std::string body);
  // The store error mapped to a status (STYLE rule 3: one place).
  void store_error(const Status& status);

  // The collection the target names (kNotFound when absent).
  Result<DavCollection> collection();
};

// The entity tags of an If-Match or If-None-Match header, as written ("*" stays "*"; weak
// tags keep their W/ prefix and so never match a strong ETag).
std::vector<std::string> etag_list(std::string_view header);
// The digest a strong ETag names, nullopt for anything else.
std::optional<Digest> etag_digest(std::string_view tag);

// Decides the request's If-Match against the resource's current version: true with
// `version` set to the matched version (nullopt without the header), or false with the 412
// (or store error) already in the response.
bool check_if_match(DavContext& ctx, const DavCollection& collection, std::string_view name,
                    std::optional<Digest>* version);

// Which properties a PROPFIND or REPORT asks for.
struct PropRequest {
  PropfindRequest::Type type = PropfindRequest::Type::kProp;
  std::vector<PropName> props;
  std::vector<PropName> include;
  std::optional<CalendarDataRequest> calendar_data;
  std::optional<AddressDataRequest> address_data;
  std::string floating_tz = "UTC";  // for CALDAV:expand of floating times
};
PropRequest prop_request(const PropfindRequest& propfind);
PropRequest prop_request(const ReportProps& report);

// A node of the URL space being described in a multistatus.
struct Node {
  Target::Kind kind = Target::Kind::kRoot;
  std::string href;
  CollectionKind collection_kind = CollectionKind::kCalendar;
  const DavCollection* collection = nullptr;  // kCollection, and kResource's parent
  const DavResource* resource = nullptr;      // kResource
  const std::string* body = nullptr;          // the resource's content when already read
};

// Adds the node's response to `out`: found properties with 200, unknown ones with 404.
// Resource bodies (calendar-data, address-data) are read from the store when asked for;
// kCorrupt and other store errors come back (the caller fails the request).
Status describe(DavContext& ctx, const Node& node, const PropRequest& request,
                MultistatusWriter& out);

// Properties a client may set on a collection (dead properties and the few live ones that
// are writable); false for protected ones.
bool writable_property(const PropName& name);
// The key a collection property is stored under ("{ns}name").
std::string prop_key(const PropName& name);
// True when the request asks for calendar-data or address-data (resource bodies).
bool wants_data(const PropRequest& request);

// Method handlers (one file each under methods/).
void method_options(DavContext& ctx);
void method_propfind(DavContext& ctx);
void method_proppatch(DavContext& ctx);
void method_get(DavContext& ctx);  // GET and HEAD
void method_put(DavContext& ctx);
void method_delete(DavContext& ctx);
void method_mkcol(DavContext& ctx);  // MKCOL and MKCALENDAR
void method_report(DavContext& ctx);

}  // namespace mailark::dav
