// Describing an object to export on a connection: its interfaces with methods, properties and signals.
// The connection checks a call's signature against the method's before the handler runs, answers
// org.freedesktop.DBus.Properties, .Introspectable and .Peer itself, and replies with the standard
// errors (UnknownObject, UnknownInterface, UnknownMethod, InvalidArgs, UnknownProperty, PropertyReadOnly).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "afbus/types.hpp"

namespace afbus {

struct Argument {
    std::string name;
    std::string signature;
};

struct Method {
    std::string name;
    std::vector<Argument> in;
    std::vector<Argument> out;
    // Reads its arguments from `call`, appends its results to `reply`. Returning an Error sends that error
    // instead of `reply`. The reply is not sent when the call has NO_REPLY_EXPECTED.
    std::function<Expected<void, Error>(const Message& call, MessageBuilder& reply)> handler;
};

struct Property {
    enum class Access : std::uint8_t { Read, Write, ReadWrite };
    std::string name;
    std::string signature;
    Access access = Access::Read;
    std::function<Variant()> get;                               // for Read and ReadWrite
    std::function<Expected<void, Error>(const Variant&)> set;  // for Write and ReadWrite
};

struct SignalDescription {
    std::string name;
    std::vector<Argument> args;
};

struct Interface {
    std::string name;
    std::vector<Method> methods;
    std::vector<Property> properties;
    std::vector<SignalDescription> signals;
};

[[nodiscard]] std::string joined_signature(const std::vector<Argument>& arguments);

// This machine's D-Bus id (org.freedesktop.DBus.Peer.GetMachineId): /etc/machine-id, else
// /var/lib/dbus/machine-id; nullopt if neither holds 32 hex digits.
[[nodiscard]] std::optional<std::string> machine_id();

}  // namespace afbus
