// GET and HEAD (RFC 4918 9.4) of calendar object and address object resources, with strong
// ETags and If-None-Match (304). Collections have no GET representation here.
#include "protocol/dav/dav_context.h"

#include "base/time.h"

namespace mailark::dav {

void method_get(DavContext& ctx) {
  const Target& t = ctx.target;
  if (t.kind != Target::Kind::kResource) {
    ctx.response.set("Allow", "OPTIONS, PROPFIND, PROPPATCH, REPORT, DELETE, MKCOL, MKCALENDAR");
    return ctx.status(405, "Collections are read with PROPFIND and REPORT");
  }
  auto c = ctx.collection();
  if (!c.is_ok()) return ctx.store_error(c.status());
  auto r = ctx.store().resource(ctx.account, *c, t.name);
  if (!r.is_ok()) return ctx.store_error(r.status());
  std::string tag = etag(r->blob);
  ctx.response.set("ETag", tag);
  std::string none_match = ctx.request.header("If-None-Match");
  if (!none_match.empty() &&
      (none_match.find(tag) != std::string::npos || none_match.find('*') != std::string::npos)) {
    ctx.response.status = 304;
    return;
  }
  auto body = ctx.store().read_message(ctx.account, r->blob);
  if (!body.is_ok()) return ctx.store_error(body.status());
  ctx.response.status = 200;
  ctx.response.set("Content-Type", t.collection_kind == CollectionKind::kCalendar
                                       ? "text/calendar; charset=utf-8"
                                       : "text/vcard; charset=utf-8");
  std::string modified = format_rfc5322(r->saved_ms);
  if (modified.size() > 6) modified.replace(modified.size() - 6, 6, " GMT");
  ctx.response.set("Last-Modified", modified);
  ctx.response.body = std::move(*body);
}

}  // namespace mailark::dav
