// Certificate tests: the self-signed pair is what a TLS server needs (checked through the
// OpenSSL API), the key file is private, and check_certificate_pair() catches missing,
// garbage, mismatched, encrypted and out-of-date files.
#include "server/certificate.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <set>

#include "os/file.h"
#include "os/temp_dir.h"

namespace mailark {
namespace {

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using CertPtr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

CertPtr load_cert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return nullptr;
  CertPtr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return cert;
}

KeyPtr load_key(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return nullptr;
  KeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return key;
}

void write_cert(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(PEM_write_X509(f, cert), 1);
  std::fclose(f);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

std::string common_name(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

std::string hex_byte(unsigned char b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return {kDigits[b >> 4], kDigits[b & 15]};
}

// subjectAltName entries as "DNS:name" / "IP:<hex bytes>".
std::set<std::string> alt_names(X509* cert) {
  std::set<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    auto* value = static_cast<ASN1_STRING*>(GENERAL_NAME_get0_value(name, &type));
    const unsigned char* data = ASN1_STRING_get0_data(value);
    const int len = ASN1_STRING_length(value);
    if (type == GEN_DNS) {
      out.insert("DNS:" + std::string(reinterpret_cast<const char*>(data), len));
    } else if (type == GEN_IPADD) {
      std::string hex = "IP:";
      for (int k = 0; k < len; ++k) hex += hex_byte(data[k]);
      out.insert(hex);
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

class CertificateTest : public ::testing::Test {
 protected:
  std::string cert_path() const { return dir_.path() + "/cert.pem"; }
  std::string key_path() const { return dir_.path() + "/key.pem"; }
  TempDir dir_;
};

TEST_F(CertificateTest, CreatesAServerCertificate) {
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "mail.example.org").is_ok());
  EXPECT_EQ(file_mode(key_path()), 0600u);
  Status check = check_certificate_pair(cert_path(), key_path());
  EXPECT_TRUE(check.is_ok()) << check.to_string();
  // Published atomically: no temp files left behind.
  auto listing = posix_fs().list_dir(dir_.path());
  ASSERT_TRUE(listing.is_ok());
  EXPECT_EQ(listing->size(), 2u);

  CertPtr cert = load_cert(cert_path());
  KeyPtr key = load_key(key_path());
  ASSERT_TRUE(cert && key);
  EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
  EXPECT_EQ(common_name(cert.get()), "mail.example.org");
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
  EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);  // self-signed by this key

  // ECDSA P-256 with SHA-256, named-curve encoding (clients reject explicit parameters).
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_EC);
  char group[64] = {};
  ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group, sizeof group, nullptr), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);

  const std::set<std::string> expected = {"DNS:mail.example.org", "DNS:localhost", "IP:7f000001",
                                          "IP:00000000000000000000000000000001"};
  EXPECT_EQ(alt_names(cert.get()), expected);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "MAIL.example.org", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_host(cert.get(), "other.example.org", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);

  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_TRUE(X509_get_extension_flags(cert.get()) & EXFLAG_BCONS);
  EXPECT_EQ(X509_get_key_usage(cert.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_NE(X509_get0_subject_key_id(cert.get()), nullptr);

  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
  ASSERT_NE(serial, nullptr);
  EXPECT_FALSE(BN_is_negative(serial));
  EXPECT_GT(BN_num_bits(serial), 64);  // random: fewer than 65 bits has odds of 2^-64
  EXPECT_LE(BN_num_bits(serial), 128);
  BN_free(serial);

  int days = 0, secs = 0;  // from now (nullptr) to the bound
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notBefore(cert.get())), 1);
  EXPECT_EQ(days, 0);
  EXPECT_LE(secs, -3500);
  EXPECT_GE(secs, -3700);
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_GE(days, 3651);  // ten calendar years: 3652 or 3653 days
  EXPECT_LE(days, 3653);

  // A TLS server context accepts the pair.
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx, cert_path().c_str()), 1);
  EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx, key_path().c_str(), SSL_FILETYPE_PEM), 1);
  EXPECT_EQ(SSL_CTX_check_private_key(ctx), 1);
  SSL_CTX_free(ctx);
}

TEST_F(CertificateTest, EachCallMakesANewKeyAndSerial) {
  const std::string cert2 = dir_.path() + "/cert2.pem", key2 = dir_.path() + "/key2.pem";
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "a.example").is_ok());
  ASSERT_TRUE(create_self_signed_certificate(cert2, key2, "a.example").is_ok());
  CertPtr a = load_cert(cert_path()), b = load_cert(cert2);
  ASSERT_TRUE(a && b);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a.get()), X509_get0_serialNumber(b.get())), 0);
  EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(a.get()), X509_get0_pubkey(b.get())), 1);
}

TEST_F(CertificateTest, ReplacesAnExistingKeyAndMakesItPrivate) {
  write_text(key_path(), "old key\n");
  ASSERT_EQ(::chmod(key_path().c_str(), 0644), 0);
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "localhost").is_ok());
  EXPECT_EQ(file_mode(key_path()), 0600u);
  auto text = posix_fs().read_file(key_path());
  ASSERT_TRUE(text.is_ok());
  EXPECT_EQ(text->rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);  // PKCS#8, unencrypted
  EXPECT_TRUE(check_certificate_pair(cert_path(), key_path()).is_ok());
  // "localhost" is not listed twice.
  CertPtr cert = load_cert(cert_path());
  ASSERT_TRUE(cert);
  const std::set<std::string> expected = {"DNS:localhost", "IP:7f000001",
                                          "IP:00000000000000000000000000000001"};
  EXPECT_EQ(alt_names(cert.get()), expected);
}

TEST_F(CertificateTest, AddressLiteralsBecomeIpNames) {
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "192.0.2.7").is_ok());
  CertPtr cert = load_cert(cert_path());
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "192.0.2.7", 0), 1);
  EXPECT_EQ(alt_names(cert.get()).count("DNS:192.0.2.7"), 0u);

  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "2001:db8::25").is_ok());
  cert = load_cert(cert_path());
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "2001:db8::25", 0), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
}

TEST_F(CertificateTest, LongHostNameKeepsItsAltNameAndAShortCommonName) {
  std::string host;
  for (int i = 0; i < 5; ++i) host += "label-number-" + std::to_string(i) + ".";
  host += "example.org";
  ASSERT_GT(host.size(), 64u);
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), host).is_ok());
  CertPtr cert = load_cert(cert_path());
  ASSERT_TRUE(cert);
  EXPECT_EQ(common_name(cert.get()), "mailark");
  EXPECT_EQ(X509_check_host(cert.get(), host.c_str(), host.size(), 0, nullptr), 1);
}

TEST_F(CertificateTest, RejectsBadHostNames) {
  const std::string bad[] = {"",
                             "two words",
                             "a.example,DNS:evil.example",  // no extra names smuggled in
                             "*.example.org",
                             "-lead.example",
                             "trail-.example",
                             "a..b",
                             ".a",
                             "a.",
                             "under_score.example",
                             "m\xc3\xa4il.example",  // IDNs as A-labels only
                             std::string(64, 'a') + ".example",
                             std::string(254, 'a')};
  for (const std::string& host : bad) {
    Status s = create_self_signed_certificate(cert_path(), key_path(), host);
    EXPECT_EQ(s.code(), ErrorCode::kInvalid) << host;
  }
  EXPECT_FALSE(posix_fs().exists(key_path()));
  EXPECT_FALSE(posix_fs().exists(cert_path()));
}

TEST_F(CertificateTest, MissingDirectoryIsAnIoError) {
  Status s = create_self_signed_certificate(dir_.path() + "/no/cert.pem",
                                            dir_.path() + "/no/key.pem", "localhost");
  EXPECT_EQ(s.code(), ErrorCode::kIo);
  EXPECT_NE(s.message().find("/no/key.pem"), std::string::npos) << s.message();
}

TEST_F(CertificateTest, CrossedPairsDoNotMatch) {
  const std::string cert2 = dir_.path() + "/cert2.pem", key2 = dir_.path() + "/key2.pem";
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "a.example").is_ok());
  ASSERT_TRUE(create_self_signed_certificate(cert2, key2, "a.example").is_ok());
  EXPECT_TRUE(check_certificate_pair(cert2, key2).is_ok());
  for (const auto& [cert, key] : {std::pair{cert_path(), key2}, std::pair{cert2, key_path()}}) {
    Status s = check_certificate_pair(cert, key);
    EXPECT_EQ(s.code(), ErrorCode::kInvalid);
    EXPECT_NE(s.message().find("does not match"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(key), std::string::npos) << s.message();
  }
}

TEST_F(CertificateTest, MissingFilesAreNamed) {
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "a.example").is_ok());
  const std::string missing = dir_.path() + "/missing.pem";
  Status s = check_certificate_pair(missing, key_path());
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_NE(s.message().find("TLS certificate"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(missing), std::string::npos) << s.message();
  s = check_certificate_pair(cert_path(), missing);
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_NE(s.message().find("TLS private key"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(missing), std::string::npos) << s.message();
}

TEST_F(CertificateTest, GarbageAndSwappedFilesAreInvalid) {
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "a.example").is_ok());
  const std::string garbage = dir_.path() + "/garbage.pem";
  write_text(garbage, "not a pem file\n");
  for (const auto& [cert, key] : {std::pair{garbage, key_path()}, std::pair{cert_path(), garbage},
                                  std::pair{key_path(), cert_path()}}) {
    Status s = check_certificate_pair(cert, key);
    EXPECT_EQ(s.code(), ErrorCode::kInvalid) << cert << " " << key;
    EXPECT_NE(s.message().find("no "), std::string::npos) << s.message();
  }
}

TEST_F(CertificateTest, EncryptedKeyIsRejectedWithoutPrompting) {
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "a.example").is_ok());
  KeyPtr key = load_key(key_path());
  ASSERT_TRUE(key);
  const std::string encrypted = dir_.path() + "/encrypted.pem";
  FILE* f = std::fopen(encrypted.c_str(), "w");
  ASSERT_NE(f, nullptr);
  static char pass[] = "secret";
  ASSERT_EQ(PEM_write_PKCS8PrivateKey(f, key.get(), EVP_aes_256_cbc(), pass, 6, nullptr, nullptr),
            1);
  std::fclose(f);
  Status s = check_certificate_pair(cert_path(), encrypted);
  EXPECT_EQ(s.code(), ErrorCode::kInvalid);
  EXPECT_NE(s.message().find(encrypted), std::string::npos) << s.message();
}

// Re-signs the generated certificate with other dates.
TEST_F(CertificateTest, OutOfDateCertificatesAreInvalid) {
  ASSERT_TRUE(create_self_signed_certificate(cert_path(), key_path(), "a.example").is_ok());
  KeyPtr key = load_key(key_path());
  ASSERT_TRUE(key);
  struct Case {
    long not_before, not_after;  // seconds from now
    const char* expect;
  } cases[] = {
      {-2 * 86400, -86400, "expired"},
      {86400, 2 * 86400, "not valid before"},
  };
  for (const Case& c : cases) {
    CertPtr cert = load_cert(cert_path());
    ASSERT_TRUE(cert);
    ASSERT_TRUE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), c.not_before));
    ASSERT_TRUE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), c.not_after));
    ASSERT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
    const std::string dated = dir_.path() + "/dated.pem";
    write_cert(dated, cert.get());
    Status s = check_certificate_pair(dated, key_path());
    EXPECT_EQ(s.code(), ErrorCode::kInvalid);
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace mailark
