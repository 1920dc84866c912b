// Internal to src/backup: the JSON trees that describe a base backup's accounts and folders,
// and reading objects from the first repository tier that holds a good copy.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backup/repository.h"
#include "mailstore/snapshot.h"

namespace mailark {

Digest must_digest(const std::string& hex);  // zeros when malformed
nlohmann::json folder_tree(const FolderState& f);
Result<FolderState> folder_from_tree(const nlohmann::json& j);

class TierReader {
 public:
  explicit TierReader(std::vector<Repository*> tiers) : tiers_(std::move(tiers)) {}
  // The object from the first tier with a copy that verifies; kCorrupt when only damaged
  // copies exist, kNotFound when none; the message names every tier's failure.
  Result<std::string> read(const Digest& id);
  Result<nlohmann::json> read_tree(const Digest& id);
  const std::vector<Repository*>& tiers() const { return tiers_; }

 private:
  std::vector<Repository*> tiers_;
};

}  // namespace mailark
