// afbus-xml2cpp's signature-to-C++ mapping (tools/xml2cpp/cpp_type.hpp) and its C++ names
// (tools/xml2cpp/cpp_names.hpp). That the mapped types are the ones libafbus marshals with the same
// signature is checked here too, at compile time, on the strings this test expects.
#include <gtest/gtest.h>

#include <afbus/types.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "cpp_names.hpp"
#include "cpp_type.hpp"

namespace xml2cpp {
namespace {

std::string mapped(std::string_view type) {
    auto out = cpp_type(type);
    EXPECT_TRUE(out) << type << ": " << (out ? "" : out.error());
    return out ? *out : std::string();
}

std::string refused(std::string_view type) {
    auto out = cpp_type(type);
    EXPECT_FALSE(out) << type << " mapped to " << (out ? *out : "");
    return out ? std::string() : out.error();
}

TEST(Xml2cppTypes, EveryBasicType) {
    EXPECT_EQ(mapped("y"), "std::uint8_t");
    EXPECT_EQ(mapped("b"), "bool");
    EXPECT_EQ(mapped("n"), "std::int16_t");
    EXPECT_EQ(mapped("q"), "std::uint16_t");
    EXPECT_EQ(mapped("i"), "std::int32_t");
    EXPECT_EQ(mapped("u"), "std::uint32_t");
    EXPECT_EQ(mapped("x"), "std::int64_t");
    EXPECT_EQ(mapped("t"), "std::uint64_t");
    EXPECT_EQ(mapped("d"), "double");
    EXPECT_EQ(mapped("s"), "std::string");
    EXPECT_EQ(mapped("o"), "afbus::ObjectPath");
    EXPECT_EQ(mapped("g"), "afbus::Signature");
    EXPECT_EQ(mapped("h"), "afbus::UnixFd");
    EXPECT_EQ(mapped("v"), "afbus::Variant");
}

TEST(Xml2cppTypes, ContainersNest) {
    EXPECT_EQ(mapped("as"), "std::vector<std::string>");
    EXPECT_EQ(mapped("aay"), "std::vector<std::vector<std::uint8_t>>");
    EXPECT_EQ(mapped("a{sv}"), "std::map<std::string, afbus::Variant>");
    EXPECT_EQ(mapped("a{oa{sa{sv}}}"),
              "std::map<afbus::ObjectPath, std::map<std::string, std::map<std::string, afbus::Variant>>>");
    EXPECT_EQ(mapped("(ii)"), "std::tuple<std::int32_t, std::int32_t>");
    EXPECT_EQ(mapped("a(uss)"), "std::vector<std::tuple<std::uint32_t, std::string, std::string>>");
    EXPECT_EQ(mapped("(a{s(ax)}(b))"),
              "std::tuple<std::map<std::string, std::tuple<std::vector<std::int64_t>>>, std::tuple<bool>>");
    // The strings above are the types libafbus gives those signatures.
    static_assert(
        afbus::signature_of<
            std::map<afbus::ObjectPath, std::map<std::string, std::map<std::string, afbus::Variant>>>> ==
        std::string_view("a{oa{sa{sv}}}"));
    static_assert(afbus::signature_of<std::vector<std::tuple<std::uint32_t, std::string, std::string>>> ==
                  std::string_view("a(uss)"));
}

TEST(Xml2cppTypes, InvalidTypesSayWhy) {
    EXPECT_EQ(refused(""), "the type is empty");
    EXPECT_EQ(refused("z"), "character 1: 'z' is not a D-Bus type code");
    EXPECT_EQ(refused("a"), "a type is missing at the end");
    EXPECT_EQ(refused("()"), "character 2: a struct must have at least one member");
    EXPECT_EQ(refused("(i"), "character 2: a struct is not closed");
    EXPECT_EQ(refused("i)"), "'i)' is more than one type (the first ends at character 1)");
    EXPECT_EQ(refused("{sv}"), "character 1: '{' outside an array: a dict entry is only valid as 'a{...}'");
    EXPECT_EQ(refused("a{vs}"), "character 3: a dict entry's key must be a basic type, not 'v'");
    EXPECT_EQ(refused("a{s}"), "character 3: a dict entry has a key but no value");
    EXPECT_EQ(refused("a{sss}"), "character 5: a dict entry holds exactly one key and one value");
    EXPECT_EQ(refused("ii"), "'ii' is more than one type (the first ends at character 1)");
    // Nesting beyond the specification's 32 arrays is refused by libafbus's own validation.
    EXPECT_FALSE(cpp_type(std::string(33, 'a') + "i"));
}

TEST(Xml2cppTypes, SplitsSignatures) {
    auto types = split_signature("sa{sv}(ii)as");
    ASSERT_TRUE(types);
    EXPECT_EQ(*types, (std::vector<std::string>{"s", "a{sv}", "(ii)", "as"}));
    ASSERT_TRUE(split_signature(""));
    EXPECT_TRUE(split_signature("")->empty());
    EXPECT_FALSE(split_signature("s{"));
}

TEST(Xml2cppNames, IdentifiersAndKeywords) {
    EXPECT_EQ(cpp_identifier("transaction_id"), "transaction_id");
    EXPECT_EQ(cpp_identifier("class"), "class_");
    EXPECT_EQ(cpp_identifier("namespace"), "namespace_");
    EXPECT_EQ(cpp_identifier("assert"), "assert_");
    EXPECT_EQ(cpp_identifier("some-name.with spaces"), "some_name_with_spaces");
    EXPECT_EQ(cpp_identifier("3d"), "arg_3d");
    EXPECT_EQ(cpp_identifier(""), "");
    EXPECT_TRUE(is_cpp_keyword("co_await"));
    EXPECT_FALSE(is_cpp_keyword("Add"));
}

TEST(Xml2cppNames, ParameterNamesAreDistinct) {
    EXPECT_EQ(parameter_names({"a", "", "a", "new", "options"}, {"options"}),
              (std::vector<std::string>{"a", "arg1", "a_", "new_", "options_"}));
}

TEST(Xml2cppNames, InterfaceNamesGiveNamespaces) {
    const auto scope = scope_of_interface("org.freedesktop.DBus.Properties");
    EXPECT_EQ(scope.namespaces, (std::vector<std::string>{"org", "freedesktop", "DBus"}));
    EXPECT_EQ(scope.class_stem, "Properties");
    EXPECT_EQ(scope.qualified_namespace(), "org::freedesktop::DBus");
    EXPECT_EQ(scope_of_interface("com.example.new.Thing").qualified_namespace(), "com::example::new_");
}

}  // namespace
}  // namespace xml2cpp
