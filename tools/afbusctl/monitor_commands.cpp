#include "monitor_commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <span>

#include "afbus/types.hpp"
#include "call_commands.hpp"
#include "locale_glyphs.hpp"
#include "message_dump.hpp"
#include "pcapng.hpp"

#ifndef AFBUSCTL_VERSION
#define AFBUSCTL_VERSION "unknown"
#endif

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

namespace {

// What monitor and capture do with each message; false ends the watch with a failure.
using MessageSink = std::function<bool(const afbus::Message&, std::chrono::system_clock::time_point)>;

// Becomes a monitor and hands each message to `sink` until --limit-messages= or the bus goes away.
int watch_bus(BusClient& bus, const MessageSink& sink) {
    for (const std::string& service : bus.command_line().arguments)
        if (!check_bus_name(service)) return 1;
    const auto limit = bus.command_line().limit_messages;
    std::uint64_t shown = 0;
    bool failed = false;
    const auto done = [&] { return failed || (limit && shown >= *limit); };
    const auto handle = [&](const afbus::Message& message) {
        if (done()) return;
        if (!sink(message, std::chrono::system_clock::now())) failed = true;
        ++shown;
    };
    if (auto became = bus.connection().become_monitor(monitor_rules(bus.command_line()), handle); !became) {
        std::fprintf(stderr, "Call to org.freedesktop.DBus.Monitoring.BecomeMonitor failed: %s\n",
                     became.error().message.c_str());
        return 1;
    }
    // Only now is everything from here on shown (a test waits for this line).
    std::fprintf(stderr, "Monitoring bus message stream.\n");
    std::fflush(stderr);
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

bool write_all(std::span<const std::byte> bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) return false;
    return std::fflush(stdout) == 0;
}

}  // namespace

int run_monitor(BusClient& bus) {
    const bool utf8 = locale_is_utf8();
    return watch_bus(bus, [&](const afbus::Message& message, std::chrono::system_clock::time_point now) {
        if (bus.command_line().json != JsonMode::Off) {
            auto json = message_to_json(message, now);
            if (!json) {
                std::fprintf(stderr, "%s\n", json.error().c_str());
                return false;
            }
            std::printf("%s\n", json->dump(bus.command_line().json).c_str());
        } else {
            const std::string text = dump_message(message, now, utf8);
            std::fwrite(text.data(), 1, text.size(), stdout);
        }
        return std::fflush(stdout) == 0;
    });
}

int run_capture(BusClient& bus) {
    if (::isatty(STDOUT_FILENO)) {
        std::fprintf(stderr, "Refusing to write message data to console, please redirect output to a file.\n");
        return 1;
    }
    const std::uint32_t snap_length = bus.command_line().capture_size;
    if (!write_all(pcapng_section_header(operating_system_name(), "afbusctl (afbus) " AFBUSCTL_VERSION)) ||
        !write_all(pcapng_interface_description(snap_length))) {
        std::fprintf(stderr, "Failed to write the capture header.\n");
        return 1;
    }
    return watch_bus(bus, [&](const afbus::Message& message, std::chrono::system_clock::time_point now) {
        const auto microseconds = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
        if (write_all(pcapng_enhanced_packet(message.wire(), snap_length, static_cast<std::uint64_t>(microseconds))))
            return true;
        std::fprintf(stderr, "Failed to write a captured message.\n");
        return false;
    });
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
    // Without --timeout= it waits for as long as it takes, an hour's run_until at a time.
    const auto timeout = bus.command_line().timeout;
    const auto deadline = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::milliseconds(0));
    bool arrived = false;
    while (!arrived) {
        auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(kWaitSlice);
        if (timeout) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            slice = std::min(slice, left);
        }
        auto ran = bus.connection().run_until([&] { return received.has_value(); }, slice);
        if (!ran) {
            std::fprintf(stderr, "Failed to wait for signal: %s\n", ran.error().message.c_str());
            return 1;
        }
        arrived = *ran;
    }
    if (!arrived) {
        std::fprintf(stderr, "Timed out waiting for signal %s.%s.\n", args[at + 1].c_str(), args[at + 2].c_str());
        return 1;
    }
    if (bus.command_line().quiet) return 0;
    return print_body(bus.command_line(), *received) ? 0 : 1;
}

}  // namespace afbusctl
