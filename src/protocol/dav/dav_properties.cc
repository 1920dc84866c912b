// Live and dead properties of every node in the DAV URL space (RFC 4918 15, RFC 4791 5.2,
// RFC 6352 6.2, RFC 5397, RFC 6578, RFC 4331, and the calendarserver getctag clients use):
// what PROPFIND and the REPORTs answer for a principal, a home, a collection or a resource.
#include <algorithm>

#include "base/time.h"
#include "protocol/dav/dav_context.h"
#include "protocol/dav/dav_filter.h"

namespace mailark::dav {

namespace {

const std::string kD(kDav);
const std::string kC(kCalDav);
const std::string kR(kCardDav);
const std::string kS(kCalServer);
const std::string kA(kApple);

std::string http_date(int64_t ms) {
  std::string s = format_rfc5322(ms);  // "Tue, 24 Nov 2026 16:00:00 +0000"
  if (s.size() > 6 && s.compare(s.size() - 6, 6, " +0000") == 0) s.replace(s.size() - 6, 6, " GMT");
  return s;
}

const std::vector<PropName>& allprops(Target::Kind kind, CollectionKind ck) {
  static const std::vector<PropName> principal = {{kD, "resourcetype"},
                                                  {kD, "displayname"},
                                                  {kD, "current-user-principal"},
                                                  {kD, "principal-URL"},
                                                  {kC, "calendar-home-set"},
                                                  {kR, "addressbook-home-set"},
                                                  {kC, "calendar-user-address-set"}};
  static const std::vector<PropName> root = {{kD, "resourcetype"}, {kD, "current-user-principal"}};
  static const std::vector<PropName> home = {{kD, "resourcetype"},
                                             {kD, "current-user-principal"},
                                             {kD, "owner"},
                                             {kD, "quota-available-bytes"},
                                             {kD, "quota-used-bytes"}};
  static const std::vector<PropName> calendar = {{kD, "resourcetype"},
                                                 {kD, "displayname"},
                                                 {kD, "owner"},
                                                 {kD, "sync-token"},
                                                 {kS, "getctag"},
                                                 {kC, "supported-calendar-component-set"},
                                                 {kC, "supported-calendar-data"},
                                                 {kC, "max-resource-size"}};
  static const std::vector<PropName> book = {
      {kD, "resourcetype"},     {kD, "displayname"}, {kD, "owner"},
      {kD, "sync-token"},       {kS, "getctag"},     {kR, "supported-address-data"},
      {kR, "max-resource-size"}};
  static const std::vector<PropName> resource = {{kD, "resourcetype"},
                                                 {kD, "getetag"},
                                                 {kD, "getcontenttype"},
                                                 {kD, "getcontentlength"},
                                                 {kD, "getlastmodified"}};
  switch (kind) {
    case Target::Kind::kPrincipal:
      return principal;
    case Target::Kind::kHome:
      return home;
    case Target::Kind::kCollection:
      return ck == CollectionKind::kCalendar ? calendar : book;
    case Target::Kind::kResource:
      return resource;
    default:
      return root;
  }
}

std::string privileges() {
  std::string out;
  for (const char* p : {"all", "read", "write", "write-properties", "write-content", "bind",
                        "unbind", "read-current-user-privilege-set"})
    out += std::string("<d:privilege><d:") + p + "/></d:privilege>";
  return out;
}

std::string supported_reports(const Node& node) {
  std::vector<std::string> reports;
  if (node.kind == Target::Kind::kCollection || node.kind == Target::Kind::kResource) {
    if (node.collection_kind == CollectionKind::kCalendar)
      reports = {"cal:calendar-query", "cal:calendar-multiget", "cal:free-busy-query"};
    else
      reports = {"card:addressbook-query", "card:addressbook-multiget"};
    if (node.kind == Target::Kind::kCollection) reports.push_back("d:sync-collection");
  }
  std::string out;
  for (const auto& r : reports)
    out += "<d:supported-report><d:report><" + r + "/></d:report></d:supported-report>";
  return out;
}

class Describer {
 public:
  Describer(DavContext& ctx, const Node& node, const PropRequest& request)
      : ctx_(ctx), node_(node), request_(request) {}

  // The value of one property, nullopt when the node does not have it. Store errors in
  // `error_`.
  std::optional<PropValue> value(const PropName& name) {
    PropValue v{name, {}, {}};
    const std::string& ns = name.ns;
    const std::string& n = name.name;
    const std::string& me = ctx_.user.address;
    const bool is_collection = node_.kind == Target::Kind::kCollection;
    const bool is_resource = node_.kind == Target::Kind::kResource;
    const bool calendar = node_.collection_kind == CollectionKind::kCalendar;
    if (ns == kD) {
      if (n == "resourcetype") {
        switch (node_.kind) {
          case Target::Kind::kPrincipal:
            v.xml_value = "<d:principal/><d:collection/>";
            break;
          case Target::Kind::kResource:
            break;
          case Target::Kind::kCollection:
            v.xml_value =
                calendar ? "<d:collection/><cal:calendar/>" : "<d:collection/><card:addressbook/>";
            break;
          default:
            v.xml_value = "<d:collection/>";
        }
        return v;
      }
      if (n == "current-user-principal") return xml(v, href_xml(principal_href(me)));
      if (n == "principal-URL" && node_.kind == Target::Kind::kPrincipal)
        return xml(v, href_xml(principal_href(me)));
      if (n == "principal-collection-set") return xml(v, href_xml("/dav/principals/"));
      if (n == "owner" && node_.kind != Target::Kind::kRoot &&
          node_.kind != Target::Kind::kPrincipals)
        return xml(v, href_xml(principal_href(me)));
      if (n == "current-user-privilege-set") return xml(v, privileges());
      if (n == "supported-report-set") return xml(v, supported_reports(node_));
      if (n == "displayname") {
        if (node_.kind == Target::Kind::kPrincipal) return text(v, me);
        if (is_collection) return dead(v);
        return std::nullopt;
      }
      if (is_collection && n == "sync-token")
        return text(v, sync_token(*node_.collection, node_.collection->folder.highestmodseq));
      if ((is_collection || node_.kind == Target::Kind::kHome) &&
          (n == "quota-available-bytes" || n == "quota-used-bytes"))
        return quota(v, n == "quota-used-bytes");
      if (is_resource) {
        const DavResource& r = *node_.resource;
        if (n == "getetag") return text(v, etag(r.blob));
        if (n == "getcontentlength") return text(v, std::to_string(r.size));
        if (n == "getlastmodified") return text(v, http_date(r.saved_ms));
        if (n == "getcontenttype")
          return text(v, calendar ? "text/calendar; charset=utf-8; component=" + lower(r.component)
                                  : std::string("text/vcard; charset=utf-8"));
      }
      if (is_collection && n == "getcontenttype") return std::nullopt;
      if (is_collection) return dead(v);
      return std::nullopt;
    }
    if (ns == kC) {
      if (n == "calendar-home-set" && node_.kind != Target::Kind::kResource)
        return xml(v, href_xml(home_href(CollectionKind::kCalendar, me)));
      if (n == "calendar-user-address-set" && node_.kind == Target::Kind::kPrincipal)
        return xml(v, href_xml("mailto:" + me));
      if (is_collection && calendar) {
        if (n == "supported-calendar-component-set") {
          std::string comps;
          for (const auto& c : node_.collection->components)
            comps += "<cal:comp name=\"" + xml_escape(c) + "\"/>";
          return xml(v, comps);
        }
        if (n == "supported-calendar-data")
          return xml(v, "<cal:calendar-data content-type=\"text/calendar\" version=\"2.0\"/>");
        if (n == "max-resource-size")
          return text(v, std::to_string(ctx_.options().max_resource_size));
        if (n == "supported-collation-set")
          return xml(v,
                     "<cal:supported-collation>i;ascii-casemap</cal:supported-collation>"
                     "<cal:supported-collation>i;octet</cal:supported-collation>"
                     "<cal:supported-collation>i;unicode-casemap</cal:supported-collation>");
        return dead(v);
      }
      if (is_resource && calendar && n == "calendar-data") return data(v);
      return std::nullopt;
    }
    if (ns == kR) {
      if (n == "addressbook-home-set" && node_.kind != Target::Kind::kResource)
        return xml(v, href_xml(home_href(CollectionKind::kContacts, me)));
      if (n == "principal-address" && node_.kind == Target::Kind::kPrincipal) return std::nullopt;
      if (is_collection && !calendar) {
        if (n == "supported-address-data")
          return xml(v,
                     "<card:address-data-type content-type=\"text/vcard\" version=\"3.0\"/>"
                     "<card:address-data-type content-type=\"text/vcard\" version=\"4.0\"/>");
        if (n == "max-resource-size")
          return text(v, std::to_string(ctx_.options().max_resource_size));
        return dead(v);
      }
      if (is_resource && !calendar && n == "address-data") return data(v);
      return std::nullopt;
    }
    if (ns == kS && n == "getctag" && is_collection)
      return text(v, sync_token(*node_.collection, node_.collection->folder.highestmodseq));
    if (is_collection) return dead(v);
    return std::nullopt;
  }

  Status error() const { return error_; }

 private:
  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  // The helpers fill `v` (value()'s local) and move it out: a copy would copy every value,
  // a resource's whole body among them.
  static std::optional<PropValue> xml(PropValue& v, std::string x) {
    v.xml_value = std::move(x);
    return std::move(v);
  }
  static std::optional<PropValue> text(PropValue& v, std::string t) {
    v.text = std::move(t);
    return std::move(v);
  }
  // A collection's stored (dead or writable) property.
  std::optional<PropValue> dead(PropValue& v) {
    if (!node_.collection) return std::nullopt;
    auto it = node_.collection->props.find(prop_key(v.name));
    if (it == node_.collection->props.end() || v.name.name == "supported-calendar-component-set")
      return std::nullopt;
    v.xml_value = it->second;
    return std::move(v);
  }
  std::optional<PropValue> quota(PropValue& v, bool used) {
    if (!usage_) {
      auto u = ctx_.store().usage(ctx_.account);
      if (!u.is_ok()) {
        error_ = u.status();
        return std::nullopt;
      }
      usage_ = u->bytes;
    }
    if (used) return text(v, std::to_string(*usage_));
    if (ctx_.user.quota_bytes == 0) return std::nullopt;  // RFC 4331: absent when unlimited
    uint64_t left = ctx_.user.quota_bytes > *usage_ ? ctx_.user.quota_bytes - *usage_ : 0;
    return text(v, std::to_string(left));
  }
  // calendar-data / address-data: the stored object, expanded when the request says so.
  std::optional<PropValue> data(PropValue& v) {
    const bool whole = !(request_.calendar_data &&
                         (request_.calendar_data->expand || request_.calendar_data->comp) &&
                         node_.collection_kind == CollectionKind::kCalendar) &&
                       !(request_.address_data && !request_.address_data->allprop &&
                         node_.collection_kind == CollectionKind::kContacts);
    if (node_.body && whole) {
      v.borrowed_text = node_.body;  // read already, and kept while the answer is written
      return std::move(v);
    }
    Result<std::string> body = node_.body
                                   ? Result<std::string>(*node_.body)
                                   : ctx_.store().read_message(ctx_.account, node_.resource->blob);
    if (!body.is_ok()) {
      error_ = body.status();
      return std::nullopt;
    }
    if (request_.calendar_data && request_.calendar_data->expand &&
        node_.collection_kind == CollectionKind::kCalendar) {
      auto range = parse_time_range(*request_.calendar_data->expand);
      if (!range.is_ok()) {
        error_ = range.status();
        return std::nullopt;
      }
      auto expanded = expand_calendar(*body, *range, request_.floating_tz);
      if (!expanded.is_ok()) {
        error_ = expanded.status();
        return std::nullopt;
      }
      return text(v, std::move(*expanded));
    }
    if (request_.calendar_data && request_.calendar_data->comp &&
        node_.collection_kind == CollectionKind::kCalendar) {
      auto selected = select_calendar_data(*body, *request_.calendar_data->comp);
      if (!selected.is_ok()) {
        error_ = selected.status();
        return std::nullopt;
      }
      return text(v, std::move(*selected));
    }
    if (request_.address_data && !request_.address_data->allprop &&
        node_.collection_kind == CollectionKind::kContacts)
      return text(v, select_address_data(*body, request_.address_data->props));
    return text(v, std::move(*body));
  }

  DavContext& ctx_;
  const Node& node_;
  const PropRequest& request_;
  std::optional<uint64_t> usage_;
  Status error_;
};

}  // namespace

PropRequest prop_request(const PropfindRequest& p) {
  PropRequest r;
  r.type = p.type;
  r.props = p.props;
  r.include = p.include;
  return r;
}

PropRequest prop_request(const ReportProps& p) {
  PropRequest r;
  r.type = p.type;
  r.props = p.props;
  r.calendar_data = p.calendar_data;
  r.address_data = p.address_data;
  return r;
}

std::string prop_key(const PropName& name) {
  return "{" + name.ns + "}" + name.name;
}

bool wants_data(const PropRequest& request) {
  if (request.type == PropfindRequest::Type::kPropName) return false;
  for (const auto& n : request.props)
    if ((n.ns == kC && n.name == "calendar-data") || (n.ns == kR && n.name == "address-data"))
      return true;
  return false;
}

bool writable_property(const PropName& name) {
  static const std::vector<PropName> kProtected = {{kD, "resourcetype"},
                                                   {kD, "getetag"},
                                                   {kD, "getcontenttype"},
                                                   {kD, "getcontentlength"},
                                                   {kD, "getlastmodified"},
                                                   {kD, "sync-token"},
                                                   {kD, "current-user-principal"},
                                                   {kD, "owner"},
                                                   {kD, "current-user-privilege-set"},
                                                   {kD, "supported-report-set"},
                                                   {kD, "quota-available-bytes"},
                                                   {kD, "quota-used-bytes"},
                                                   {kD, "principal-URL"},
                                                   {kD, "principal-collection-set"},
                                                   {kD, "lockdiscovery"},
                                                   {kD, "supportedlock"},
                                                   {kD, "creationdate"},
                                                   {kS, "getctag"},
                                                   {kC, "supported-calendar-component-set"},
                                                   {kC, "supported-calendar-data"},
                                                   {kC, "max-resource-size"},
                                                   {kC, "calendar-home-set"},
                                                   {kC, "supported-collation-set"},
                                                   {kC, "calendar-data"},
                                                   {kR, "supported-address-data"},
                                                   {kR, "max-resource-size"},
                                                   {kR, "addressbook-home-set"},
                                                   {kR, "address-data"}};
  return std::find(kProtected.begin(), kProtected.end(), name) == kProtected.end();
}

// What allprop and propname cover: the node's live properties, and a collection's stored ones.
static std::vector<PropName> known_names(const Node& node) {
  std::vector<PropName> names = allprops(node.kind, node.collection_kind);
  if (node.kind != Target::Kind::kCollection || !node.collection) return names;
  for (const auto& [key, value] : node.collection->props) {
    size_t close = key.find('}');
    if (key.empty() || key[0] != '{' || close == std::string::npos) continue;
    PropName n{key.substr(1, close - 1), key.substr(close + 1)};
    if (n.name == "supported-calendar-component-set") continue;
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

Status describe(DavContext& ctx, const Node& node, const PropRequest& request,
                MultistatusWriter& out) {
  Describer d(ctx, node, request);
  std::vector<PropValue> found, missing;
  found.reserve(request.props.size());
  out.begin_response(node.href);
  if (request.type == PropfindRequest::Type::kPropName) {
    for (const auto& n : known_names(node)) found.push_back({n, {}, {}});
    out.propstat(200, found);
    return Status::ok();
  }
  std::vector<PropName> all;  // allprop's names; a prop request's are used as they are
  if (request.type == PropfindRequest::Type::kAllProp) {
    all = known_names(node);
    for (const auto& n : request.include)
      if (std::find(all.begin(), all.end(), n) == all.end()) all.push_back(n);
  }
  const std::vector<PropName>& names =
      request.type == PropfindRequest::Type::kAllProp ? all : request.props;
  for (const auto& n : names) {
    auto v = d.value(n);
    MK_RETURN_IF_ERROR(d.error());
    if (v) {
      found.push_back(std::move(*v));
    } else if (request.type == PropfindRequest::Type::kProp ||
               std::find(request.include.begin(), request.include.end(), n) !=
                   request.include.end()) {
      missing.push_back({n, {}, {}});
    }
  }
  out.propstat(200, found);
  out.propstat(404, missing);
  return Status::ok();
}

}  // namespace mailark::dav
