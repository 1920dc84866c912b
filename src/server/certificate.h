// TLS certificate files of the server: a self-signed pair for development and first start
// (`mailark init`), and the check at server start that turns a bad pair into a clear error
// instead of a failed handshake later. Uses OpenSSL 3; writes through os/file.h.
#pragma once

#include <string>

#include "base/status.h"

namespace mailark {

// Creates a fresh ECDSA P-256 key and a self-signed X.509 v3 certificate for it and writes
// both as PEM (the key as unencrypted PKCS#8), replacing existing files. Each file is
// published atomically (temp, fsync, rename, fsync dir); the two are not one transaction,
// so a failure or crash between them leaves the new key beside the old certificate (the key
// is written first), which check_certificate_pair() reports as a mismatch.
//
// The certificate: SHA-256 signature, random positive 128-bit serial, valid from one hour
// ago (clock skew) until ten calendar years from now, subject and issuer CN=`hostname`
// (or CN=mailark when `hostname` exceeds the 64 characters X.520 allows a CN),
// subjectAltName `hostname` (as DNS, or as IP when it is an address literal) plus
// DNS:localhost, IP:127.0.0.1 and IP:::1, basicConstraints CA:FALSE, keyUsage
// digitalSignature (critical), extendedKeyUsage serverAuth, subjectKeyIdentifier.
//
// The key file is created with mode 0600 from the start (its temp file is created 0600
// before anything is written to it), so it is never readable by others, even briefly.
// The certificate gets publish_file()'s default mode. Parent directories must exist.
//
// Returns kInvalid when `hostname` is not an LDH host name (A-labels for IDNs, no
// wildcards) or an IPv4/IPv6 literal, kIo when OpenSSL or the file system fails, with
// OpenSSL's error text in the message. Thread-safe.
Status create_self_signed_certificate(const std::string& cert_path, const std::string& key_path,
                                      const std::string& hostname);

// Loads the first certificate of `cert_path` (a full chain is fine) and the private key of
// `key_path`, and checks that they belong together and that the certificate is valid now.
// Never prompts for a passphrase: an encrypted key is reported as unreadable.
// Returns kNotFound when a file is missing, kIo when it cannot be read, kInvalid when it
// holds no PEM certificate or key, the key does not match, or the certificate is not yet
// or no longer valid; messages name the file and carry OpenSSL's error text.
Status check_certificate_pair(const std::string& cert_path, const std::string& key_path);

}  // namespace mailark
