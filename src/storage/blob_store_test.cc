// Blob store tests: round trip, compression, verification on read, idempotence, self-heal,
// and durability of the directory entry across a simulated crash.
#include "storage/blob_store.h"

#include <gtest/gtest.h>

#include "os/temp_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "os/fault_file.h"

namespace mailark {
namespace {

class BlobStoreTest : public ::testing::Test {
 protected:
  TempDir temp_;
  std::string dir_ = temp_.path();
};

std::string text_message(size_t n) {
  std::string s = "Subject: test\r\n\r\n";
  while (s.size() < n) s += "The quick brown fox jumps over the lazy dog.\r\n";
  return s;
}

TEST_F(BlobStoreTest, RoundTripCompressesAndVerifies) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  std::string msg = text_message(100000);
  auto put = store.put(msg);
  ASSERT_TRUE(put.is_ok());
  EXPECT_EQ(put->digest, sha256(msg));
  EXPECT_FALSE(put->was_present);
  EXPECT_LT(put->stored_size, msg.size() / 4) << "text should compress";
  ASSERT_TRUE(store.sync_dirs({put->dir_to_sync}).is_ok());
  auto got = store.get(put->digest);
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(*got, msg);
  auto again = store.put(msg);
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->was_present);
}

TEST_F(BlobStoreTest, IncompressibleDataStoredRaw) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < 5000; ++i) {
    x = x * 1103515245 + 12345;
    noise.push_back(static_cast<char>(x >> 24));
  }
  auto put = store.put(noise);
  ASSERT_TRUE(put.is_ok());
  EXPECT_EQ(put->stored_size, noise.size() + 16);
  EXPECT_EQ(*store.get(put->digest), noise);
}

TEST_F(BlobStoreTest, FlippedByteIsCorruptNeverServed) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  for (size_t size : {size_t{10}, size_t{100000}}) {
    std::string msg = text_message(size);
    auto put = store.put(msg);
    ASSERT_TRUE(put.is_ok());
    std::string path = store.path_of(put->digest);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) - 3));
    f.put('\xff');
    f.close();
    auto got = store.get(put->digest);
    EXPECT_EQ(got.status().code(), ErrorCode::kCorrupt) << size;
    EXPECT_NE(got.status().message().find(to_hex(put->digest)), std::string::npos);
    // Delivering the same content again repairs the damaged copy.
    auto healed = store.put(msg);
    ASSERT_TRUE(healed.is_ok());
    EXPECT_FALSE(healed->was_present);
    EXPECT_EQ(*store.get(put->digest), msg);
  }
}

// Reads into reused buffers give what get() gives, whatever came before: larger, smaller, raw,
// compressed, damaged or missing.
TEST_F(BlobStoreTest, ReadsIntoReusedBuffersMatchGet) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  std::string random(300000, '\0');
  uint32_t x = 12345;
  for (char& c : random) c = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  const std::vector<std::string> contents = {
      text_message(200000), text_message(10), random, random.substr(0, 70000), "",
      text_message(5000)};
  std::vector<Digest> digests;
  for (const std::string& c : contents) {
    auto put = store.put(c);
    ASSERT_TRUE(put.is_ok());
    digests.push_back(put->digest);
  }
  BlobBuffers buffers;
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < contents.size(); ++i) {
      ASSERT_TRUE(store.get(digests[i], buffers).is_ok()) << i;
      EXPECT_EQ(buffers.content, contents[i]) << i;
      ASSERT_TRUE(
          BlobStore::decode_verified(BlobStore::encode(contents[i]), digests[i], buffers.content)
              .is_ok());
      EXPECT_EQ(buffers.content, contents[i]) << i;
    }
  }
  EXPECT_EQ(store.get(sha256("nothing"), buffers).code(), ErrorCode::kNotFound);
  const std::string path = store.path_of(digests[0]);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) - 3));
  f.put('\xff');
  f.close();
  Status damaged = store.get(digests[0], buffers);
  EXPECT_EQ(damaged.code(), ErrorCode::kCorrupt);
  EXPECT_NE(damaged.message().find(to_hex(digests[0])), std::string::npos);
  EXPECT_EQ(
      BlobStore::decode_verified(BlobStore::encode("other"), digests[1], buffers.content).code(),
      ErrorCode::kCorrupt);
}

TEST_F(BlobStoreTest, MissingAndGarbageFiles) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  EXPECT_EQ(store.get(sha256("nothing")).status().code(), ErrorCode::kNotFound);
  for (std::string garbage :
       {std::string(""), std::string("MKB1"), std::string("XXXXXXXXXXXXXXXXXXXXXXXX")}) {
    EXPECT_EQ(BlobStore::decode(garbage, "t").status().code(), ErrorCode::kCorrupt);
  }
  std::string enc = BlobStore::encode(text_message(5000));
  enc[8] ^= 1;  // size field
  EXPECT_EQ(BlobStore::decode(enc, "t").status().code(), ErrorCode::kCorrupt);
}

// Content under 1 KiB is stored raw however well it would compress; larger content is
// compressed when that saves more than 64 bytes (docs/formats/blob.md). Both decode.
TEST(BlobEncoding, SmallContentRawLargerCompressed) {
  const std::string small(1023, 'a');
  const std::string large(1024, 'a');
  std::string incompressible(4096, '\0');
  uint32_t x = 7;
  for (char& c : incompressible) c = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  const std::pair<const std::string*, char> cases[] = {
      {&small, 0}, {&large, 1}, {&incompressible, 0}};
  for (const auto& [content, encoding] : cases) {
    const std::string enc = BlobStore::encode(*content);
    ASSERT_GE(enc.size(), 16u);
    EXPECT_EQ(enc[4], encoding) << content->size();
    if (encoding == 0) {
      EXPECT_EQ(enc.substr(16), *content);
    }
    auto back = BlobStore::decode(enc, "t");
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(*back, *content);
  }
}

TEST_F(BlobStoreTest, EntryLostInCrashUnlessDirectorySynced) {
  FaultInjectingFileSystem fs(posix_fs());
  BlobStore store(fs, dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  auto a = store.put("unsynced directory entry");
  auto b = store.put("synced directory entry");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  if (a->dir_to_sync != b->dir_to_sync) {
    ASSERT_TRUE(store.sync_dirs({b->dir_to_sync}).is_ok());
    ASSERT_TRUE(fs.crash().is_ok());
    EXPECT_EQ(store.get(a->digest).status().code(), ErrorCode::kNotFound);
    EXPECT_TRUE(store.get(b->digest).is_ok());
  }
  auto c = store.put("third");
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE(store.sync_dirs({c->dir_to_sync}).is_ok());
  ASSERT_TRUE(fs.crash().is_ok());
  EXPECT_TRUE(store.get(c->digest).is_ok());
}

TEST_F(BlobStoreTest, ListFindsBlobsAndStrays) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  auto a = store.put("one");
  auto b = store.put("two");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  std::ofstream(dir_ + "/blobs/00/not-a-digest") << "x";
  std::vector<std::string> strays;
  auto all = store.list(&strays);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->size(), 2u);
  EXPECT_EQ(strays.size(), 1u);
}

}  // namespace
}  // namespace mailark

namespace mailark {
namespace {

// Reads everything through a BlobReader in `chunk`-sized steps.
Result<std::string> read_all(BlobReader& reader, size_t chunk) {
  std::string out;
  while (true) {
    MK_ASSIGN_OR_RETURN(size_t n, reader.read(chunk, &out));
    if (n == 0) return out;
  }
}

TEST_F(BlobStoreTest, StreamingReaderMatchesGetForEveryEncoding) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  std::string random_bytes;
  for (int i = 0; i < 300000; ++i) random_bytes.push_back(static_cast<char>(std::rand()));
  for (const std::string& content : {text_message(3 << 20), random_bytes, std::string("x")}) {
    auto put = store.put(content);
    ASSERT_TRUE(put.is_ok());
    for (size_t chunk : {size_t{1} << 20, size_t{4096}, size_t{7}}) {
      if (chunk == 7 && content.size() > 400000) continue;  // slow, nothing new
      auto reader = store.open(put->digest);
      ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
      EXPECT_EQ((*reader)->size(), content.size());
      auto all = read_all(**reader, chunk);
      ASSERT_TRUE(all.is_ok()) << all.status().to_string();
      EXPECT_TRUE(*all == content);
    }
    auto inline_reader = BlobReader::open_encoded(BlobStore::encode(content), put->digest);
    ASSERT_TRUE(inline_reader.is_ok());
    auto all = read_all(**inline_reader, 65536);
    ASSERT_TRUE(all.is_ok());
    EXPECT_TRUE(*all == content);
  }
}

TEST_F(BlobStoreTest, StreamingReaderReportsDamage) {
  BlobStore store(posix_fs(), dir_ + "/blobs");
  ASSERT_TRUE(store.create_layout().is_ok());
  std::string content = text_message(500000);
  auto put = store.put(content);
  ASSERT_TRUE(put.is_ok());
  std::string encoded = BlobStore::encode(content);
  // A flipped byte in the compressed stream, a truncated stream, and content that decodes
  // but is not what the digest names: each is kCorrupt, never a clean end.
  std::string flipped = encoded;
  flipped[flipped.size() / 2] ^= 0x40;
  std::string truncated = encoded.substr(0, encoded.size() - 100);
  Digest other = sha256("something else");
  struct Case {
    std::string bytes;
    Digest digest;
  } cases[] = {{flipped, put->digest}, {truncated, put->digest}, {encoded, other}};
  for (const Case& c : cases) {
    auto reader = BlobReader::open_encoded(c.bytes, c.digest);
    if (!reader.is_ok()) {
      EXPECT_EQ(reader.status().code(), ErrorCode::kCorrupt);
      continue;
    }
    auto all = read_all(**reader, 65536);
    ASSERT_FALSE(all.is_ok());
    EXPECT_EQ(all.status().code(), ErrorCode::kCorrupt) << all.status().to_string();
  }
}

}  // namespace
}  // namespace mailark
