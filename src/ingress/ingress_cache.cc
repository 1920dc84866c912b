// Ingress cache: append-only segment files of checksummed records, group-synced.
#include "ingress/ingress_cache.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "base/log.h"
#include "base/time.h"

namespace mailark {
namespace {

using json = nlohmann::json;

constexpr char kMagic[4] = {'M', 'K', 'I', '1'};
constexpr size_t kFixed = 4 + 4 + 8;  // magic, header length, message length
constexpr uint32_t kMaxHeader = 1 << 20;
constexpr uint64_t kMaxMessage = uint64_t{2} << 30;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool is_segment(const std::string& name) {
  return name.rfind("seg-", 0) == 0 && name.size() > 8 && name.substr(name.size() - 4) == ".log";
}

}  // namespace

namespace {

// The trailer is SHA-256 over the header; the header carries the message's own SHA-256,
// which the delivery computes anyway for the blob address, so the message is hashed once.
std::string frame(const std::string& h, const std::string& message) {
  std::string out;
  out.reserve(kFixed + h.size() + message.size() + 32);
  out.append(kMagic, 4);
  put_le(out, h.size(), 4);
  put_le(out, message.size(), 8);
  out += h;
  out += message;
  Digest d = sha256(h);
  out.append(as_bytes(d));
  return out;
}

}  // namespace

std::string IngressCache::encode_ack(const Guid& id, int64_t time_ms) {
  json header = {{"ack", id.hex()}, {"time_ms", time_ms}};
  return frame(header.dump(), "");
}

std::string IngressCache::encode(const IngressRecord& r) {
  Digest digest = r.message_sha256 == Digest{} ? sha256(r.message) : r.message_sha256;
  json header = {{"id", r.id.hex()},
                 {"time_ms", r.time_ms},
                 {"from", r.from},
                 {"rcpt", r.recipients},
                 {"sha256", to_hex(digest)}};
  return frame(header.dump(), r.message);
}

Result<std::unique_ptr<IngressCache>> IngressCache::open(FileSystem& fs, const std::string& dir,
                                                         IngressRetention retention) {
  MK_RETURN_IF_ERROR(fs.make_dirs(dir));
  return std::unique_ptr<IngressCache>(new IngressCache(fs, dir, retention));
}

IngressCache::~IngressCache() {
  std::lock_guard lock(mu_);
  if (active_) (void)active_->close();
}

Status IngressCache::open_segment_locked() {
  if (active_) {
    // Everything appended to the old segment must be durable before it is left behind.
    MK_RETURN_IF_ERROR(active_->sync());
    (void)active_->close();
    synced_ = appended_;
  }
  char name[64];
  std::snprintf(name, sizeof name, "seg-%013lld-%s.log", static_cast<long long>(now_ms()),
                Guid::random().hex().substr(0, 8).c_str());
  active_path_ = dir_ + "/" + name;
  MK_ASSIGN_OR_RETURN(active_, fs_.create(active_path_));
  sticky_error_ = Status::ok();
  return fs_.sync_dir(dir_);
}

Status IngressCache::acknowledge(const Guid& id) {
  return append_unsynced(encode_ack(id, now_ms()));
}

Status IngressCache::append_unsynced(const std::string& bytes) {
  std::lock_guard lock(mu_);
  if (!active_ || !sticky_error_.is_ok()) return Status::ok();  // nothing to acknowledge into
  Status s = active_->append(bytes);
  if (!s.is_ok()) sticky_error_ = s;
  return s;
}

Status IngressCache::append(const IngressRecord& record) {
  MK_ASSIGN_OR_RETURN(uint64_t ticket, write(record));
  return sync_through(ticket);
}

Status IngressCache::wait_durable(uint64_t ticket) {
  return sync_through(ticket);
}

Result<uint64_t> IngressCache::write(const IngressRecord& record) {
  std::string bytes = encode(record);
  uint64_t ticket;
  {
    std::lock_guard lock(mu_);
    if (!active_ || !sticky_error_.is_ok() || active_->size() >= retention_.segment_bytes) {
      Status s = open_segment_locked();
      if (!s.is_ok()) {
        active_.reset();
        return s;
      }
    }
    Status s = active_->append(bytes);
    if (!s.is_ok()) {
      // A partial record may be on disk; readers skip it by checksum. Start a new segment.
      sticky_error_ = s;
      return s;
    }
    ticket = ++appended_;
  }
  return ticket;
}

Status IngressCache::sync_through(uint64_t ticket) {
  std::unique_lock lock(mu_);
  while (synced_ < ticket) {
    if (!sticky_error_.is_ok()) return sticky_error_;
    if (syncing_) {
      synced_cv_.wait(lock);
      continue;
    }
    syncing_ = true;
    uint64_t target = appended_;
    WritableFile* file = active_.get();
    lock.unlock();
    Status s = file->sync();
    lock.lock();
    syncing_ = false;
    if (s.is_ok())
      synced_ = std::max(synced_, target);
    else
      sticky_error_ = s;
    synced_cv_.notify_all();
  }
  return Status::ok();
}

Status IngressCache::read_all(const std::function<Status(IngressRecord&, bool)>& visit,
                              IngressScanStats* stats, bool messages) {
  MK_ASSIGN_OR_RETURN(auto names, fs_.list_dir(dir_));
  std::vector<std::string> segments;
  for (const auto& n : names)
    if (is_segment(n)) segments.push_back(n);
  std::sort(segments.begin(), segments.end());
  IngressScanStats local;
  IngressScanStats& st = stats ? *stats : local;
  for (const auto& name : segments) {
    std::string path = dir_ + "/" + name;
    auto data = fs_.read_file(path);
    if (!data.is_ok()) {
      if (data.status().code() == ErrorCode::kNotFound) continue;  // pruned meanwhile
      return data.status();
    }
    ++st.segments;
    std::string_view buf = *data;
    size_t pos = 0;
    while (pos + kFixed <= buf.size()) {
      if (std::memcmp(buf.data() + pos, kMagic, 4) != 0) {
        ++st.damaged;
        MK_LOG_WARN("ingress segment {}: damaged record at offset {}, rest of segment skipped",
                    name, pos);
        break;
      }
      uint64_t hlen = get_le(buf.data() + pos + 4, 4);
      uint64_t mlen = get_le(buf.data() + pos + 8, 8);
      bool plausible = hlen <= kMaxHeader && mlen <= kMaxMessage;
      if (!plausible || pos + kFixed + hlen + mlen + 32 > buf.size()) {
        // A torn tail from a crash mid-append: that record was never acknowledged.
        if (plausible) {
          MK_LOG_DEBUG("ingress segment {}: torn tail at offset {}", name, pos);
        } else {
          ++st.damaged;
          MK_LOG_WARN("ingress segment {}: damaged record at offset {}", name, pos);
        }
        break;
      }
      std::string_view body = buf.substr(pos + kFixed, hlen + mlen);
      std::string_view sum = buf.substr(pos + kFixed + hlen + mlen, 32);
      size_t next = pos + kFixed + hlen + mlen + 32;
      Digest d = sha256(body.substr(0, hlen));
      if (std::memcmp(d.data(), sum.data(), 32) != 0) {
        ++st.damaged;
        MK_LOG_WARN("ingress segment {}: checksum mismatch at offset {}, record skipped", name,
                    pos);
        pos = next;
        continue;
      }
      pos = next;
      IngressRecord r;
      bool is_ack = false;
      try {
        json h = json::parse(body.substr(0, hlen));
        is_ack = h.contains("ack");
        auto id = Guid::from_hex(h.at(is_ack ? "ack" : "id").get<std::string>());
        if (!id) throw std::runtime_error("bad id");
        r.id = *id;
        r.time_ms = h.at("time_ms").get<int64_t>();
        if (!is_ack) {
          r.from = h.at("from").get<std::string>();
          r.recipients = h.at("rcpt").get<std::vector<std::string>>();
          auto digest = digest_from_hex(h.at("sha256").get<std::string>());
          if (!digest) throw std::runtime_error("bad sha256");
          r.message_sha256 = *digest;
        }
      } catch (const std::exception&) {
        ++st.damaged;
        continue;
      }
      if (!is_ack && messages && sha256(body.substr(hlen)) != r.message_sha256) {
        ++st.damaged;
        MK_LOG_WARN("ingress segment {}: message at offset {} does not match its SHA-256, skipped",
                    name, pos - (kFixed + hlen + mlen + 32));
        continue;
      }
      if (!is_ack) {
        ++st.records;
        if (st.oldest_ms == 0 || r.time_ms < st.oldest_ms) st.oldest_ms = r.time_ms;
        if (messages) r.message = std::string(body.substr(hlen));
      }
      MK_RETURN_IF_ERROR(visit(r, is_ack));
    }
  }
  return Status::ok();
}

Status IngressCache::scan(int64_t since, int64_t until,
                          const std::function<Status(const IngressRecord&)>& visit,
                          IngressScanStats* stats) {
  // Two passes: acknowledgements follow their records, often in a later segment.
  std::set<Guid> acked;
  MK_RETURN_IF_ERROR(read_all(
      [&](IngressRecord& r, bool is_ack) {
        if (is_ack) acked.insert(r.id);
        return Status::ok();
      },
      nullptr, /*messages=*/false));
  return read_all(
      [&](IngressRecord& r, bool is_ack) -> Status {
        if (is_ack || r.time_ms < since || r.time_ms >= until) return Status::ok();
        r.acknowledged = acked.count(r.id) > 0;
        return visit(r);
      },
      stats, /*messages=*/true);
}

Result<int> IngressCache::prune(int64_t now) {
  MK_ASSIGN_OR_RETURN(auto names, fs_.list_dir(dir_));
  struct Seg {
    std::string path;
    int64_t mtime;
    uint64_t size;
  };
  std::vector<Seg> segs;
  std::string active;
  {
    std::lock_guard lock(mu_);
    active = active_path_;
  }
  for (const auto& n : names) {
    if (!is_segment(n)) continue;
    std::string path = dir_ + "/" + n;
    auto m = fs_.modified_ms(path);
    auto s = fs_.file_size(path);
    if (!m.is_ok() || !s.is_ok()) continue;
    segs.push_back({path, *m, *s});
  }
  std::sort(segs.begin(), segs.end(), [](const Seg& a, const Seg& b) { return a.path < b.path; });
  uint64_t total = 0;
  for (const auto& s : segs) total += s.size;
  int removed = 0;
  for (const auto& s : segs) {
    if (s.path == active) continue;
    bool too_old = s.mtime < now - retention_.max_age_ms;
    bool too_big = total > retention_.max_bytes;
    if (!too_old && !too_big) continue;
    MK_RETURN_IF_ERROR(fs_.remove(s.path));
    total -= s.size;
    ++removed;
  }
  if (removed) MK_RETURN_IF_ERROR(fs_.sync_dir(dir_));
  return removed;
}

}  // namespace mailark
