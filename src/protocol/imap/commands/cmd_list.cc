// LIST and LSUB (RFC 3501 6.3.8-9) with LIST-EXTENDED (RFC 5258: selection and return
// options, several patterns), CHILDREN (RFC 3348), SPECIAL-USE (RFC 6154) and LIST-STATUS
// (RFC 5819). Matching works on UTF-8 names; the hierarchy separator is "/".
#include <algorithm>
#include <map>
#include <set>

#include "protocol/imap/imap_context.h"

namespace mailark::imap {

namespace {

// '*' matches anything, '%' anything but the separator. Dynamic programming over pattern and
// name (each is bounded by the line length), so patterns full of wildcards stay cheap.
bool wildcard_match(std::string_view pattern, std::string_view name) {
  // can[j]: the pattern prefix processed so far matches name[0, j).
  std::vector<char> can(name.size() + 1, 0), next(name.size() + 1, 0);
  can[0] = 1;
  for (char p : pattern) {
    std::fill(next.begin(), next.end(), 0);
    if (p == '*' || p == '%') {
      char run = 0;
      for (size_t j = 0; j <= name.size(); ++j) {
        // A '%' cannot swallow a separator: its run restarts after one.
        if (p == '%' && j > 0 && name[j - 1] == '/') run = 0;
        run = run || can[j];
        next[j] = run;
      }
    } else {
      for (size_t j = 0; j < name.size(); ++j)
        if (can[j] && name[j] == p) next[j + 1] = 1;
    }
    can.swap(next);
  }
  return can[name.size()] != 0;
}

bool pattern_match(const std::string& pattern, const std::string& name) {
  if (pattern.size() > 4096) return false;  // longer than any name could be: bounded work
  if (wildcard_match(pattern, name)) return true;
  // INBOX is case-insensitive, also as the first level of a pattern.
  if ((name == "INBOX" || name.compare(0, 6, "INBOX/") == 0) && pattern.size() >= 5 &&
      strncasecmp(pattern.c_str(), "INBOX", 5) == 0) {
    std::string p = "INBOX" + pattern.substr(5);
    return wildcard_match(p, name);
  }
  return false;
}

struct Entry {
  const FolderInfo* folder = nullptr;  // null: a parent level that does not exist
  bool has_children = false;
  bool subscribed_child = false;
};

}  // namespace

void cmd_list(ImapContext& ctx, const Command& cmd) {
  bool lsub = cmd.name == "LSUB";
  const auto& args = cmd.args;
  size_t i = 0;
  bool extended = false, sel_subscribed = false, sel_special = false, recursive = false;
  bool ret_subscribed = false, ret_special = false;
  const Value* ret_status = nullptr;
  if (!lsub && !args.empty() && args[0].is_list()) {
    extended = true;
    for (const Value& o : args[0].items) {
      std::string opt = o.upper();
      if (opt == "SUBSCRIBED")
        sel_subscribed = true;
      else if (opt == "SPECIAL-USE")
        sel_special = true;
      else if (opt == "RECURSIVEMATCH")
        recursive = true;
      else if (opt != "REMOTE")
        return ctx.bad("Unknown LIST selection option");
    }
    if (recursive && !sel_subscribed)
      return ctx.bad("RECURSIVEMATCH needs another selection option");
    ++i;
  }
  if (args.size() < i + 2) return ctx.bad(cmd.name + " takes a reference and a mailbox pattern");
  auto reference = ctx.mailbox_from_wire(args[i]);
  if (!reference.is_ok()) return ctx.bad(reference.status().message());
  std::vector<std::string> patterns;
  if (args[i + 1].is_list() && extended) {
    for (const Value& v : args[i + 1].items) {
      auto p = ctx.mailbox_from_wire(v);
      if (!p.is_ok()) return ctx.bad(p.status().message());
      patterns.push_back(*p);
    }
  } else if (args[i + 1].is_list() && !lsub) {
    extended = true;
    for (const Value& v : args[i + 1].items) {
      auto p = ctx.mailbox_from_wire(v);
      if (!p.is_ok()) return ctx.bad(p.status().message());
      patterns.push_back(*p);
    }
  } else {
    auto p = ctx.mailbox_from_wire(args[i + 1]);
    if (!p.is_ok()) return ctx.bad(p.status().message());
    patterns.push_back(*p);
  }
  i += 2;
  if (i < args.size()) {
    if (lsub || args[i].upper() != "RETURN" || i + 2 != args.size() || !args[i + 1].is_list())
      return ctx.bad("Invalid LIST return options");
    extended = true;
    const auto& opts = args[i + 1].items;
    for (size_t k = 0; k < opts.size(); ++k) {
      std::string opt = opts[k].upper();
      if (opt == "SUBSCRIBED")
        ret_subscribed = true;
      else if (opt == "SPECIAL-USE")
        ret_special = true;
      else if (opt == "CHILDREN")
        continue;  // always sent
      else if (opt == "STATUS" && k + 1 < opts.size() && opts[k + 1].is_list())
        ret_status = &opts[++k];
      else
        return ctx.bad("Unknown LIST return option");
    }
  }
  (void)ret_special;  // special-use attributes are always sent (RFC 6154 allows it)

  // LIST "" "": the hierarchy separator and root (RFC 3501 6.3.8).
  if (patterns.size() == 1 && patterns[0].empty() && !extended) {
    ctx.out += "* " + cmd.name + " (\\Noselect) \"/\" \"\"\r\n";
    return ctx.ok(cmd.name + " completed");
  }

  auto folders = ctx.store().list_folders(*ctx.account);
  if (!folders.is_ok()) return ctx.fail(folders.status());
  std::map<std::string, Entry> entries;
  for (const FolderInfo& f : *folders) {
    if (f.kind != "mail") continue;
    entries[f.name].folder = &f;
  }
  // Parent levels, existing or not, know they have children (and subscribed children).
  for (const FolderInfo& f : *folders) {
    if (f.kind != "mail") continue;
    for (size_t pos = f.name.find('/'); pos != std::string::npos; pos = f.name.find('/', pos + 1)) {
      Entry& parent = entries[f.name.substr(0, pos)];
      parent.has_children = true;
      if (f.subscribed) parent.subscribed_child = true;
    }
  }

  std::vector<std::string> full_patterns;
  for (const std::string& p : patterns) {
    if (p.empty()) continue;
    // The reference and the pattern are simply joined (RFC 3501 6.3.8 leaves the rules to
    // the server; the separator is already in one of them when a client means it).
    full_patterns.push_back(*reference + p);
  }
  std::vector<std::string> names;
  for (const auto& [name, entry] : entries) {
    bool match = false;
    for (const std::string& p : full_patterns) match = match || pattern_match(p, name);
    if (match) names.push_back(name);
  }
  std::stable_partition(names.begin(), names.end(),
                        [](const std::string& n) { return n == "INBOX"; });

  for (const std::string& name : names) {
    const Entry& e = entries[name];
    bool exists = e.folder != nullptr;
    bool subscribed = exists && e.folder->subscribed;
    bool child_info = false;
    if (lsub) {
      // Unsubscribed parents of subscribed folders show as \Noselect under '%'.
      if (!subscribed) {
        bool percent = false;
        for (const std::string& p : full_patterns)
          percent = percent || p.find('%') != std::string::npos;
        if (!(percent && e.subscribed_child)) continue;
      }
    } else if (sel_subscribed) {
      if (!subscribed) {
        if (!(recursive && e.subscribed_child)) continue;
        child_info = true;
      } else if (recursive && e.subscribed_child) {
        child_info = true;
      }
    } else if (!exists && !e.has_children) {
      continue;
    }
    if (sel_special && !(exists && !e.folder->special_use.empty())) continue;
    std::vector<std::string> attrs;
    if (!exists)
      attrs.push_back(extended ? "\\NonExistent" : "\\Noselect");
    else if (lsub && !subscribed)
      attrs.push_back("\\Noselect");
    attrs.push_back(e.has_children ? "\\HasChildren" : "\\HasNoChildren");
    if ((ret_subscribed || sel_subscribed) && subscribed) attrs.push_back("\\Subscribed");
    if (exists && !e.folder->special_use.empty()) attrs.push_back(e.folder->special_use);
    std::string line = "* " + cmd.name + " (";
    for (size_t k = 0; k < attrs.size(); ++k) line += (k ? " " : "") + attrs[k];
    line += ") \"/\" " + ctx.mailbox_to_wire(name);
    if (child_info) line += " (\"CHILDINFO\" (\"SUBSCRIBED\"))";
    ctx.out += line + "\r\n";
    if (ret_status && exists) {
      auto status = status_items(ctx, *e.folder, ret_status->items);
      if (!status.is_ok()) {
        if (status.status().code() == ErrorCode::kInvalid)
          return ctx.bad(status.status().message());
        return ctx.fail(status.status());
      }
      ctx.out += "* STATUS " + ctx.mailbox_to_wire(name) + " " + *status + "\r\n";
    }
  }
  ctx.ok(cmd.name + " completed");
}

}  // namespace mailark::imap
