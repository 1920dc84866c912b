// The selected mailbox as one IMAP session sees it: the sequence-number to UID map, which
// messages are \Recent for this session, and how far the session has been told about
// changes. Turns the store's changes into the untagged EXPUNGE / VANISHED / EXISTS / RECENT /
// FETCH responses of RFC 3501 7.4.1 and RFC 7162, holding expunges back while the running
// command may not announce them (RFC 3501 5.5 and 7.4.1). Pure: no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mailstore/mail_store.h"
#include "protocol/imap/imap_parser.h"

namespace mailark::imap {

struct SyncOptions {
  bool allow_expunge = true;  // false while FETCH, STORE and SEARCH (not their UID forms) run
  bool qresync = false;       // VANISHED instead of EXPUNGE, UID in unsolicited FETCH
  bool condstore = false;     // MODSEQ in unsolicited FETCH
  bool with_uid = false;      // UID in unsolicited FETCH (UID commands, QRESYNC)
  bool recent = true;         // \Recent and RECENT (IMAP4rev1; IMAP4rev2 has neither)
};

// Ascending UIDs kept as runs of consecutive numbers: a folder's UIDs are mostly dense, so a
// session with a 20,000-message folder selected holds a few runs instead of 80 KB. Sequence
// number n is the n-th UID.
class UidList {
 public:
  uint32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint32_t back() const { return runs_.empty() ? 0 : runs_.back().first + runs_.back().count - 1; }
  // Appends a UID above back().
  void push_back(uint32_t uid);
  // The UID at 0-based position `index` (< size()).
  uint32_t at(uint32_t index) const;
  // The 0-based position of `uid`, when present.
  std::optional<uint32_t> index_of(uint32_t uid) const;
  // Appends the UIDs in [lo, hi] / at positions [from, to) to `out`, ascending.
  void append_between(uint32_t lo, uint32_t hi, std::vector<uint32_t>* out) const;
  void append_positions(uint32_t from, uint32_t to, std::vector<uint32_t>* out) const;
  // Removes the given UIDs (ascending); absent ones are ignored.
  void erase(const std::vector<uint32_t>& ascending);
  std::vector<uint32_t> to_vector() const;
  size_t runs() const { return runs_.size(); }

 private:
  struct Run {
    uint32_t first;   // first UID of the run
    uint32_t count;   // consecutive UIDs
    uint32_t before;  // UIDs in the runs before this one
  };
  // The run holding or following `uid`.
  std::vector<Run>::const_iterator run_for(uint32_t uid) const;
  std::vector<Run> runs_;
  uint32_t size_ = 0;
};

// Which messages are \Recent (RFC 3501 2.3.2): a message is recent for the first session
// told about it. Kept in memory for the server process; after a restart the messages are
// recent again for the first session that selects the folder. Thread-safe.
class RecentClaims {
 public:
  // Claims UIDs below `uidnext` in `folder`: returns the first UID that is recent for the
  // caller (everything from there up to uidnext - 1).
  uint32_t claim(const Guid& folder, uint32_t uidnext);
  // The first UID nobody has claimed yet (for STATUS RECENT), without claiming.
  uint32_t first_unclaimed(const Guid& folder);

 private:
  std::mutex mu_;
  std::map<Guid, uint32_t> claimed_;  // folder -> first UID not yet claimed
};

class MailboxView {
 public:
  // `uids` are the folder's messages, ascending; those >= first_recent are \Recent for
  // this session.
  MailboxView(const FolderInfo& folder, const std::vector<uint32_t>& uids, bool read_only,
              uint32_t first_recent);

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  const Guid& folder_guid() const { return folder_guid_; }
  uint32_t uidvalidity() const { return uidvalidity_; }
  bool read_only() const { return read_only_; }
  // The modseq up to which this session has seen every change.
  uint64_t modseq() const { return modseq_; }
  uint32_t exists() const { return uids_.size(); }
  uint32_t recent_count() const { return recent_.size(); }
  const UidList& uids() const { return uids_; }
  uint32_t uid_at(uint32_t seq) const { return uids_.at(seq - 1); }
  std::optional<uint32_t> seq_of(uint32_t uid) const;
  bool is_recent(uint32_t uid) const;
  uint32_t max_uid() const { return uids_.back(); }

  // The UIDs a sequence set names that are in the view, ascending and unique. `*` is the
  // highest sequence number or UID; for UID sets, numbers not in the view are skipped (RFC
  // 3501 6.4.8). kInvalid for a message sequence number above EXISTS (the command gets BAD).
  Result<std::vector<uint32_t>> resolve(const std::vector<SeqRange>& set, bool uid_set) const;

  // Appends the untagged responses for `changes` (the store's changes since modseq()) and
  // brings the view up to date. Expunges that may not be announced now stay pending: their
  // sequence numbers keep their place until a later call may announce them. New messages
  // are claimed as \Recent through `recent`.
  void apply(const FolderChanges& changes, const SyncOptions& options, RecentClaims& recent,
             std::string* out);

  // This session expunged `uids` itself (EXPUNGE, UID EXPUNGE, CLOSE, MOVE): they are
  // announced now, since the command that did it may always announce them.
  void expunged_now(const std::vector<uint32_t>& uids, const SyncOptions& options,
                    std::string* out);

  // Flag changes this session has already reported (STORE's own FETCH responses), so a
  // later sync does not repeat them.
  void reported(uint32_t uid, uint64_t modseq) { reported_[uid] = modseq; }
  // The view's modseq may move forward when the session has seen everything up to it.
  void advance_modseq(uint64_t modseq) {
    if (modseq > modseq_) modseq_ = modseq;
  }
  bool has_pending_expunges() const { return !pending_.empty(); }
  bool is_pending_expunge(uint32_t uid) const;

 private:
  void announce_expunges(const std::vector<uint32_t>& uids, const SyncOptions& options,
                         std::string* out);

  std::string name_;
  Guid folder_guid_;
  uint32_t uidvalidity_ = 0;
  bool read_only_ = false;
  uint64_t modseq_ = 0;
  UidList uids_;  // seq - 1 -> uid
  UidList recent_;
  std::vector<uint32_t> pending_;  // expunged elsewhere, not yet announced; ascending
  std::map<uint32_t, uint64_t> reported_;
};

// "(\Seen $Label1)" with \Recent added when `recent`.
std::string format_flags(const std::vector<std::string>& flags, bool recent);

}  // namespace mailark::imap
