// PROPFIND (RFC 4918 9.1) with Depth 0 and 1 over the principal, the homes, collections and
// resources. Depth: infinity is refused (DAV:propfind-finite-depth).
#include "protocol/dav/dav_context.h"

namespace mailark::dav {

void method_propfind(DavContext& ctx) {
  auto depth = ctx.depth(-1);
  if (!depth) return ctx.status(400, "Depth must be 0, 1 or infinity");
  if (*depth < 0) return ctx.precondition(403, {std::string(kDav), "propfind-finite-depth"});
  PropfindRequest parsed = propfind_allprop();
  if (!ctx.request.body.empty()) {
    auto p = parse_propfind(ctx.request.body);
    if (!p.is_ok())
      return ctx.status(p.status().code() == ErrorCode::kTooLarge ? 413 : 400,
                        p.status().message());
    parsed = std::move(*p);
  }
  PropRequest request = prop_request(parsed);
  MultistatusWriter out;
  const Target& t = ctx.target;
  const std::string& me = ctx.user.address;
  auto emit = [&](const Node& node) -> bool {
    Status s = describe(ctx, node, request, out);
    if (!s.is_ok()) ctx.store_error(s);
    return s.is_ok();
  };
  switch (t.kind) {
    case Target::Kind::kRoot:
    case Target::Kind::kPrincipals: {
      Node root;
      root.kind = Target::Kind::kRoot;
      root.href = t.kind == Target::Kind::kRoot
                      ? (ctx.request.target.rfind("/dav", 0) == 0 ? "/dav/" : "/")
                      : "/dav/principals/";
      if (!emit(root)) return;
      if (*depth == 1 && t.kind == Target::Kind::kPrincipals) {
        Node principal;
        principal.kind = Target::Kind::kPrincipal;
        principal.href = principal_href(me);
        if (!emit(principal)) return;
      }
      break;
    }
    case Target::Kind::kPrincipal: {
      Node principal;
      principal.kind = Target::Kind::kPrincipal;
      principal.href = principal_href(me);
      if (!emit(principal)) return;
      break;
    }
    case Target::Kind::kHome: {
      Node home;
      home.kind = Target::Kind::kHome;
      home.collection_kind = t.collection_kind;
      home.href = home_href(t.collection_kind, me);
      if (!emit(home)) return;
      if (*depth == 1) {
        auto list = ctx.store().collections(ctx.account, t.collection_kind);
        if (!list.is_ok()) return ctx.store_error(list.status());
        for (const auto& c : *list) {
          Node node;
          node.kind = Target::Kind::kCollection;
          node.collection_kind = t.collection_kind;
          node.collection = &c;
          node.href = collection_href(t.collection_kind, me, c.segment);
          if (!emit(node)) return;
        }
      }
      break;
    }
    case Target::Kind::kCollection: {
      auto c = ctx.collection();
      if (!c.is_ok()) return ctx.store_error(c.status());
      Node node;
      node.kind = Target::Kind::kCollection;
      node.collection_kind = t.collection_kind;
      node.collection = &*c;
      node.href = collection_href(t.collection_kind, me, c->segment);
      if (!emit(node)) return;
      if (*depth == 1) {
        auto list = ctx.store().resources(ctx.account, *c);
        if (!list.is_ok()) return ctx.store_error(list.status());
        for (const auto& r : *list) {
          Node child;
          child.kind = Target::Kind::kResource;
          child.collection_kind = t.collection_kind;
          child.collection = &*c;
          child.resource = &r;
          child.href = resource_href(t.collection_kind, me, c->segment, r.name);
          if (!emit(child)) return;
        }
      }
      break;
    }
    case Target::Kind::kResource: {
      auto c = ctx.collection();
      if (!c.is_ok()) return ctx.store_error(c.status());
      auto r = ctx.store().resource(ctx.account, *c, t.name);
      if (!r.is_ok()) return ctx.store_error(r.status());
      Node node;
      node.kind = Target::Kind::kResource;
      node.collection_kind = t.collection_kind;
      node.collection = &*c;
      node.resource = &*r;
      node.href = resource_href(t.collection_kind, me, c->segment, r->name);
      if (!emit(node)) return;
      break;
    }
  }
  ctx.multistatus(out.finish());
}

}  // namespace mailark::dav
