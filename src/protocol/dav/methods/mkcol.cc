// MKCALENDAR (RFC 4791 5.3.1) and extended MKCOL (RFC 5689) for address books (and
// calendars): creates a collection below the user's home with its initial properties.
#include <algorithm>

#include "protocol/dav/dav_context.h"

namespace mailark::dav {

void method_mkcol(DavContext& ctx) {
  const Target& t = ctx.target;
  const bool mkcalendar = ctx.request.method == "MKCALENDAR";
  if (t.kind != Target::Kind::kCollection) {
    ctx.response.set("Allow", "OPTIONS, PROPFIND, GET, PUT, DELETE");
    return ctx.status(405,
                      "Collections are created directly below a calendar or address book home");
  }
  MkcolRequest body;
  if (!ctx.request.body.empty()) {
    auto parsed = parse_mkcol(ctx.request.body);
    if (!parsed.is_ok())
      return ctx.status(parsed.status().code() == ErrorCode::kTooLarge ? 413 : 400,
                        parsed.status().message());
    body = std::move(*parsed);
    if (body.mkcalendar != mkcalendar)
      return ctx.status(400, mkcalendar ? "MKCALENDAR takes a CALDAV:mkcalendar body"
                                        : "MKCOL takes a DAV:mkcol body");
  }
  const bool calendar_home = t.collection_kind == CollectionKind::kCalendar;
  // What kind of collection is asked for must match the home it is created in.
  auto has_type = [&](std::string_view ns, std::string_view name) {
    return std::find(body.resourcetype.begin(), body.resourcetype.end(),
                     PropName{std::string(ns), std::string(name)}) != body.resourcetype.end();
  };
  bool wants_calendar = mkcalendar || has_type(kCalDav, "calendar");
  bool wants_book = has_type(kCardDav, "addressbook") ||
                    (!mkcalendar && body.resourcetype.empty() && !calendar_home);
  if ((calendar_home && !wants_calendar) || (!calendar_home && !wants_book))
    return ctx.precondition(403, {std::string(kDav), "valid-resourcetype"});
  auto existing = ctx.collection();
  if (existing.is_ok()) {
    ctx.response.set("Allow", "OPTIONS, PROPFIND, PROPPATCH, REPORT, DELETE");
    return ctx.precondition(405, {std::string(kDav), "resource-must-be-null"});
  }
  if (existing.status().code() != ErrorCode::kNotFound) return ctx.store_error(existing.status());
  auto all = ctx.store().collections(ctx.account, t.collection_kind);
  if (!all.is_ok()) return ctx.store_error(all.status());
  if (static_cast<int>(all->size()) >= ctx.options().max_collections)
    return ctx.status(507, "Too many collections");
  CollectionProps props;
  std::vector<PropValue> refused;
  for (const auto& op : body.set) {
    if (op.name == PropName{std::string(kDav), "resourcetype"} ||
        op.name == PropName{std::string(kCalDav), "supported-calendar-component-set"})
      continue;
    if (!writable_property(op.name)) {
      refused.push_back({op.name, {}, {}});
      continue;
    }
    props[prop_key(op.name)] = op.value_xml;
  }
  if (!refused.empty()) {
    MultistatusWriter out;
    out.begin_response(ctx.request.target);
    out.propstat(403, refused, PropName{std::string(kDav), "cannot-modify-protected-property"});
    return ctx.multistatus(out.finish());
  }
  for (const auto& comp : body.components)
    if (comp != "VEVENT" && comp != "VTODO" && comp != "VJOURNAL")
      return ctx.precondition(403, {std::string(kCalDav), "supported-calendar-component"});
  auto created = ctx.store().create_collection(ctx.account, t.collection_kind, t.segment, props,
                                               body.components);
  if (!created.is_ok()) {
    if (created.status().code() == ErrorCode::kExists)
      return ctx.precondition(405, {std::string(kDav), "resource-must-be-null"});
    return ctx.store_error(created.status());
  }
  ctx.response.status = 201;
  ctx.response.set("Location", collection_href(t.collection_kind, ctx.user.address, t.segment));
}

}  // namespace mailark::dav
