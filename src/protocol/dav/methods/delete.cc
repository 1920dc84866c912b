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
  if (t.kind == Target::Kind::kCollection) {
    if (ctx.request.has_header("If-Match")) return ctx.status(412, "Collections have no ETag");
    Status s = ctx.store().delete_collection(ctx.account, *c);
    if (!s.is_ok()) return ctx.store_error(s);
    ctx.response.status = 204;
    return;
  }
  std::optional<Digest> if_match;
  if (!check_if_match(ctx, *c, t.name, &if_match)) return;
  Status s = ctx.store().delete_resource(ctx.account, *c, t.name, if_match);
  if (s.code() == ErrorCode::kConflict) return ctx.status(412, "Precondition failed");
  if (!s.is_ok()) return ctx.store_error(s);
  ctx.response.status = 204;
}

}  // namespace mailark::dav
