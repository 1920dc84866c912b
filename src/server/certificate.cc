// Self-signed certificate creation and the start-up check of a certificate/key pair, on the
// OpenSSL 3 EVP and X509 APIs (no deprecated calls).
#include "server/certificate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <string_view>

#include "base/hash.h"
#include "os/file.h"

namespace mailark {
namespace {

constexpr long kNotBeforeSkewSeconds = 3600;
constexpr int kValidityYears = 10;
constexpr size_t kMaxCommonName = 64;  // ub-common-name, RFC 5280 appendix A
constexpr char kFallbackCommonName[] = "mailark";

struct OpenSslFree {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free_all(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(ASN1_INTEGER* p) const { ASN1_INTEGER_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(GENERAL_NAME* p) const { GENERAL_NAME_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, OpenSslFree>;

// Drains OpenSSL's thread-local error queue into one line.
std::string openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "no detail from OpenSSL" : text;
}

Status openssl_failure(ErrorCode code, const std::string& what) {
  return {code, what + ": " + openssl_errors()};
}

// The documented contract: every file-system failure of creation is kIo.
Status as_io(Status s) {
  if (s.is_ok() || s.code() == ErrorCode::kIo) return s;
  return io_error(s.message());
}

bool is_ldh_hostname(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : host) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (alnum || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

// The raw bytes of an IPv4 or IPv6 literal, or empty when `text` is not one.
std::string ip_address_bytes(const std::string& text) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1)
    return std::string(reinterpret_cast<char*>(buf), 4);
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    return std::string(reinterpret_cast<char*>(buf), 16);
  }
  return {};
}

bool add_dns_name(GENERAL_NAMES* names, const std::string& dns) {
  Owned<GENERAL_NAME> name(GENERAL_NAME_new());
  ASN1_IA5STRING* value = ASN1_IA5STRING_new();
  if (!name || !value) {
    ASN1_IA5STRING_free(value);
    return false;
  }
  GENERAL_NAME_set0_value(name.get(), GEN_DNS, value);
  if (ASN1_STRING_set(value, dns.data(), static_cast<int>(dns.size())) != 1) return false;
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) return false;
  name.release();
  return true;
}

bool add_ip_address(GENERAL_NAMES* names, const std::string& bytes) {
  Owned<GENERAL_NAME> name(GENERAL_NAME_new());
  ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
  if (!name || !value) {
    ASN1_OCTET_STRING_free(value);
    return false;
  }
  GENERAL_NAME_set0_value(name.get(), GEN_IPADD, value);
  if (ASN1_OCTET_STRING_set(value, reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size())) != 1) {
    return false;
  }
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) return false;
  name.release();
  return true;
}

// hostname, then localhost and both loopback addresses, each once. Built from values rather
// than from a "DNS:...,IP:..." config string, so no hostname can smuggle in extra names.
Status add_subject_alt_names(X509* cert, const std::string& hostname) {
  Owned<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  if (!names) return openssl_failure(ErrorCode::kIo, "subjectAltName");
  const std::string host_ip = ip_address_bytes(hostname);
  const std::string loopback4 = ip_address_bytes("127.0.0.1");
  const std::string loopback6 = ip_address_bytes("::1");
  bool ok = true;
  if (host_ip.empty()) {
    ok = ok && add_dns_name(names.get(), hostname);
    if (strcasecmp(hostname.c_str(), "localhost") != 0) {
      ok = ok && add_dns_name(names.get(), "localhost");
    }
  } else {
    ok = ok && add_ip_address(names.get(), host_ip);
    ok = ok && add_dns_name(names.get(), "localhost");
  }
  if (host_ip != loopback4) ok = ok && add_ip_address(names.get(), loopback4);
  if (host_ip != loopback6) ok = ok && add_ip_address(names.get(), loopback6);
  if (!ok ||
      X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return openssl_failure(ErrorCode::kIo, "subjectAltName");
  }
  return Status::ok();
}

// The extensions that are fixed strings, through OpenSSL's own v3 config parser.
Status add_fixed_extensions(X509* cert) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  const struct {
    int nid;
    const char* value;
  } extensions[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_subject_key_identifier, "hash"},
  };
  for (const auto& e : extensions) {
    Owned<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, e.nid, e.value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
      return openssl_failure(ErrorCode::kIo, std::string("extension ") + OBJ_nid2sn(e.nid));
    }
  }
  return Status::ok();
}

// 128 random bits as a positive INTEGER (DER adds a zero octet when the top bit is set;
// 17 octets are within RFC 5280's limit of 20).
Status set_random_serial(X509* cert) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) return openssl_failure(ErrorCode::kIo, "serial");
  raw[sizeof raw - 1] |= 1;  // never zero, which RFC 5280 forbids
  Owned<BIGNUM> bn(BN_bin2bn(raw, sizeof raw, nullptr));
  Owned<ASN1_INTEGER> serial(bn ? BN_to_ASN1_INTEGER(bn.get(), nullptr) : nullptr);
  if (!serial || X509_set_serialNumber(cert, serial.get()) != 1) {
    return openssl_failure(ErrorCode::kIo, "serial");
  }
  return Status::ok();
}

// From an hour ago (clients with a slow clock) to the same instant ten calendar years on
// (timegm() moves 29 February to 1 March).
Status set_validity(X509* cert) {
  time_t now = std::time(nullptr);
  struct tm later {};
  gmtime_r(&now, &later);
  later.tm_year += kValidityYears;
  const time_t not_after = timegm(&later);
  if (!X509_time_adj_ex(X509_getm_notBefore(cert), 0, -kNotBeforeSkewSeconds, &now) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert), not_after)) {
    return openssl_failure(ErrorCode::kIo, "validity");
  }
  return Status::ok();
}

Status set_subject(X509* cert, const std::string& hostname) {
  const std::string cn = hostname.size() <= kMaxCommonName ? hostname : kFallbackCommonName;
  X509_NAME* name = X509_get_subject_name(cert);
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(cert, name) != 1) {
    return openssl_failure(ErrorCode::kIo, "subject");
  }
  return Status::ok();
}

Result<Owned<X509>> build_certificate(EVP_PKEY* key, const std::string& hostname) {
  Owned<X509> cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return openssl_failure(ErrorCode::kIo, "new certificate");
  }
  MK_RETURN_IF_ERROR(set_random_serial(cert.get()));
  MK_RETURN_IF_ERROR(set_validity(cert.get()));
  MK_RETURN_IF_ERROR(set_subject(cert.get(), hostname));
  MK_RETURN_IF_ERROR(add_fixed_extensions(cert.get()));
  MK_RETURN_IF_ERROR(add_subject_alt_names(cert.get(), hostname));
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) {
    return openssl_failure(ErrorCode::kIo, "signing the certificate");
  }
  return cert;
}

Result<std::string> bio_contents(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return openssl_failure(ErrorCode::kIo, "PEM output");
  return std::string(data, static_cast<size_t>(n));
}

Status publish_private_file(const std::string& path, std::string_view contents) {
  return as_io(publish_secret_file(posix_fs(), path, contents));
}

// Reads a whole PEM file, naming it in any error.
Result<std::string> read_pem_file(const std::string& path, const char* what) {
  Result<std::string> text = posix_fs().read_file(path);
  if (!text.is_ok()) {
    return Status(text.status().code(),
                  std::string("cannot read ") + what + ": " + text.status().message());
  }
  return text;
}

// Never ask a terminal for a passphrase: mailark keys are unencrypted by design.
int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
  return -1;
}

std::string asn1_time_text(const ASN1_TIME* t) {
  Owned<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print_ex(bio.get(), t, ASN1_DTFLGS_ISO8601) != 1) return "?";
  Result<std::string> text = bio_contents(bio.get());
  return text.is_ok() ? text.value() : "?";
}

}  // namespace

Status create_self_signed_certificate(const std::string& cert_path, const std::string& key_path,
                                      const std::string& hostname) {
  if (!is_ldh_hostname(hostname) && ip_address_bytes(hostname).empty()) {
    return invalid("not a host name or IP address: \"" + hostname + "\"");
  }
  ERR_clear_error();
  Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) return openssl_failure(ErrorCode::kIo, "generating a P-256 key");
  MK_ASSIGN_OR_RETURN(Owned<X509> cert, build_certificate(key.get(), hostname));

  Owned<BIO> cert_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1) {
    return openssl_failure(ErrorCode::kIo, "PEM encoding the certificate");
  }
  MK_ASSIGN_OR_RETURN(std::string cert_pem, bio_contents(cert_bio.get()));

  // Secure-heap memory BIO: its buffer is cleansed when freed.
  Owned<BIO> key_bio(BIO_new(BIO_s_secmem()));
  if (!key_bio || PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr,
                                           nullptr) != 1) {
    return openssl_failure(ErrorCode::kIo, "PEM encoding the private key");
  }
  MK_ASSIGN_OR_RETURN(std::string key_pem, bio_contents(key_bio.get()));
  Status written = publish_private_file(key_path, key_pem);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  MK_RETURN_IF_ERROR(written);
  return as_io(publish_file(posix_fs(), cert_path, cert_pem));
}

Status check_certificate_pair(const std::string& cert_path, const std::string& key_path) {
  MK_ASSIGN_OR_RETURN(std::string cert_pem, read_pem_file(cert_path, "TLS certificate"));
  MK_ASSIGN_OR_RETURN(std::string key_pem, read_pem_file(key_path, "TLS private key"));
  ERR_clear_error();

  Owned<BIO> cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  Owned<X509> cert(cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, refuse_passphrase, nullptr)
                            : nullptr);
  if (!cert) {
    return openssl_failure(ErrorCode::kInvalid, "no PEM certificate in " + cert_path);
  }
  Owned<BIO> key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  Owned<EVP_PKEY> key(
      key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, refuse_passphrase, nullptr)
              : nullptr);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  if (!key) {
    return openssl_failure(ErrorCode::kInvalid, "no unencrypted PEM private key in " + key_path);
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return openssl_failure(ErrorCode::kInvalid,
                           "private key " + key_path + " does not match certificate " + cert_path);
  }
  const ASN1_TIME* not_before = X509_get0_notBefore(cert.get());
  const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
  const int starts = X509_cmp_current_time(not_before);  // -1: at or before now
  const int ends = X509_cmp_current_time(not_after);
  if (starts == 0 || ends == 0) {
    return openssl_failure(ErrorCode::kInvalid, "unreadable validity dates in " + cert_path);
  }
  if (starts > 0) {
    return invalid("certificate " + cert_path + " is not valid before " +
                   asn1_time_text(not_before) + " (check the clock)");
  }
  if (ends < 0) {
    return invalid("certificate " + cert_path + " expired at " + asn1_time_text(not_after));
  }
  return Status::ok();
}

}  // namespace mailark
