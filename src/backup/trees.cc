// Metadata trees of base backups (JSON inside sealed objects) and reading objects across
// repository tiers. Layout: docs/formats/backup-repository.md.
#include "backup/trees.h"

#include "base/log.h"

namespace mailark {

using json = nlohmann::json;

Digest must_digest(const std::string& hex) {
  return digest_from_hex(hex).value_or(Digest{});
}

// ---------------------------------------------------------------- trees

json folder_tree(const FolderState& f) {
  json items = json::array();
  for (const auto& [uid, it] : f.items) {
    json item = {it.uid,
                 it.guid.hex(),
                 it.ingress_id ? it.ingress_id->hex() : "",
                 to_hex(it.blob),
                 it.size,
                 it.internal_date_ms,
                 join_flags(it.flags),
                 it.modseq,
                 it.saved_ms};
    // Calendar and address book resources carry their name, UID and component.
    if (!it.dav_name.empty()) item.push_back({it.dav_name, it.component_uid, it.component});
    items.push_back(std::move(item));
  }
  json expunged = json::array();
  for (const auto& [uid, modseq] : f.expunged) expunged.push_back({uid, modseq});
  json tree = {{"type", "folder"},
               {"guid", f.guid.hex()},
               {"name", f.name},
               {"kind", f.kind},
               {"special_use", f.special_use},
               {"subscribed", f.subscribed},
               {"uidvalidity", f.uidvalidity},
               {"uidnext", f.uidnext},
               {"highestmodseq", f.highestmodseq},
               {"created_ms", f.created_ms},
               {"items", items},
               {"expunged", expunged}};
  if (!f.props.empty()) tree["props"] = f.props;
  if (!f.gone.empty()) tree["gone"] = f.gone;
  return tree;
}

Result<FolderState> folder_from_tree(const json& j) {
  try {
    FolderState f;
    f.guid = Guid::from_hex(j.at("guid").get<std::string>()).value_or(Guid{});
    f.name = j.at("name").get<std::string>();
    f.kind = j.at("kind").get<std::string>();
    f.special_use = j.at("special_use").get<std::string>();
    f.subscribed = j.at("subscribed").get<bool>();
    f.uidvalidity = j.at("uidvalidity").get<uint32_t>();
    f.uidnext = j.at("uidnext").get<uint32_t>();
    f.highestmodseq = j.at("highestmodseq").get<uint64_t>();
    f.created_ms = j.at("created_ms").get<int64_t>();
    for (const auto& e : j.at("items")) {
      ItemState it;
      it.uid = e.at(0).get<uint32_t>();
      it.guid = Guid::from_hex(e.at(1).get<std::string>()).value_or(Guid{});
      std::string ingress = e.at(2).get<std::string>();
      if (!ingress.empty()) it.ingress_id = Guid::from_hex(ingress);
      it.blob = must_digest(e.at(3).get<std::string>());
      it.size = e.at(4).get<uint64_t>();
      it.internal_date_ms = e.at(5).get<int64_t>();
      it.flags = split_flags(e.at(6).get<std::string>());
      it.modseq = e.at(7).get<uint64_t>();
      it.saved_ms = e.at(8).get<int64_t>();
      if (e.size() > 9) {
        it.dav_name = e.at(9).at(0).get<std::string>();
        it.component_uid = e.at(9).at(1).get<std::string>();
        it.component = e.at(9).at(2).get<std::string>();
      }
      f.items.emplace(it.uid, std::move(it));
    }
    for (const auto& e : j.at("expunged"))
      f.expunged[e.at(0).get<uint32_t>()] = e.at(1).get<uint64_t>();
    if (j.contains("props")) f.props = j.at("props").get<std::map<std::string, std::string>>();
    if (j.contains("gone")) f.gone = j.at("gone").get<std::map<std::string, uint64_t>>();
    return f;
  } catch (const json::exception& e) {
    return corrupt(std::string("folder tree is malformed: ") + e.what());
  }
}

// Reads objects from the first tier that has a good copy, falling back to the next.
Result<std::string> TierReader::read(const Digest& id) {
  std::string errors;
  bool damaged = false;
  for (Repository* r : tiers_) {
    if (!r->has_object(id)) {
      errors += "; " + r->name() + ": not there";
      continue;
    }
    auto c = r->read_object(id);
    if (c.is_ok()) return c;
    damaged = damaged || c.status().code() == ErrorCode::kCorrupt;
    errors += "; " + r->name() + ": " + c.status().message();
    MK_LOG_WARN("repository {}: {}; trying the next tier", r->name(), c.status().message());
  }
  std::string msg = "object " + to_hex(id) + " has no good copy in any repository" + errors;
  return damaged ? corrupt(msg) : not_found(msg);
}

Result<nlohmann::json> TierReader::read_tree(const Digest& id) {
  MK_ASSIGN_OR_RETURN(std::string text, read(id));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt("tree " + to_hex(id) + " is not JSON");
  return j;
}

}  // namespace mailark
