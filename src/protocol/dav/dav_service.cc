// DAV request handling: the URL space, Basic authentication with the shared failure limits,
// the method table, and the error mapping every handler uses.
#include "protocol/dav/dav_service.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/base64.h"
#include "base/log.h"
#include "protocol/dav/dav_context.h"

namespace mailark::dav {

namespace {

constexpr std::string_view kCalendarsPath = "calendars";
constexpr std::string_view kAddressBooksPath = "addressbooks";
constexpr const char* kSyncTokenPrefix = "http://mailark.invalid/ns/sync/";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct MethodEntry {
  const char* name;
  void (*handler)(DavContext&);
  bool reads_only;  // changes nothing in the store, so it never waits for a commit
};

// Methods that need an authenticated user; OPTIONS is answered before authentication.
constexpr MethodEntry kMethods[] = {
    {"PROPFIND", method_propfind, true}, {"PROPPATCH", method_proppatch, false},
    {"GET", method_get, true},           {"HEAD", method_get, true},
    {"PUT", method_put, false},          {"DELETE", method_delete, false},
    {"MKCOL", method_mkcol, false},      {"MKCALENDAR", method_mkcol, false},
    {"REPORT", method_report, true},
};

const MethodEntry* find_method(std::string_view name) {
  for (const auto& m : kMethods)
    if (name == m.name) return &m;
  return nullptr;
}

// The login and password of "Basic <base64(login:password)>" (the scheme already checked),
// nullopt when the rest is not base64 of a string with a colon.
std::optional<std::pair<std::string, std::string>> basic_credentials(std::string_view header) {
  std::string_view encoded = header.substr(6);
  while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
  while (!encoded.empty() && encoded.back() == ' ') encoded.remove_suffix(1);
  auto decoded = base64_decode(encoded);
  size_t colon = decoded ? decoded->find(':') : std::string::npos;
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

bool is_basic(const std::string& header) {
  return header.size() >= 6 && strncasecmp(header.c_str(), "Basic ", 6) == 0;
}

}  // namespace

// ---------------------------------------------------------------- URL space

Result<Target> parse_target(std::string_view raw_path) {
  // Split first, decode each segment after: an encoded '/' (%2F) is part of a name, which
  // validate_dav_name refuses, never a separator. A segment without escapes is its own
  // decoding (a multiget resolves a hundred hrefs: no copy of those); decoded ones live in
  // `decoded`, sized first so that the views into it stay put. Every segment is checked; the
  // URL space has at most five, so only the first six are kept (count says how many).
  constexpr size_t kKept = 6;
  std::array<std::string_view, kKept> parts;
  size_t count = 0;
  const bool escaped = raw_path.find('%') != std::string_view::npos;
  std::vector<std::string> decoded;
  if (escaped) decoded.reserve(std::count(raw_path.begin(), raw_path.end(), '/') + 1);
  for (size_t pos = 0; pos < raw_path.size();) {
    size_t slash = raw_path.find('/', pos);
    if (slash == std::string_view::npos) slash = raw_path.size();
    std::string_view part = raw_path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty()) continue;
    if (part.find('%') != std::string_view::npos) {
      MK_ASSIGN_OR_RETURN(std::string segment, href_decode(part));
      if (segment.find('/') != std::string::npos) return invalid("a path segment holds a '/'");
      decoded.push_back(std::move(segment));
      part = decoded.back();
    } else {
      MK_RETURN_IF_ERROR(check_decoded_href(part));
    }
    if (count < kKept) parts[count] = part;
    ++count;
  }
  Target t;
  if (count == 0) return t;  // "/"
  if (parts[0] != "dav") return not_found("outside the DAV space");
  if (count == 1) return t;
  std::string_view area = parts[1];
  if (area == "principals") {
    if (count == 2) {
      t.kind = Target::Kind::kPrincipals;
      return t;
    }
    if (count != 3) return not_found("no such principal resource");
    t.kind = Target::Kind::kPrincipal;
    t.owner = lower(parts[2]);
    return t;
  }
  if (area != kCalendarsPath && area != kAddressBooksPath) return not_found("no such area");
  t.collection_kind =
      area == kCalendarsPath ? CollectionKind::kCalendar : CollectionKind::kContacts;
  if (count < 3) return not_found("no home without an owner");
  t.owner = lower(parts[2]);
  if (count == 3) {
    t.kind = Target::Kind::kHome;
    return t;
  }
  MK_RETURN_IF_ERROR(validate_dav_name(parts[3]));
  t.segment = parts[3];
  if (count == 4) {
    t.kind = Target::Kind::kCollection;
    return t;
  }
  if (count != 5) return not_found("collections do not nest");
  MK_RETURN_IF_ERROR(validate_dav_name(parts[4]));
  t.kind = Target::Kind::kResource;
  t.name = parts[4];
  return t;
}

std::string principal_href(std::string_view address) {
  return "/dav/principals/" + href_encode(address) + "/";
}

std::string home_href(CollectionKind kind, std::string_view address) {
  return std::string("/dav/") +
         std::string(kind == CollectionKind::kCalendar ? kCalendarsPath : kAddressBooksPath) + "/" +
         href_encode(address) + "/";
}

std::string collection_href(CollectionKind kind, std::string_view address,
                            std::string_view segment) {
  return home_href(kind, address) + href_encode(segment) + "/";
}

std::string resource_href(CollectionKind kind, std::string_view address, std::string_view segment,
                          std::string_view name) {
  return collection_href(kind, address, segment) + href_encode(name);
}

std::string etag(const Digest& blob) {
  return "\"" + to_hex(blob) + "\"";
}

std::string sync_token(const DavCollection& c, uint64_t modseq) {
  return kSyncTokenPrefix + c.folder.guid.hex() + "/" + std::to_string(modseq);
}

Result<uint64_t> parse_sync_token(const DavCollection& c, std::string_view token) {
  std::string prefix = kSyncTokenPrefix + c.folder.guid.hex() + "/";
  if (token.size() <= prefix.size() || token.compare(0, prefix.size(), prefix) != 0)
    return invalid("not a sync token of this collection");
  uint64_t modseq = 0;
  for (char ch : token.substr(prefix.size())) {
    if (ch < '0' || ch > '9' || modseq > (UINT64_MAX - 9) / 10)
      return invalid("malformed sync token");
    modseq = modseq * 10 + static_cast<uint64_t>(ch - '0');
  }
  return modseq;
}

std::vector<std::string> etag_list(std::string_view header) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',' || header[i] == '\t')) ++i;
    if (i >= header.size()) break;
    size_t start = i;
    if (header.compare(i, 2, "W/") == 0) i += 2;
    if (i < header.size() && header[i] == '"') {
      size_t close = header.find('"', i + 1);
      i = close == std::string_view::npos ? header.size() : close + 1;
    } else {
      while (i < header.size() && header[i] != ',' && header[i] != ' ') ++i;
    }
    out.emplace_back(header.substr(start, i - start));
  }
  return out;
}

std::optional<Digest> etag_digest(std::string_view tag) {
  if (tag.size() != 66 || tag.front() != '"' || tag.back() != '"') return std::nullopt;
  return digest_from_hex(tag.substr(1, 64));
}

bool check_if_match(DavContext& ctx, const DavCollection& c, std::string_view name,
                    std::optional<Digest>* version) {
  version->reset();
  std::vector<std::string> match = etag_list(ctx.request.header("If-Match"));
  if (match.empty()) return true;
  auto current = ctx.store().resource(ctx.account, c, name);
  if (!current.is_ok()) {
    if (current.status().code() == ErrorCode::kNotFound)
      ctx.status(412, "Precondition failed: the resource does not exist");
    else
      ctx.store_error(current.status());
    return false;
  }
  bool matched = false;
  for (const auto& tag : match) matched = matched || tag == "*" || tag == etag(current->blob);
  if (!matched) {
    ctx.status(412, "Precondition failed: the resource has changed");
    return false;
  }
  // The store checks again, atomically, against the version seen here.
  *version = current->blob;
  return true;
}

// ---------------------------------------------------------------- context helpers

std::optional<int> DavContext::depth(int fallback) const {
  std::string d = lower(request.header("Depth"));
  if (!request.has_header("Depth")) return fallback;
  if (d == "0") return 0;
  if (d == "1") return 1;
  if (d == "infinity") return -1;
  return std::nullopt;
}

void DavContext::status(int code, std::string_view text) {
  response.status = code;
  if (!text.empty()) {
    response.set("Content-Type", "text/plain; charset=utf-8");
    response.body = std::string(text) + "\n";
  }
}

void DavContext::precondition(int code, const PropName& name, std::string_view inner_xml) {
  response.status = code;
  response.set("Content-Type", "application/xml; charset=utf-8");
  response.body = error_body(name, inner_xml);
}

void DavContext::multistatus(std::string body) {
  response.status = 207;
  response.set("Content-Type", "application/xml; charset=utf-8");
  response.body = std::move(body);
}

void DavContext::store_error(const Status& s) {
  switch (s.code()) {
    case ErrorCode::kNotFound:
      return status(404, "Not found");
    case ErrorCode::kExists:
      return status(405, "Already exists");
    case ErrorCode::kOverQuota:
      return precondition(507, {std::string(kDav), "quota-not-exceeded"});
    case ErrorCode::kConflict:
      return status(409, "Conflict");
    case ErrorCode::kInvalid:
      return status(400, s.message());
    // A query whose answer would be unbounded (an expansion of a rule with too many
    // instances in the range): the client narrows the range.
    case ErrorCode::kTooLarge:
      return precondition(507, {std::string(kDav), "number-of-matches-within-limits"});
    case ErrorCode::kTemporary: {
      response.set("Retry-After", "5");
      return status(503, "Temporarily unavailable, try again later");
    }
    case ErrorCode::kCorrupt:
    case ErrorCode::kIo:
    default:
      MK_LOG_WARN("dav: {} {} for {}: {}", request.method, request.target, user.address,
                  s.to_string());
      return status(500, "The server could not complete the request");
  }
}

Result<DavCollection> DavContext::collection() {
  return store().collection(account, target.collection_kind, target.segment);
}

// ---------------------------------------------------------------- service

DavService::DavService(Directory& directory, MailStore& store, AuthLimiter& limiter,
                       DavOptions options)
    : directory_(directory), store_(store), limiter_(limiter), options_(std::move(options)) {
  // A per-process secret: cache keys reveal nothing about passwords, even in a core dump.
  Guid a = Guid::random(), b = Guid::random();
  cache_secret_ = std::string(a.raw()) + std::string(b.raw());
}

std::string DavService::cache_key(const std::string& address, const std::string& password) const {
  return to_hex(sha256(cache_secret_ + address + std::string(1, '\0') + password));
}

bool DavService::answers_at_once(const http::Request& request) {
  if (request.method == "OPTIONS") return true;
  const MethodEntry* entry = find_method(request.method);
  if (!entry) return true;  // 501
  if (!entry->reads_only) return false;
  std::string header = request.header("Authorization");
  if (!is_basic(header)) return true;  // the challenge
  // Credentials not verified before need a password hash (argon2id): the pool.
  auto credentials = basic_credentials(header);
  if (!credentials) return false;
  auto normalized = normalize_address(credentials->first);
  if (!normalized.is_ok()) return false;
  std::string key = cache_key(*normalized, credentials->second);
  std::lock_guard lock(cache_mu_);
  auto it = credential_cache_.find(key);
  return it != credential_cache_.end() && it->second.login &&
         std::chrono::steady_clock::now() <= it->second.expires;
}

bool DavService::cached(const std::string& key, std::optional<uint64_t> generation, Login* login) {
  std::lock_guard lock(cache_mu_);
  auto it = credential_cache_.find(key);
  if (it == credential_cache_.end()) return false;
  if (std::chrono::steady_clock::now() > it->second.expires) {
    credential_cache_.erase(it);
    return false;
  }
  if (it->second.login && generation && *generation == it->second.generation)
    *login = *it->second.login;
  return true;
}

void DavService::remember(const std::string& key) {
  std::lock_guard lock(cache_mu_);
  auto now = std::chrono::steady_clock::now();
  if (credential_cache_.size() > 10000) {
    for (auto it = credential_cache_.begin(); it != credential_cache_.end();)
      it = now > it->second.expires ? credential_cache_.erase(it) : std::next(it);
  }
  credential_cache_[key] = CachedCredentials{now + options_.credential_cache, std::nullopt, 0};
}

void DavService::forget(const std::string& key) {
  std::lock_guard lock(cache_mu_);
  credential_cache_.erase(key);
}

void DavService::remember_login(const std::string& key, uint64_t generation, const Login& login) {
  std::lock_guard lock(cache_mu_);
  auto it = credential_cache_.find(key);
  if (it == credential_cache_.end()) return;  // expired meanwhile
  it->second.login = login;
  it->second.generation = generation;
}

Result<DavService::Login> DavService::authenticate(const http::Request& request,
                                                   http::Response* refusal) {
  auto challenge = [&](int code, std::string text) {
    refusal->status = code;
    if (code == 401) refusal->set("WWW-Authenticate", "Basic realm=\"mailark\", charset=\"UTF-8\"");
    refusal->set("Content-Type", "text/plain; charset=utf-8");
    refusal->body = std::move(text) + "\n";
    return conflict("refused");
  };
  std::string header = request.header("Authorization");
  if (!is_basic(header)) return challenge(401, "Authentication required");
  if (!request.tls && !(request.loopback && options_.plaintext_auth_loopback))
    return challenge(403, "Passwords are accepted only over https");
  std::string address = peer_address(request.peer);
  if (limiter_.blocked(address)) {
    refusal->delay = limiter_.limits().failure_delay;
    refusal->set("Retry-After", "900");
    return challenge(503, "Too many authentication failures; try again later");
  }
  auto credentials = basic_credentials(header);
  if (!credentials) return challenge(400, "Malformed credentials");
  const std::string& login = credentials->first;
  const std::string& password = credentials->second;
  auto normalized = normalize_address(login);
  bool good = false;
  std::string key;
  // Read before any lookup: a change while they run makes the next request look again.
  std::optional<uint64_t> generation;
  if (auto g = directory_.generation(); g.is_ok()) generation = *g;
  Login out;
  if (normalized.is_ok()) {
    key = cache_key(*normalized, password);
    good = cached(key, generation, &out);
    if (good && out.account.db) return out;  // resolved before, and nothing changed since
    if (!good) {
      auto checked = directory_.authenticate(*normalized, password);
      if (!checked.is_ok()) {
        MK_LOG_WARN("dav: cannot check credentials: {}", checked.status().to_string());
        refusal->set("Retry-After", "5");
        return challenge(503, "Temporary failure, try again later");
      }
      good = *checked;
      if (good) remember(key);
    }
  }
  if (!good) {
    refusal->delay = limiter_.failed(address);
    MK_LOG_INFO("dav: authentication failed for {} from {}", login.substr(0, 128), address);
    return challenge(401, "Authentication failed");
  }
  auto user = directory_.find_user(*normalized);
  // Removed since its credentials were verified (and cached).
  if (!user.is_ok() && user.status().code() == ErrorCode::kNotFound) {
    forget(key);
    return challenge(401, "Authentication failed");
  }
  if (!user.is_ok()) return challenge(503, "Temporary failure, try again later");
  out.user = *user;
  auto account = store_.open_or_create_account(user->database, user->guid, user->address);
  if (!account.is_ok()) {
    MK_LOG_WARN("dav: cannot open the account of {}: {}", user->address,
                account.status().to_string());
    refusal->set("Retry-After", "30");
    return challenge(503, "The account is not available, try again later");
  }
  out.account = *account;
  out.account.quota_bytes = user->quota_bytes;
  // Once per account and process: the check reads the account's folder list.
  bool ensured = false;
  {
    std::lock_guard lock(cache_mu_);
    ensured = defaults_ensured_.count(out.account.guid) > 0;
  }
  if (!ensured) {
    Status defaults = store_.ensure_default_collections(out.account);
    if (defaults.is_ok()) {
      std::lock_guard lock(cache_mu_);
      defaults_ensured_.insert(out.account.guid);
      ensured = true;
    } else {
      MK_LOG_WARN("dav: default collections of {}: {}", user->address, defaults.to_string());
    }
  }
  if (ensured && generation) remember_login(key, *generation, out);
  return out;
}

http::Response DavService::handle(const http::Request& request) {
  http::Response response;
  std::string_view path = request.target;
  size_t query = path.find_first_of("?#");
  if (query != std::string_view::npos) path = path.substr(0, query);
  // RFC 6764: the well-known names lead to the context path.
  if (path == "/.well-known/caldav" || path == "/.well-known/caldav/" ||
      path == "/.well-known/carddav" || path == "/.well-known/carddav/") {
    response.status = 301;
    response.set("Location", "/dav/");
    return response;
  }
  const std::string& method = request.method;
  auto target = parse_target(path);
  if (!target.is_ok()) {
    response.status = target.status().code() == ErrorCode::kInvalid ? 400 : 404;
    response.set("Content-Type", "text/plain; charset=utf-8");
    response.body = target.status().message() + "\n";
    return response;
  }
  if (method == "OPTIONS") {
    DavContext ctx{*this, request, {}, {}, *target, {}};
    method_options(ctx);
    return std::move(ctx.response);
  }
  const MethodEntry* entry = find_method(method);
  if (!entry) {
    response.status = 501;
    response.set("Allow",
                 "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, "
                 "MKCALENDAR, REPORT");
    return response;
  }
  auto login = authenticate(request, &response);
  if (!login.is_ok()) return response;
  DavContext ctx{*this, request, login->user, login->account, *target, {}};
  // A user reaches only their own principal and collections (and nothing of other tenants).
  if (target->kind != Target::Kind::kRoot && target->kind != Target::Kind::kPrincipals &&
      target->owner != login->user.address) {
    ctx.precondition(403, {std::string(kDav), "need-privileges"});
    return std::move(ctx.response);
  }
  entry->handler(ctx);
  return std::move(ctx.response);
}

void method_options(DavContext& ctx) {
  ctx.response.status = 200;
  ctx.response.set("DAV", "1, 3, extended-mkcol, calendar-access, addressbook");
  ctx.response.set("Allow",
                   "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, "
                   "REPORT");
}

}  // namespace mailark::dav
