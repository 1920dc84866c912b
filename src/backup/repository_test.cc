// Repository format tests: objects round-trip through packs and index files under both
// ciphers and both key kinds; a pack left without an index is found and indexed, not
// uploaded again; damage and wrong keys are named.
#include "backup/repository.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "os/fault_file.h"
#include "os/file.h"
#include "os/temp_dir.h"

namespace mailark {
namespace {

KeySource file_key() {
  static BackupKey key = BackupKey::generate().value();
  KeySource k;
  k.key = key;
  return k;
}

std::unique_ptr<Repository> make(const std::string& dir, const KeySource& key,
                                 Cipher cipher = Cipher::kAes256Gcm) {
  auto r = Repository::create("local", make_local_backend(posix_fs(), dir), key, cipher);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(*r) : nullptr;
}

std::unique_ptr<Repository> reopen(const std::string& dir, const KeySource& key) {
  auto r = Repository::open("local", make_local_backend(posix_fs(), dir), key);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return nullptr;
  EXPECT_TRUE((*r)->load_index().is_ok());
  return std::move(*r);
}

TEST(Crypto, SealOpenAndContextBinding) {
  auto key = BackupKey::generate().value();
  for (Cipher c : {Cipher::kAes256Gcm, Cipher::kChaCha20Poly1305}) {
    auto sealed = key.seal(c, "hello", "ctx").value();
    EXPECT_EQ(sealed.size(), 5 + kSealOverhead);
    EXPECT_EQ(key.open(c, sealed, "ctx").value(), "hello");
    EXPECT_EQ(key.open(c, sealed, "other").status().code(), ErrorCode::kCorrupt);
    sealed[14] ^= 1;
    EXPECT_EQ(key.open(c, sealed, "ctx").status().code(), ErrorCode::kCorrupt);
  }
  auto other = BackupKey::generate().value();
  EXPECT_NE(key.id(), other.id());
  EXPECT_EQ(BackupKey::parse(key.to_text()).value().id(), key.id());
  EXPECT_EQ(BackupKey::parse("garbage").status().code(), ErrorCode::kInvalid);
}

TEST(Repository, ObjectsRoundTripAcrossPacksAndReopen) {
  TempDir dir;
  std::map<Digest, std::string> objects;
  {
    auto repo = make(dir.path(), file_key(), Cipher::kChaCha20Poly1305);
    ASSERT_TRUE(repo);
    for (int i = 0; i < 300; ++i) {
      // Some compressible, some not, some large enough to spill over several packs.
      std::string content = i % 3 ? std::string(1000 + i, 'a' + i % 26)
                                  : Guid::random().hex() + std::string(i * 300, 'z');
      if (i % 50 == 0) {
        content.resize(3 << 20);
        for (auto& ch : content) ch = static_cast<char>(std::rand());
      }
      Digest id = sha256(content);
      EXPECT_TRUE(repo->add_object(ObjectType::kMessage, id, content).value());
      EXPECT_FALSE(repo->add_object(ObjectType::kMessage, id, content).value());  // dedup
      objects[id] = content;
    }
    ASSERT_TRUE(repo->flush().is_ok());
    EXPECT_GT(repo->packs().size(), 1u);
  }
  auto repo = reopen(dir.path(), file_key());
  ASSERT_TRUE(repo);
  EXPECT_EQ(repo->object_count(), objects.size());
  for (const auto& [id, content] : objects) EXPECT_EQ(repo->read_object(id).value(), content);
  EXPECT_EQ(repo->read_object(sha256("absent")).status().code(), ErrorCode::kNotFound);
}

TEST(Repository, PackWithoutIndexIsIndexedNotUploadedAgain) {
  TempDir dir;
  Digest id = sha256("body");
  {
    auto repo = make(dir.path(), file_key());
    ASSERT_TRUE(repo->add_object(ObjectType::kMessage, id, "body").value());
    ASSERT_TRUE(repo->flush().is_ok());
  }
  // An interrupted writer: the pack is there, its index file never was.
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/index"))
    std::filesystem::remove(e.path());
  auto repo = reopen(dir.path(), file_key());
  EXPECT_TRUE(repo->has_object(id));
  EXPECT_EQ(repo->read_object(id).value(), "body");
  EXPECT_FALSE(repo->add_object(ObjectType::kMessage, id, "body").value());
  // ... and the found pack got an index file of its own.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path() + "/index"),
                          std::filesystem::directory_iterator()),
            1);
}

// A full pack is hashed and written on a thread of its own: a write that fails there is
// reported by flush(), and no index file names the pack.
TEST(Repository, PackWriteFailureOnItsThreadIsReportedByFlush) {
  TempDir dir;
  FaultInjectingFileSystem fs(posix_fs());
  auto created = Repository::create("local", make_local_backend(fs, dir.path()), file_key(),
                                    Cipher::kAes256Gcm);
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  auto& repo = *created;
  fs.fail_appends_after(0);
  std::string big(1 << 20, 'x');
  Status failed = Status::ok();
  for (int i = 0; i < 40 && failed.is_ok(); ++i) {  // 40 MiB: two full packs and more
    big[0] = static_cast<char>(i);
    std::string content = big + Guid::random().hex();
    auto added = repo->add_object(ObjectType::kMessage, sha256(content), content);
    if (!added.is_ok()) failed = added.status();
  }
  if (failed.is_ok()) failed = repo->flush();
  EXPECT_FALSE(failed.is_ok());
  EXPECT_FALSE(repo->flush().is_ok());  // and stays failed
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/index") &&
               !std::filesystem::is_empty(dir.path() + "/index"));
}

TEST(Repository, WrongKeyAndPassphrase) {
  TempDir dir;
  KeySource pass;
  pass.passphrase = "correct horse battery staple";
  pass.argon2 = Argon2Params{1, 1024, 1};
  ASSERT_TRUE(make(dir.path(), pass));
  EXPECT_TRUE(reopen(dir.path(), pass));
  KeySource wrong = pass;
  wrong.passphrase = "incorrect";
  auto r = Repository::open("local", make_local_backend(posix_fs(), dir.path()), wrong);
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalid);
  EXPECT_NE(r.status().message().find("wrong key"), std::string::npos);
  auto r2 = Repository::open("local", make_local_backend(posix_fs(), dir.path()), file_key());
  EXPECT_EQ(r2.status().code(), ErrorCode::kInvalid);
  TempDir empty;
  EXPECT_EQ(Repository::open("x", make_local_backend(posix_fs(), empty.path()), file_key())
                .status()
                .code(),
            ErrorCode::kNotFound);
}

TEST(Repository, FlippedByteIsNamedByReadAndVerify) {
  TempDir dir;
  std::string content(5000, 'q');
  Digest id = sha256(content);
  Digest pack{};
  {
    auto repo = make(dir.path(), file_key());
    ASSERT_TRUE(repo->add_object(ObjectType::kMessage, id, content).value());
    ASSERT_TRUE(repo->flush().is_ok());
    pack = repo->packs().begin()->first;
  }
  std::string hex = to_hex(pack);
  std::string path = dir.path() + "/packs/" + hex.substr(0, 2) + "/" + hex;
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    char c;
    f.seekg(20);
    f.get(c);
    f.seekp(20);
    f.put(static_cast<char>(c ^ 0x40));
  }
  auto repo = reopen(dir.path(), file_key());
  auto r = repo->read_object(id);
  EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt);
  EXPECT_NE(r.status().message().find(hex), std::string::npos);
  std::vector<RepositoryProblem> problems;
  ASSERT_TRUE(repo->verify_pack(pack, &problems).is_ok());
  ASSERT_EQ(problems.size(), 2u);  // the pack's hash, and the object in it
  EXPECT_NE(problems[0].what.find("does not match its name"), std::string::npos);
}

TEST(Repository, JournalSegmentsAndSnapshots) {
  TempDir dir;
  auto repo = make(dir.path(), file_key());
  std::vector<JournalRecord> records;
  Digest prev{};
  for (int i = 1; i <= 5; ++i) {
    JournalRecord r;
    r.seq = i;
    r.time_ms = 1000 * i;
    r.op = "append";
    r.payload = "{\"n\":" + std::to_string(i) + "}";
    r.prev_hash = prev;
    r.hash = journal::compute_hash(r);
    prev = r.hash;
    records.push_back(r);
  }
  ASSERT_TRUE(repo->write_segment("abcd", {records.begin(), records.begin() + 3}).is_ok());
  ASSERT_TRUE(repo->write_segment("abcd", {records.begin() + 3, records.end()}).is_ok());
  auto segs = repo->segments("abcd").value();
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[1].first, 4);
  EXPECT_EQ(segs[1].last, 5);
  EXPECT_EQ(repo->read_segment(segs[1]).value().back().hash, records.back().hash);
  // A segment renamed to claim other records fails authentication.
  std::filesystem::copy_file(
      dir.path() + "/" + segs[1].file,
      dir.path() + "/journal/abcd/00000000000000000006-00000000000000000007");
  auto moved = repo->segments("abcd").value();
  ASSERT_EQ(moved.size(), 3u);
  EXPECT_EQ(repo->read_segment(moved[2]).status().code(), ErrorCode::kCorrupt);
  auto id = repo->write_snapshot("{\"x\":1}").value();
  EXPECT_EQ(repo->snapshot_ids().value(), std::vector<std::string>{id});
  EXPECT_EQ(repo->read_snapshot(id).value(), "{\"x\":1}");
}

}  // namespace
}  // namespace mailark
