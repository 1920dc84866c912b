// Session state shared by the command handlers, the command table, and the one place store
// errors become IMAP response codes.
#include "protocol/imap/imap_context.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>

#include "base/log.h"
#include "protocol/imap/mutf7.h"

namespace mailark::imap {

void ImapContext::fail(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kNotFound:
      no("[NONEXISTENT] Mailbox does not exist");
      break;
    case ErrorCode::kExists:
      no("[ALREADYEXISTS] Mailbox already exists");
      break;
    case ErrorCode::kOverQuota:
      no("[OVERQUOTA] Quota exceeded");
      break;
    case ErrorCode::kConflict:
      no("[CANNOT] Operation not permitted");
      break;
    case ErrorCode::kInvalid:
      no("[CANNOT] Invalid mailbox name or argument");
      break;
    case ErrorCode::kTooLarge:
      no("[TOOBIG] Message too large");
      break;
    case ErrorCode::kCorrupt:
      MK_LOG_ERROR("imap {}: {}", user, status.to_string());
      no("[CORRUPTION] Stored data failed verification; the administrator has been told");
      break;
    default:
      MK_LOG_WARN("imap {}: {}", user, status.to_string());
      no("[UNAVAILABLE] Temporary failure, try again later");
      break;
  }
}

Result<std::string> ImapContext::mailbox_from_wire(const Value& value) const {
  if (!value.is_astring()) return invalid("mailbox name expected");
  if (utf8 || rev2) {
    if (!is_valid_utf8(value.text)) return invalid("mailbox name is not UTF-8");
    return value.text;
  }
  auto decoded = mutf7_to_utf8(value.text);
  if (!decoded) return invalid("mailbox name is not valid modified UTF-7");
  return *decoded;
}

std::string ImapContext::mailbox_to_wire(std::string_view name) const {
  if (!(utf8 || rev2)) return quote(utf8_to_mutf7(name));
  // IMAP4rev2 and UTF8=ACCEPT allow UTF-8 in quoted strings (RFC 9051 9, RFC 6855 3).
  if (!is_valid_utf8(name) ||
      name.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    return quote(name);
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

Result<std::vector<uint32_t>> ImapContext::resolve_set(const Value& value, bool uid) const {
  if (!value.is_atom()) return invalid("Invalid sequence set");
  if (value.text == "$") {
    std::vector<uint32_t> out;
    for (uint32_t u : saved_uids)
      if (selected->seq_of(u)) out.push_back(u);
    return out;
  }
  auto set = parse_sequence_set(value.text);
  if (!set) return invalid("Invalid sequence set");
  return selected->resolve(*set, uid);
}

SyncOptions ImapContext::sync_options(bool allow_expunge) const {
  SyncOptions o;
  o.allow_expunge = allow_expunge;
  o.qresync = qresync;
  o.condstore = condstore;
  o.with_uid = uid_command;
  o.recent = !rev2;
  return o;
}

void ImapContext::sync(bool allow_expunge, bool force) {
  if (!selected || !account) return;
  bool dirty = false;
  {
    std::lock_guard lock(changes->mu);
    dirty = changes->dirty;
    changes->dirty = false;
  }
  if (!dirty && !force && !(allow_expunge && selected->has_pending_expunges())) return;
  auto found = store().changes_since(*account, selected->name(), selected->modseq());
  if (!found.is_ok()) {
    if (found.status().code() == ErrorCode::kNotFound) {
      // Deleted or renamed by another session: nothing more can be told about it.
      MK_LOG_DEBUG("imap {}: selected folder {} is gone", user, selected->name());
    } else {
      MK_LOG_WARN("imap {}: cannot read changes: {}", user, found.status().to_string());
    }
    return;
  }
  selected->apply(*found, sync_options(allow_expunge), service.recent(), &out);
}

void ImapContext::select(MailboxView view) {
  std::lock_guard lock(changes->mu);
  changes->folder = view.folder_guid();
  // The folder and its UIDs were read in separate transactions: look again at the next
  // command rather than miss a delivery in between.
  changes->dirty = true;
  changes->folders_changed = false;
  selected.emplace(std::move(view));
  saved_uids.clear();
  state = SessionState::kSelected;
}

bool ImapContext::check_selected_folder() {
  {
    std::lock_guard lock(changes->mu);
    if (!changes->folders_changed) return true;
    changes->folders_changed = false;
  }
  if (!selected || !account) return true;
  auto folders = store().list_folders(*account);
  if (!folders.is_ok()) return true;  // cannot tell now; the next command asks again
  for (const FolderInfo& f : *folders) {
    if (f.guid != selected->folder_guid()) continue;
    if (f.name != selected->name()) selected->set_name(f.name);
    return true;
  }
  return false;
}

void ImapContext::deselect() {
  std::lock_guard lock(changes->mu);
  changes->folder = Guid{};
  changes->dirty = false;
  selected.reset();
  saved_uids.clear();
  if (state == SessionState::kSelected) state = SessionState::kAuthenticated;
}

std::string capabilities(const ImapContext& ctx) {
  std::string caps = "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE";
  if (ctx.state == SessionState::kNotAuthenticated) {
    if (!ctx.tls && ctx.service.tls_available()) caps += " STARTTLS";
    bool plaintext_ok = ctx.tls || (ctx.loopback && ctx.options().plaintext_auth_loopback);
    caps += plaintext_ok ? " AUTH=PLAIN" : " LOGINDISABLED";
    return caps;
  }
  caps +=
      " NAMESPACE UNSELECT UIDPLUS MOVE BINARY SEARCHRES CHILDREN SPECIAL-USE LIST-EXTENDED "
      "LIST-STATUS"
      " CONDSTORE QRESYNC ESEARCH QUOTA QUOTA=RES-STORAGE STATUS=SIZE"
      " UTF8=ACCEPT APPENDLIMIT=" +
      std::to_string(ctx.options().max_message_size);
  return caps;
}

static const CommandSpec kCommands[] = {
    {"CAPABILITY", cmd_capability, kAnyState | kNoSync},
    {"NOOP", cmd_noop, kAnyState | kForceSync},
    {"LOGOUT", cmd_logout, kAnyState | kNoSync},
    {"ID", cmd_id, kAnyState},
    {"STARTTLS", cmd_starttls, kNotAuthenticatedOnly | kNoSync},
    {"LOGIN", cmd_login, kNotAuthenticatedOnly | kNoSync},
    {"AUTHENTICATE", cmd_authenticate, kNotAuthenticatedOnly | kNoSync},
    {"ENABLE", cmd_enable, kAuthenticatedOnly},
    {"NAMESPACE", cmd_namespace, kAuthenticatedOnly},
    {"SELECT", cmd_select, kAuthenticatedOnly | kNoSync},
    {"EXAMINE", cmd_select, kAuthenticatedOnly | kNoSync},
    {"CREATE", cmd_create, kAuthenticatedOnly},
    {"DELETE", cmd_delete, kAuthenticatedOnly},
    {"RENAME", cmd_rename, kAuthenticatedOnly},
    {"SUBSCRIBE", cmd_subscribe, kAuthenticatedOnly},
    {"UNSUBSCRIBE", cmd_subscribe, kAuthenticatedOnly},
    {"LIST", cmd_list, kAuthenticatedOnly},
    {"LSUB", cmd_list, kAuthenticatedOnly},
    {"STATUS", cmd_status, kAuthenticatedOnly},
    {"APPEND", cmd_append, kAuthenticatedOnly},
    {"IDLE", cmd_idle, kAuthenticatedOnly | kForceSync},
    {"GETQUOTA", cmd_quota, kAuthenticatedOnly},
    {"GETQUOTAROOT", cmd_quota, kAuthenticatedOnly},
    {"SETQUOTA", cmd_quota, kAuthenticatedOnly},
    {"CHECK", cmd_noop, kSelectedOnly | kForceSync},
    {"CLOSE", cmd_close, kSelectedOnly | kNoSync},
    {"UNSELECT", cmd_close, kSelectedOnly | kNoSync},
    {"EXPUNGE", cmd_expunge, kSelectedOnly | kUidForm},
    {"SEARCH", cmd_search, kSelectedOnly | kNoExpungeSync | kUidForm},
    {"FETCH", cmd_fetch, kSelectedOnly | kNoExpungeSync | kUidForm},
    {"STORE", cmd_store, kSelectedOnly | kNoExpungeSync | kUidForm},
    {"COPY", cmd_copy, kSelectedOnly | kUidForm},
    {"MOVE", cmd_copy, kSelectedOnly | kUidForm},
};

const CommandSpec* find_command(std::string_view name) {
  for (const CommandSpec& spec : kCommands)
    if (name == spec.name) return &spec;
  return nullptr;
}

static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string format_internal_date(int64_t ms) {
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<int64_t> parse_internal_date(std::string_view text) {
  // date-day-fixed "-" date-month "-" date-year SP time SP zone; a one-digit day may come
  // with a leading space or without it.
  // date-day-fixed is (SP DIGIT) / 2DIGIT (RFC 3501 9).
  if (text.size() < 2 || !(text[0] == ' ' || std::isdigit(static_cast<unsigned char>(text[0]))) ||
      !std::isdigit(static_cast<unsigned char>(text[1])))
    return std::nullopt;
  std::string s(text);
  if (s[0] == ' ') s.erase(0, 1);
  int day = 0, year = 0, hh = 0, mm = 0, ss = 0, zone = 0;
  char mon[4] = {0}, sign = 0;
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%2d-%3c-%4d %2d:%2d:%2d %c%4d%n", &day, mon, &year, &hh, &mm, &ss,
                  &sign, &zone, &consumed) != 8 ||
      static_cast<size_t>(consumed) != s.size())
    return std::nullopt;
  int month = -1;
  for (int i = 0; i < 12; ++i)
    if (strncasecmp(mon, kMonths[i], 3) == 0) month = i;
  size_t dash1 = s.find('-');
  if (month < 0 || (sign != '+' && sign != '-') || day < 1 || day > 31 || hh > 23 || mm > 59 ||
      ss > 60 || year < 1900 || zone % 100 > 59 || dash1 == std::string::npos ||
      s.size() - s.rfind(' ') != 6)
    return std::nullopt;
  struct tm tm = {};
  tm.tm_mday = day;
  tm.tm_mon = month;
  tm.tm_year = year - 1900;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  time_t t = timegm(&tm);
  struct tm check;
  gmtime_r(&t, &check);
  if (check.tm_mday != day || check.tm_mon != month) return std::nullopt;  // 31-Feb
  int offset = (zone / 100) * 3600 + (zone % 100) * 60;
  t -= sign == '+' ? offset : -offset;
  return static_cast<int64_t>(t) * 1000;
}

}  // namespace mailark::imap
