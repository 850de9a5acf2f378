// The binary policy image: what the compiler writes loads back unchanged, and every kind of corruption
// is refused on load (the evaluators then trust it without further checks).
#include "policy_image.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "policy_compiler.hpp"

namespace afbus::policy {
namespace {

std::vector<std::byte> sample_image() {
    std::vector<SourceContext> source = {
        {SourceContext::Kind::Default,
         "",
         {{true, {{"user", "*"}}, "a.conf", 3},
          {false, {{"send_destination", "org.x"}, {"send_interface", "org.x.I"}, {"log", "true"}}, "a.conf", 4},
          {true, {{"receive_sender", "org.y"}, {"eavesdrop", "true"}}, "a.conf", 5}}},
        {SourceContext::Kind::Mandatory, "", {{true, {{"own_prefix", "org.z"}}, "b.conf", 9}}},
    };
    auto compiled = compile_policy(source);
    EXPECT_TRUE(compiled);
    return std::move(compiled->image);
}

template <typename T>
void poke(std::vector<std::byte>& bytes, std::size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

std::size_t rule_offset(std::size_t index, std::size_t field) {
    return sizeof(ImageHeader) + index * sizeof(RuleRecord) + field;
}

TEST(PolicyImage, RoundTrip) {
    auto bytes = sample_image();
    auto image = PolicyImage::load(bytes);
    ASSERT_TRUE(image) << image.error();
    ASSERT_EQ(image->rules().size(), 4u);
    ASSERT_EQ(image->contexts().size(), 2u);
    EXPECT_EQ(image->contexts()[0].rule_count, 3u);
    EXPECT_EQ(image->contexts()[1].first_rule, 3u);
    const RuleRecord& deny = image->rules()[1];
    EXPECT_EQ(image->string(deny.name), "org.x");
    EXPECT_EQ(image->string(deny.interface), "org.x.I");
    EXPECT_TRUE(deny.flags & kRuleLog);
    EXPECT_EQ(image->string(deny.file), "a.conf");
    EXPECT_EQ(deny.line, 4u);
    EXPECT_EQ(image->string(image->rules()[3].name), "org.z");
    EXPECT_EQ(image->bytes().size(), bytes.size());
}

TEST(PolicyImage, EmptyPolicyIsValid) {
    auto compiled = compile_policy({});
    ASSERT_TRUE(compiled);
    auto image = PolicyImage::load(std::move(compiled->image));
    ASSERT_TRUE(image);
    EXPECT_TRUE(image->rules().empty());
}

TEST(PolicyImage, RefusesCorruption) {
    const auto good = sample_image();
    struct Case {
        const char* what;
        std::function<void(std::vector<std::byte>&)> corrupt;
    };
    const std::vector<Case> cases = {
        {"truncated", [](auto& b) { b.resize(b.size() - 1); }},
        {"too short", [](auto& b) { b.resize(10); }},
        {"magic", [](auto& b) { poke<std::uint32_t>(b, 0, 0x12345678); }},
        {"version", [](auto& b) { poke<std::uint16_t>(b, 4, 2); }},
        {"rule count", [](auto& b) { poke<std::uint32_t>(b, offsetof(ImageHeader, rule_count), 5); }},
        {"huge rule count", [](auto& b) { poke<std::uint32_t>(b, offsetof(ImageHeader, rule_count), 0x40000000); }},
        {"bad kind", [](auto& b) { poke<std::uint8_t>(b, rule_offset(0, offsetof(RuleRecord, kind)), 9); }},
        {"bad verdict", [](auto& b) { poke<std::uint8_t>(b, rule_offset(0, offsetof(RuleRecord, verdict)), 3); }},
        {"unknown flag", [](auto& b) { poke<std::uint8_t>(b, rule_offset(0, offsetof(RuleRecord, flags)), 0x80); }},
        {"bad message type", [](auto& b) { poke<std::uint8_t>(b, rule_offset(1, offsetof(RuleRecord, message_type)), 5); }},
        {"string out of range", [](auto& b) { poke<std::uint32_t>(b, rule_offset(1, offsetof(RuleRecord, interface)), 100000); }},
        {"string mid-way", [](auto& b) { poke<std::uint32_t>(b, rule_offset(1, offsetof(RuleRecord, interface)), 1); }},
        {"name without match", [](auto& b) { poke<std::uint8_t>(b, rule_offset(1, offsetof(RuleRecord, name_match)), 0); }},
        {"reject without error", [](auto& b) { poke<std::uint32_t>(b, rule_offset(1, offsetof(RuleRecord, reject_error)), kNoString); }},
        {"fd bound", [](auto& b) { poke<std::uint32_t>(b, rule_offset(1, offsetof(RuleRecord, min_fds)), kMaxMessageFds + 1); }},
        {"context overlap", [](auto& b) {
             poke<std::uint32_t>(b, sizeof(ImageHeader) + 4 * sizeof(RuleRecord) + offsetof(ContextRecord, rule_count), 4); }},
        {"context gap", [](auto& b) {
             poke<std::uint32_t>(b, sizeof(ImageHeader) + 4 * sizeof(RuleRecord) + sizeof(ContextRecord) + offsetof(ContextRecord, first_rule), 2); }},
        {"unterminated strings", [](auto& b) { b.back() = std::byte{'x'}; }},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        auto bytes = good;
        c.corrupt(bytes);
        auto image = PolicyImage::load(std::move(bytes));
        EXPECT_FALSE(image);
    }
}

}  // namespace
}  // namespace afbus::policy
