#include "afbus/names.hpp"

#include <gtest/gtest.h>

#include <string>

namespace afbus {
namespace {

TEST(Names, ObjectPaths) {
    for (const char* ok : {"/", "/a", "/org/freedesktop/DBus", "/_/A9/b_c"}) EXPECT_TRUE(is_valid_object_path(ok)) << ok;
    for (const char* bad : {"", "a", "/a/", "//", "/a//b", "/a-b", "/a.b", "/ä"})
        EXPECT_FALSE(is_valid_object_path(bad)) << bad;
}

TEST(Names, Interfaces) {
    for (const char* ok : {"a.b", "org.freedesktop.DBus", "_a.B_9", "a.b.c.d"})
        EXPECT_TRUE(is_valid_interface_name(ok)) << ok;
    for (const char* bad : {"", "a", "a.", ".a", "a..b", "a.9b", "9a.b", "a-b.c", "a.b/c"})
        EXPECT_FALSE(is_valid_interface_name(bad)) << bad;
    EXPECT_TRUE(is_valid_interface_name("a." + std::string(253, 'b')));
    EXPECT_FALSE(is_valid_interface_name("a." + std::string(254, 'b')));
}

TEST(Names, Members) {
    for (const char* ok : {"Hello", "_x", "a9"}) EXPECT_TRUE(is_valid_member_name(ok)) << ok;
    for (const char* bad : {"", "9a", "a.b", "a-b"}) EXPECT_FALSE(is_valid_member_name(bad)) << bad;
    EXPECT_TRUE(is_valid_member_name(std::string(255, 'm')));
    EXPECT_FALSE(is_valid_member_name(std::string(256, 'm')));
}

TEST(Names, BusNames) {
    for (const char* ok : {":1.0", ":1.42", ":a.b", "org.freedesktop.DBus", "com.example-x.y_z", "-a.b"})
        EXPECT_TRUE(is_valid_bus_name(ok)) << ok;
    for (const char* bad : {"", ":", ":1", "org", "org.", ".org.x", "org..x", "org.9x", "9org.x", "a.b c", ":1..2"})
        EXPECT_FALSE(is_valid_bus_name(bad)) << bad;
    EXPECT_TRUE(is_valid_unique_name(":1.7"));
    EXPECT_FALSE(is_valid_unique_name("a.b"));
    EXPECT_TRUE(is_valid_well_known_name("a.b"));
    EXPECT_FALSE(is_valid_well_known_name(":1.7"));
}

TEST(Names, Utf8) {
    EXPECT_TRUE(is_valid_utf8(""));
    EXPECT_TRUE(is_valid_utf8("plain ascii"));
    EXPECT_TRUE(is_valid_utf8("\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80"));  // ä € 😀
    EXPECT_FALSE(is_valid_utf8(std::string("a\0b", 3)));
    EXPECT_FALSE(is_valid_utf8("\xc0\x80"));          // overlong NUL
    EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // beyond U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
    EXPECT_FALSE(is_valid_utf8("\x80"));              // stray continuation
    EXPECT_FALSE(is_valid_utf8("\xff"));
}

}  // namespace
}  // namespace afbus
