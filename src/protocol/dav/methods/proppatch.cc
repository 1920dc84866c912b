// PROPPATCH (RFC 4918 9.2) on calendars and address books: display name, description,
// colour, order and any other dead property, applied all or nothing. Protected (live)
// properties fail with DAV:cannot-modify-protected-property and the rest with 424.
#include "protocol/dav/dav_context.h"

namespace mailark::dav {

namespace {
constexpr size_t kMaxPropertyBytes = 64 * 1024;
constexpr size_t kMaxProperties = 64;
}  // namespace

void method_proppatch(DavContext& ctx) {
  auto parsed = parse_proppatch(ctx.request.body);
  if (!parsed.is_ok())
    return ctx.status(parsed.status().code() == ErrorCode::kTooLarge ? 413 : 400,
                      parsed.status().message());
  const Target& t = ctx.target;
  std::string href = ctx.request.target;
  std::optional<DavCollection> collection;
  if (t.kind == Target::Kind::kCollection) {
    auto c = ctx.collection();
    if (!c.is_ok()) return ctx.store_error(c.status());
    collection = std::move(*c);
    href = collection_href(t.collection_kind, ctx.user.address, collection->segment);
  } else if (t.kind == Target::Kind::kResource) {
    auto c = ctx.collection();
    if (!c.is_ok()) return ctx.store_error(c.status());
    auto r = ctx.store().resource(ctx.account, *c, t.name);
    if (!r.is_ok()) return ctx.store_error(r.status());
  }
  // Everything is checked before anything changes.
  std::vector<PropValue> ok, refused, dependent;
  CollectionProps changes;
  size_t count = collection ? collection->props.size() : 0;
  for (const auto& op : parsed->ops) {
    PropValue v{op.name, {}, {}};
    bool allowed = collection && writable_property(op.name) &&
                   op.value_xml.size() <= kMaxPropertyBytes && count < kMaxProperties;
    if (allowed) {
      ok.push_back(v);
      std::string key = prop_key(op.name);
      if (!op.remove && !collection->props.count(key)) ++count;
      changes[key] = op.remove ? std::string() : op.value_xml;
    } else {
      refused.push_back(v);
    }
  }
  MultistatusWriter out;
  out.begin_response(href);
  if (!refused.empty()) {
    out.propstat(403, refused, PropName{std::string(kDav), "cannot-modify-protected-property"});
    out.propstat(424, ok);
    return ctx.multistatus(out.finish());
  }
  if (!changes.empty()) {
    Status s = ctx.store().update_collection_props(ctx.account, *collection, changes);
    if (!s.is_ok()) return ctx.store_error(s);
  }
  out.propstat(200, ok);
  ctx.multistatus(out.finish());
}

}  // namespace mailark::dav
