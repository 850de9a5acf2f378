#include "command_line.hpp"

#include <getopt.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "afbus/connection.hpp"

namespace afbusctl {

using afbus::Expected;
using afbus::Unexpected;

namespace {

enum Option : int {
    kVersion = 0x100,
    kNoPager,
    kNoLegend,
    kSystem,
    kUser,
    kAddress,
    kShowMachine,
    kUnique,
    kAcquired,
    kActivatable,
    kMatch,
    kSize,
    kList,
    kVerbose,
    kJson,
    kXmlInterface,
    kExpectReply,
    kAutoStart,
    kAllowInteractiveAuthorization,
    kTimeout,
    kAugmentCreds,
    kWatchBind,
    kDestination,
    kLimitMessages,
    kLimit,
};

const option kOptions[] = {
    {"help", no_argument, nullptr, 'h'},
    {"version", no_argument, nullptr, kVersion},
    {"no-pager", no_argument, nullptr, kNoPager},
    {"no-legend", no_argument, nullptr, kNoLegend},
    {"full", no_argument, nullptr, 'l'},
    {"system", no_argument, nullptr, kSystem},
    {"user", no_argument, nullptr, kUser},
    {"address", required_argument, nullptr, kAddress},
    {"show-machine", no_argument, nullptr, kShowMachine},
    {"unique", no_argument, nullptr, kUnique},
    {"acquired", no_argument, nullptr, kAcquired},
    {"activatable", no_argument, nullptr, kActivatable},
    {"match", required_argument, nullptr, kMatch},
    {"size", required_argument, nullptr, kSize},
    {"list", no_argument, nullptr, kList},
    {"quiet", no_argument, nullptr, 'q'},
    {"verbose", no_argument, nullptr, kVerbose},
    {"json", required_argument, nullptr, kJson},
    {"xml-interface", no_argument, nullptr, kXmlInterface},
    {"expect-reply", required_argument, nullptr, kExpectReply},
    {"auto-start", required_argument, nullptr, kAutoStart},
    {"allow-interactive-authorization", required_argument, nullptr, kAllowInteractiveAuthorization},
    {"timeout", required_argument, nullptr, kTimeout},
    {"augment-creds", required_argument, nullptr, kAugmentCreds},
    {"watch-bind", required_argument, nullptr, kWatchBind},
    {"destination", required_argument, nullptr, kDestination},
    {"limit-messages", required_argument, nullptr, kLimitMessages},
    {"limit", required_argument, nullptr, kLimit},
    {nullptr, 0, nullptr, 0},
};

Expected<bool, std::string> boolean_option(const char* name, const char* value) {
    auto parsed = parse_boolean_word(value);
    if (!parsed) return Unexpected("Failed to parse --" + std::string(name) + "= parameter '" + value + "'.");
    return *parsed;
}

}  // namespace

std::optional<bool> parse_boolean_word(const std::string& text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (std::string_view yes : {"1", "yes", "y", "true", "t", "on"})
        if (lower == yes) return true;
    for (std::string_view no : {"0", "no", "n", "false", "f", "off"})
        if (lower == no) return false;
    return std::nullopt;
}

Expected<std::chrono::milliseconds, std::string> parse_timespan(const std::string& text) {
    const auto invalid = [&] { return Unexpected("Failed to parse timeout value: " + text); };
    if (text == "infinity") return std::chrono::milliseconds(std::chrono::hours(24 * 365));
    // A sum of number+unit pairs, as systemd's parse_sec takes them ("1min 30s").
    double total_ms = 0;
    std::size_t at = 0;
    bool any = false;
    while (at < text.size()) {
        while (at < text.size() && text[at] == ' ') ++at;
        if (at >= text.size()) break;
        const char* start = text.c_str() + at;
        char* end = nullptr;
        errno = 0;
        const double number = std::strtod(start, &end);
        if (end == start || errno != 0 || number < 0 || !std::isfinite(number)) return invalid();
        at += static_cast<std::size_t>(end - start);
        std::size_t unit_end = at;
        while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end]))) ++unit_end;
        const std::string unit = text.substr(at, unit_end - at);
        at = unit_end;
        double scale;
        if (unit.empty() || unit == "s" || unit == "sec" || unit == "second" || unit == "seconds") scale = 1000;
        else if (unit == "ms" || unit == "msec") scale = 1;
        else if (unit == "us" || unit == "usec") scale = 0.001;
        else if (unit == "m" || unit == "min" || unit == "minute" || unit == "minutes") scale = 60'000;
        else if (unit == "h" || unit == "hr" || unit == "hour" || unit == "hours") scale = 3'600'000;
        else return invalid();
        total_ms += number * scale;
        any = true;
    }
    if (!any) return invalid();
    // sd-bus treats 0 as "the default"; so do we.
    if (total_ms <= 0) return afbus::kDefaultCallTimeout;
    return std::chrono::milliseconds(static_cast<long long>(std::ceil(total_ms)));
}

Expected<CommandLine, std::string> parse_command_line(int argc, char* const* argv) {
    CommandLine out;
    optind = 0;  // reset getopt: tests parse many command lines in one process
    opterr = 1;  // getopt says what is wrong with an option, as busctl's does
    for (;;) {
        const int c = getopt_long(argc, argv, "hH:M:C:J:qjl", kOptions, nullptr);
        if (c == -1) break;
        switch (c) {
            case 'h': out.help = true; break;
            case kVersion: out.version = true; break;
            case kNoPager: out.no_pager = true; break;
            case kNoLegend: out.no_legend = true; break;
            case 'l': out.full = true; break;
            case kSystem: out.bus = BusChoice::System; break;
            case kUser: out.bus = BusChoice::User; break;
            case kAddress:
                out.bus = BusChoice::Address;
                out.address = optarg;
                break;
            case kUnique: out.unique = true; break;
            case kAcquired: out.acquired = true; break;
            case kActivatable: out.activatable = true; break;
            case kMatch: out.matches.emplace_back(optarg); break;
            case 'q': out.quiet = true; break;
            case kXmlInterface: out.xml_interface = true; break;
            case kJson: {
                const std::string_view mode = optarg;
                if (mode == "short") out.json = JsonMode::Short;
                else if (mode == "pretty") out.json = JsonMode::Pretty;
                else if (mode == "off") out.json = JsonMode::Off;
                else if (mode == "help") return Unexpected(std::string("Available JSON modes:\nshort\npretty\noff"));
                else return Unexpected("Unknown argument to --json= switch: " + std::string(mode));
                break;
            }
            case 'j': out.json = ::isatty(STDOUT_FILENO) ? JsonMode::Pretty : JsonMode::Short; break;
            case kExpectReply: {
                auto b = boolean_option("expect-reply", optarg);
                if (!b) return Unexpected(b.error());
                out.expect_reply = *b;
                break;
            }
            case kAutoStart: {
                auto b = boolean_option("auto-start", optarg);
                if (!b) return Unexpected(b.error());
                out.auto_start = *b;
                break;
            }
            case kAllowInteractiveAuthorization: {
                auto b = boolean_option("allow-interactive-authorization", optarg);
                if (!b) return Unexpected(b.error());
                out.allow_interactive_authorization = *b;
                break;
            }
            case kAugmentCreds:
            case kWatchBind: {
                // Accepted for busctl's sake; afbusctl always reads /proc for what the bus does not report.
                auto b = boolean_option(c == kAugmentCreds ? "augment-creds" : "watch-bind", optarg);
                if (!b) return Unexpected(b.error());
                break;
            }
            case kTimeout: {
                auto t = parse_timespan(optarg);
                if (!t) return Unexpected(t.error());
                out.timeout = *t;
                break;
            }
            case kDestination: out.destination = optarg; break;
            case kLimitMessages: {
                char* end = nullptr;
                errno = 0;
                const unsigned long long n = std::strtoull(optarg, &end, 10);
                if (*optarg == '\0' || *end != '\0' || errno != 0 || *optarg == '-')
                    return Unexpected("Failed to parse --limit-messages= parameter: " + std::string(optarg));
                out.limit_messages = n;
                break;
            }
            case kList: out.list_paths = true; break;
            case kLimit: out.limits.emplace_back(optarg); break;
            case kSize: {
                char* end = nullptr;
                errno = 0;
                const unsigned long long n = std::strtoull(optarg, &end, 10);
                if (*optarg == '\0' || *end != '\0' || errno != 0 || *optarg == '-' || n == 0 || n > 0xFFFFFFFFull)
                    return Unexpected("Failed to parse --size= parameter: " + std::string(optarg));
                out.capture_size = static_cast<std::uint32_t>(n);
                break;
            }
            case kShowMachine:
            case kVerbose:
                // Accepted; their effect is documented in afbusctl(1) where it differs.
                break;
            case 'H': return Unexpected(std::string("afbusctl does not support -H/--host: connect with --address= instead."));
            case 'M': return Unexpected(std::string("afbusctl does not support -M/--machine: connect with --address= instead."));
            case '?': return Unexpected(std::string());  // getopt has said what is wrong
            default: return Unexpected("Unhandled option " + std::to_string(c));
        }
    }
    if (optind < argc) out.verb = argv[optind++];
    for (int i = optind; i < argc; ++i) out.arguments.emplace_back(argv[i]);
    return out;
}

Expected<std::string, std::string> select_bus_address(const CommandLine& command_line,
                                                      const afbus::EnvironmentLookup& environment) {
    if (command_line.bus == BusChoice::Address) {
        auto parsed = afbus::parse_address_list(command_line.address);
        if (!parsed)
            return Unexpected("Failed to parse address '" + command_line.address +
                              "': " + std::string(afbus::to_string(parsed.error())));
        return command_line.address;
    }
    auto entries = command_line.bus == BusChoice::User ? afbus::session_bus_address(environment)
                                                      : afbus::system_bus_address(environment);
    if (!entries)
        return Unexpected(std::string(command_line.bus == BusChoice::User ? "Failed to connect to user bus: "
                                                                           : "Failed to connect to system bus: ") +
                          std::string(afbus::to_string(entries.error())));
    return afbus::to_string(*entries);
}

}  // namespace afbusctl
