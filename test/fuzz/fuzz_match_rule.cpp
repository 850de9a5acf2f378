// Parses arbitrary text as a match rule. What parses has a canonical form that parses back to an equal
// rule and prints identically; what does not parse is refused with an error, never a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "afbus/match_rule.hpp"
#include "fuzz_check.hpp"

using afbus::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto rule = afbus::MatchRule::parse(text);
    if (!rule) return 0;
    const std::string canonical = rule->to_string();
    auto again = afbus::MatchRule::parse(canonical);
    check(again.has_value(), "canonical form does not parse");
    check(*again == *rule, "canonical form parses to a different rule");
    check(again->to_string() == canonical, "canonical form is not stable");
    return 0;
}
