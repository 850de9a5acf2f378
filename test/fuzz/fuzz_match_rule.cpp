// Parses arbitrary text as a match rule. What parses has a canonical form that parses back to an equal
// rule and prints identically, and a compiled record that loads as the same rule; what does not parse
// is refused with an error, never a crash.
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
    auto loaded = afbus::MatchRule::load(rule->compiled());
    check(loaded.has_value(), "the compiled record of a parsed rule does not load");
    check(*loaded == *rule, "the compiled record loads as another rule");
    const std::string canonical = rule->to_string();
    // Quoting apostrophes makes the canonical text longer than the input; past dbus-daemon's limit on a
    // rule's text it cannot parse again.
    if (canonical.size() > 1024) return 0;
    auto again = afbus::MatchRule::parse(canonical);
    check(again.has_value(), "canonical form does not parse");
    check(*again == *rule, "canonical form parses to a different rule");
    check(again->to_string() == canonical, "canonical form is not stable");
    return 0;
}
