// Describing an object to export on a connection: its interfaces with methods, properties and signals.
// The connection checks a call's signature against the method's before the handler runs, answers
// org.freedesktop.DBus.Properties, .Introspectable and .Peer itself, and replies with the standard
// errors (UnknownObject, UnknownInterface, UnknownMethod, InvalidArgs, UnknownProperty, PropertyReadOnly).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "afbus/types.hpp"

namespace afbus {

namespace detail {
class ConnectionState;
}

// The answer to one method call, given later: a Method's `deferred` handler receives one and answers
// through it exactly once (replying twice is a programming error), from the connection's thread, at once
// or from a later process(). Dropping it unanswered answers org.freedesktop.DBus.Error.NoReply: the caller
// learns at once that no reply will come, as it would after its timeout. For a call sent with
// NO_REPLY_EXPECTED nothing is ever sent, whatever is done with it. It only refers to its connection: once
// that is gone, answering fails with Disconnected.
class MethodReply {
public:
    MethodReply(std::weak_ptr<detail::ConnectionState> connection, const Message& call);
    MethodReply(MethodReply&& other) noexcept;
    MethodReply& operator=(MethodReply&& other) noexcept;
    MethodReply(const MethodReply&) = delete;
    MethodReply& operator=(const MethodReply&) = delete;
    // Sends the NoReply error if still pending: a destructor that does work, because an unanswered call
    // would otherwise hang its caller until the timeout (sending never throws nor blocks: it queues).
    ~MethodReply();

    // A method return addressed to the caller: append the results, then send() it.
    [[nodiscard]] MessageBuilder start() const;
    Expected<void, Error> send(MessageBuilder reply);
    Expected<void, Error> send_error(const Error& error);

    [[nodiscard]] bool pending() const noexcept { return pending_; }
    [[nodiscard]] bool expects_reply() const noexcept { return expects_reply_; }

private:
    Expected<void, Error> answer(MessageBuilder message);

    std::weak_ptr<detail::ConnectionState> connection_;
    std::string caller_;
    std::string method_;  // interface.member, for messages
    std::uint32_t serial_ = 0;
    bool expects_reply_ = false;
    bool pending_ = false;  // false once answered or moved from
};

struct Argument {
    std::string name;
    std::string signature;
    friend bool operator==(const Argument&, const Argument&) = default;
};

struct Method {
    std::string name;
    std::vector<Argument> in;
    std::vector<Argument> out;
    // Reads its arguments from `call`, appends its results to `reply`. Returning an Error sends that error
    // instead of `reply`. The reply is not sent when the call has NO_REPLY_EXPECTED.
    std::function<Expected<void, Error>(const Message& call, MessageBuilder& reply)> handler;
    // Instead of `handler`, when set: receives the call's MethodReply and answers through it, now or
    // later; the connection sends nothing itself.
    std::function<void(const Message& call, MethodReply reply)> deferred = {};
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
