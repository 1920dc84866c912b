// DELETE (RFC 4918 9.6) of a resource (with If-Match) or of a whole calendar or address
// book. Homes and principals cannot be deleted.
#include "protocol/dav/dav_context.h"

namespace mailark::dav {

void method_delete(DavContext& ctx) {
  const Target& t = ctx.target;
  if (t.kind != Target::Kind::kResource && t.kind != Target::Kind::kCollection)
    return ctx.status(403, "This resource cannot be deleted");
  auto c = ctx.collection();
  if (!c.is_ok()) return ctx.store_error(c.status());
  std::vector<std::string> match = etag_list(ctx.request.header("If-Match"));
  if (t.kind == Target::Kind::kCollection) {
    if (!match.empty()) return ctx.status(412, "Collections have no ETag");
    Status s = ctx.store().delete_collection(ctx.account, *c);
    if (!s.is_ok()) return ctx.store_error(s);
    ctx.response.status = 204;
    return;
  }
  std::optional<Digest> if_match;
  if (!match.empty()) {
    auto current = ctx.store().resource(ctx.account, *c, t.name);
    if (!current.is_ok()) {
      if (current.status().code() == ErrorCode::kNotFound)
        return ctx.status(412, "Precondition failed: the resource does not exist");
      return ctx.store_error(current.status());
    }
    bool matched = false;
    for (const auto& tag : match) matched = matched || tag == "*" || tag == etag(current->blob);
    if (!matched) return ctx.status(412, "Precondition failed: the resource has changed");
    if_match = current->blob;
  }
  Status s = ctx.store().delete_resource(ctx.account, *c, t.name, if_match);
  if (s.code() == ErrorCode::kConflict) return ctx.status(412, "Precondition failed");
  if (!s.is_ok()) return ctx.store_error(s);
  ctx.response.status = 204;
}

}  // namespace mailark::dav
