// A message as a receiver sees it: built, then parsed from its wire bytes, for the type mapping tests.
#pragma once

#include <gtest/gtest.h>

#include "afbus/message.hpp"

namespace afbus::test {

inline Message round_trip(MessageBuilder builder) {
    auto built = std::move(builder).build(7);
    EXPECT_TRUE(built) << to_string(built.error());
    auto parsed = Message::parse(built->wire());
    EXPECT_TRUE(parsed) << to_string(parsed.error());
    return std::move(*parsed);
}

}  // namespace afbus::test
