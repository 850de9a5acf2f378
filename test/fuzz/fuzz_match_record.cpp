// Loads arbitrary bytes as a compiled match rule record (the form the AF_BUS kernel filter is to
// evaluate). A record that loads is canonical: it is byte for byte the record of the rule its text
// form parses to. Whatever loads can be matched against a message without reading outside the record.
#include <cstdint>
#include <span>

#include "afbus/match_rule.hpp"
#include "fuzz_check.hpp"

using afbus::fuzz::check;

namespace {

const afbus::Message& sample_signal() {
    static const afbus::Message message = [] {
        auto builder = afbus::MessageBuilder::signal("/org/example/Object", "org.example.Interface", "Changed");
        builder.sender(":1.7");
        builder.append_value(afbus::Value::string("org.example.Name"));
        builder.append_value(afbus::Value::object_path("/org/example"));
        return builder.build(1).value();
    }();
    return message;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    auto rule = afbus::MatchRule::load(bytes);
    if (!rule) return 0;
    const auto compiled = rule->compiled();
    check(compiled.size() == size && std::equal(compiled.begin(), compiled.end(), bytes.begin()),
          "a loaded record is not kept as it was");
    (void)rule->matches(sample_signal());
    const std::string text = rule->to_string();
    // Quoting can make the text longer than dbus-daemon's limit on a rule's text; such a rule still
    // has a record, but no text that parses.
    if (text.size() <= 1024) {
        auto parsed = afbus::MatchRule::parse(text);
        check(parsed.has_value(), "the text form of a loaded record does not parse");
        check(*parsed == *rule, "the text form of a loaded record parses to another rule");
    }
    return 0;
}
