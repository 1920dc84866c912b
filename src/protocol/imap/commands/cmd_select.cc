// SELECT and EXAMINE (RFC 3501 6.3.1-2) with the CONDSTORE and QRESYNC parameters (RFC 7162
// 3.1.8, 3.2.5): builds the session's view of the folder and tells the client its state.
#include <algorithm>
#include <set>

#include "protocol/imap/imap_context.h"

namespace mailark::imap {

namespace {

struct QresyncParams {
  uint32_t uidvalidity = 0;
  uint64_t modseq = 0;
  std::optional<std::vector<SeqRange>> known_uids;
};

bool parse_number(const Value& v, uint64_t max, uint64_t* out) {
  if (!v.is_atom() || v.text.empty() || v.text.size() > 20) return false;
  uint64_t n = 0;
  for (char c : v.text) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
    if (n > max) return false;
  }
  *out = n;
  return true;
}

}  // namespace

void cmd_select(ImapContext& ctx, const Command& cmd) {
  bool examine = cmd.name == "EXAMINE";
  if (cmd.args.empty() || cmd.args.size() > 2) return ctx.bad(cmd.name + " takes a mailbox name");
  auto name = ctx.mailbox_from_wire(cmd.args[0]);
  if (!name.is_ok()) return ctx.bad(name.status().message());
  std::optional<QresyncParams> qresync;
  if (cmd.args.size() == 2) {
    const Value& params = cmd.args[1];
    if (!params.is_list()) return ctx.bad("Invalid SELECT parameters");
    for (size_t i = 0; i < params.items.size(); ++i) {
      std::string p = params.items[i].upper();
      if (p == "CONDSTORE") {
        ctx.condstore = true;
      } else if (p == "QRESYNC" && i + 1 < params.items.size() && params.items[i + 1].is_list()) {
        if (!ctx.qresync) return ctx.bad("QRESYNC must be enabled first");
        const auto& q = params.items[++i].items;
        QresyncParams qp;
        uint64_t v = 0;
        if (q.size() < 2 || q.size() > 4 || !parse_number(q[0], UINT32_MAX, &v) || v == 0 ||
            !parse_number(q[1], INT64_MAX, &qp.modseq) || qp.modseq == 0)
          return ctx.bad("Invalid QRESYNC parameters");
        qp.uidvalidity = static_cast<uint32_t>(v);
        if (q.size() >= 3) {
          if (!q[2].is_atom()) return ctx.bad("Invalid QRESYNC known UIDs");
          qp.known_uids = parse_sequence_set(q[2].text);
          if (!qp.known_uids) return ctx.bad("Invalid QRESYNC known UIDs");
        }
        if (q.size() == 4 && !q[3].is_list()) return ctx.bad("Invalid QRESYNC sequence match data");
        qresync = qp;
      } else {
        return ctx.bad("Unknown SELECT parameter");
      }
    }
  }
  // A failed SELECT still leaves no mailbox selected (RFC 3501 6.3.1).
  if (ctx.selected) {
    // A server offering QRESYNC always says so (RFC 7162 3.2.11), as IMAP4rev2 does.
    ctx.out += "* OK [CLOSED] Previous mailbox closed\r\n";
    ctx.deselect();
  }
  auto folder = ctx.store().folder(*ctx.account, *name, /*counts=*/false);
  if (!folder.is_ok()) return ctx.fail(folder.status());
  if (folder->kind != "mail") return ctx.no("[CANNOT] Not a mail folder");
  auto items = ctx.store().uids_and_flags(*ctx.account, *name);
  if (!items.is_ok()) return ctx.fail(items.status());
  // EXAMINE must not take \Recent away from anyone (RFC 3501 6.3.2).
  uint32_t first_recent = examine ? ctx.service.recent().first_unclaimed(folder->guid)
                                  : ctx.service.recent().claim(folder->guid, folder->uidnext);
  std::vector<uint32_t> uids;
  uids.reserve(items->size());
  std::set<std::string> keywords;
  uint32_t first_unseen = 0;
  for (size_t i = 0; i < items->size(); ++i) {
    const MailStore::UidFlags& item = (*items)[i];
    uids.push_back(item.uid);
    std::string_view flags = item.flags;
    bool seen = false;
    while (!flags.empty()) {
      size_t space = flags.find(' ');
      std::string_view flag = flags.substr(0, space);
      flags = space == std::string_view::npos ? std::string_view() : flags.substr(space + 1);
      if (flag == "\\Seen")
        seen = true;
      else if (!flag.empty() && flag[0] != '\\')
        keywords.emplace(flag);
    }
    if (!seen && !first_unseen) first_unseen = static_cast<uint32_t>(i + 1);
  }
  MailboxView view(*folder, uids, examine, first_recent);

  std::string system = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
  std::string kw;
  for (const auto& k : keywords) kw += " " + k;
  std::string& out = ctx.out;
  out += "* FLAGS (" + system + kw + ")\r\n";
  out += "* OK [PERMANENTFLAGS (" + (examine ? std::string() : system + kw + " \\*") +
         ")] Flags permitted\r\n";
  out += "* " + std::to_string(view.exists()) + " EXISTS\r\n";
  if (!ctx.rev2) {
    out += "* " + std::to_string(view.recent_count()) + " RECENT\r\n";
    if (first_unseen) out += "* OK [UNSEEN " + std::to_string(first_unseen) + "] First unseen\r\n";
  }
  out += "* OK [UIDVALIDITY " + std::to_string(folder->uidvalidity) + "] UIDs valid\r\n";
  out += "* OK [UIDNEXT " + std::to_string(folder->uidnext) + "] Predicted next UID\r\n";
  out += "* OK [HIGHESTMODSEQ " + std::to_string(folder->highestmodseq) + "] Highest\r\n";
  if (ctx.rev2) out += "* LIST () \"/\" " + ctx.mailbox_to_wire(folder->name) + "\r\n";

  if (qresync && qresync->uidvalidity == folder->uidvalidity) {
    auto changes = ctx.store().changes_since(*ctx.account, *name, qresync->modseq);
    if (!changes.is_ok()) return ctx.fail(changes.status());
    std::vector<uint32_t> vanished;
    for (uint32_t uid : changes->vanished) {
      bool known = true;
      if (qresync->known_uids) {
        known = false;
        for (const SeqRange& r : *qresync->known_uids) {
          uint32_t lo = std::min(r.lo, r.hi), hi = std::max(r.lo, r.hi);
          if (uid >= lo && uid <= hi) known = true;
        }
      }
      if (known) vanished.push_back(uid);
    }
    if (!vanished.empty()) out += "* VANISHED (EARLIER) " + format_sequence_set(vanished) + "\r\n";
    for (const ItemInfo& item : changes->changed) {
      auto seq = view.seq_of(item.uid);
      if (!seq) continue;
      out += "* " + std::to_string(*seq) + " FETCH (UID " + std::to_string(item.uid) + " FLAGS " +
             format_flags(item.flags, !ctx.rev2 && view.is_recent(item.uid)) + " MODSEQ (" +
             std::to_string(item.modseq) + "))\r\n";
    }
  }
  ctx.select(std::move(view));
  ctx.ok(examine ? "[READ-ONLY] Examine completed" : "[READ-WRITE] Select completed");
}

}  // namespace mailark::imap
