// PUT (RFC 4918 9.7, RFC 4791 5.3.2, RFC 6352 6.3.2) of an event, task or contact: the
// object is validated and stored atomically, If-Match / If-None-Match decide races, and
// every refusal names its precondition and changes nothing.
#include <strings.h>

#include "protocol/dav/dav_context.h"

namespace mailark::dav {

namespace {

bool media_type_is(std::string_view header, std::initializer_list<const char*> types) {
  std::string_view type = header.substr(0, header.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  for (const char* t : types)
    if (type.size() == strlen(t) && strncasecmp(type.data(), t, type.size()) == 0) return true;
  return false;
}

}  // namespace

void method_put(DavContext& ctx) {
  const Target& t = ctx.target;
  if (t.kind != Target::Kind::kResource) {
    ctx.response.set("Allow", "OPTIONS, PROPFIND, PROPPATCH, REPORT, DELETE, MKCOL, MKCALENDAR");
    return ctx.status(405, "Only calendar objects and contacts are written with PUT");
  }
  const bool calendar = t.collection_kind == CollectionKind::kCalendar;
  if (ctx.request.has_header("Content-Range"))
    return ctx.status(400, "Partial PUT is not supported");
  std::string type = ctx.request.header("Content-Type");
  if (!type.empty() &&
      !(calendar ? media_type_is(type, {"text/calendar"})
                 : media_type_is(type, {"text/vcard", "text/x-vcard", "text/directory"})))
    return ctx.precondition(403, calendar
                                     ? PropName{std::string(kCalDav), "supported-calendar-data"}
                                     : PropName{std::string(kCardDav), "supported-address-data"});
  auto c = ctx.collection();
  if (!c.is_ok()) {
    if (c.status().code() == ErrorCode::kNotFound)
      return ctx.status(409, "The collection does not exist");
    return ctx.store_error(c.status());
  }
  DavPut put;
  put.body = ctx.request.body;
  put.max_size = ctx.options().max_resource_size;
  std::vector<std::string> none_match = etag_list(ctx.request.header("If-None-Match"));
  for (const auto& tag : none_match) {
    if (tag == "*") {
      put.if_none_match = true;
    } else if (auto d = etag_digest(tag)) {
      // If-None-Match with a tag: refuse when that is the current version.
      auto current = ctx.store().resource(ctx.account, *c, t.name);
      if (current.is_ok() && current->blob == *d) return ctx.status(412, "Precondition failed");
    }
  }
  if (!check_if_match(ctx, *c, t.name, &put.if_match)) return;
  auto result = ctx.store().put_resource(ctx.account, *c, t.name, put);
  if (!result.is_ok()) return ctx.store_error(result.status());
  using Outcome = DavPutResult::Outcome;
  const std::string ns(calendar ? kCalDav : kCardDav);
  switch (result->outcome) {
    case Outcome::kCreated:
    case Outcome::kReplaced:
      ctx.response.status = result->outcome == Outcome::kCreated ? 201 : 204;
      ctx.response.set("ETag", etag(result->resource.blob));
      return;
    case Outcome::kPreconditionFailed:
      return ctx.status(412, "Precondition failed");
    case Outcome::kInvalid:
      ctx.precondition(403, {ns, calendar ? "valid-calendar-data" : "valid-address-data"});
      return;
    case Outcome::kUnsupportedComponent:
      return ctx.precondition(403, {ns, "supported-calendar-component"});
    case Outcome::kUidConflict:
      return ctx.precondition(403, {ns, "no-uid-conflict"},
                              href_xml(resource_href(t.collection_kind, ctx.user.address,
                                                     c->segment, result->resource.name)));
    case Outcome::kTooLarge:
      return ctx.precondition(403, {ns, "max-resource-size"});
  }
}

}  // namespace mailark::dav
