// CalDAV (RFC 4791) and CardDAV (RFC 6352) over the HTTP listener: Basic authentication
// against the directory (with the failure delays IMAP uses), the URL space below, and the
// method handlers in methods/, registered in one table. Each handler parses, calls the store
// and maps the outcome to a status; nothing here touches SQL.
//
// URL space (every path percent-encoded on the wire):
//   /.well-known/caldav, /.well-known/carddav   -> redirect to /dav/ (RFC 6764)
//   /dav/                                       context root (current-user-principal)
//   /dav/principals/<address>/                  the user's principal
//   /dav/calendars/<address>/                   calendar home;  <segment>/ a calendar,
//                                               <segment>/<name> an event or task
//   /dav/addressbooks/<address>/                address book home; same below
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "directory/directory.h"
#include "mailstore/mail_store.h"
#include "protocol/auth_limiter.h"
#include "protocol/http/http_server.h"

namespace mailark::dav {

struct DavOptions {
  uint64_t max_resource_size = uint64_t{10} << 20;  // CALDAV/CARDDAV:max-resource-size
  bool plaintext_auth_loopback = true;              // Basic without TLS, only from loopback
  std::chrono::seconds credential_cache{300};       // how long a verified password is trusted
  int max_collections = 100;                        // per user and kind
};

// Where a request path points (after percent-decoding).
struct Target {
  enum class Kind {
    kRoot,        // "/" and "/dav/"
    kPrincipals,  // "/dav/principals/"
    kPrincipal,
    kHome,
    kCollection,
    kResource,
  };
  Kind kind = Kind::kRoot;
  std::string owner;  // the address in the path
  CollectionKind collection_kind = CollectionKind::kCalendar;
  std::string segment;  // collection
  std::string name;     // resource
};
// kNotFound for paths outside the URL space, kInvalid for malformed ones (bad escapes,
// "." or "..").
Result<Target> parse_target(std::string_view path);

// Hrefs (percent-encoded) of the URL space.
std::string principal_href(std::string_view address);
std::string home_href(CollectionKind kind, std::string_view address);
std::string collection_href(CollectionKind kind, std::string_view address,
                            std::string_view segment);
std::string resource_href(CollectionKind kind, std::string_view address, std::string_view segment,
                          std::string_view name);
// A strong ETag of stored content: the quoted hex digest.
std::string etag(const Digest& blob);
// The sync token of a collection at MODSEQ `modseq`, and back (kInvalid when it is not one
// of this collection's tokens).
std::string sync_token(const DavCollection& collection, uint64_t modseq);
Result<uint64_t> parse_sync_token(const DavCollection& collection, std::string_view token);

class DavService {
 public:
  DavService(Directory& directory, MailStore& store, AuthLimiter& limiter, DavOptions options);
  // The HTTP handler; runs on the blocking pool, or on the connection's thread when
  // answers_at_once(request) said so.
  http::Response handle(const http::Request& request);
  // True for requests answered from reads alone (OPTIONS; GET, HEAD, PROPFIND and REPORT
  // with credentials verified and resolved before) and for those refused before any
  // lookup; false for changes (they wait for a commit) and for credentials still to be
  // checked (a password hash, or a failure's delay).
  bool answers_at_once(const http::Request& request);

  Directory& directory() { return directory_; }
  MailStore& store() { return store_; }
  const DavOptions& options() const { return options_; }

 private:
  struct Login {
    User user;
    Account account;
  };
  // The user behind the Authorization header, or the 401/403/503 to send.
  Result<Login> authenticate(const http::Request& request, http::Response* refusal);
  // Verified credentials, by a keyed hash of address and password, until they expire. An
  // entry also keeps the login they resolved to, valid while the directory's generation is
  // the one it was resolved at (a user moved, removed or given another quota is looked up
  // again on the next request).
  struct CachedCredentials {
    std::chrono::steady_clock::time_point expires;
    std::optional<Login> login;
    uint64_t generation = 0;
  };
  // The keyed hash of a normalized address and a password.
  std::string cache_key(const std::string& address, const std::string& password) const;
  // Whether the credentials behind `key` are cached; the login too when `generation` matches.
  bool cached(const std::string& key, std::optional<uint64_t> generation, Login* login);
  void remember(const std::string& key);
  void remember_login(const std::string& key, uint64_t generation, const Login& login);
  void forget(const std::string& key);

  Directory& directory_;
  MailStore& store_;
  AuthLimiter& limiter_;
  DavOptions options_;
  std::string cache_secret_;
  std::mutex cache_mu_;
  std::map<std::string, CachedCredentials> credential_cache_;
  std::set<Guid> defaults_ensured_;
};

}  // namespace mailark::dav
