// Connecting to the bus the command line selects, and the method-call plumbing every command shares:
// the flags busctl sets from --expect-reply=, --auto-start= and --allow-interactive-authorization=, and
// the --timeout= of each call.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "command_line.hpp"

namespace afbusctl {

inline constexpr std::string_view kBusName = "org.freedesktop.DBus";
inline constexpr std::string_view kBusPath = "/org/freedesktop/DBus";
inline constexpr std::string_view kBusInterface = "org.freedesktop.DBus";

// What the connection is for. A monitor cannot watch a bus over AF_BUS (the kernel delivers the
// traffic between clients to them directly; the bus shows it to monitors on its unix socket,
// docs/kernel-mode.md), so monitor and capture skip the afbus: entries of an address list that has others.
enum class BusUse { Calls, Monitoring };

// The error is what to print ("Failed to connect to bus: ...").
afbus::Expected<std::unique_ptr<afbus::Connection>, std::string> connect_to_bus(const CommandLine& command_line,
                                                                                BusUse use = BusUse::Calls);
// `address` without its afbus: entries, unless it has no other (then as it is, and the bus says why).
std::string address_for_monitoring(const std::string& address);

class BusClient {
public:
    BusClient(const CommandLine& command_line, afbus::Connection& connection)
        : command_line_(command_line), connection_(connection) {}

    [[nodiscard]] afbus::Connection& connection() { return connection_; }
    [[nodiscard]] const CommandLine& command_line() const { return command_line_; }
    [[nodiscard]] std::chrono::milliseconds timeout() const {
        return command_line_.timeout.value_or(afbus::kDefaultCallTimeout);
    }

    // A method call with the flags of the command line applied (NO_AUTO_START, interactive authorization).
    [[nodiscard]] afbus::MessageBuilder method_call(std::string_view destination, std::string_view path,
                                                    std::string_view interface, std::string_view member) const;
    // Sends and waits for the reply (an error reply comes back as the error).
    afbus::Expected<afbus::Message, afbus::Error> call(afbus::MessageBuilder builder);
    // Sends without waiting for anything, and returns once the message has left this process.
    afbus::Expected<void, afbus::Error> send_and_flush(afbus::Message message);

    // org.freedesktop.DBus calls the commands share.
    afbus::Expected<std::vector<std::string>, afbus::Error> list_names(std::string_view member);  // ListNames...
    afbus::Expected<std::string, afbus::Error> name_owner(std::string_view name);

private:
    const CommandLine& command_line_;
    afbus::Connection& connection_;
};

// Reads a reply's whole body as dynamic values (the error names the broken part).
afbus::Expected<std::vector<afbus::Value>, std::string> body_values(const afbus::Message& message);

}  // namespace afbusctl
