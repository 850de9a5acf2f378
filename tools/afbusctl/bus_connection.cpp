#include "bus_connection.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include "afbus/address.hpp"
#include "afbus/types.hpp"

namespace afbusctl {

using afbus::Error;
using afbus::Expected;
using afbus::Message;
using afbus::MessageBuilder;
using afbus::Unexpected;

std::string address_for_monitoring(const std::string& address) {
    auto entries = afbus::parse_address_list(address);
    if (!entries) return address;  // Connection::open reports what is wrong with it
    std::vector<afbus::AddressEntry> others;
    std::copy_if(entries->begin(), entries->end(), std::back_inserter(others),
                 [](const afbus::AddressEntry& entry) { return entry.transport() != "afbus"; });
    return others.empty() ? address : afbus::to_string(others);
}

Expected<std::unique_ptr<afbus::Connection>, std::string> connect_to_bus(const CommandLine& command_line, BusUse use) {
    auto address = select_bus_address(command_line, afbus::process_environment());
    if (!address) return Unexpected(address.error());
    afbus::ConnectOptions options;
    if (command_line.timeout) options.timeout = *command_line.timeout;
    auto connection =
        afbus::Connection::open(use == BusUse::Monitoring ? address_for_monitoring(*address) : *address, options);
    if (!connection) return Unexpected("Failed to connect to bus: " + connection.error().message);
    return std::move(*connection);
}

MessageBuilder BusClient::method_call(std::string_view destination, std::string_view path,
                                      std::string_view interface, std::string_view member) const {
    auto builder = MessageBuilder::method_call(destination, path, interface, member);
    std::uint8_t flags = 0;
    if (!command_line_.auto_start) flags |= afbus::message_flags::kNoAutoStart;
    if (command_line_.allow_interactive_authorization) flags |= afbus::message_flags::kAllowInteractiveAuthorization;
    builder.flags(flags);
    return builder;
}

Expected<Message, Error> BusClient::call(MessageBuilder builder) {
    auto message = builder.build();
    if (!message)
        return Unexpected(afbus::make_error(afbus::error_names::kInvalidArgs,
                                            "Failed to create bus message: " + std::string(to_string(message.error()))));
    return connection_.call(std::move(*message), timeout());
}

Expected<void, Error> BusClient::send_and_flush(Message message) {
    if (auto sent = connection_.send(std::move(message)); !sent) return Unexpected(sent.error());
    // send() queues what the socket does not take at once; process() writes it out.
    const auto deadline = std::chrono::steady_clock::now() + timeout();
    while (connection_.poll_events() & POLLOUT) {
        if (auto r = connection_.process(); !r) return Unexpected(r.error());
        if (!(connection_.poll_events() & POLLOUT)) break;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Unexpected(afbus::make_error(afbus::error_names::kTimeout, "Timed out sending the message"));
        pollfd fd{connection_.fd(), POLLOUT, 0};
        if (::poll(&fd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR)
            return Unexpected(afbus::make_error(afbus::error_names::kIOError, "poll failed"));
    }
    return {};
}

Expected<std::vector<std::string>, Error> BusClient::list_names(std::string_view member) {
    auto reply = call(method_call(kBusName, kBusPath, kBusInterface, member));
    if (!reply) return Unexpected(reply.error());
    auto names = afbus::read_all<std::vector<std::string>>(*reply);
    if (!names) return Unexpected(afbus::make_error(afbus::error_names::kInvalidArgs, "Unexpected reply to " + std::string(member)));
    return std::get<0>(std::move(*names));
}

Expected<std::string, Error> BusClient::name_owner(std::string_view name) {
    auto builder = method_call(kBusName, kBusPath, kBusInterface, "GetNameOwner");
    afbus::append(builder, std::string(name));
    auto reply = call(std::move(builder));
    if (!reply) return Unexpected(reply.error());
    auto owner = afbus::read_all<std::string>(*reply);
    if (!owner) return Unexpected(afbus::make_error(afbus::error_names::kInvalidArgs, "Unexpected reply to GetNameOwner"));
    return std::get<0>(std::move(*owner));
}

Expected<std::vector<afbus::Value>, std::string> body_values(const Message& message) {
    auto reader = message.reader();
    auto values = reader.read_all();
    if (!values) return Unexpected("Failed to read the message body: " + std::string(to_string(values.error())));
    return std::move(*values);
}

}  // namespace afbusctl
