// afbus-bench: what the benchmark's peers say to each other on the bus. Every client library
// (bench_client.hpp) speaks exactly this, so that a comparison between libraries compares the same
// messages: the same names, paths, members, signatures and match rules.
#pragma once

#include <string>
#include <string_view>

namespace afbus::bench {

// The echo server (ping, ping-parallel, payload): Ping takes and returns nothing; Echo takes "ay" and
// returns the same bytes as "ay".
inline constexpr std::string_view kServerName = "org.afbus.Bench";
inline constexpr std::string_view kServerPath = "/org/afbus/Bench";
inline constexpr std::string_view kServerInterface = "org.afbus.Bench";

// The signals of fanout and matches: Tick and Sync, both with the body "st" (arg0, sequence number).
inline constexpr std::string_view kSignalPath = "/org/afbus/Bench/Signals";
inline constexpr std::string_view kSignalInterface = "org.afbus.Bench.Signals";

// The match rule of a subscriber: every signal of the bench interface, or only those whose arg0 is
// `arg0` (when it is not empty).
inline std::string match_rule(std::string_view arg0) {
    // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on "literal" + std::string.
    std::string rule = "type='signal',interface='";
    rule.append(kSignalInterface).append("'");
    if (!arg0.empty()) rule.append(",arg0='").append(arg0).append("'");
    return rule;
}

}  // namespace afbus::bench
