#include "afbus/expected.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace afbus {
namespace {

enum class Errc { Bad, Worse };

Expected<int, Errc> half(int n) {
    if (n % 2 != 0) return Unexpected(Errc::Bad);
    return n / 2;
}

TEST(Expected, CarriesValueOrError) {
    auto ok = half(4);
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, 2);
    auto bad = half(3);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), Errc::Bad);
    EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Expected, HoldsMoveOnlyValues) {
    Expected<std::unique_ptr<std::string>, Errc> e = std::make_unique<std::string>("x");
    ASSERT_TRUE(e);
    auto owned = std::move(e).value();
    EXPECT_EQ(*owned, "x");
}

TEST(Expected, VoidSpecialisation) {
    Expected<void, Errc> ok;
    EXPECT_TRUE(ok);
    Expected<void, Errc> bad = Unexpected(Errc::Worse);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), Errc::Worse);
}

// Misuse stops the program in every build type (this test runs in the release-like default build too,
// where assert() would be compiled out).
TEST(ExpectedDeathTest, ValueOfAnErrorAborts) {
    Expected<int, Errc> bad = Unexpected(Errc::Bad);
    EXPECT_DEATH((void)bad.value(), "value\\(\\) of an error");
    Expected<void, Errc> bad_void = Unexpected(Errc::Bad);
    EXPECT_DEATH(bad_void.value(), "value\\(\\) of an error");
}

TEST(ExpectedDeathTest, ErrorOfAValueAborts) {
    Expected<int, Errc> good = 1;
    EXPECT_DEATH((void)good.error(), "error\\(\\) of a value");
}

}  // namespace
}  // namespace afbus
