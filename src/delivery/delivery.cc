// Delivery implementation.
#include "delivery/delivery.h"

#include "base/log.h"
#include "base/time.h"

namespace mailark {

std::string to_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 40);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

Result<User> Delivery::resolve_recipient(std::string_view address_in) {
  if (address_in.find('@') == std::string_view::npos && address_in.size() == 10) {
    std::string lowered(address_in);
    for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lowered == "postmaster") return not_found("no postmaster mailbox without a domain");
  }
  MK_ASSIGN_OR_RETURN(std::string address, normalize_address(address_in));
  auto user = directory_.find_user(address);
  if (!user.is_ok() && user.status().code() == ErrorCode::kNotFound &&
      !options_.recipient_delimiter.empty()) {
    size_t at = address.find('@');
    size_t delim = address.find(options_.recipient_delimiter);
    if (delim != std::string::npos && delim > 0 && delim < at)
      user = directory_.find_user(address.substr(0, delim) + address.substr(at));
  }
  if (!user.is_ok()) return user.status();
  if (user->quota_bytes) {
    auto account = store_.account(user->database, user->address);
    if (account.is_ok()) {
      auto usage = store_.usage(*account);
      if (usage.is_ok() && usage->bytes >= user->quota_bytes)
        return over_quota("mailbox of " + user->address + " is full");
    }
  }
  return user;
}

Status Delivery::deliver_one(const User& user, const MessageInput& input, const Guid& ingress_id,
                             bool* duplicate) {
  MK_ASSIGN_OR_RETURN(Account account,
                      store_.open_or_create_account(user.database, user.guid, user.address));
  account.quota_bytes = user.quota_bytes;
  MK_ASSIGN_OR_RETURN(SavedItem saved, store_.deliver(account, input, ingress_id));
  if (duplicate) *duplicate = saved.duplicate;
  return Status::ok();
}

void Delivery::acknowledge(const Guid& ingress_id) {
  if (ingress_id.is_zero()) return;
  Status s = ingress_.acknowledge(ingress_id);
  if (!s.is_ok())
    MK_LOG_WARN("ingress acknowledgement of {} failed: {}", ingress_id.hex(), s.to_string());
}

std::vector<Status> Delivery::deliver(std::string_view from, const std::vector<User>& recipients,
                                      std::string message, Guid* ingress_id) {
  if (ingress_id) *ingress_id = Guid{};
  std::vector<Status> out(recipients.size());
  if (message.size() > options_.max_message_size) {
    for (auto& s : out) s = too_large("message exceeds the size limit");
    return out;
  }
  IngressRecord record;
  record.id = Guid::random();
  record.time_ms = now_ms();
  record.from = std::string(from);
  for (const auto& u : recipients) record.recipients.push_back(u.address);
  record.message = std::move(message);
  record.message_sha256 = sha256(record.message);  // once: ingress record and blob address
  // The ingress record must be durable before anything is acknowledged, so that whatever
  // is acknowledged can be replayed after losing a database. Its fsync runs while the
  // recipients' items are stored and committed; the replies wait for both.
  auto ticket = ingress_.write(record);
  if (!ticket.is_ok()) {
    MK_LOG_ERROR("ingress cache append failed: {}", ticket.status().to_string());
    for (auto& s : out) s = temporary("ingress cache unavailable");
    return out;
  }
  if (ingress_id) *ingress_id = record.id;
  MessageInfo info = parse_message(record.message);
  MessageInput input;
  input.raw = record.message;
  input.info = &info;
  input.internal_date_ms = record.time_ms;
  input.digest = &record.message_sha256;
  for (size_t i = 0; i < recipients.size(); ++i) {
    out[i] = deliver_one(recipients[i], input, record.id, nullptr);
    if (out[i].is_ok())
      MK_LOG_DEBUG("delivered {} to {} ({} bytes)", record.id.hex(), recipients[i].address,
                   record.message.size());
    else
      MK_LOG_WARN("delivery of {} to {} failed: {}", record.id.hex(), recipients[i].address,
                  out[i].to_string());
  }
  Status logged = ingress_.wait_durable(*ticket);
  if (!logged.is_ok()) {
    // Stored but not replayable: answer 4xx so the sender retries; replay de-duplicates.
    MK_LOG_ERROR("ingress cache fsync failed: {}", logged.to_string());
    for (auto& s : out)
      if (s.is_ok()) s = temporary("ingress cache unavailable");
    if (ingress_id) *ingress_id = Guid{};
  }
  return out;
}

void Delivery::replay(const IngressRecord& record, std::string_view only_user,
                      ReplayCounts* counts) {
  ++counts->records;
  MessageInfo info;
  bool parsed = false;
  for (const auto& rcpt : record.recipients) {
    if (!only_user.empty() && rcpt != only_user) continue;
    auto user = directory_.find_user(rcpt);
    if (!user.is_ok()) {
      MK_LOG_WARN("replay {}: recipient {} skipped: {}", record.id.hex(), rcpt,
                  user.status().to_string());
      ++counts->failed;
      continue;
    }
    if (!parsed) {
      info = parse_message(record.message);
      parsed = true;
    }
    MessageInput input;
    input.raw = record.message;
    input.info = &info;
    input.internal_date_ms = record.time_ms;
    input.digest = &record.message_sha256;  // verified by the ingress scan
    if (!record.acknowledged) {
      // The sender never saw a reply, so it may have sent the message again (new ingress
      // id). If this very content reached the account since, that copy is the retry.
      auto account = store_.account(user->database, user->address);
      if (account.is_ok() && !store_.has_delivery(*account, record.id).value_or(false) &&
          store_.has_content_since(*account, record.message_sha256, record.time_ms)
              .value_or(false)) {
        ++counts->retried;
        continue;
      }
    }
    bool duplicate = false;
    Status s = deliver_one(*user, input, record.id, &duplicate);
    if (!s.is_ok()) {
      MK_LOG_WARN("replay {} to {} failed: {}", record.id.hex(), rcpt, s.to_string());
      ++counts->failed;
    } else if (duplicate) {
      ++counts->skipped;
    } else {
      ++counts->delivered;
    }
  }
}

}  // namespace mailark
