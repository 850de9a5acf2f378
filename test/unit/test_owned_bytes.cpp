#include "afbus/owned_bytes.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace afbus {
namespace {

std::vector<std::byte> bytes_of(std::string_view text) {
    std::vector<std::byte> out(text.size());
    std::memcpy(out.data(), text.data(), text.size());
    return out;
}

std::string text_of(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TEST(OwnedBytes, KeepsAVectorHandedOverWithoutCopying) {
    auto vector = bytes_of("header+body");
    const std::byte* where = vector.data();
    OwnedBytes bytes(std::move(vector));
    EXPECT_EQ(bytes.data(), where);
    EXPECT_EQ(text_of(bytes.span()), "header+body");
    bytes.drop_front(7);
    EXPECT_EQ(text_of(bytes.span()), "body");
}

TEST(OwnedBytes, ABlockForOverwriteIsWrittenInPlaceAndKeepsItsTail) {
    OwnedBytes bytes = OwnedBytes::for_overwrite(11);
    ASSERT_EQ(bytes.size(), 11u);
    std::memcpy(bytes.data(), "header+body", 11);
    std::byte* const body = bytes.data() + 7;
    bytes.drop_front(7);
    EXPECT_EQ(bytes.data(), body) << "dropping the front moves no bytes";
    EXPECT_EQ(text_of(bytes.span()), "body");
    bytes.drop_front(4);
    EXPECT_TRUE(bytes.empty());
}

TEST(OwnedBytes, MovingLeavesTheSourceEmptyAndTheBytesWhereTheyWere) {
    OwnedBytes block = OwnedBytes::for_overwrite(8);
    std::memcpy(block.data(), "12345678", 8);
    block.drop_front(2);
    const std::byte* where = block.data();
    OwnedBytes moved(std::move(block));
    EXPECT_TRUE(block.empty());  // NOLINT(bugprone-use-after-move): the state after a move is the point
    EXPECT_EQ(moved.data(), where);
    EXPECT_EQ(text_of(moved.span()), "345678");

    OwnedBytes assigned(bytes_of("old"));
    assigned = std::move(moved);
    EXPECT_TRUE(moved.empty());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(assigned.data(), where);

    OwnedBytes vector(bytes_of("vector"));
    assigned = std::move(vector);
    EXPECT_TRUE(vector.empty());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(text_of(assigned.span()), "vector");
}

TEST(OwnedBytes, ACopyOwnsItsOwnBytes) {
    OwnedBytes block = OwnedBytes::for_overwrite(4);
    std::memcpy(block.data(), "abcd", 4);
    block.drop_front(1);
    OwnedBytes copy = block.copy();
    EXPECT_NE(copy.data(), block.data());
    EXPECT_EQ(text_of(copy.span()), "bcd");
    block.data()[0] = std::byte{'x'};
    EXPECT_EQ(text_of(copy.span()), "bcd");
}

TEST(OwnedBytes, EmptyByDefaultAndForNothing) {
    EXPECT_TRUE(OwnedBytes().empty());
    EXPECT_TRUE(OwnedBytes::for_overwrite(0).empty());
}

}  // namespace
}  // namespace afbus
