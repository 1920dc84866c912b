// Encryption of backup repositories: one 32-byte master key per installation (from a key
// file, or from a passphrase through argon2id), sub-keys by HKDF-SHA256, and authenticated
// encryption (AES-256-GCM or ChaCha20-Poly1305, OpenSSL) of every object and file.
// Format of sealed bytes: docs/formats/backup-repository.md.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace mailark {

enum class Cipher { kAes256Gcm, kChaCha20Poly1305 };
const char* cipher_name(Cipher c);
Result<Cipher> parse_cipher(std::string_view name);

struct Argon2Params {
  uint32_t time_cost = 3;
  uint32_t memory_kib = 64 * 1024;
  uint32_t lanes = 1;
};

// The installation's backup key. Copyable value; wipe is best effort.
class BackupKey {
 public:
  // 32 random bytes.
  static Result<BackupKey> generate();
  // Key file text: "mailark-backup-key-v1:" + 64 hex digits (+ optional newline).
  static Result<BackupKey> parse(std::string_view key_file_text);
  static Result<BackupKey> from_passphrase(std::string_view passphrase, std::string_view salt,
                                           const Argon2Params& params);
  std::string to_text() const;  // the key file contents
  // 16 hex digits naming the key without revealing it (stored in repository configs).
  std::string id() const;

  // Encrypts `plain` with a fresh random nonce; `context` is authenticated, not stored.
  Result<std::string> seal(Cipher cipher, std::string_view plain, std::string_view context) const;
  // kCorrupt when the bytes were altered, belong to another context, or another key.
  Result<std::string> open(Cipher cipher, std::string_view sealed, std::string_view context) const;

 private:
  std::array<uint8_t, 32> master_{};
  std::array<uint8_t, 32> data_key_{};
  void derive();
};

constexpr size_t kSealOverhead = 12 + 16;  // nonce + tag

}  // namespace mailark
