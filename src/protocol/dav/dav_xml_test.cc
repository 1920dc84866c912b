// DAV XML tests: request bodies as real clients send them (Thunderbird, Apple Calendar and
// Contacts, DAVx5, python-caldav, vdirsyncer), hostile and malformed documents, exact writer
// output, escaping, and href encoding with traversal attempts.
#include "protocol/dav/dav_xml.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <random>

#include "protocol/dav/dav_service.h"

namespace mailark::dav {
namespace {

using Type = PropfindRequest::Type;
using Kind = ReportRequest::Kind;

constexpr std::string_view kMultistatusOpen =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<d:multistatus xmlns:d=\"DAV:\" xmlns:cal=\"urn:ietf:params:xml:ns:caldav\""
    " xmlns:card=\"urn:ietf:params:xml:ns:carddav\" xmlns:cs=\"http://calendarserver.org/ns/\""
    " xmlns:ical=\"http://apple.com/ns/ical/\">";

std::string nested(int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += "<a>";
  for (int i = 0; i < depth; ++i) s += "</a>";
  return s;
}

// ---------------------------------------------------------------------------------------------
// parse_xml

TEST(ParseXml, BuildsTreeWithNamespacesAttributesAndExactText) {
  auto root = parse_xml(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\">"
      "<D:set><D:prop><D:displayname xml:lang=\"de\">  Gr\xC3\xBC\x6E &amp; &lt;Rot&gt; "
      "&#x263A;<![CDATA[<b>]]>\r\n</D:displayname>"
      "<Z:thing Z:a=\"1\" a=\"2\" b='x&quot;y'/><plain/></D:prop></D:set>"
      "</D:propertyupdate>");
  ASSERT_TRUE(root.is_ok()) << root.status().to_string();
  EXPECT_EQ(root->ns, "DAV:");
  EXPECT_EQ(root->name, "propertyupdate");
  ASSERT_EQ(root->children.size(), 1u);
  const Element& prop = root->children[0].children.at(0);
  ASSERT_EQ(prop.children.size(), 3u);
  const Element& name = prop.children[0];
  EXPECT_TRUE(name.is(kDav, "displayname"));
  // Entities and the CDATA section resolved, leading blanks kept, CRLF normalized to LF.
  EXPECT_EQ(name.text, "  Gr\xC3\xBCn & <Rot> \xE2\x98\xBA<b>\n");
  EXPECT_EQ(name.attr("{http://www.w3.org/XML/1998/namespace}lang"), "de");
  const Element& thing = prop.children[1];
  EXPECT_EQ(thing.prop_name(), (PropName{"urn:z", "thing"}));
  EXPECT_EQ(thing.attrs,
            (std::map<std::string, std::string>{{"{urn:z}a", "1"}, {"a", "2"}, {"b", "x\"y"}}));
  EXPECT_EQ(thing.attr("missing", "dflt"), "dflt");
  EXPECT_EQ(prop.children[2].prop_name(), (PropName{"", "plain"}));
  EXPECT_EQ(prop.child(kDav, "displayname"), &prop.children[0]);
  EXPECT_EQ(prop.child(kDav, "nope"), nullptr);
}

TEST(ParseXml, DefaultNamespaceAndUndeclaring) {
  auto root = parse_xml(
      "<propfind xmlns=\"DAV:\"><prop><getetag/><x xmlns=\"\"/>"
      "<n0:getctag xmlns:n0=\"http://calendarserver.org/ns/\"/></prop></propfind>");
  ASSERT_TRUE(root.is_ok());
  const Element& prop = root->children.at(0);
  ASSERT_EQ(prop.children.size(), 3u);
  EXPECT_EQ(prop.children[0].prop_name(), (PropName{kDav, "getetag"}));
  EXPECT_EQ(prop.children[1].prop_name(), (PropName{"", "x"}));
  EXPECT_EQ(prop.children[2].prop_name(), (PropName{kCalServer, "getctag"}));
}

TEST(ParseXml, MixedContentRemembersWhereChildrenSit) {
  auto root = parse_xml("<a>one<b>two</b>three<c/>four</a>");
  ASSERT_TRUE(root.is_ok());
  EXPECT_EQ(root->text, "onethreefour");
  ASSERT_EQ(root->children.size(), 2u);
  EXPECT_EQ(root->children[0].text_offset, 3u);
  EXPECT_EQ(root->children[1].text_offset, 8u);
  EXPECT_EQ(inner_xml(*root), "one<b>two</b>three<c/>four");
}

struct Bad {
  const char* what;
  std::string body;
  ErrorCode code;
  const char* reason;  // substring of the message
};

const std::string kBillionLaughs =
    "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
    " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
    " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
    " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
    " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
    " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
    " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
    " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
    " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
    " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
    "]>\n<D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname>&lol9;</D:displayname>"
    "</D:prop></D:propfind>";

const Bad kBadXml[] = {
    {"empty", "", ErrorCode::kInvalid, "empty"},
    {"blank", " \r\n\t", ErrorCode::kInvalid, "empty"},
    {"not xml", "PROPFIND / HTTP/1.1", ErrorCode::kInvalid, "malformed XML"},
    {"json", "{\"propfind\": {}}", ErrorCode::kInvalid, "malformed XML"},
    {"truncated", "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:getetag/>", ErrorCode::kInvalid,
     "malformed XML"},
    {"mismatched tag", "<D:propfind xmlns:D=\"DAV:\"></D:prop>", ErrorCode::kInvalid,
     "malformed XML"},
    {"unbound prefix", "<D:propfind><D:prop/></D:propfind>", ErrorCode::kInvalid,
     "malformed XML: unbound prefix"},
    {"unbound attribute prefix", "<a x:y=\"1\"/>", ErrorCode::kInvalid, "unbound prefix"},
    {"two roots", "<a/><b/>", ErrorCode::kInvalid, "malformed XML"},
    {"text after root", "<a/>junk", ErrorCode::kInvalid, "malformed XML"},
    {"undefined entity", "<a>&nbsp;</a>", ErrorCode::kInvalid, "malformed XML"},
    {"control character reference", "<a>&#1;</a>", ErrorCode::kInvalid, "malformed XML"},
    {"raw control character", "<a>\x01</a>", ErrorCode::kInvalid, "malformed XML"},
    {"duplicate attribute", "<a b=\"1\" b=\"2\"/>", ErrorCode::kInvalid, "malformed XML"},
    {"billion laughs", kBillionLaughs, ErrorCode::kInvalid, "DOCTYPE"},
    {"external entity", "<!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><d>&x;</d>",
     ErrorCode::kInvalid, "DOCTYPE"},
    {"bare doctype", "<!DOCTYPE a><a/>", ErrorCode::kInvalid, "DOCTYPE"},
    {"latin-1 bytes", "<a>caf\xE9</a>", ErrorCode::kInvalid, "malformed XML"},
    {"overlong utf-8", "<a>\xC0\xAF</a>", ErrorCode::kInvalid, "malformed XML"},
    {"utf-8 surrogate", "<a>\xED\xA0\x80</a>", ErrorCode::kInvalid, "malformed XML"},
    {"declared latin-1", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>", ErrorCode::kInvalid,
     "UTF-8"},
    {"utf-16 with bom", std::string("\xFE\xFF\0<\0a\0/\0>", 10), ErrorCode::kInvalid, "UTF-8"},
    {"nul byte", std::string("<a>\0</a>", 8), ErrorCode::kInvalid, "UTF-8"},
    {"too deep", nested(33), ErrorCode::kInvalid, "nested too deeply"},
    {"too large", "<a>" + std::string(1 << 20, 'x') + "</a>", ErrorCode::kTooLarge, "too large"},
};

TEST(ParseXml, RejectsMalformedAndHostileDocuments) {
  for (const Bad& b : kBadXml) {
    auto r = parse_xml(b.body);
    ASSERT_FALSE(r.is_ok()) << b.what;
    EXPECT_EQ(r.status().code(), b.code) << b.what << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find(b.reason), std::string::npos)
        << b.what << ": " << r.status().to_string();
  }
}

TEST(ParseXml, BillionLaughsIsRefusedQuickly) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(parse_xml(kBillionLaughs).is_ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(ParseXml, LimitsAreInclusive) {
  EXPECT_TRUE(parse_xml(nested(32)).is_ok());
  XmlLimits limits;
  limits.max_depth = 2;
  limits.max_elements = 3;
  limits.max_bytes = 30;
  EXPECT_TRUE(parse_xml("<a><b/><b/></a>", limits).is_ok());
  EXPECT_EQ(parse_xml("<a><b/><b/><b/></a>", limits).status().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(parse_xml("<a><b><c/></b></a>", limits).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(parse_xml("<a>" + std::string(24, ' ') + "</a>", limits).status().code(),
            ErrorCode::kTooLarge);
  EXPECT_TRUE(parse_xml("<a>" + std::string(23, ' ') + "</a>", limits).is_ok());
  EXPECT_TRUE(parse_xml("<?xml version='1.0' encoding='us-ascii'?><a/>").is_ok());
  EXPECT_TRUE(parse_xml("\xEF\xBB\xBF<a/>").is_ok());  // UTF-8 byte-order mark
}

// ---------------------------------------------------------------------------------------------
// serialize / inner_xml

struct Serialized {
  std::string in;
  std::string out;
};

const Serialized kSerialized[] = {
    {"<a/>", "<a/>"},
    {"<D:a xmlns:D=\"DAV:\">x</D:a>", "<d:a xmlns:d=\"DAV:\">x</d:a>"},
    {"<a xmlns=\"urn:one\"><b xmlns=\"urn:two\" xmlns:c=\"urn:one\" c:k=\"v\"/><b/></a>",
     "<x0:a xmlns:x0=\"urn:one\" xmlns:x1=\"urn:two\"><x1:b x0:k=\"v\"/><x0:b/></x0:a>"},
    {"<C:calendar-color xmlns:C=\"http://apple.com/ns/ical/\" symbolic-color=\"red\">"
     "#FF2968FF</C:calendar-color>",
     "<ical:calendar-color xmlns:ical=\"http://apple.com/ns/ical/\" symbolic-color=\"red\">"
     "#FF2968FF</ical:calendar-color>"},
    {"<t xml:lang=\"en\" a=\"tab&#9;lf&#10;cr&#13;&lt;&amp;&quot;'\">a&lt;&amp;&gt;\"'&#13;z</t>",
     "<t a=\"tab&#9;lf&#10;cr&#13;&lt;&amp;&quot;'\" "
     "xml:lang=\"en\">a&lt;&amp;&gt;&quot;'&#13;z</t>"},
    {"<m>1<i>2</i>3<i/>4</m>", "<m>1<i>2</i>3<i/>4</m>"},
};

TEST(Serialize, WritesSelfContainedFragmentsThatParseBack) {
  for (const Serialized& s : kSerialized) {
    auto e = parse_xml(s.in);
    ASSERT_TRUE(e.is_ok()) << s.in;
    EXPECT_EQ(serialize(*e), s.out) << s.in;
    auto back = parse_xml(serialize(*e));
    ASSERT_TRUE(back.is_ok()) << s.out;
    EXPECT_EQ(*back, *e) << s.in;
  }
}

TEST(Serialize, InnerXmlDeclaresNamespacesOnEachChild) {
  auto e = parse_xml(
      "<D:prop xmlns:D=\"DAV:\" xmlns:Z=\"urn:z\"><Z:dead>  lead <Z:v n=\"1\">a</Z:v> "
      "<D:href>/x/</D:href><bare/>tail </Z:dead></D:prop>");
  ASSERT_TRUE(e.is_ok());
  const Element& dead = e->children.at(0);
  EXPECT_EQ(inner_xml(dead),
            "  lead <x0:v xmlns:x0=\"urn:z\" n=\"1\">a</x0:v> "
            "<d:href xmlns:d=\"DAV:\">/x/</d:href><bare/>tail ");
  auto wrapped = parse_xml("<w>" + inner_xml(dead) + "</w>");
  ASSERT_TRUE(wrapped.is_ok());
  EXPECT_EQ(wrapped->text, dead.text);
  EXPECT_EQ(wrapped->children, dead.children);
}

// ---------------------------------------------------------------------------------------------
// PROPFIND

struct PropfindCase {
  const char* client;
  std::string body;
  Type type;
  std::vector<PropName> props;
  std::vector<PropName> include;
};

const PropfindCase kPropfinds[] = {
    {"Thunderbird calendar properties",
     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
     "<D:propfind xmlns:D=\"DAV:\" xmlns:CS=\"http://calendarserver.org/ns/\" "
     "xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:prop><D:resourcetype/><D:owner/>"
     "<D:current-user-principal/><D:current-user-privilege-set/><D:supported-report-set/>"
     "<C:supported-calendar-component-set/><CS:getctag/></D:prop></D:propfind>",
     Type::kProp,
     {{kDav, "resourcetype"},
      {kDav, "owner"},
      {kDav, "current-user-principal"},
      {kDav, "current-user-privilege-set"},
      {kDav, "supported-report-set"},
      {kCalDav, "supported-calendar-component-set"},
      {kCalServer, "getctag"}},
     {}},
    {"Thunderbird etag listing",
     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<D:propfind xmlns:D=\"DAV:\"><D:prop>"
     "<D:getcontenttype/><D:resourcetype/><D:getetag/></D:prop></D:propfind>",
     Type::kProp,
     {{kDav, "getcontenttype"}, {kDav, "resourcetype"}, {kDav, "getetag"}},
     {}},
    {"Apple Calendar home",
     R"(<?xml version="1.0" encoding="UTF-8"?>
<A:propfind xmlns:A="DAV:">
  <A:prop>
    <A:add-member/>
    <C:allowed-sharing-modes xmlns:C="http://calendarserver.org/ns/"/>
    <D:autoprovisioned xmlns:D="http://apple.com/ns/ical/"/>
    <E:bulk-requests xmlns:E="http://me.com/_namespace/"/>
    <D:calendar-color xmlns:D="http://apple.com/ns/ical/"/>
    <B:calendar-description xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:calendar-free-busy-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <D:calendar-order xmlns:D="http://apple.com/ns/ical/"/>
    <B:calendar-timezone xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:current-user-privilege-set/>
    <B:default-alarm-vevent-date xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:displayname/>
    <C:getctag xmlns:C="http://calendarserver.org/ns/"/>
    <A:owner/>
    <C:pushkey xmlns:C="http://calendarserver.org/ns/"/>
    <A:quota-available-bytes/>
    <A:quota-used-bytes/>
    <A:resource-id/>
    <A:resourcetype/>
    <B:schedule-calendar-transp xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <B:supported-calendar-component-set xmlns:B="urn:ietf:params:xml:ns:caldav"/>
    <A:supported-report-set/>
    <A:sync-token/>
  </A:prop>
</A:propfind>
)",
     Type::kProp,
     {{kDav, "add-member"},
      {kCalServer, "allowed-sharing-modes"},
      {kApple, "autoprovisioned"},
      {"http://me.com/_namespace/", "bulk-requests"},
      {kApple, "calendar-color"},
      {kCalDav, "calendar-description"},
      {kCalDav, "calendar-free-busy-set"},
      {kApple, "calendar-order"},
      {kCalDav, "calendar-timezone"},
      {kDav, "current-user-privilege-set"},
      {kCalDav, "default-alarm-vevent-date"},
      {kDav, "displayname"},
      {kCalServer, "getctag"},
      {kDav, "owner"},
      {kCalServer, "pushkey"},
      {kDav, "quota-available-bytes"},
      {kDav, "quota-used-bytes"},
      {kDav, "resource-id"},
      {kDav, "resourcetype"},
      {kCalDav, "schedule-calendar-transp"},
      {kCalDav, "supported-calendar-component-set"},
      {kDav, "supported-report-set"},
      {kDav, "sync-token"}},
     {}},
    {"DAVx5 collection",
     "<?xml version='1.0' encoding='UTF-8' ?><propfind xmlns=\"DAV:\" "
     "xmlns:CAL=\"urn:ietf:params:xml:ns:caldav\" "
     "xmlns:CARD=\"urn:ietf:params:xml:ns:carddav\"><prop><CAL:max-resource-size />"
     "<supported-report-set /><n0:getctag xmlns:n0=\"http://calendarserver.org/ns/\" />"
     "<sync-token /></prop></propfind>",
     Type::kProp,
     {{kCalDav, "max-resource-size"},
      {kDav, "supported-report-set"},
      {kCalServer, "getctag"},
      {kDav, "sync-token"}},
     {}},
    {"duplicates collapse",
     "<d:propfind xmlns:d=\"DAV:\"><d:prop><d:getetag/><d:getetag/></d:prop>"
     "<d:prop><d:getetag/><d:displayname/></d:prop></d:propfind>",
     Type::kProp,
     {{kDav, "getetag"}, {kDav, "displayname"}},
     {}},
    {"allprop with include",
     "<D:propfind xmlns:D=\"DAV:\"><D:allprop/><D:include><D:supported-live-property-set/>"
     "<D:supported-report-set/></D:include></D:propfind>",
     Type::kAllProp,
     {},
     {{kDav, "supported-live-property-set"}, {kDav, "supported-report-set"}}},
    {"propname", "<propfind xmlns=\"DAV:\"><propname/></propfind>", Type::kPropName, {}, {}},
    {"empty propfind element", "<D:propfind xmlns:D=\"DAV:\"/>", Type::kAllProp, {}, {}},
    {"unknown children ignored",
     "<D:propfind xmlns:D=\"DAV:\" xmlns:X=\"urn:x\"><X:hint/><D:prop><D:getetag/></D:prop>"
     "</D:propfind>",
     Type::kProp,
     {{kDav, "getetag"}},
     {}},
};

TEST(Propfind, ParsesClientBodies) {
  for (const PropfindCase& c : kPropfinds) {
    auto r = parse_propfind(c.body);
    ASSERT_TRUE(r.is_ok()) << c.client << ": " << r.status().to_string();
    EXPECT_EQ(r->type, c.type) << c.client;
    EXPECT_EQ(r->props, c.props) << c.client;
    EXPECT_EQ(r->include, c.include) << c.client;
  }
  EXPECT_EQ(propfind_allprop().type, Type::kAllProp);
  EXPECT_TRUE(propfind_allprop().props.empty());
}

const Bad kBadPropfinds[] = {
    {"wrong root", "<D:propertyupdate xmlns:D=\"DAV:\"/>", ErrorCode::kInvalid,
     "expected DAV:propfind"},
    {"right name, wrong namespace", "<propfind><prop/></propfind>", ErrorCode::kInvalid,
     "expected DAV:propfind as root element, got {}propfind"},
    {"prop and allprop", "<D:propfind xmlns:D=\"DAV:\"><D:allprop/><D:prop/></D:propfind>",
     ErrorCode::kInvalid, "more than one"},
    {"allprop and propname", "<D:propfind xmlns:D=\"DAV:\"><D:allprop/><D:propname/></D:propfind>",
     ErrorCode::kInvalid, "more than one"},
    {"not xml", "getetag", ErrorCode::kInvalid, "malformed XML"},
};

TEST(Propfind, RejectsBadBodies) {
  for (const Bad& b : kBadPropfinds) {
    auto r = parse_propfind(b.body);
    ASSERT_FALSE(r.is_ok()) << b.what;
    EXPECT_EQ(r.status().code(), b.code) << b.what;
    EXPECT_NE(r.status().message().find(b.reason), std::string::npos)
        << b.what << ": " << r.status().to_string();
  }
}

// ---------------------------------------------------------------------------------------------
// PROPPATCH and MKCALENDAR / MKCOL

TEST(Proppatch, KeepsDocumentOrderAndExactValues) {
  auto r = parse_proppatch(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<A:propertyupdate xmlns:A=\"DAV:\">\n"
      "  <A:set><A:prop>\n"
      "    <A:displayname> Caf\xC3\xA9 &lt;Tom &amp; \"Jerry\"&gt; </A:displayname>\n"
      "    <B:calendar-color xmlns:B=\"http://apple.com/ns/ical/\" symbolic-color=\"custom\">"
      "#FF2968FF</B:calendar-color>\n"
      "  </A:prop></A:set>\n"
      "  <A:remove><A:prop><C:calendar-description "
      "xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/></A:prop></A:remove>\n"
      "  <A:set><A:prop><Z:dead xmlns:Z=\"urn:z\">pre<Z:v>1</Z:v></Z:dead></A:prop></A:set>\n"
      "</A:propertyupdate>");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->ops.size(), 4u);
  const auto& ops = r->ops;
  EXPECT_FALSE(ops[0].remove);
  EXPECT_EQ(ops[0].name, (PropName{kDav, "displayname"}));
  EXPECT_EQ(ops[0].value_text, " Caf\xC3\xA9 <Tom & \"Jerry\"> ");
  EXPECT_EQ(ops[0].value_xml, " Caf\xC3\xA9 &lt;Tom &amp; &quot;Jerry&quot;&gt; ");
  EXPECT_EQ(ops[1].name, (PropName{kApple, "calendar-color"}));
  EXPECT_EQ(ops[1].value_text, "#FF2968FF");
  EXPECT_EQ(ops[1].element.attr("symbolic-color"), "custom");
  EXPECT_TRUE(ops[2].remove);
  EXPECT_EQ(ops[2].name, (PropName{kCalDav, "calendar-description"}));
  EXPECT_EQ(ops[2].value_xml, "");
  EXPECT_EQ(ops[3].name, (PropName{"urn:z", "dead"}));
  EXPECT_EQ(ops[3].value_text, "pre");
  EXPECT_EQ(ops[3].value_xml, "pre<x0:v xmlns:x0=\"urn:z\">1</x0:v>");
}

TEST(Proppatch, NamespaceFloodInADeadPropertyStaysLinear) {
  std::string body =
      "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><Z:dead xmlns:Z=\"urn:z\"><w>";
  const int kCount = 50'000;
  for (int i = 0; i < kCount; ++i) body += "<e xmlns=\"u" + std::to_string(i) + "\"/>";
  body += "</w></Z:dead></D:prop></D:set></D:propertyupdate>";
  auto start = std::chrono::steady_clock::now();
  auto r = parse_proppatch(body);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(r->ops.size(), 1u);
  const std::string& xml = r->ops[0].value_xml;
  EXPECT_TRUE(xml.starts_with("<w xmlns:x0=\"u0\" xmlns:x1=\"u1\" ")) << xml.substr(0, 80);
  EXPECT_TRUE(xml.ends_with("<x49998:e/><x49999:e/></w>"));
  XmlLimits roomy;
  roomy.max_bytes = 4 << 20;  // prefixes and declarations make it larger than the request
  auto back = parse_xml(xml, roomy);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->children.size(), static_cast<size_t>(kCount));
  EXPECT_EQ(back->children.back().ns, "u49999");
}

const Bad kBadProppatches[] = {
    {"wrong root", "<D:propfind xmlns:D=\"DAV:\"/>", ErrorCode::kInvalid,
     "expected DAV:propertyupdate"},
    {"no instruction", "<D:propertyupdate xmlns:D=\"DAV:\"><D:prop/></D:propertyupdate>",
     ErrorCode::kInvalid, "without set or remove"},
    {"truncated", "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>", ErrorCode::kInvalid,
     "malformed XML"},
};

TEST(Proppatch, RejectsBadBodies) {
  for (const Bad& b : kBadProppatches) {
    auto r = parse_proppatch(b.body);
    ASSERT_FALSE(r.is_ok()) << b.what;
    EXPECT_EQ(r.status().code(), b.code) << b.what;
    EXPECT_NE(r.status().message().find(b.reason), std::string::npos) << b.what;
  }
}

TEST(Mkcol, ParsesMkcalendarFromAppleCalendar) {
  auto r = parse_mkcol(R"(<?xml version="1.0" encoding="UTF-8"?>
<B:mkcalendar xmlns:B="urn:ietf:params:xml:ns:caldav">
  <A:set xmlns:A="DAV:">
    <A:prop>
      <B:supported-calendar-component-set>
        <B:comp name="VEVENT"/>
        <B:comp name="VTODO"/>
      </B:supported-calendar-component-set>
      <D:calendar-order xmlns:D="http://apple.com/ns/ical/">2</D:calendar-order>
      <A:displayname>Holidays</A:displayname>
      <B:calendar-timezone>BEGIN:VCALENDAR&#13;
END:VCALENDAR&#13;
</B:calendar-timezone>
    </A:prop>
  </A:set>
</B:mkcalendar>
)");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r->mkcalendar);
  EXPECT_TRUE(r->resourcetype.empty());
  EXPECT_EQ(r->components, (std::vector<std::string>{"VEVENT", "VTODO"}));
  ASSERT_EQ(r->set.size(), 4u);
  EXPECT_EQ(r->set[0].name, (PropName{kCalDav, "supported-calendar-component-set"}));
  EXPECT_EQ(r->set[1].name, (PropName{kApple, "calendar-order"}));
  EXPECT_EQ(r->set[1].value_text, "2");
  EXPECT_EQ(r->set[2].value_text, "Holidays");
  EXPECT_EQ(r->set[3].value_text, "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n");
  EXPECT_EQ(r->set[3].value_xml, "BEGIN:VCALENDAR&#13;\nEND:VCALENDAR&#13;\n");
}

TEST(Mkcol, ParsesExtendedMkcolForAnAddressBook) {
  auto r = parse_mkcol(
      "<D:mkcol xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><D:set><D:prop>"
      "<D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>"
      "<D:displayname>Lisa's Contacts</D:displayname>"
      "<C:addressbook-description xml:lang=\"en\">My primary address book.</C:addressbook-"
      "description></D:prop></D:set></D:mkcol>");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(r->mkcalendar);
  EXPECT_EQ(r->resourcetype,
            (std::vector<PropName>{{kDav, "collection"}, {kCardDav, "addressbook"}}));
  ASSERT_EQ(r->set.size(), 3u);
  EXPECT_EQ(r->set[0].name, (PropName{kDav, "resourcetype"}));
  EXPECT_EQ(r->set[1].value_text, "Lisa's Contacts");
  EXPECT_EQ(r->set[2].name, (PropName{kCardDav, "addressbook-description"}));
  EXPECT_TRUE(r->components.empty());

  auto bare = parse_mkcol("<C:mkcalendar xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>");
  ASSERT_TRUE(bare.is_ok());
  EXPECT_TRUE(bare->mkcalendar);
  EXPECT_TRUE(bare->set.empty());
}

const Bad kBadMkcols[] = {
    {"wrong root", "<D:propertyupdate xmlns:D=\"DAV:\"/>", ErrorCode::kInvalid,
     "expected CALDAV:mkcalendar or DAV:mkcol"},
    {"comp without name",
     "<C:mkcalendar xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:D=\"DAV:\"><D:set><D:prop>"
     "<C:supported-calendar-component-set><C:comp/></C:supported-calendar-component-set>"
     "</D:prop></D:set></C:mkcalendar>",
     ErrorCode::kInvalid, "comp without name"},
};

TEST(Mkcol, RejectsBadBodies) {
  for (const Bad& b : kBadMkcols) {
    auto r = parse_mkcol(b.body);
    ASSERT_FALSE(r.is_ok()) << b.what;
    EXPECT_EQ(r.status().code(), b.code) << b.what;
    EXPECT_NE(r.status().message().find(b.reason), std::string::npos) << b.what;
  }
}

// ---------------------------------------------------------------------------------------------
// REPORT

TEST(Report, CalendarQueryFromPythonCaldavWithExpand) {
  auto r = parse_report(R"(<?xml version='1.0' encoding='utf-8'?>
<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:">
  <D:prop>
    <D:getetag/>
    <C:calendar-data>
      <C:expand start="20240101T000000Z" end="20240201T000000Z"/>
    </C:calendar-data>
  </D:prop>
  <C:filter>
    <C:comp-filter name="VCALENDAR">
      <C:comp-filter name="VEVENT">
        <C:time-range start="20240101T000000Z" end="20240201T000000Z"/>
      </C:comp-filter>
    </C:comp-filter>
  </C:filter>
</C:calendar-query>
)");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->kind, Kind::kCalendarQuery);
  EXPECT_EQ(r->root, (PropName{kCalDav, "calendar-query"}));
  const auto& q = std::get<CalendarQuery>(r->body);
  EXPECT_EQ(q.props.type, Type::kProp);
  EXPECT_EQ(q.props.props, (std::vector<PropName>{{kDav, "getetag"}, {kCalDav, "calendar-data"}}));
  ASSERT_TRUE(q.props.calendar_data.has_value());
  EXPECT_EQ(q.props.calendar_data->content_type, "text/calendar");
  EXPECT_EQ(q.props.calendar_data->expand, (TimeRangeText{"20240101T000000Z", "20240201T000000Z"}));
  EXPECT_FALSE(q.props.calendar_data->comp.has_value());
  EXPECT_FALSE(q.props.address_data.has_value());
  EXPECT_EQ(q.filter.name, "VCALENDAR");
  EXPECT_FALSE(q.filter.time_range.has_value());
  ASSERT_EQ(q.filter.comps.size(), 1u);
  EXPECT_EQ(q.filter.comps[0].name, "VEVENT");
  EXPECT_EQ(q.filter.comps[0].time_range, (TimeRangeText{"20240101T000000Z", "20240201T000000Z"}));
  EXPECT_FALSE(q.timezone.has_value());
}

TEST(Report, CalendarQueryFromVdirsyncerWithOpenEndedRange) {
  auto r = parse_report(
      "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n"
      "<C:calendar-query xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">\n"
      "    <D:prop>\n        <D:getcontenttype/>\n        <D:getetag/>\n    </D:prop>\n"
      "    <C:filter>\n        <C:comp-filter name=\"VCALENDAR\"><C:comp-filter name=\"VTODO\">"
      "<C:time-range start=\"20240301T000000Z\"/></C:comp-filter></C:comp-filter>\n"
      "    </C:filter>\n</C:calendar-query>");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& q = std::get<CalendarQuery>(r->body);
  EXPECT_FALSE(q.props.calendar_data.has_value());
  EXPECT_EQ(q.filter.comps.at(0).time_range, (TimeRangeText{"20240301T000000Z", ""}));
}

TEST(Report, CalendarQueryWithPropAndParamFiltersAndSelection) {
  auto r = parse_report(R"(<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data content-type="application/calendar+json" version="2.0">
    <C:comp name="VCALENDAR"><C:prop name="VERSION"/>
      <C:comp name="VEVENT"><C:allprop/></C:comp><C:comp name="VTIMEZONE"/>
    </C:comp>
    <C:limit-recurrence-set start="20240101T000000Z" end="20240102T000000Z"/>
  </C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:prop-filter name="UID"><C:text-match collation="i;octet"
      >DC6C50A017428C5216A2F1CD@example.com</C:text-match></C:prop-filter>
    <C:prop-filter name="ATTENDEE"><C:text-match negate-condition="yes"
      match-type="starts-with">mailto:lisa</C:text-match>
      <C:param-filter name="PARTSTAT"><C:text-match>NEEDS-ACTION</C:text-match></C:param-filter>
      <C:param-filter name="X-FOO"><C:is-not-defined/></C:param-filter>
    </C:prop-filter>
    <C:prop-filter name="DTSTART"><C:time-range end="20240102T000000Z"/></C:prop-filter>
    <C:comp-filter name="VALARM"><C:is-not-defined/></C:comp-filter>
  </C:comp-filter></C:comp-filter></C:filter>
  <C:timezone>BEGIN:VCALENDAR
END:VCALENDAR
</C:timezone>
  <C:timezone-id> Europe/Berlin </C:timezone-id>
</C:calendar-query>)");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& q = std::get<CalendarQuery>(r->body);
  const CalendarDataRequest& data = q.props.calendar_data.value();
  EXPECT_EQ(data.content_type, "application/calendar+json");
  EXPECT_EQ(data.limit_recurrence_set, (TimeRangeText{"20240101T000000Z", "20240102T000000Z"}));
  EXPECT_FALSE(data.expand.has_value());
  ASSERT_TRUE(data.comp.has_value());
  EXPECT_EQ(data.comp->name, "VCALENDAR");
  EXPECT_EQ(data.comp->props, (std::vector<std::string>{"VERSION"}));
  EXPECT_FALSE(data.comp->allprop);
  ASSERT_EQ(data.comp->comps.size(), 2u);
  EXPECT_TRUE(data.comp->comps[0].allprop);
  EXPECT_EQ(data.comp->comps[1].name, "VTIMEZONE");

  const CompFilter& event = q.filter.comps.at(0);
  ASSERT_EQ(event.props.size(), 3u);
  const PropFilter& uid = event.props[0];
  EXPECT_EQ(uid.name, "UID");
  ASSERT_TRUE(uid.text_match.has_value());
  EXPECT_EQ(uid.text_match->text, "DC6C50A017428C5216A2F1CD@example.com");
  EXPECT_EQ(uid.text_match->collation, "i;octet");
  EXPECT_EQ(uid.text_match->match_type, "contains");
  EXPECT_FALSE(uid.text_match->negate);
  const PropFilter& attendee = event.props[1];
  EXPECT_TRUE(attendee.text_match->negate);
  EXPECT_EQ(attendee.text_match->collation, "i;ascii-casemap");
  EXPECT_EQ(attendee.text_match->match_type, "starts-with");
  ASSERT_EQ(attendee.params.size(), 2u);
  EXPECT_EQ(attendee.params[0].name, "PARTSTAT");
  EXPECT_EQ(attendee.params[0].text_match->text, "NEEDS-ACTION");
  EXPECT_TRUE(attendee.params[1].is_not_defined);
  EXPECT_FALSE(attendee.params[1].text_match.has_value());
  EXPECT_EQ(event.props[2].time_range, (TimeRangeText{"", "20240102T000000Z"}));
  ASSERT_EQ(event.comps.size(), 1u);
  EXPECT_TRUE(event.comps[0].is_not_defined);
  EXPECT_EQ(q.timezone, "BEGIN:VCALENDAR\nEND:VCALENDAR\n");
  EXPECT_EQ(q.timezone_id, "Europe/Berlin");
}

std::string calendar_query_with_filter(const std::string& filter) {
  return "<C:calendar-query xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
         "<D:prop><D:getetag/></D:prop>" +
         filter + "</C:calendar-query>";
}

struct BadFilter {
  const char* what;
  std::string filter;
  const char* reason;
};

const BadFilter kBadCalendarFilters[] = {
    {"no filter", "", "without filter"},
    {"empty filter", "<C:filter/>", "without comp-filter"},
    {"top VEVENT", "<C:filter><C:comp-filter name=\"VEVENT\"/></C:filter>", "not VCALENDAR"},
    {"two tops",
     "<C:filter><C:comp-filter name=\"VCALENDAR\"/><C:comp-filter name=\"VCALENDAR\"/>"
     "</C:filter>",
     "more than one"},
    {"comp-filter without name",
     "<C:filter><C:comp-filter name=\"VCALENDAR\"><C:comp-filter/></C:comp-filter></C:filter>",
     "comp-filter without name"},
    {"empty time-range",
     "<C:filter><C:comp-filter name=\"VCALENDAR\"><C:comp-filter name=\"VEVENT\">"
     "<C:time-range/></C:comp-filter></C:comp-filter></C:filter>",
     "time-range needs start or end"},
    {"bad match-type",
     "<C:filter><C:comp-filter name=\"VCALENDAR\"><C:prop-filter name=\"X\">"
     "<C:text-match match-type=\"regex\">a</C:text-match></C:prop-filter></C:comp-filter>"
     "</C:filter>",
     "unknown match-type"},
    {"bad negate-condition",
     "<C:filter><C:comp-filter name=\"VCALENDAR\"><C:prop-filter name=\"X\">"
     "<C:text-match negate-condition=\"true\">a</C:text-match></C:prop-filter></C:comp-filter>"
     "</C:filter>",
     "negate-condition"},
    {"param-filter without name",
     "<C:filter><C:comp-filter name=\"VCALENDAR\"><C:prop-filter name=\"X\"><C:param-filter/>"
     "</C:prop-filter></C:comp-filter></C:filter>",
     "param-filter without name"},
};

TEST(Report, CalendarQueryFilterErrorsNameValidFilter) {
  for (const BadFilter& b : kBadCalendarFilters) {
    auto r = parse_report(calendar_query_with_filter(b.filter));
    ASSERT_FALSE(r.is_ok()) << b.what;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalid) << b.what;
    EXPECT_NE(r.status().message().find(b.reason), std::string::npos)
        << b.what << ": " << r.status().to_string();
    EXPECT_EQ(failed_precondition(r.status()), (PropName{kCalDav, "valid-filter"})) << b.what;
  }
  // A good filter in the same frame parses; errors outside the filter are a plain 400.
  EXPECT_TRUE(
      parse_report(calendar_query_with_filter("<C:filter><C:comp-filter name=\"VCALENDAR\"/>"
                                              "</C:filter>"))
          .is_ok());
  auto bad_expand = parse_report(
      "<C:calendar-query xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:prop>"
      "<C:calendar-data><C:expand start=\"20240101T000000Z\"/></C:calendar-data></D:prop>"
      "<C:filter><C:comp-filter name=\"VCALENDAR\"/></C:filter></C:calendar-query>");
  ASSERT_FALSE(bad_expand.is_ok());
  EXPECT_NE(bad_expand.status().message().find("expand needs start and end"), std::string::npos);
  EXPECT_EQ(failed_precondition(bad_expand.status()), std::nullopt);
  EXPECT_EQ(failed_precondition(parse_xml("x").status()), std::nullopt);
}

TEST(Report, CalendarMultigetWithThreeHrefs) {
  auto r = parse_report(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<C:calendar-multiget xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
      "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
      "<D:href>/dav/calendars/alice/work/a%20b.ics</D:href>\n"
      "<D:href>\n    https://dav.example.com/dav/calendars/alice/work/c.ics\n  </D:href>"
      "<D:href>/dav/calendars/alice/work/%E2%82%AC.ics</D:href>"
      "</C:calendar-multiget>");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->kind, Kind::kCalendarMultiget);
  const auto& m = std::get<Multiget>(r->body);
  EXPECT_EQ(m.props.props, (std::vector<PropName>{{kDav, "getetag"}, {kCalDav, "calendar-data"}}));
  ASSERT_TRUE(m.props.calendar_data.has_value());
  EXPECT_FALSE(m.props.calendar_data->expand.has_value());
  EXPECT_EQ(m.hrefs,
            (std::vector<std::string>{"/dav/calendars/alice/work/a%20b.ics",
                                      "https://dav.example.com/dav/calendars/alice/work/c.ics",
                                      "/dav/calendars/alice/work/%E2%82%AC.ics"}));
}

TEST(Report, AddressbookQueryAnyOfOnEmailAndFn) {
  auto r = parse_report(R"(<?xml version="1.0" encoding="utf-8" ?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop>
    <D:getetag/>
    <C:address-data>
      <C:prop name="VERSION"/>
      <C:prop name="UID"/>
      <C:prop name="NICKNAME"/>
      <C:prop name="EMAIL"/>
      <C:prop name="FN"/>
    </C:address-data>
  </D:prop>
  <C:filter test="anyof">
    <C:prop-filter name="FN">
      <C:text-match collation="i;unicode-casemap" match-type="contains">daboo</C:text-match>
    </C:prop-filter>
    <C:prop-filter name="EMAIL" test="allof">
      <C:text-match match-type="starts-with">daboo</C:text-match>
      <C:text-match match-type="ends-with" negate-condition="yes">@example.org</C:text-match>
      <C:param-filter name="TYPE"><C:text-match match-type="equals">work</C:text-match>
      </C:param-filter>
    </C:prop-filter>
    <C:prop-filter name="X-ABC"><C:is-not-defined/></C:prop-filter>
  </C:filter>
  <C:limit><C:nresults>25</C:nresults></C:limit>
</C:addressbook-query>
)");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->kind, Kind::kAddressbookQuery);
  const auto& q = std::get<AddressbookQuery>(r->body);
  ASSERT_TRUE(q.props.address_data.has_value());
  EXPECT_FALSE(q.props.address_data->allprop);
  EXPECT_EQ(q.props.address_data->props,
            (std::vector<std::string>{"VERSION", "UID", "NICKNAME", "EMAIL", "FN"}));
  EXPECT_EQ(q.props.address_data->content_type, "text/vcard");
  EXPECT_EQ(q.test, FilterTest::kAnyOf);
  EXPECT_EQ(q.limit, 25u);
  ASSERT_EQ(q.filters.size(), 3u);
  EXPECT_EQ(q.filters[0].name, "FN");
  EXPECT_EQ(q.filters[0].test, FilterTest::kAnyOf);
  ASSERT_EQ(q.filters[0].text_matches.size(), 1u);
  EXPECT_EQ(q.filters[0].text_matches[0].text, "daboo");
  EXPECT_EQ(q.filters[0].text_matches[0].collation, "i;unicode-casemap");
  const CardPropFilter& email = q.filters[1];
  EXPECT_EQ(email.test, FilterTest::kAllOf);
  ASSERT_EQ(email.text_matches.size(), 2u);
  EXPECT_EQ(email.text_matches[0].match_type, "starts-with");
  EXPECT_EQ(email.text_matches[0].collation, "i;unicode-casemap");  // the CardDAV default
  EXPECT_FALSE(email.text_matches[0].negate);
  EXPECT_EQ(email.text_matches[1].match_type, "ends-with");
  EXPECT_TRUE(email.text_matches[1].negate);
  ASSERT_EQ(email.params.size(), 1u);
  EXPECT_EQ(email.params[0].text_match->match_type, "equals");
  EXPECT_TRUE(q.filters[2].is_not_defined);
}

const Bad kBadAddressbookQueries[] = {
    {"no filter", "<C:addressbook-query xmlns:C=\"urn:ietf:params:xml:ns:carddav\"/>",
     ErrorCode::kInvalid, "without filter"},
    {"bad test",
     "<C:addressbook-query xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><C:filter test=\"some\"/>"
     "</C:addressbook-query>",
     ErrorCode::kInvalid, "anyof or allof"},
    {"bad match-type",
     "<C:addressbook-query xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><C:filter>"
     "<C:prop-filter name=\"FN\"><C:text-match match-type=\"like\">x</C:text-match>"
     "</C:prop-filter></C:filter></C:addressbook-query>",
     ErrorCode::kInvalid, "match-type"},
    {"prop-filter without name",
     "<C:addressbook-query xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><C:filter>"
     "<C:prop-filter/></C:filter></C:addressbook-query>",
     ErrorCode::kInvalid, "prop-filter without name"},
    {"bad nresults",
     "<C:addressbook-query xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><C:filter/>"
     "<C:limit><C:nresults>-1</C:nresults></C:limit></C:addressbook-query>",
     ErrorCode::kInvalid, "nresults"},
    {"huge nresults",
     "<C:addressbook-query xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><C:filter/>"
     "<C:limit><C:nresults>4294967296</C:nresults></C:limit></C:addressbook-query>",
     ErrorCode::kInvalid, "nresults"},
    {"limit without nresults",
     "<C:addressbook-query xmlns:C=\"urn:ietf:params:xml:ns:carddav\"><C:filter/>"
     "<C:limit/></C:addressbook-query>",
     ErrorCode::kInvalid, "without nresults"},
};

TEST(Report, AddressbookQueryRejectsBadFilters) {
  for (const Bad& b : kBadAddressbookQueries) {
    auto r = parse_report(b.body);
    ASSERT_FALSE(r.is_ok()) << b.what;
    EXPECT_EQ(r.status().code(), b.code) << b.what;
    EXPECT_NE(r.status().message().find(b.reason), std::string::npos)
        << b.what << ": " << r.status().to_string();
    EXPECT_EQ(failed_precondition(r.status()), std::nullopt) << b.what;
  }
}

TEST(Report, AddressbookMultigetWithEmptyAddressData) {
  auto r = parse_report(
      "<?xml version='1.0' encoding='UTF-8' ?><CARD:addressbook-multiget xmlns=\"DAV:\" "
      "xmlns:CARD=\"urn:ietf:params:xml:ns:carddav\"><prop><getcontenttype /><getetag />"
      "<CARD:address-data /></prop><href>/dav/ab/1.vcf</href><href>/dav/ab/2.vcf</href>"
      "</CARD:addressbook-multiget>");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->kind, Kind::kAddressbookMultiget);
  const auto& m = std::get<Multiget>(r->body);
  ASSERT_TRUE(m.props.address_data.has_value());
  EXPECT_TRUE(m.props.address_data->allprop);
  EXPECT_EQ(m.hrefs, (std::vector<std::string>{"/dav/ab/1.vcf", "/dav/ab/2.vcf"}));

  auto none = parse_report(
      "<C:calendar-multiget xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
      "<D:prop><D:getetag/></D:prop></C:calendar-multiget>");
  EXPECT_NE(none.status().message().find("without href"), std::string::npos);
  auto empty = parse_report(
      "<C:calendar-multiget xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
      "<D:href> </D:href></C:calendar-multiget>");
  EXPECT_NE(empty.status().message().find("empty href"), std::string::npos);
}

struct SyncCase {
  const char* client;
  std::string body;
  std::string token;
  bool infinite;
  std::optional<uint32_t> limit;
  std::vector<PropName> props;
};

const SyncCase kSyncs[] = {
    {"DAVx5 initial",
     "<?xml version='1.0' encoding='UTF-8' ?><sync-collection xmlns=\"DAV:\" "
     "xmlns:CAL=\"urn:ietf:params:xml:ns:caldav\" xmlns:CARD=\"urn:ietf:params:xml:ns:carddav\">"
     "<sync-token /><sync-level>1</sync-level><prop><getcontenttype /><getetag /></prop>"
     "</sync-collection>",
     "",
     false,
     std::nullopt,
     {{kDav, "getcontenttype"}, {kDav, "getetag"}}},
    {"DAVx5 with limit",
     "<?xml version='1.0' encoding='UTF-8' ?>\n<sync-collection xmlns=\"DAV:\">\n"
     "  <sync-token>http://sabre.io/ns/sync/5</sync-token>\n  <sync-level>1</sync-level>\n"
     "  <limit><nresults>100</nresults></limit>\n  <prop><getetag /></prop>\n"
     "</sync-collection>",
     "http://sabre.io/ns/sync/5",
     false,
     100u,
     {{kDav, "getetag"}}},
    {"Apple Contacts",
     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<A:sync-collection xmlns:A=\"DAV:\">\n"
     "  <A:sync-token>b905a5fd-ce23-4190-9be3-236969d071a8</A:sync-token>\n"
     "  <A:sync-level>1</A:sync-level>\n  <A:prop>\n    <A:getetag/>\n  </A:prop>\n"
     "</A:sync-collection>\n",
     "b905a5fd-ce23-4190-9be3-236969d071a8",
     false,
     std::nullopt,
     {{kDav, "getetag"}}},
    {"infinite without prop",
     "<D:sync-collection xmlns:D=\"DAV:\"><D:sync-token>\n  tok  \n</D:sync-token>"
     "<D:sync-level> infinite </D:sync-level></D:sync-collection>",
     "tok",
     true,
     std::nullopt,
     {}},
    {"no sync-level",
     "<D:sync-collection xmlns:D=\"DAV:\"><D:sync-token/></D:sync-collection>",
     "",
     false,
     std::nullopt,
     {}},
};

TEST(Report, SyncCollectionFromClients) {
  for (const SyncCase& c : kSyncs) {
    auto r = parse_report(c.body);
    ASSERT_TRUE(r.is_ok()) << c.client << ": " << r.status().to_string();
    EXPECT_EQ(r->kind, Kind::kSyncCollection) << c.client;
    const auto& s = std::get<SyncCollection>(r->body);
    EXPECT_EQ(s.sync_token, c.token) << c.client;
    EXPECT_EQ(s.infinite, c.infinite) << c.client;
    EXPECT_EQ(s.limit, c.limit) << c.client;
    EXPECT_EQ(s.props.props, c.props) << c.client;
  }
  auto no_token = parse_report(
      "<D:sync-collection xmlns:D=\"DAV:\"><D:sync-level>1</D:sync-level></D:sync-collection>");
  EXPECT_NE(no_token.status().message().find("without sync-token"), std::string::npos);
  auto bad_level = parse_report(
      "<D:sync-collection xmlns:D=\"DAV:\"><D:sync-token/><D:sync-level>2</D:sync-level>"
      "</D:sync-collection>");
  EXPECT_NE(bad_level.status().message().find("sync-level"), std::string::npos);
}

TEST(Report, FreeBusyQuery) {
  auto r = parse_report(
      "<C:free-busy-query xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><C:time-range "
      "start=\"20060104T140000Z\" end=\"20060105T220000Z\"/></C:free-busy-query>");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->kind, Kind::kFreeBusyQuery);
  EXPECT_EQ(std::get<FreeBusyQuery>(r->body).time_range,
            (TimeRangeText{"20060104T140000Z", "20060105T220000Z"}));
  EXPECT_FALSE(
      parse_report("<C:free-busy-query xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>").is_ok());
}

struct KindCase {
  std::string body;
  Kind kind;
};

const KindCase kKinds[] = {
    {"<D:expand-property xmlns:D=\"DAV:\"><D:property name=\"owner\"/></D:expand-property>",
     Kind::kExpandProperty},
    {"<D:principal-property-search xmlns:D=\"DAV:\"><D:property-search><D:prop><D:displayname/>"
     "</D:prop><D:match>doe</D:match></D:property-search></D:principal-property-search>",
     Kind::kPrincipalPropertySearch},
    {"<D:principal-search-property-set xmlns:D=\"DAV:\"/>", Kind::kPrincipalSearchPropertySet},
    {"<C:calendarserver-principal-search xmlns:C=\"http://calendarserver.org/ns/\"/>",
     Kind::kUnknown},
    {"<calendar-query/>", Kind::kUnknown},  // right name, no namespace
};

TEST(Report, RecognizesOtherKinds) {
  for (const KindCase& c : kKinds) {
    auto r = parse_report(c.body);
    ASSERT_TRUE(r.is_ok()) << c.body;
    EXPECT_EQ(r->kind, c.kind) << c.body;
    EXPECT_TRUE(std::holds_alternative<std::monostate>(r->body)) << c.body;
  }
  auto unknown = parse_report("<X:my-report xmlns:X=\"urn:x\"/>");
  ASSERT_TRUE(unknown.is_ok());
  EXPECT_EQ(unknown->root, (PropName{"urn:x", "my-report"}));
  EXPECT_EQ(parse_report("<D:sync-collection").status().code(), ErrorCode::kInvalid);
}

// ---------------------------------------------------------------------------------------------
// Writer

TEST(MultistatusWriter, PropfindResponseExactly) {
  MultistatusWriter w;
  w.begin_response("/dav/calendars/alice/work/");
  w.propstat(200, {{{kDav, "displayname"}, "", "Work <&\"> Caf\xC3\xA9 \xF0\x9F\x93\x85"},
                   {{kDav, "resourcetype"}, "<d:collection/><cal:calendar/>", ""},
                   {{kCalServer, "getctag"}, "", "\"42\""},
                   {{kApple, "calendar-color"}, "", "#FF0000FF"}});
  w.propstat(404, {{{"urn:x", "color"}, "", ""}, {{"", "bare"}, "", ""}});
  w.propstat(403, {});  // nothing to say: no propstat
  w.begin_response("/dav/calendars/alice/work/a%20b.ics");
  w.propstat(200, {{{kDav, "getetag"}, "", "\"e1\""}});
  EXPECT_EQ(w.finish(),
            std::string(kMultistatusOpen) +
                "<d:response><d:href>/dav/calendars/alice/work/</d:href><d:propstat><d:prop>"
                "<d:displayname>Work &lt;&amp;&quot;&gt; Caf\xC3\xA9 \xF0\x9F\x93\x85"
                "</d:displayname><d:resourcetype><d:collection/><cal:calendar/></d:resourcetype>"
                "<cs:getctag>&quot;42&quot;</cs:getctag>"
                "<ical:calendar-color>#FF0000FF</ical:calendar-color></d:prop>"
                "<d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
                "<d:propstat><d:prop><x:color xmlns:x=\"urn:x\"/><bare/></d:prop>"
                "<d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>"
                "<d:response><d:href>/dav/calendars/alice/work/a%20b.ics</d:href><d:propstat>"
                "<d:prop><d:getetag>&quot;e1&quot;</d:getetag></d:prop>"
                "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
                "</d:multistatus>");
}

TEST(MultistatusWriter, SyncCollectionAndErrorsExactly) {
  MultistatusWriter w;
  w.begin_response("/dav/ab/1.vcf");
  w.propstat(200, {{{kDav, "getetag"}, "", "\"1\""}});
  w.response_status("/dav/ab/gone&x.vcf", 404);
  w.begin_response("/dav/ab/");
  w.propstat(403, {{{kDav, "getetag"}, "", ""}},
             PropName{kDav, "cannot-modify-protected-property"});
  w.propstat(424, {{{"urn:z", "dead"}, "pre<x0:v xmlns:x0=\"urn:z\">1</x0:v>", "ignored"}});
  w.sync_token("http://mailark/sync/7?a&b");
  std::string out = w.finish();
  EXPECT_EQ(out, std::string(kMultistatusOpen) +
                     "<d:response><d:href>/dav/ab/1.vcf</d:href><d:propstat><d:prop>"
                     "<d:getetag>&quot;1&quot;</d:getetag></d:prop>"
                     "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
                     "<d:response><d:href>/dav/ab/gone&amp;x.vcf</d:href>"
                     "<d:status>HTTP/1.1 404 Not Found</d:status></d:response>"
                     "<d:response><d:href>/dav/ab/</d:href><d:propstat><d:prop><d:getetag/>"
                     "</d:prop><d:status>HTTP/1.1 403 Forbidden</d:status><d:error>"
                     "<d:cannot-modify-protected-property/></d:error></d:propstat>"
                     "<d:propstat><d:prop><x:dead xmlns:x=\"urn:z\">pre<x0:v xmlns:x0=\"urn:z\">"
                     "1</x0:v></x:dead></d:prop>"
                     "<d:status>HTTP/1.1 424 Failed Dependency</d:status></d:propstat>"
                     "</d:response>"
                     "<d:sync-token>http://mailark/sync/7?a&amp;b</d:sync-token>"
                     "</d:multistatus>");
  // What the writer produces is well-formed and means what it says.
  auto parsed = parse_xml(out);
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  EXPECT_TRUE(parsed->is(kDav, "multistatus"));
  EXPECT_EQ(parsed->children.size(), 4u);
  EXPECT_EQ(parsed->children[3].text, "http://mailark/sync/7?a&b");
  const Element& dead = parsed->children[2].children[2].children[0].children[0];
  EXPECT_EQ(dead.prop_name(), (PropName{"urn:z", "dead"}));
  EXPECT_EQ(dead.children.at(0).prop_name(), (PropName{"urn:z", "v"}));
}

TEST(MultistatusWriter, EmptyMultistatus) {
  EXPECT_EQ(MultistatusWriter().finish(), std::string(kMultistatusOpen) + "</d:multistatus>");
}

TEST(MultistatusWriter, EscapedDisplaynameRoundTrips) {
  const std::string names[] = {"<&\"'>", "Caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC", " a\r\nb\t ",
                               "]]>", "&amp;"};
  for (const std::string& name : names) {
    MultistatusWriter w;
    w.begin_response("/x/");
    w.propstat(200, {{{kDav, "displayname"}, "", name}});
    auto parsed = parse_xml(w.finish());
    ASSERT_TRUE(parsed.is_ok()) << name;
    EXPECT_EQ(parsed->children.at(0).children.at(1).children.at(0).children.at(0).text, name);
  }
}

TEST(ErrorBody, NamesThePrecondition) {
  const std::string decl =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:error xmlns:d=\"DAV:\" "
      "xmlns:cal=\"urn:ietf:params:xml:ns:caldav\" xmlns:card=\"urn:ietf:params:xml:ns:carddav\" "
      "xmlns:cs=\"http://calendarserver.org/ns/\" xmlns:ical=\"http://apple.com/ns/ical/\">";
  EXPECT_EQ(error_body({kCalDav, "valid-calendar-data"}),
            decl + "<cal:valid-calendar-data/></d:error>");
  EXPECT_EQ(error_body({kCalDav, "no-uid-conflict"}, "<d:href>/dav/c/x.ics</d:href>"),
            decl +
                "<cal:no-uid-conflict><d:href>/dav/c/x.ics</d:href></cal:no-uid-conflict>"
                "</d:error>");
  EXPECT_EQ(error_body({kDav, "valid-sync-token"}), decl + "<d:valid-sync-token/></d:error>");
  EXPECT_EQ(error_body({"urn:x", "quota"}), decl + "<x:quota xmlns:x=\"urn:x\"/></d:error>");
  EXPECT_TRUE(parse_xml(error_body({kCardDav, "supported-filter"})).is_ok());
}

struct StatusCase {
  int code;
  const char* line;
};

const StatusCase kStatusLines[] = {
    {200, "HTTP/1.1 200 OK"},
    {403, "HTTP/1.1 403 Forbidden"},
    {404, "HTTP/1.1 404 Not Found"},
    {409, "HTTP/1.1 409 Conflict"},
    {424, "HTTP/1.1 424 Failed Dependency"},
    {507, "HTTP/1.1 507 Insufficient Storage"},
    {299, "HTTP/1.1 299 "},
};

TEST(StatusLine, KnownAndUnknownCodes) {
  for (const StatusCase& c : kStatusLines) EXPECT_EQ(status_line(c.code), c.line);
}

struct EscapeCase {
  std::string in;
  std::string out;
};

const EscapeCase kEscapes[] = {
    {"", ""},
    {"plain", "plain"},
    {"<&\">'", "&lt;&amp;&quot;&gt;'"},
    {"tab\tlf\ncr\r", "tab\tlf\ncr&#13;"},
    {"Caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "Caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
    {std::string("a\0b", 3),
     "a\xEF\xBF\xBD"
     "b"},
    {"\x01\x08\x0B\x0C\x1F", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    {"\x7F", "\x7F"},                                          // legal, if discouraged
    {"caf\xE9", "caf\xEF\xBF\xBD"},                            // Latin-1 byte
    {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // overlong '/'
    {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // surrogate
    {"\xEF\xBF\xBE\xEF\xBF\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD"},  // U+FFFE, U+FFFF
    {"\xEF\xBF\xBD", "\xEF\xBF\xBD"},                          // U+FFFD itself
    {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // > U+10FFFF
    {"\xE2\x82", "\xEF\xBF\xBD\xEF\xBF\xBD"},                                  // truncated
};

TEST(XmlEscape, EscapesAndReplacesWhatXmlCannotCarry) {
  for (const EscapeCase& c : kEscapes) {
    EXPECT_EQ(xml_escape(c.in), c.out) << c.in;
    EXPECT_TRUE(parse_xml("<a>" + xml_escape(c.in) + "</a>").is_ok()) << c.in;
  }
}

// Plain text is copied eight bytes at a time: every byte that needs a look, at every offset
// around those words, is escaped as it is on its own.
TEST(XmlEscape, WordAtATimeScanFindsEveryByteThatNeedsALook) {
  const std::string specials[] = {"&",  "<",    ">",    "\"",       "\r",   "\n",
                                  "\t", "\x01", "\x7F", "\xC3\xA9", "\xFF", "\xE2\x82\xAC"};
  for (const std::string& special : specials)
    for (size_t before = 0; before <= 17; ++before) {
      std::string head(before, 'x'), tail(23 - before % 8, 'y');
      EXPECT_EQ(xml_escape(head + special + tail),
                xml_escape(head) + xml_escape(special) + xml_escape(tail))
          << before << " bytes before 0x" << std::hex
          << static_cast<int>(static_cast<unsigned char>(special[0]));
    }
}

// Calendar-like content takes a shortcut (every CR as a reference, the rest as it is);
// content with anything else takes the byte-wise path. Both against a plain reference, on
// random mixes of the bytes that decide between them.
TEST(XmlEscape, ContentWithCrlfAndMarkupAgreesWithAReference) {
  auto reference = [](const std::string& in) {
    const std::map<char, std::string> escapes = {
        {'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'"', "&quot;"}, {'\r', "&#13;"}};
    std::string out;
    for (char c : in) {
      auto it = escapes.find(c);
      out += it == escapes.end() ? std::string(1, c) : it->second;
    }
    return out;
  };
  const char kCalendarLike[] = "aZ09 :;=,-\r\n\t";
  const char kWithMarkup[] = "aZ09 :;\r\n\t&<>\"";
  uint32_t seed = 12345;
  auto next = [&seed] { return (seed = seed * 1103515245u + 12345u) >> 16; };
  for (const char* alphabet : {kCalendarLike, kWithMarkup}) {
    const size_t n = std::strlen(alphabet);
    for (size_t length = 1; length < 300; length += 7) {
      std::string text;
      for (size_t i = 0; i < length; ++i) text += alphabet[next() % n];
      EXPECT_EQ(xml_escape(text), reference(text)) << length;
      // Appended after other output, as a property value is.
      MultistatusWriter w;
      w.begin_response("/x");
      w.propstat(200, {PropValue{{std::string(kDav), "displayname"}, {}, text}});
      EXPECT_NE(w.finish().find("<d:displayname>" + reference(text) + "</d:displayname>"),
                std::string::npos)
          << length;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Hrefs

struct HrefCase {
  std::string path;
  std::string href;
};

const HrefCase kHrefs[] = {
    {"/dav/calendars/alice/work/", "/dav/calendars/alice/work/"},
    {"/a b/c.ics", "/a%20b/c.ics"},
    {"/100%/x", "/100%25/x"},
    {"/q?x#y", "/q%3Fx%23y"},
    {"/\"<>\\^`{|}", "/%22%3C%3E%5C%5E%60%7B%7C%7D"},
    {"/a&b+c;d", "/a%26b%2Bc%3Bd"},
    {"/keep-._~!$'()*,=:@", "/keep-._~!$'()*,=:@"},
    {"/Caf\xC3\xA9/\xE2\x82\xAC.ics", "/Caf%C3%A9/%E2%82%AC.ics"},
    {"/tab\tnl\n", "/tab%09nl%0A"},
    {"/...x/.hidden/a.", "/...x/.hidden/a."},
    {"", ""},
};

TEST(Href, EncodeAndDecodeKnownPairs) {
  for (const HrefCase& c : kHrefs) {
    EXPECT_EQ(href_encode(c.path), c.href) << c.path;
    auto back = href_decode(c.href);
    ASSERT_TRUE(back.is_ok()) << c.href << ": " << back.status().to_string();
    EXPECT_EQ(*back, c.path) << c.href;
  }
  EXPECT_EQ(href_decode("/%c3%a9/%7e").value_or(""), "/\xC3\xA9/~");  // lower-case hex
  EXPECT_EQ(href_decode("/a+b").value_or(""), "/a+b");                // '+' is not a space
}

TEST(Href, DecodeRejectsMalformedAndTraversal) {
  const char* bad[] = {
      "/a%",         "/a%2",        "/a%zz",   "/a%%41",  "/a%00b",    "/a/%2e%2e/b",
      "/a/../b",     "/a/./b",      "..",      "/..",     "/a/..",     "/a/%2E",
      "/a%2F..%2Fb", "/%2e%2E/etc", "/caf%E9", "/%C0%AF", "/x/.%2e/y",
  };
  for (const char* href : bad) {
    auto r = href_decode(href);
    EXPECT_FALSE(r.is_ok()) << href;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalid) << href;
  }
}

TEST(Href, RandomPathsRoundTrip) {
  std::mt19937 rng(4918);
  const std::string alphabet[] = {"a",  "Z", "0",  " ", "%",   "/",        ".",
                                  "..", "?", "#",  "&", "+",   "\xC3\xA9", "\xF0\x9F\x98\x80",
                                  "~",  "'", "\"", ";", "\x7F"};
  for (int i = 0; i < 2000; ++i) {
    std::string path = "/";
    int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) path += alphabet[rng() % std::size(alphabet)];
    auto decoded = href_decode(href_encode(path));
    bool has_dot_segment = false;
    for (size_t start = 0; start <= path.size();) {
      size_t end = std::min(path.find('/', start), path.size());
      std::string segment = path.substr(start, end - start);
      has_dot_segment |= segment == "." || segment == "..";
      start = end + 1;
    }
    if (has_dot_segment) {
      EXPECT_FALSE(decoded.is_ok()) << path;
    } else {
      ASSERT_TRUE(decoded.is_ok()) << path;
      EXPECT_EQ(*decoded, path);
    }
  }
}

const HrefCase kHrefPaths[] = {
    {"/dav/a.ics", "/dav/a.ics"},
    {"http://host/dav/a.ics", "/dav/a.ics"},
    {"https://user@host:8443/dav/a%20b.ics", "/dav/a%20b.ics"},
    {"HTTPS://host", "/"},
    {"http://host?x", "/"},
    {"//host/dav/", "/dav/"},
    {"/dav/a.ics?x=1#frag", "/dav/a.ics"},
    {"relative.ics", "relative.ics"},
    {"mailto:alice@example.com", "mailto:alice@example.com"},
    {"/dav/x:y//z", "/dav/x:y//z"},
    {"", ""},
};

TEST(Href, PathOfAbsoluteAndRelativeHrefs) {
  for (const HrefCase& c : kHrefPaths) EXPECT_EQ(href_path(c.path), c.href) << c.path;
}

// Segments without escapes are used in place, escaped ones decoded; both are checked alike.
TEST(Href, ParseTargetDecodesAndChecksEverySegment) {
  auto t = parse_target("/dav/calendars/Alice@Acme.test/work/ev%20one.ics");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->kind, Target::Kind::kResource);
  EXPECT_EQ(t->owner, "alice@acme.test");
  EXPECT_EQ(t->segment, "work");
  EXPECT_EQ(t->name, "ev one.ics");
  auto plain = parse_target("//dav//calendars/alice@acme.test/w%6Frk/a.ics");
  ASSERT_TRUE(plain.is_ok());
  EXPECT_EQ(plain->segment, "work");
  EXPECT_EQ(plain->name, "a.ics");
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/..").status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/%2e%2E").status().code(),
            ErrorCode::kInvalid);
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/a%2Fb.ics").status().code(),
            ErrorCode::kInvalid);
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/\xC3.ics").status().code(),
            ErrorCode::kInvalid);
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/a%00.ics").status().code(),
            ErrorCode::kInvalid);
  // A long path: refused by its length, and a bad segment past the sixth still found.
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/x/y/z/w").status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/x/y/z/%zz").status().code(),
            ErrorCode::kInvalid);
  EXPECT_EQ(parse_target("/dav/calendars/a@b.test/work/x/y/z/..").status().code(),
            ErrorCode::kInvalid);
}

}  // namespace
}  // namespace mailark::dav
