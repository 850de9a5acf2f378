// afbus::Proxy — typed access to one remote object (a destination and an object path) over a Connection:
// method calls whose arguments and results are C++ values, typed signal subscriptions, and properties.
// The types map to D-Bus as afbus/types.hpp describes; a reply or a signal whose signature is not the
// expected one is an Error (org.freedesktop.DBus.Error.InvalidSignature), never a misread value.
//
//   afbus::Proxy calc(*connection, "org.example.Calc", "/org/example/Calc");
//   auto sum = calc.call<std::int32_t>("org.example.Calc", "Add", 40, 2);   // Expected<std::int32_t, Error>
//
// A Proxy only refers to its Connection, which must outlive it (the Slots it hands out need not: they are
// the Connection's). Like the Connection, it is used from one thread; handlers run from the Connection's
// process(), never from inside call().
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/error.hpp"
#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "afbus/types.hpp"

namespace afbus {

inline constexpr std::string_view kPropertiesInterface = "org.freedesktop.DBus.Properties";

struct CallOptions {
    std::chrono::milliseconds timeout = kDefaultCallTimeout;
    // NO_REPLY_EXPECTED: the call returns once the message is queued, and nothing comes back, not even an
    // error. Only for calls without results (others fail with InvalidArgs without sending).
    bool no_reply = false;
    // NO_AUTO_START: the bus does not activate a destination that is not running; it answers NameHasNoOwner.
    bool no_auto_start = false;
};

namespace detail {

template <class... Ts>
struct Unpacked {
    using type = std::tuple<Ts...>;
};
template <>
struct Unpacked<> {
    using type = void;
};
template <class T>
struct Unpacked<T> {
    using type = T;
};

// Results that point into the message would dangle once the reply is gone.
template <class T>
inline constexpr bool borrows_from_message =
    std::is_same_v<T, std::string_view> || std::is_same_v<T, std::span<const std::uint8_t>>;

// The Error for a body that does not read as `expected` (InvalidSignature for other types, else
// InconsistentMessage), naming interface.member.
Error typed_read_error(std::string_view interface, std::string_view member, std::string_view got,
                       std::string_view expected, WireError why);

// Sets `member` from the property `name` of `all`, or `error` unless it holds an earlier one.
template <class M>
void read_property(const std::map<std::string, Variant>& all, std::string_view interface, std::string_view name,
                   M& member, std::optional<Error>& error) {
    if (error) return;
    const auto it = all.find(std::string(name));
    if (it == all.end()) {
        error = make_error(error_names::kUnknownProperty,
                           std::string(interface) + " has no property '" + std::string(name) + "'");
    } else if constexpr (std::is_same_v<M, Variant>) {
        member = it->second;
    } else {
        auto value = it->second.get<M>();
        if (value) member = std::move(*value);
        else error = typed_read_error(interface, name, it->second.type(), signature_of<M>, value.error());
    }
}

// A struct described with AFBUS_STRUCT from properties: each member from the property of its name.
template <class T>
Expected<T, Error> properties_as(const std::map<std::string, Variant>& all, std::string_view interface) {
    T out{};
    std::optional<Error> error;
    constexpr auto names = afbus_struct_member_names(static_cast<const T*>(nullptr));
    std::size_t at = 0;
    std::apply([&](auto... member) { (read_property(all, interface, names[at++], out.*member, error), ...); },
               afbus_struct_members(static_cast<const T*>(nullptr)));
    if (error) return Unexpected(std::move(*error));
    return out;
}

}  // namespace detail

// What a typed call returns and a typed signal handler receives: nothing (Expected<void, Error>), one
// value (Expected<T, Error>) or several (Expected<std::tuple<T...>, Error>); or the Error.
template <class... Ts>
using TypedResult = Expected<typename detail::Unpacked<Ts...>::type, Error>;

template <class... Ts>
using TypedHandler = std::function<void(TypedResult<Ts...>)>;

// The body of `message` read as exactly Ts; `interface` and `member` name it in the error.
template <class... Ts>
TypedResult<Ts...> read_typed(const Message& message, std::string_view interface, std::string_view member) {
    auto values = read_all<Ts...>(message);
    if (!values) {
        return Unexpected(detail::typed_read_error(interface, member, message.signature(),
                                                   signature_of_all<Ts...>.view(), values.error()));
    }
    if constexpr (sizeof...(Ts) == 0) {
        return {};
    } else if constexpr (sizeof...(Ts) == 1) {
        return std::get<0>(std::move(*values));
    } else {
        return std::move(*values);
    }
}

// One org.freedesktop.DBus.Properties.PropertiesChanged signal.
struct PropertiesChanged {
    std::string interface;
    std::map<std::string, Variant> changed;  // the new values
    std::vector<std::string> invalidated;    // changed, values not sent (Get them)
};

// The future-like result of Proxy::call_pending: the reply of a call in flight, which arrives while the
// connection's loop runs (process(), run_until(), or wait() below). Unlike std::future, waiting does not
// block the loop that delivers the reply: wait() runs it. Dropping a PendingCall forgets the call (its
// reply, when it comes, is discarded). Use it on the connection's thread only.
template <class... Results>
class [[nodiscard]] PendingCall {
public:
    PendingCall(Connection& connection, std::shared_ptr<std::optional<TypedResult<Results...>>> result,
                Slot slot)
        : connection_(&connection), result_(std::move(result)), slot_(std::move(slot)) {}

    // Whether the reply (or the error, timeout or disconnection that stands for it) has arrived.
    [[nodiscard]] bool ready() const noexcept { return result_->has_value(); }
    // What call() would have returned; only once ready() (before, it aborts, in every build type).
    [[nodiscard]] const TypedResult<Results...>& result() const& {
        detail::require(ready(), "PendingCall::result() before the reply");
        return **result_;
    }
    [[nodiscard]] TypedResult<Results...> take() && {
        detail::require(ready(), "PendingCall::take() before the reply");
        return std::move(**result_);
    }
    // Runs the connection's loop until the reply is there, at most `timeout` (the call's own timeout
    // also ends it, with NoReply): true once ready(), false if `timeout` passed first. Other messages
    // are dispatched meanwhile, as by run_until().
    Expected<bool, Error> wait(std::chrono::milliseconds timeout = kDefaultCallTimeout) {
        if (ready()) return true;
        return connection_->run_until([this] { return ready(); }, timeout);
    }

private:
    Connection* connection_;
    std::shared_ptr<std::optional<TypedResult<Results...>>> result_;
    Slot slot_;
};

class Proxy {
public:
    // `destination` is a bus name (empty on a peer-to-peer connection), `path` an object path.
    Proxy(Connection& connection, std::string destination, std::string path);

    [[nodiscard]] Connection& connection() const noexcept { return *connection_; }
    [[nodiscard]] const std::string& destination() const noexcept { return destination_; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    // --- Method calls: call<Results...>(interface, member, args...) ---

    // Calls and waits for the reply: its body read as Results (see TypedResult), or the error reply, a
    // timeout (NoReply), or a reply of another signature (InvalidSignature) as an Error.
    template <class... Results, class... Args>
    TypedResult<Results...> call(std::string_view interface, std::string_view member, const Args&... args) {
        return call<Results...>(CallOptions{}, interface, member, args...);
    }
    template <class... Results, class... Args>
    TypedResult<Results...> call(const CallOptions& options, std::string_view interface,
                                 std::string_view member, const Args&... args) {
        static_assert(!(detail::borrows_from_message<Results> || ...),
                      "a call's results outlive its reply: read std::string / std::vector<std::uint8_t>, "
                      "not std::string_view / std::span");
        if constexpr (sizeof...(Results) != 0) {
            if (options.no_reply) return Unexpected(no_reply_with_results(interface, member));
        }
        auto message = build_call(options, interface, member, args...);
        if (!message) return Unexpected(std::move(message).error());
        if constexpr (sizeof...(Results) == 0) {
            if (options.no_reply) return send_without_reply(std::move(*message));
        }
        auto reply = connection_->call(std::move(*message), options.timeout);
        if (!reply) return Unexpected(std::move(reply).error());
        return read_typed<Results...>(*reply, interface, member);
    }

    // Sends the call and returns at once; `handler` runs later from the Connection's process(), exactly
    // once, with what call() would have returned, unless the Slot is dropped first. An Error here means
    // nothing was sent and the handler will not run.
    template <class... Results, class... Args>
    Expected<Slot, Error> call_async(std::string_view interface, std::string_view member,
                                     std::type_identity_t<TypedHandler<Results...>> handler,
                                     const Args&... args) {
        return call_async<Results...>(CallOptions{}, interface, member, std::move(handler), args...);
    }
    template <class... Results, class... Args>
    Expected<Slot, Error> call_async(const CallOptions& options, std::string_view interface,
                                     std::string_view member,
                                     std::type_identity_t<TypedHandler<Results...>> handler,
                                     const Args&... args) {
        static_assert(!(detail::borrows_from_message<Results> || ...),
                      "a call's results outlive its reply: read std::string / std::vector<std::uint8_t>, "
                      "not std::string_view / std::span");
        if (options.no_reply) return Unexpected(no_reply_with_results(interface, member));
        auto message = build_call(options, interface, member, args...);
        if (!message) return Unexpected(std::move(message).error());
        return connection_->call_async(
            std::move(*message),
            [handler = std::move(handler), interface = std::string(interface),
             member = std::string(member)](Expected<Message, Error> reply) {
                if (!reply) {
                    handler(Unexpected(std::move(reply).error()));
                } else {
                    handler(read_typed<Results...>(*reply, interface, member));
                }
            },
            options.timeout);
    }

    // Sends the call and returns at once with its future-like result (PendingCall), which fills in while
    // the connection's loop runs. An Error here means nothing was sent.
    template <class... Results, class... Args>
    Expected<PendingCall<Results...>, Error> call_pending(std::string_view interface, std::string_view member,
                                                          const Args&... args) {
        return call_pending<Results...>(CallOptions{}, interface, member, args...);
    }
    template <class... Results, class... Args>
    Expected<PendingCall<Results...>, Error> call_pending(const CallOptions& options,
                                                          std::string_view interface, std::string_view member,
                                                          const Args&... args) {
        auto result = std::make_shared<std::optional<TypedResult<Results...>>>();
        auto slot = call_async<Results...>(
            options, interface, member,
            [weak = std::weak_ptr(result)](TypedResult<Results...> r) {
                if (auto target = weak.lock()) *target = std::move(r);
            },
            args...);
        if (!slot) return Unexpected(std::move(slot).error());
        return PendingCall<Results...>(*connection_, std::move(result), std::move(*slot));
    }

    // --- Signals ---

    // Subscribes to the signal interface.member from this proxy's destination and path (the match rule is
    // built here) until the Slot is dropped. The handler receives the arguments read as Args, or, for a
    // signal of another signature, an InvalidSignature Error naming both signatures: such a signal is
    // reported, never mis-read. Borrowing types (std::string_view) are valid during the handler only.
    template <class... Args>
    Expected<Slot, Error> on_signal(std::string_view interface, std::string_view member,
                                    std::type_identity_t<TypedHandler<Args...>> handler) {
        return subscribe_signal(interface, member, [handler = std::move(handler)](const Message& signal) {
            handler(read_typed<Args...>(signal, signal.interface(), signal.member()));
        });
    }

    // --- Properties (org.freedesktop.DBus.Properties) ---

    // The property's value as T; a value of another type is an InvalidSignature Error. T = Variant takes
    // any type; T = std::variant<...> any of its alternatives.
    template <class T>
    TypedResult<T> get(std::string_view interface, std::string_view property,
                       const CallOptions& options = {}) {
        return variant_as<T>(call<Variant>(options, kPropertiesInterface, "Get", interface, property),
                             interface, property);
    }
    // The same without waiting: `handler` runs later from the Connection's process(), exactly once, with
    // what get() would have returned, unless the Slot is dropped first.
    template <class T>
    Expected<Slot, Error> get_async(std::string_view interface, std::string_view property,
                                    std::type_identity_t<TypedHandler<T>> handler,
                                    const CallOptions& options = {}) {
        return call_async<Variant>(
            options, kPropertiesInterface, "Get",
            [handler = std::move(handler), interface = std::string(interface),
             property = std::string(property)](Expected<Variant, Error> value) {
                handler(variant_as<T>(std::move(value), interface, property));
            },
            interface, property);
    }

    // Sets the property to `value`, sent as a variant of T's type (a Variant or a std::variant as it is;
    // text as a string).
    template <class T>
    Expected<void, Error> set(std::string_view interface, std::string_view property, const T& value,
                              const CallOptions& options = {}) {
        if constexpr (std::is_same_v<T, Variant> || detail::IsStdVariant<T>::value) {
            return call<>(options, kPropertiesInterface, "Set", interface, property, value);
        } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
            return call<>(options, kPropertiesInterface, "Set", interface, property,
                          std::variant<std::string_view>(std::string_view(value)));
        } else {
            return call<>(options, kPropertiesInterface, "Set", interface, property, std::variant<T>(value));
        }
    }

    // Every property of `interface` with its value.
    Expected<std::map<std::string, Variant>, Error> get_all(std::string_view interface,
                                                            const CallOptions& options = {});
    // The properties of `interface` as a struct described with AFBUS_STRUCT: each listed member from the
    // property of the same name (others are ignored). A member without its property is an
    // UnknownProperty Error, one of another type an InvalidSignature Error.
    template <class T>
        requires detail::DescribedStruct<T>
    TypedResult<T> get_all(std::string_view interface, const CallOptions& options = {}) {
        auto all = get_all(interface, options);
        if (!all) return Unexpected(std::move(all).error());
        return detail::properties_as<T>(*all, interface);
    }

    // Subscribes to PropertiesChanged for `interface` on this proxy's destination and path until the Slot
    // is dropped; a malformed signal reaches the handler as an InvalidSignature Error.
    using PropertiesChangedHandler = std::function<void(Expected<PropertiesChanged, Error>)>;
    Expected<Slot, Error> on_properties_changed(std::string_view interface, PropertiesChangedHandler handler);

    // The match rule on_signal adds: type='signal', sender (if any), path, interface and member.
    [[nodiscard]] std::string signal_match_rule(std::string_view interface, std::string_view member) const;

private:
    // A property's value (or the error getting it) as T.
    template <class T>
    static TypedResult<T> variant_as(Expected<Variant, Error> value, std::string_view interface,
                                     std::string_view property) {
        if (!value) return Unexpected(std::move(value).error());
        if constexpr (std::is_same_v<T, Variant>) {
            return value;
        } else {
            auto typed = value->get<T>();
            if (!typed) {
                return Unexpected(detail::typed_read_error(interface, property, value->type(),
                                                           signature_of<T>, typed.error()));
            }
            return std::move(*typed);
        }
    }

    template <class... Args>
    Expected<Message, Error> build_call(const CallOptions& options, std::string_view interface,
                                        std::string_view member, const Args&... args) const {
        auto builder = start_call(options, interface, member);
        append(builder, args...);
        return finish_call(std::move(builder), interface, member);
    }
    [[nodiscard]] MessageBuilder start_call(const CallOptions& options, std::string_view interface,
                                            std::string_view member) const;
    [[nodiscard]] Expected<Message, Error> finish_call(MessageBuilder builder, std::string_view interface,
                                                       std::string_view member) const;
    Expected<void, Error> send_without_reply(Message message);
    [[nodiscard]] static Error no_reply_with_results(std::string_view interface, std::string_view member);
    Expected<Slot, Error> subscribe_signal(std::string_view interface, std::string_view member,
                                           Connection::MessageHandler handler);

    Connection* connection_;
    std::string destination_;
    std::string path_;
};

}  // namespace afbus
