// What an IMAP command handler works with: the session's state (authentication, the selected
// mailbox, enabled extensions), the output it builds, and the command table. Handlers are
// plain functions run on the blocking pool while the session's coroutine waits, so they may
// call the store directly; exactly one runs at a time per session. Internal to protocol/imap.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "mailstore/mail_store.h"
#include "protocol/imap/imap_parser.h"
#include "protocol/imap/imap_session.h"
#include "protocol/imap/mailbox_view.h"

namespace mailark::imap {

enum class SessionState { kNotAuthenticated, kAuthenticated, kSelected, kLogout };

// Set by the store listener (any thread) when the selected folder changed, so the next
// command looks for changes; read by the session.
struct ChangeFlag {
  std::mutex mu;
  Guid account;
  Guid folder;  // zero: nothing selected
  bool dirty = false;
  bool folders_changed = false;  // a folder of the account was created, renamed or deleted
  std::function<void()> wake;    // set while IDLE runs; called under mu
};

struct ImapContext {
  ImapContext(ImapService& service) : service(service) {}

  ImapService& service;
  MailStore& store() { return service.store(); }
  const ImapOptions& options() const { return service.options(); }

  // Connection facts, kept current by the session.
  bool tls = false;
  bool loopback = false;
  std::string peer;

  SessionState state = SessionState::kNotAuthenticated;
  std::optional<Account> account;
  std::string user;  // the authenticated address
  std::optional<MailboxView> selected;
  // SEARCHRES (RFC 5182): the UIDs saved by SEARCH RETURN (SAVE), referred to as "$".
  std::vector<uint32_t> saved_uids;
  std::shared_ptr<ChangeFlag> changes = std::make_shared<ChangeFlag>();

  // ENABLEd extensions (RFC 5161) and ones switched on by use (RFC 7162 3.1).
  bool condstore = false;
  bool qresync = false;
  bool rev2 = false;  // IMAP4rev2 enabled: UTF-8 names, no \Recent, ESEARCH replies
  bool utf8 = false;  // UTF8=ACCEPT enabled (names and strings in UTF-8)

  // ---- the running command
  std::string tag;
  bool uid_command = false;
  std::string out;     // untagged responses so far
  std::string result;  // the tagged completion without the tag: "OK ...", "NO ...", "BAD ..."
  // Set by handlers whose output comes in batches (FETCH of many messages): called again,
  // on the pool, after `out` has been written, until it returns false.
  std::function<bool()> more;
  // kDrop: the output cannot be completed (a stream failed mid-literal); close at once.
  enum class Then { kNone, kStartTls, kIdle, kAuthContinue, kLogout, kDrop };
  Then then = Then::kNone;
  std::chrono::milliseconds delay{0};  // wait before sending (authentication failures)
  // AUTHENTICATE without an initial response: the handler that takes the client's line.
  std::function<void(ImapContext&, std::string_view)> auth_continue;

  void ok(std::string_view text) { result = "OK " + std::string(text); }
  void no(std::string_view text) { result = "NO " + std::string(text); }
  void bad(std::string_view text) { result = "BAD " + std::string(text); }
  // NO with the response code and fixed text for a store error; details go to the log.
  void fail(const Status& status);

  // Mailbox names between the wire (modified UTF-7, or UTF-8 once UTF8=ACCEPT/IMAP4rev2 is
  // enabled) and the store (UTF-8).
  Result<std::string> mailbox_from_wire(const Value& value) const;
  std::string mailbox_to_wire(std::string_view name) const;

  // The UIDs a FETCH/STORE/COPY/MOVE/UID EXPUNGE set argument names in the selected
  // mailbox, ascending: a sequence set (UIDs when `uid`), or "$" (the saved search result).
  // kInvalid (BAD) for a malformed set or a message number above EXISTS.
  Result<std::vector<uint32_t>> resolve_set(const Value& value, bool uid) const;

  SyncOptions sync_options(bool allow_expunge) const;
  // Brings the selected view up to date and appends the untagged responses. `force` also
  // asks the store when no change notification arrived (NOOP, CHECK, IDLE; changes made by
  // other processes).
  void sync(bool allow_expunge, bool force);
  void select(MailboxView view);
  void deselect();
  // After another session renamed or deleted folders: follows a rename of the selected
  // folder (it is found by its GUID); false when the folder is gone or was replaced by a
  // new one of the same name, and the session must end.
  bool check_selected_folder();
};

// The command table (one handler per command, commands/*.cc).
enum CommandFlags : unsigned {
  kAnyState = 0,
  kNotAuthenticatedOnly = 1u << 0,
  kAuthenticatedOnly = 1u << 1,  // authenticated or selected
  kSelectedOnly = 1u << 2,
  kNoExpungeSync = 1u << 3,  // FETCH, STORE, SEARCH: no EXPUNGE while they run (UID forms may)
  kForceSync = 1u << 4,      // NOOP, CHECK: always ask the store for changes
  kNoSync = 1u << 5,         // nothing to sync (LOGOUT, authentication)
  kUidForm = 1u << 6,        // "UID <name>" exists
};

using CommandHandler = void (*)(ImapContext&, const Command&);
struct CommandSpec {
  const char* name;
  CommandHandler handler;
  unsigned flags;
};
const CommandSpec* find_command(std::string_view name);

// Handlers (one file per command or family of commands under commands/).
void cmd_capability(ImapContext&, const Command&);
void cmd_noop(ImapContext&, const Command&);
void cmd_logout(ImapContext&, const Command&);
void cmd_id(ImapContext&, const Command&);
void cmd_enable(ImapContext&, const Command&);
void cmd_namespace(ImapContext&, const Command&);
void cmd_starttls(ImapContext&, const Command&);
void cmd_login(ImapContext&, const Command&);
void cmd_authenticate(ImapContext&, const Command&);
void cmd_select(ImapContext&, const Command&);
void cmd_create(ImapContext&, const Command&);
void cmd_delete(ImapContext&, const Command&);
void cmd_rename(ImapContext&, const Command&);
void cmd_subscribe(ImapContext&, const Command&);
void cmd_list(ImapContext&, const Command&);
void cmd_status(ImapContext&, const Command&);
void cmd_append(ImapContext&, const Command&);
void cmd_idle(ImapContext&, const Command&);
void cmd_close(ImapContext&, const Command&);
void cmd_expunge(ImapContext&, const Command&);
void cmd_search(ImapContext&, const Command&);
void cmd_fetch(ImapContext&, const Command&);
void cmd_store(ImapContext&, const Command&);
void cmd_copy(ImapContext&, const Command&);
void cmd_quota(ImapContext&, const Command&);

// The CAPABILITY list for the session's current state.
std::string capabilities(const ImapContext& ctx);
// STATUS-style counters of a folder, "(MESSAGES 3 UIDNEXT 4)", for STATUS and LIST-STATUS.
// `items` are the requested names; kInvalid for an unknown one.
Result<std::string> status_items(ImapContext& ctx, const FolderInfo& folder,
                                 const std::vector<Value>& items);
// "dd-Mon-yyyy hh:mm:ss +0000" (RFC 3501 date-time, UTC).
std::string format_internal_date(int64_t ms);
// Parses an RFC 3501 date-time ("17-Jul-1996 02:44:25 -0700"); nullopt when malformed.
std::optional<int64_t> parse_internal_date(std::string_view text);

}  // namespace mailark::imap
