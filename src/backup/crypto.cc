// Backup encryption through OpenSSL's EVP interface and libargon2.
#include "backup/crypto.h"

#include <argon2.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <memory>

#include "base/hash.h"

namespace mailark {
namespace {

constexpr std::string_view kKeyPrefix = "mailark-backup-key-v1:";

std::array<uint8_t, 32> hkdf(const std::array<uint8_t, 32>& key, std::string_view info) {
  std::array<uint8_t, 32> out{};
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr), EVP_PKEY_CTX_free);
  static const char kSalt[] = "mailark-backup-v1";
  size_t len = out.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) <= 0 ||
      EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), reinterpret_cast<const unsigned char*>(kSalt),
                                  sizeof kSalt - 1) <= 0 ||
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), key.data(), key.size()) <= 0 ||
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), reinterpret_cast<const unsigned char*>(info.data()),
                                  static_cast<int>(info.size())) <= 0 ||
      EVP_PKEY_derive(ctx.get(), out.data(), &len) <= 0)
    std::abort();  // OpenSSL without HKDF or out of memory: nothing sensible to do
  return out;
}

// Fetched from the provider once, not looked up again for every object sealed or opened.
const EVP_CIPHER* evp(Cipher c) {
  static const EVP_CIPHER* aes = [] {
    const EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    return fetched ? fetched : EVP_aes_256_gcm();
  }();
  static const EVP_CIPHER* chacha = [] {
    const EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    return fetched ? fetched : EVP_chacha20_poly1305();
  }();
  return c == Cipher::kAes256Gcm ? aes : chacha;
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

const char* cipher_name(Cipher c) {
  return c == Cipher::kAes256Gcm ? "aes-256-gcm" : "chacha20-poly1305";
}

Result<Cipher> parse_cipher(std::string_view name) {
  if (name == "aes-256-gcm") return Cipher::kAes256Gcm;
  if (name == "chacha20-poly1305") return Cipher::kChaCha20Poly1305;
  return invalid("unknown cipher '" + std::string(name) + "' (aes-256-gcm or chacha20-poly1305)");
}

Result<BackupKey> BackupKey::generate() {
  BackupKey k;
  if (RAND_bytes(k.master_.data(), static_cast<int>(k.master_.size())) != 1)
    return io_error("no randomness for the backup key");
  k.derive();
  return k;
}

Result<BackupKey> BackupKey::parse(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.remove_suffix(1);
  if (text.substr(0, kKeyPrefix.size()) != kKeyPrefix)
    return invalid("not a mailark backup key (expected " + std::string(kKeyPrefix) + "...)");
  auto d = digest_from_hex(text.substr(kKeyPrefix.size()));
  if (!d) return invalid("backup key is damaged: expected 64 hex digits");
  BackupKey k;
  std::copy(d->begin(), d->end(), k.master_.begin());
  k.derive();
  return k;
}

Result<BackupKey> BackupKey::from_passphrase(std::string_view passphrase, std::string_view salt,
                                             const Argon2Params& p) {
  if (passphrase.empty()) return invalid("empty backup passphrase");
  if (salt.size() < 16) return invalid("argon2id salt shorter than 16 bytes");
  BackupKey k;
  int rc =
      argon2id_hash_raw(p.time_cost, p.memory_kib, p.lanes, passphrase.data(), passphrase.size(),
                        salt.data(), salt.size(), k.master_.data(), k.master_.size());
  if (rc != ARGON2_OK) return io_error(std::string("argon2id failed: ") + argon2_error_message(rc));
  k.derive();
  return k;
}

void BackupKey::derive() {
  data_key_ = hkdf(master_, "data");
}

std::string BackupKey::to_text() const {
  return std::string(kKeyPrefix) + to_hex(master_.data(), master_.size()) + "\n";
}

std::string BackupKey::id() const {
  auto id = hkdf(master_, "key-id");
  return to_hex(id.data(), 8);
}

Result<std::string> BackupKey::seal(Cipher cipher, std::string_view plain,
                                    std::string_view context) const {
  std::string out(12 + plain.size() + 16, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(nonce, 12) != 1) return io_error("no randomness for a nonce");
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  auto* ct = reinterpret_cast<unsigned char*>(out.data() + 12);
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), evp(cipher), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, data_key_.data(), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, 16, ct + plain.size()) != 1)
    return io_error("encryption failed");
  return out;
}

Result<std::string> BackupKey::open(Cipher cipher, std::string_view sealed,
                                    std::string_view context) const {
  if (sealed.size() < kSealOverhead) return corrupt("encrypted data is truncated");
  size_t n = sealed.size() - kSealOverhead;
  std::string out(n, '\0');
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  const auto* ct = reinterpret_cast<const unsigned char*>(sealed.data() + 12);
  std::string tag(sealed.substr(12 + n, 16));
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  auto* pt = reinterpret_cast<unsigned char*>(out.data());
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), evp(cipher), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, data_key_.data(), nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), pt, &len, ct, static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, 16, tag.data()) != 1)
    return io_error("decryption failed");
  if (EVP_DecryptFinal_ex(ctx.get(), pt + len, &len) != 1)
    return corrupt("authentication failed (damaged data, or another key)");
  return out;
}

}  // namespace mailark
