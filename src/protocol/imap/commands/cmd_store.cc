// STORE and UID STORE (RFC 3501 6.4.6) with CONDSTORE's UNCHANGEDSINCE modifier and
// MODIFIED response code (RFC 7162 3.1.3).
#include <algorithm>

#include "protocol/imap/commands/flags.h"
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

void cmd_store(ImapContext& ctx, const Command& cmd) {
  const auto& args = cmd.args;
  if (args.size() < 3 || !args[0].is_atom())
    return ctx.bad("STORE takes a sequence set, an item and flags");
  size_t i = 1;
  uint64_t unchanged_since = 0;
  bool conditional = false;
  if (args[i].is_list()) {
    const auto& mods = args[i].items;
    if (mods.size() != 2 || mods[0].upper() != "UNCHANGEDSINCE" || !mods[1].is_atom())
      return ctx.bad("Invalid STORE modifier");
    const std::string& n = mods[1].text;
    char* end = nullptr;
    unchanged_since = std::strtoull(n.c_str(), &end, 10);
    if (n.empty() || *end || n[0] == '-' || n.size() > 20) return ctx.bad("Invalid UNCHANGEDSINCE");
    conditional = true;
    ctx.condstore = true;
    ++i;
  }
  if (i + 1 >= args.size() || !args[i].is_atom())
    return ctx.bad("STORE takes a data item and flags");
  std::string item = args[i].upper();
  bool silent = false;
  if (item.size() > 7 && item.compare(item.size() - 7, 7, ".SILENT") == 0) {
    silent = true;
    item.resize(item.size() - 7);
  }
  FlagOp op;
  if (item == "FLAGS")
    op = FlagOp::kReplace;
  else if (item == "+FLAGS")
    op = FlagOp::kAdd;
  else if (item == "-FLAGS")
    op = FlagOp::kRemove;
  else
    return ctx.bad("Unknown STORE data item");
  std::vector<Value> flag_values;
  if (i + 2 == args.size() && args[i + 1].is_list())
    flag_values = args[i + 1].items;
  else
    flag_values.assign(args.begin() + static_cast<long>(i) + 1, args.end());
  auto flags = parse_flags(flag_values);
  if (!flags.is_ok()) return ctx.bad(flags.status().message());
  MailboxView& view = *ctx.selected;
  if (view.read_only()) return ctx.no("[READ-ONLY] Mailbox is read-only");
  auto uids = ctx.resolve_set(args[0], cmd.uid);
  if (!uids.is_ok()) return ctx.bad(uids.status().message());
  if (uids->empty()) return ctx.ok("Store completed");

  // UNCHANGEDSINCE 0 fails every message; the store reads 0 as "no condition".
  std::vector<uint32_t> failed;
  std::vector<ItemInfo> changed;
  if (conditional && unchanged_since == 0) {
    failed = *uids;
  } else {
    auto result = ctx.store().store_flags(*ctx.account, view.name(), *uids, op, *flags,
                                          conditional ? unchanged_since : 0);
    if (!result.is_ok()) return ctx.fail(result.status());
    failed = std::move(result->failed_uids);
    changed = std::move(result->changed);
  }
  std::sort(failed.begin(), failed.end());
  auto is_failed = [&](uint32_t uid) {
    return std::binary_search(failed.begin(), failed.end(), uid);
  };
  for (const ItemInfo& c : changed) view.reported(c.uid, c.modseq);

  auto line = [&](const ItemInfo& item, bool with_flags) {
    std::string s = "* " + std::to_string(*view.seq_of(item.uid)) + " FETCH (";
    std::string parts;
    if (cmd.uid || ctx.condstore) parts += "UID " + std::to_string(item.uid);
    if (with_flags) {
      if (!parts.empty()) parts += ' ';
      parts += "FLAGS " + format_flags(item.flags, !ctx.rev2 && view.is_recent(item.uid));
    }
    if (ctx.condstore) {
      if (!parts.empty()) parts += ' ';
      parts += "MODSEQ (" + std::to_string(item.modseq) + ")";
    }
    return s + parts + ")\r\n";
  };
  if (!silent) {
    // Every message of the set gets its flags, changed or not (RFC 3501 6.4.6).
    // Read back in dense stretches (a sparse set must not read the folder in between).
    for (size_t first = 0; first < uids->size();) {
      size_t last = first;
      while (last + 1 < uids->size() && (*uids)[last + 1] - (*uids)[first] < 1024) ++last;
      auto current = ctx.store().fetch(*ctx.account, view.name(), (*uids)[first], (*uids)[last]);
      // The flags are stored; a failed read-back only loses the echo, not the change.
      if (!current.is_ok()) break;
      for (const ItemInfo& item : *current) {
        if (!std::binary_search(uids->begin(), uids->end(), item.uid) || is_failed(item.uid))
          continue;
        ctx.out += line(item, true);
        view.reported(item.uid, item.modseq);
      }
      first = last + 1;
    }
  } else if (ctx.condstore) {
    // .SILENT still reports the new MODSEQ of what changed (RFC 7162 3.1.3).
    for (const ItemInfo& item : changed) ctx.out += line(item, false);
  }
  if (!failed.empty()) {
    std::vector<uint32_t> numbers;
    for (uint32_t uid : failed) numbers.push_back(cmd.uid ? uid : *view.seq_of(uid));
    std::sort(numbers.begin(), numbers.end());
    return ctx.ok("[MODIFIED " + format_sequence_set(numbers) + "] Conditional STORE failed");
  }
  ctx.ok("Store completed");
}

}  // namespace mailark::imap
