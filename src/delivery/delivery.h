// Delivery: turns one accepted message into durable items. Used by LMTP, `mailark deliver`
// and replay. Order of durability: the ingress record first, then each recipient's item;
// only then may the caller acknowledge (invariant 1).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "directory/directory.h"
#include "ingress/ingress_cache.h"
#include "mailstore/mail_store.h"

namespace mailark {

struct DeliveryOptions {
  std::string recipient_delimiter = "+";
  uint64_t max_message_size = uint64_t{50} << 20;
};

struct ReplayCounts {
  uint64_t records = 0;
  uint64_t delivered = 0;
  uint64_t skipped = 0;  // already present (same ingress id in the account)
  uint64_t retried = 0;  // never acknowledged, and the sender's retry is already there
  uint64_t failed = 0;
};

class Delivery {
 public:
  Delivery(Directory& directory, MailStore& store, IngressCache& ingress, DeliveryOptions options)
      : directory_(directory), store_(store), ingress_(ingress), options_(std::move(options)) {}

  // Resolves a RCPT address to the user's canonical address (stripping a +detail when the
  // plain address is a user). kNotFound for unknown users, kInvalid for malformed
  // addresses, kOverQuota when the mailbox is already full.
  Result<User> resolve_recipient(std::string_view address);

  // Stores `message` (CRLF line ends) for each resolved recipient. Returns one Status per
  // recipient, in order; kOverQuota, kTooLarge, kIo, kCorrupt, kTemporary as they happen.
  // `ingress_id` receives the id of the ingress record (zero when none was written).
  std::vector<Status> deliver(std::string_view from, const std::vector<User>& recipients,
                              std::string message, Guid* ingress_id = nullptr);

  // Records that the sender has received the replies for `ingress_id`; replay treats a
  // record without this note as possibly retried by the sender.
  void acknowledge(const Guid& ingress_id);

  // Re-delivers one ingress record, restricted to `only_user` when non-empty. Recipients
  // that already hold the ingress id are skipped, so replaying twice changes nothing. A
  // record that was never acknowledged is also skipped for a recipient that received the
  // identical message later (the sender retried it), so a crash never yields two copies.
  void replay(const IngressRecord& record, std::string_view only_user, ReplayCounts* counts);

  const DeliveryOptions& options() const { return options_; }

 private:
  Status deliver_one(const User& user, const MessageInput& input, const Guid& ingress_id,
                     bool* duplicate);

  Directory& directory_;
  MailStore& store_;
  IngressCache& ingress_;
  DeliveryOptions options_;
};

// Converts bare LF line ends to CRLF (for messages read from a pipe, e.g. Postfix's
// mailbox_command). CRLF pairs are kept as they are.
std::string to_crlf(std::string_view text);

}  // namespace mailark
