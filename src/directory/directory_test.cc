// Directory tests: validation tables, tenants and users, placement on the least-loaded
// database, argon2id passwords.
#include "directory/directory.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "directory/password.h"

namespace mailark {
namespace {

TEST(Address, NormalizeTable) {
  struct Case {
    const char* in;
    const char* out;  // nullptr = invalid
  } cases[] = {
      {"Alice@ACME.test", "alice@acme.test"},
      {"a.b+tag@x.y", "a.b+tag@x.y"},
      {"o'neil@x.y", "o'neil@x.y"},
      {"noat", nullptr},
      {"@x.y", nullptr},
      {"a@", nullptr},
      {"a..b@x.y", nullptr},
      {".a@x.y", nullptr},
      {"a b@x.y", nullptr},
      {"a@x..y", nullptr},
      {"a@-x.y", nullptr},
      {"a@x_y.z", nullptr},
      {"a@b@c.d", nullptr},
  };
  for (const auto& c : cases) {
    auto r = normalize_address(c.in);
    if (c.out) {
      ASSERT_TRUE(r.is_ok()) << c.in << ": " << r.status().to_string();
      EXPECT_EQ(*r, c.out);
    } else {
      EXPECT_EQ(r.status().code(), ErrorCode::kInvalid) << c.in;
    }
  }
  EXPECT_TRUE(validate_database_name("db1").is_ok());
  EXPECT_FALSE(validate_database_name("").is_ok());
  EXPECT_FALSE(validate_database_name("DB").is_ok());
  EXPECT_FALSE(validate_database_name("../x").is_ok());
  EXPECT_FALSE(validate_database_name("-x").is_ok());
}

TEST(Password, Argon2idHashAndVerify) {
  auto h = hash_password("correct horse");
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->rfind("$argon2id$", 0), 0u);
  EXPECT_TRUE(verify_password("correct horse", *h));
  EXPECT_FALSE(verify_password("wrong", *h));
  EXPECT_FALSE(verify_password("x", "plaintext"));
  EXPECT_NE(*h, *hash_password("correct horse")) << "salted";
}

class DirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mk-dir-XXXXXX";
    dir_ = mkdtemp(tmpl);
    dirx_ = std::move(Directory::open(dir_ + "/d.sqlite", true).value());
  }
  void TearDown() override {
    dirx_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<Directory> dirx_;
};

TEST_F(DirectoryTest, TenantsUsersAndPlacement) {
  ASSERT_TRUE(dirx_->add_tenant("Acme.test").is_ok());
  EXPECT_EQ(dirx_->add_tenant("acme.test").code(), ErrorCode::kExists);
  EXPECT_EQ(dirx_->add_user("a@acme.test", "pw", 0, "").status().code(), ErrorCode::kNotFound)
      << "no database yet";
  ASSERT_TRUE(dirx_->add_database("db1").is_ok());
  ASSERT_TRUE(dirx_->add_database("db2").is_ok());
  EXPECT_EQ(dirx_->add_user("a@other.test", "pw", 0, "").status().code(), ErrorCode::kNotFound);
  auto a = dirx_->add_user("A@acme.test", "pw", 1000, "");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->address, "a@acme.test");
  EXPECT_EQ(a->database, "db1");
  auto b = dirx_->add_user("b@acme.test", "pw", 0, "");
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->database, "db2") << "least loaded";
  auto c = dirx_->add_user("c@acme.test", "pw", 0, "db2");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->database, "db2");
  EXPECT_EQ(dirx_->add_user("d@acme.test", "pw", 0, "nope").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(dirx_->add_user("a@acme.test", "pw", 0, "").status().code(), ErrorCode::kExists);
  EXPECT_EQ(dirx_->add_user("e@acme.test", "", 0, "").status().code(), ErrorCode::kInvalid);

  auto found = dirx_->find_user("A@ACME.TEST");
  ASSERT_TRUE(found.is_ok());
  EXPECT_EQ(found->guid, a->guid);
  EXPECT_EQ(found->quota_bytes, 1000u);
  EXPECT_TRUE(*dirx_->authenticate("a@acme.test", "pw"));
  EXPECT_FALSE(*dirx_->authenticate("a@acme.test", "wrong"));
  EXPECT_FALSE(*dirx_->authenticate("nobody@acme.test", "pw"));
  ASSERT_TRUE(dirx_->set_password("a@acme.test", "new").is_ok());
  EXPECT_TRUE(*dirx_->authenticate("a@acme.test", "new"));
  ASSERT_TRUE(dirx_->set_quota("a@acme.test", 0).is_ok());
  EXPECT_EQ(dirx_->find_user("a@acme.test")->quota_bytes, 0u);

  EXPECT_EQ(dirx_->remove_tenant("acme.test").code(), ErrorCode::kConflict);
  EXPECT_EQ(dirx_->users("acme.test")->size(), 3u);
  for (const char* u : {"a@acme.test", "b@acme.test", "c@acme.test"})
    ASSERT_TRUE(dirx_->remove_user(u).is_ok());
  EXPECT_EQ(dirx_->remove_user("a@acme.test").code(), ErrorCode::kNotFound);
  EXPECT_TRUE(dirx_->remove_tenant("acme.test").is_ok());
  EXPECT_EQ(dirx_->remove_tenant("acme.test").code(), ErrorCode::kNotFound);
}

TEST_F(DirectoryTest, SharedBetweenTwoHandles) {
  ASSERT_TRUE(dirx_->add_tenant("x.test").is_ok());
  auto other = Directory::open(dir_ + "/d.sqlite", false);
  ASSERT_TRUE(other.is_ok());
  auto tenants = (*other)->tenants();
  ASSERT_TRUE(tenants.is_ok());
  ASSERT_EQ(tenants->size(), 1u);
  EXPECT_EQ(tenants->front().domain, "x.test");
}

}  // namespace
}  // namespace mailark
