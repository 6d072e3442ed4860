#include "gomaptrace/go_version.hpp"

#include <gtest/gtest.h>

using gomaptrace::go_version;
using gomaptrace::map_impl;

TEST(go_version, parses_release_strings) {
  auto v = go_version::parse("go1.23.12");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->major, 1);
  EXPECT_EQ(v->minor, 23);
  EXPECT_EQ(v->patch, 12);
  EXPECT_EQ(v->default_map_impl(), map_impl::classic);

  auto rc = go_version::parse("go1.24rc1");
  ASSERT_TRUE(rc);
  EXPECT_EQ(rc->minor, 24);
  EXPECT_EQ(rc->patch, 0);
  EXPECT_EQ(rc->default_map_impl(), map_impl::swiss);

  auto devel = go_version::parse("devel go1.27-1a2b3c Tue Nov 3 2026");
  ASSERT_TRUE(devel);
  EXPECT_EQ(devel->minor, 27);
}

TEST(go_version, rejects_garbage) {
  EXPECT_FALSE(go_version::parse(""));
  EXPECT_FALSE(go_version::parse("go2"));
  EXPECT_FALSE(go_version::parse("go1."));
  EXPECT_FALSE(go_version::parse("python3.11"));
}

TEST(go_version, abi_switches_at_1_17) {
  EXPECT_EQ(go_version::parse("go1.16.15")->abi(), gomaptrace::go_abi::stack);
  EXPECT_EQ(go_version::parse("go1.17")->abi(), gomaptrace::go_abi::regabi);
}
