#include "monitor_commands.hpp"

#include <langinfo.h>

#include <cstdio>
#include <cstring>

#include "afbus/types.hpp"
#include "call_commands.hpp"
#include "locale_glyphs.hpp"
#include "message_dump.hpp"

namespace afbusctl {

namespace {

// An hour-long wait is what "forever" means for run_until; the loop goes round again after it.
constexpr std::chrono::hours kWaitSlice{1};

}  // namespace

std::vector<std::string> monitor_rules(const CommandLine& command_line) {
    std::vector<std::string> rules = command_line.matches;
    for (const std::string& service : command_line.arguments) {
        rules.push_back("sender='" + service + "'");
        rules.push_back("destination='" + service + "'");
    }
    return rules;
}

int run_monitor(BusClient& bus) {
    for (const std::string& service : bus.command_line().arguments)
        if (!check_bus_name(service)) return 1;
    const bool utf8 = locale_is_utf8();
    const auto limit = bus.command_line().limit_messages;
    std::uint64_t shown = 0;
    bool failed = false;
    const auto show = [&](const afbus::Message& message) {
        if (failed || (limit && shown >= *limit)) return;
        const auto now = std::chrono::system_clock::now();
        if (bus.command_line().json != JsonMode::Off) {
            auto json = message_to_json(message, now);
            if (!json) {
                std::fprintf(stderr, "%s\n", json.error().c_str());
                failed = true;
                return;
            }
            std::printf("%s\n", json->dump(bus.command_line().json).c_str());
        } else {
            const std::string text = dump_message(message, now, utf8);
            std::fwrite(text.data(), 1, text.size(), stdout);
        }
        std::fflush(stdout);
        ++shown;
    };
    if (auto became = bus.connection().become_monitor(monitor_rules(bus.command_line()), show); !became) {
        std::fprintf(stderr, "Call to org.freedesktop.DBus.Monitoring.BecomeMonitor failed: %s\n",
                     became.error().message.c_str());
        return 1;
    }
    // Only now is everything from here on shown (a test waits for this line).
    std::fprintf(stderr, "Monitoring bus message stream.\n");
    std::fflush(stderr);
    const auto done = [&] { return failed || (limit && shown >= *limit); };
    while (!done()) {
        auto ran = bus.connection().run_until(done, kWaitSlice);
        if (!ran) {
            // A monitor ends when the bus goes away; busctl says so and fails.
            std::fprintf(stderr, "Connection terminated, exiting.\n");
            return 1;
        }
    }
    return failed ? 1 : 0;
}

int run_wait(BusClient& bus) {
    const auto& args = bus.command_line().arguments;
    if (args.size() != 3 && args.size() != 4) {
        std::fprintf(stderr, "Expects [SERVICE] OBJECT INTERFACE SIGNAL.\n");
        return 1;
    }
    const std::size_t at = args.size() - 3;
    if (at == 1 && !check_bus_name(args[0])) return 1;
    if (!check_object_path(args[at]) || !check_interface(args[at + 1]) || !check_member(args[at + 2])) return 1;
    std::string rule = "type='signal',path='" + args[at] + "',interface='" + args[at + 1] + "',member='" + args[at + 2] + "'";
    if (at == 1) rule += ",sender='" + args[0] + "'";
    std::optional<afbus::Message> received;
    auto subscription = bus.connection().subscribe(rule, [&](const afbus::Message& message) {
        if (received) return;
        auto copy = message.clone();
        if (copy) received = std::move(*copy);
    });
    if (!subscription) {
        std::fprintf(stderr, "Failed to add match: %s\n", subscription.error().message.c_str());
        return 1;
    }
    // Ready: the match is on the bus (a test waits for this line before it emits).
    std::fprintf(stderr, "Waiting for signal %s.%s on %s.\n", args[at + 1].c_str(), args[at + 2].c_str(),
                 args[at].c_str());
    std::fflush(stderr);
    const auto timeout = bus.command_line().timeout.value_or(std::chrono::duration_cast<std::chrono::milliseconds>(kWaitSlice * 24 * 365));
    auto ran = bus.connection().run_until([&] { return received.has_value(); }, timeout);
    if (!ran) {
        std::fprintf(stderr, "Failed to wait for signal: %s\n", ran.error().message.c_str());
        return 1;
    }
    if (!*ran) {
        std::fprintf(stderr, "Timed out waiting for signal %s.%s.\n", args[at + 1].c_str(), args[at + 2].c_str());
        return 1;
    }
    if (bus.command_line().quiet) return 0;
    return print_body(bus.command_line(), *received) ? 0 : 1;
}

}  // namespace afbusctl
