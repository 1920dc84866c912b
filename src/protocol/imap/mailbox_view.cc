// Selected-mailbox bookkeeping: sequence numbers, \Recent, and untagged change responses.
#include "protocol/imap/mailbox_view.h"

#include <algorithm>

namespace mailark::imap {

void UidList::push_back(uint32_t uid) {
  if (!runs_.empty() && runs_.back().first + runs_.back().count == uid) {
    ++runs_.back().count;
  } else {
    runs_.push_back(Run{uid, 1, size_});
  }
  ++size_;
}

std::vector<UidList::Run>::const_iterator UidList::run_for(uint32_t uid) const {
  // The last run starting at or before uid.
  auto it = std::upper_bound(runs_.begin(), runs_.end(), uid,
                             [](uint32_t u, const Run& r) { return u < r.first; });
  return it == runs_.begin() ? runs_.end() : it - 1;
}

uint32_t UidList::at(uint32_t index) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), index,
                             [](uint32_t i, const Run& r) { return i < r.before; });
  --it;
  return it->first + (index - it->before);
}

std::optional<uint32_t> UidList::index_of(uint32_t uid) const {
  auto it = run_for(uid);
  if (it == runs_.end() || uid >= it->first + it->count) return std::nullopt;
  return it->before + (uid - it->first);
}

void UidList::append_between(uint32_t lo, uint32_t hi, std::vector<uint32_t>* out) const {
  auto it = run_for(lo);
  if (it == runs_.end()) it = runs_.begin();
  for (; it != runs_.end() && it->first <= hi; ++it) {
    uint64_t last = uint64_t{it->first} + it->count - 1;
    uint64_t from = std::max<uint64_t>(lo, it->first);
    uint64_t to = std::min<uint64_t>(hi, last);
    for (uint64_t u = from; u <= to; ++u) out->push_back(static_cast<uint32_t>(u));
  }
}

void UidList::append_positions(uint32_t from, uint32_t to, std::vector<uint32_t>* out) const {
  for (uint32_t i = from; i < to;) {
    auto it = std::upper_bound(runs_.begin(), runs_.end(), i,
                               [](uint32_t x, const Run& r) { return x < r.before; }) -
              1;
    uint32_t end = std::min(to, it->before + it->count);
    for (; i < end; ++i) out->push_back(it->first + (i - it->before));
  }
}

void UidList::erase(const std::vector<uint32_t>& ascending) {
  if (ascending.empty()) return;
  UidList rebuilt;
  size_t k = 0;
  for (const Run& r : runs_) {
    for (uint32_t i = 0; i < r.count; ++i) {
      uint32_t uid = r.first + i;
      while (k < ascending.size() && ascending[k] < uid) ++k;
      if (k < ascending.size() && ascending[k] == uid) continue;
      rebuilt.push_back(uid);
    }
  }
  *this = std::move(rebuilt);
}

std::vector<uint32_t> UidList::to_vector() const {
  std::vector<uint32_t> out;
  out.reserve(size_);
  append_positions(0, size_, &out);
  return out;
}

uint32_t RecentClaims::claim(const Guid& folder, uint32_t uidnext) {
  std::lock_guard lock(mu_);
  uint32_t& claimed = claimed_[folder];
  uint32_t first = claimed == 0 ? 1 : claimed;
  if (uidnext > claimed) claimed = uidnext;
  return std::max(first, uint32_t{1});
}

uint32_t RecentClaims::first_unclaimed(const Guid& folder) {
  std::lock_guard lock(mu_);
  auto it = claimed_.find(folder);
  return it == claimed_.end() || it->second == 0 ? 1 : it->second;
}

MailboxView::MailboxView(const FolderInfo& folder, const std::vector<uint32_t>& uids,
                         bool read_only, uint32_t first_recent)
    : name_(folder.name),
      folder_guid_(folder.guid),
      uidvalidity_(folder.uidvalidity),
      read_only_(read_only),
      modseq_(folder.highestmodseq) {
  for (uint32_t uid : uids) {
    uids_.push_back(uid);
    if (uid >= first_recent) recent_.push_back(uid);
  }
}

std::optional<uint32_t> MailboxView::seq_of(uint32_t uid) const {
  auto index = uids_.index_of(uid);
  if (!index) return std::nullopt;
  return *index + 1;
}

bool MailboxView::is_recent(uint32_t uid) const {
  return recent_.index_of(uid).has_value();
}

bool MailboxView::is_pending_expunge(uint32_t uid) const {
  return std::binary_search(pending_.begin(), pending_.end(), uid);
}

Result<std::vector<uint32_t>> MailboxView::resolve(const std::vector<SeqRange>& set,
                                                   bool uid_set) const {
  uint32_t star = uid_set ? max_uid() : exists();
  // Ranges are resolved, clamped and merged before anything is expanded, so "1:*,1:*,..."
  // costs no more than "1:*".
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  ranges.reserve(set.size());
  for (SeqRange r : set) {
    uint32_t lo = r.lo == UINT32_MAX ? star : r.lo;
    uint32_t hi = r.hi == UINT32_MAX ? star : r.hi;
    if (lo > hi) std::swap(lo, hi);
    if (!uid_set && (lo == 0 || hi > exists())) return invalid("Invalid message sequence number");
    if (uid_set) hi = std::min(hi, star);
    if (lo <= hi) ranges.emplace_back(lo, hi);
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && uint64_t{r.first} <= uint64_t{merged.back().second} + 1)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  }
  std::vector<uint32_t> out;
  for (const auto& [lo, hi] : merged) {
    if (uid_set)
      uids_.append_between(lo, hi, &out);
    else
      uids_.append_positions(lo - 1, hi, &out);
  }
  return out;
}

void MailboxView::announce_expunges(const std::vector<uint32_t>& uids, const SyncOptions& options,
                                    std::string* out) {
  std::vector<uint32_t> gone;
  for (uint32_t uid : uids)
    if (seq_of(uid)) gone.push_back(uid);
  if (gone.empty()) return;
  std::sort(gone.begin(), gone.end());
  if (options.qresync) {
    *out += "* VANISHED " + format_sequence_set(gone) + "\r\n";
  } else {
    // Highest first, so no announced number shifts the ones still to come.
    for (auto it = gone.rbegin(); it != gone.rend(); ++it)
      *out += "* " + std::to_string(*seq_of(*it)) + " EXPUNGE\r\n";
  }
  auto removed = [&](uint32_t uid) { return std::binary_search(gone.begin(), gone.end(), uid); };
  uids_.erase(gone);
  recent_.erase(gone);
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(), removed), pending_.end());
  for (uint32_t uid : gone) reported_.erase(uid);
}

void MailboxView::expunged_now(const std::vector<uint32_t>& uids, const SyncOptions& options,
                               std::string* out) {
  announce_expunges(uids, options, out);
}

void MailboxView::apply(const FolderChanges& changes, const SyncOptions& options,
                        RecentClaims& recent, std::string* out) {
  for (uint32_t uid : changes.vanished)
    if (seq_of(uid) && !is_pending_expunge(uid)) pending_.push_back(uid);
  std::sort(pending_.begin(), pending_.end());
  if (options.allow_expunge && !pending_.empty()) {
    std::vector<uint32_t> now = pending_;
    announce_expunges(now, options, out);
  }

  uint32_t old_max = max_uid();
  std::vector<const ItemInfo*> fresh;
  for (const ItemInfo& item : changes.changed)
    if (item.uid > old_max) fresh.push_back(&item);
  if (!fresh.empty()) {
    std::sort(fresh.begin(), fresh.end(),
              [](const ItemInfo* a, const ItemInfo* b) { return a->uid < b->uid; });
    uint32_t first_recent = read_only_ ? recent.first_unclaimed(folder_guid_)
                                       : recent.claim(folder_guid_, fresh.back()->uid + 1);
    for (const ItemInfo* item : fresh) {
      uids_.push_back(item->uid);
      if (item->uid >= first_recent) recent_.push_back(item->uid);
    }
    *out += "* " + std::to_string(exists()) + " EXISTS\r\n";
    if (options.recent) *out += "* " + std::to_string(recent_count()) + " RECENT\r\n";
  }

  for (const ItemInfo& item : changes.changed) {
    if (item.uid > old_max) continue;
    auto seq = seq_of(item.uid);
    if (!seq || is_pending_expunge(item.uid)) continue;
    auto it = reported_.find(item.uid);
    if (it != reported_.end() && it->second >= item.modseq) continue;
    *out += "* " + std::to_string(*seq) + " FETCH (";
    if (options.with_uid || options.qresync) *out += "UID " + std::to_string(item.uid) + " ";
    *out += "FLAGS " + format_flags(item.flags, options.recent && is_recent(item.uid));
    if (options.condstore || options.qresync)
      *out += " MODSEQ (" + std::to_string(item.modseq) + ")";
    *out += ")\r\n";
  }
  reported_.clear();
  advance_modseq(changes.highestmodseq);
}

std::string format_flags(const std::vector<std::string>& flags, bool recent) {
  std::string out = "(";
  for (const std::string& f : flags) {
    if (out.size() > 1) out += ' ';
    out += f;
  }
  if (recent) out += out.size() > 1 ? " \\Recent" : "\\Recent";
  out += ')';
  return out;
}

}  // namespace mailark::imap
