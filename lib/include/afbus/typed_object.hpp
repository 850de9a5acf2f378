// Typed objects: an interface's methods, signals and properties described by C++ callables, whose
// parameter and result types give the D-Bus signatures (afbus/types.hpp), once. InterfaceBuilder turns
// them into the Interface that Connection::export_interface serves (afbus/object.hpp): the connection
// checks each call's signature against the one derived here, answers InvalidArgs otherwise, and generates
// the introspection XML from the names given here.
//
//   afbus::InterfaceBuilder calc("org.example.Calc");
//   calc.method("Add", [](std::int32_t a, std::int32_t b) { return a + b; }, {"a", "b"}, {"sum"});
//   const auto ticked = calc.signal<std::int32_t>("Ticked", {"count"});
//   calc.property("Count", [&] { return count; });
//   afbus::Object object(*connection, "/org/example/Calc");
//   if (auto added = object.add(std::move(calc)); !added) return fail(added.error());
//   object.emit(ticked, 1);
//
// A method's handler may
//   - return nothing, a value T, or std::tuple<T...> for several results (a D-Bus struct as one result is
//     a struct described with AFBUS_STRUCT, or a std::tuple inside the std::tuple);
//   - return Expected<R, Error> (R any of the above, or void) to answer with a D-Bus error;
//   - take a PendingReply<T...> as its first parameter and return void, to answer later (see below);
//   - take `const Message&`, first or right after the PendingReply, to see the call itself (its sender).
// The other parameters are the call's arguments, by value or const reference (std::string_view and
// std::span borrow from the call and are valid while the handler runs).
#pragma once

#include <cassert>
#include <concepts>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/error.hpp"
#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "afbus/object.hpp"
#include "afbus/types.hpp"

namespace afbus {

// A method's results, given later: a handler whose first parameter is a PendingReply<T...> returns void
// and answers with reply(T...) or fail(Error) exactly once, now or from a later turn of the connection's
// loop (after another asynchronous call, say). Copies share the one answer, so it can be captured by the
// std::function handlers of this library; when the last copy goes unanswered the caller gets
// org.freedesktop.DBus.Error.NoReply (see MethodReply). A call sent with NO_REPLY_EXPECTED is never
// answered, whatever is done here. Use it on the connection's thread only.
template <class... Ts>
class PendingReply {
public:
    explicit PendingReply(MethodReply reply) : reply_(std::make_shared<MethodReply>(std::move(reply))) {}

    // Sends the results (an Error if they could not be sent; the caller then gets a Failed error).
    Expected<void, Error> reply(const Ts&... results) {
        auto message = reply_->start();
        if constexpr (sizeof...(Ts) != 0) append(message, results...);
        return reply_->send(std::move(message));
    }
    Expected<void, Error> fail(const Error& error) { return reply_->send_error(error); }

    [[nodiscard]] bool pending() const noexcept { return reply_->pending(); }
    // False for a call sent with NO_REPLY_EXPECTED: the work may be skipped if it only computes results.
    [[nodiscard]] bool expects_reply() const noexcept { return reply_->expects_reply(); }

private:
    std::shared_ptr<MethodReply> reply_;
};

// A signal declared by InterfaceBuilder::signal<Args...>: its interface, name and argument types, to emit
// with Object::emit (or to build with message()).
template <class... Args>
class Signal {
public:
    Signal(std::string interface, std::string member) : interface_(std::move(interface)), member_(std::move(member)) {}
    [[nodiscard]] const std::string& interface() const noexcept { return interface_; }
    [[nodiscard]] const std::string& member() const noexcept { return member_; }

    // The signal from `path` with these arguments; InvalidArgs if they cannot be marshalled.
    Expected<Message, Error> message(std::string_view path, const Args&... args) const {
        auto builder = MessageBuilder::signal(path, interface_, member_);
        if constexpr (sizeof...(Args) != 0) append(builder, args...);
        auto built = std::move(builder).build();
        if (!built) {
            return Unexpected(make_error(error_names::kInvalidArgs, "Cannot emit " + interface_ + "." + member_ +
                                                                        ": " + std::string(to_string(built.error()))));
        }
        return std::move(*built);
    }

private:
    std::string interface_;
    std::string member_;
};

namespace detail {

// A callable's parameter and result types (lambdas without auto parameters, function pointers).
template <class F>
struct CallableTraits : CallableTraits<decltype(&F::operator())> {};
template <class R, class... A>
struct CallableTraits<R (*)(A...)> {
    using Result = R;
    using Parameters = std::tuple<A...>;
};
template <class R, class... A>
struct CallableTraits<R (*)(A...) noexcept> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...)> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) const> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) noexcept> : CallableTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct CallableTraits<R (C::*)(A...) const noexcept> : CallableTraits<R (*)(A...)> {};

// Whether a handler's parameter types can be read off it: not for a generic lambda (auto parameters), whose
// operator() is a template.
template <class F>
concept HasCallOperator = requires { &F::operator(); };
template <class F>
concept KnownSignature = std::is_function_v<std::remove_pointer_t<F>> || HasCallOperator<F>;

template <class T>
struct IsPendingReply : std::false_type {};
template <class... Ts>
struct IsPendingReply<PendingReply<Ts...>> : std::true_type {
    using Results = std::tuple<Ts...>;
};

template <class T>
struct IsExpected : std::false_type {};
template <class T>
struct IsExpected<Expected<T, Error>> : std::true_type {
    using Value = T;
};

template <class T>
struct IsTuple : std::false_type {};
template <class... Ts>
struct IsTuple<std::tuple<Ts...>> : std::true_type {};

// The D-Bus results of a handler's return type R, as a tuple of their types.
template <class R>
struct ResultsOf {
    using type = std::tuple<R>;
};
template <>
struct ResultsOf<void> {
    using type = std::tuple<>;
};
template <class... Ts>
struct ResultsOf<std::tuple<Ts...>> {
    using type = std::tuple<Ts...>;
};
template <class T>
struct ResultsOf<Expected<T, Error>> : ResultsOf<T> {};

template <class Tuple>
struct DecayedTuple;
template <class... Ts>
struct DecayedTuple<std::tuple<Ts...>> {
    using type = std::tuple<std::remove_cvref_t<Ts>...>;
};

// The decayed types of the parameters after the first Skip.
template <class Parameters, std::size_t Skip, class Indices = std::make_index_sequence<std::tuple_size_v<Parameters> - Skip>>
struct ParametersAfter;
template <class Parameters, std::size_t Skip, std::size_t... I>
struct ParametersAfter<Parameters, Skip, std::index_sequence<I...>> {
    using type = std::tuple<std::remove_cvref_t<std::tuple_element_t<Skip + I, Parameters>>...>;
};

// A handler's results: what it returns, or its PendingReply's types.
template <class Parameters, class Result, bool Deferred>
struct ResultsOfHandler {
    using type = typename DecayedTuple<typename ResultsOf<Result>::type>::type;
};
template <class Parameters, class Result>
struct ResultsOfHandler<Parameters, Result, true> {
    using type = typename IsPendingReply<std::remove_cvref_t<std::tuple_element_t<0, Parameters>>>::Results;
};

// Whether the parameter at `index` exists and satisfies Is.
template <class Parameters, std::size_t index, template <class> class Is>
constexpr bool parameter_is() {
    if constexpr (index >= std::tuple_size_v<Parameters>) return false;
    else return Is<std::tuple_element_t<index, Parameters>>::value;
}
template <class P>
struct IsPendingReplyParameter : IsPendingReply<std::remove_cvref_t<P>> {};
template <class P>
struct IsCallParameter : std::is_same<P, const Message&> {};

// What a method handler F looks like on the bus. Its parameters are, in this order: a PendingReply
// (optional: the handler answers later), `const Message&` (optional: the call itself), the arguments.
template <class F>
struct MethodShape {
    using Parameters = typename CallableTraits<F>::Parameters;
    using Result = typename CallableTraits<F>::Result;
    static constexpr bool deferred = parameter_is<Parameters, 0, IsPendingReplyParameter>();
    static constexpr bool takes_call = parameter_is<Parameters, deferred ? 1 : 0, IsCallParameter>();
    using In = typename ParametersAfter<Parameters, (deferred ? 1 : 0) + (takes_call ? 1 : 0)>::type;
    using Out = typename ResultsOfHandler<Parameters, Result, deferred>::type;
};

template <class... Ts>
std::vector<Argument> arguments(std::tuple<Ts...>*, std::vector<std::string> names) {
    static_assert((check_marshallable<Ts>() && ...));
    assert((names.empty() || names.size() == sizeof...(Ts)) && "one name per argument, or none");
    names.resize(sizeof...(Ts));
    std::vector<Argument> out;
    std::size_t at = 0;
    (out.push_back({std::move(names[at++]), std::string(signature_of<Ts>)}), ...);
    return out;
}

// InvalidArgs for a call whose body has the right signature but values the types refuse (a std::variant
// alternative, a std::array length).
Error undecodable_call(const Message& call, std::string_view expected, WireError why);

template <class... Ts>
Expected<std::tuple<Ts...>, Error> read_arguments(const Message& call, std::tuple<Ts...>*) {
    auto values = read_all<Ts...>(call);
    if (!values) return Unexpected(undecodable_call(call, signature_of_all<Ts...>.view(), values.error()));
    return std::move(*values);
}

// Appends what a handler returned.
template <class R>
Expected<void, Error> append_results(MessageBuilder& reply, R&& result) {
    using T = std::remove_cvref_t<R>;
    if constexpr (IsExpected<T>::value) {
        if (!result) return Unexpected(std::forward<R>(result).error());
        if constexpr (std::is_void_v<typename IsExpected<T>::Value>) return {};
        else return append_results(reply, *std::forward<R>(result));
    } else if constexpr (IsTuple<T>::value) {
        std::apply([&reply](const auto&... values) {
            if constexpr (sizeof...(values) != 0) append(reply, values...);
        }, result);
        return {};
    } else {
        append(reply, result);
        return {};
    }
}

template <class T>
using PropertyValue = std::remove_cvref_t<T>;

// A property setter's answer: it may return void or Expected<void, Error>.
template <class S, class T>
Expected<void, Error> call_setter(S& setter, T value) {
    if constexpr (std::is_void_v<std::invoke_result_t<S&, T&&>>) {
        setter(std::move(value));
        return {};
    } else {
        return setter(std::move(value));
    }
}

Error unreadable_property(std::string_view name, std::string_view expected, std::string_view got);

}  // namespace detail

// Describes one interface from typed callables; Object::add (or export_interface(build())) exports it.
class InterfaceBuilder {
public:
    explicit InterfaceBuilder(std::string name) { interface_.name = std::move(name); }

    [[nodiscard]] const std::string& name() const noexcept { return interface_.name; }
    // What has been described so far (what the connection will serve).
    [[nodiscard]] const Interface& description() const noexcept { return interface_; }
    [[nodiscard]] Interface build() && { return std::move(interface_); }

    // Adds method `name` served by `handler` (see the top of this file); `in_names` and `out_names`, one
    // per argument or none, name the arguments in the introspection data.
    template <class F>
    InterfaceBuilder& method(std::string name, F handler, std::vector<std::string> in_names = {},
                             std::vector<std::string> out_names = {}) {
        if constexpr (!detail::KnownSignature<F>) {
            static_assert(detail::dependent_false<F>,
                          "a method handler's parameter types give the D-Bus signature: write them out (no auto "
                          "parameters)");
            return *this;
        } else {
            return add_method(std::move(name), std::move(handler), std::move(in_names), std::move(out_names));
        }
    }

private:
    template <class F>
    InterfaceBuilder& add_method(std::string name, F handler, std::vector<std::string> in_names,
                                 std::vector<std::string> out_names) {
        using Shape = detail::MethodShape<F>;
        using In = typename Shape::In;
        using Out = typename Shape::Out;
        Method m{std::move(name), detail::arguments(static_cast<In*>(nullptr), std::move(in_names)),
                 detail::arguments(static_cast<Out*>(nullptr), std::move(out_names)), {}};
        if constexpr (Shape::deferred) {
            static_assert(std::is_void_v<typename Shape::Result>,
                          "a handler that answers through a PendingReply returns void");
            using Reply = std::remove_cvref_t<std::tuple_element_t<0, typename Shape::Parameters>>;
            m.deferred = [handler = std::move(handler)](const Message& call, MethodReply reply) mutable {
                auto args = detail::read_arguments(call, static_cast<In*>(nullptr));
                if (!args) {
                    (void)reply.send_error(args.error());
                    return;
                }
                std::apply(
                    [&](auto&&... values) {
                        if constexpr (Shape::takes_call) handler(Reply(std::move(reply)), call, std::move(values)...);
                        else handler(Reply(std::move(reply)), std::move(values)...);
                    },
                    std::move(*args));
            };
        } else {
            m.handler = [handler = std::move(handler)](const Message& call,
                                                       MessageBuilder& reply) mutable -> Expected<void, Error> {
                auto args = detail::read_arguments(call, static_cast<In*>(nullptr));
                if (!args) return Unexpected(std::move(args).error());
                auto invoke = [&](auto&&... values) -> typename Shape::Result {
                    if constexpr (Shape::takes_call) return handler(call, std::move(values)...);
                    else return handler(std::move(values)...);
                };
                if constexpr (std::is_void_v<typename Shape::Result>) {
                    std::apply(invoke, std::move(*args));
                    return {};
                } else {
                    return detail::append_results(reply, std::apply(invoke, std::move(*args)));
                }
            };
        }
        interface_.methods.push_back(std::move(m));
        return *this;
    }

public:

    // Adds method `name` served by the member function `fn` of `owner` (which must outlive the export),
    // with the same rules for its parameters and result as a callable's.
    template <class Class, class R, class... A>
    InterfaceBuilder& method(std::string name, Class& owner, R (Class::*fn)(A...),
                             std::vector<std::string> in_names = {}, std::vector<std::string> out_names = {}) {
        return method(
            std::move(name), [&owner, fn](A... args) -> R { return (owner.*fn)(std::forward<A>(args)...); },
            std::move(in_names), std::move(out_names));
    }
    template <class Class, class R, class... A>
    InterfaceBuilder& method(std::string name, const Class& owner, R (Class::*fn)(A...) const,
                             std::vector<std::string> in_names = {}, std::vector<std::string> out_names = {}) {
        return method(
            std::move(name), [&owner, fn](A... args) -> R { return (owner.*fn)(std::forward<A>(args)...); },
            std::move(in_names), std::move(out_names));
    }

    // Declares signal `name` with arguments of types Args (named by `arg_names`, one per argument or
    // none), for the introspection data; the returned Signal emits it (Object::emit).
    template <class... Args>
    [[nodiscard]] Signal<Args...> signal(std::string name, std::vector<std::string> arg_names = {}) {
        interface_.signals.push_back(
            {name, detail::arguments(static_cast<std::tuple<std::remove_cvref_t<Args>...>*>(nullptr),
                                     std::move(arg_names))});
        return Signal<Args...>(interface_.name, std::move(name));
    }

    // A read-only property: its type is what `get` returns.
    template <class Getter>
        requires std::invocable<Getter&>
    InterfaceBuilder& property(std::string name, Getter get) {
        using T = detail::PropertyValue<std::invoke_result_t<Getter&>>;
        add_property<T>(std::move(name), Property::Access::Read, std::move(get), nullptr);
        return *this;
    }
    // A read-write property: `set` takes the new value (a T, by value or const reference) and returns void
    // or Expected<void, Error> (an Error refuses the value; the caller gets it as the error reply).
    template <class Getter, class Setter>
        requires std::invocable<Getter&> &&
                 std::invocable<Setter&, detail::PropertyValue<std::invoke_result_t<Getter&>>&&>
    InterfaceBuilder& property(std::string name, Getter get, Setter set) {
        using T = detail::PropertyValue<std::invoke_result_t<Getter&>>;
        add_property<T>(std::move(name), Property::Access::ReadWrite, std::move(get), std::move(set));
        return *this;
    }
    // A write-only property of type T.
    template <class T, class Setter>
        requires std::invocable<Setter&, T&&>
    InterfaceBuilder& write_only_property(std::string name, Setter set) {
        add_property<T>(std::move(name), Property::Access::Write, nullptr, std::move(set));
        return *this;
    }
    // A property that is the data member `member` of `owner` (which must outlive the export), read-write
    // unless `access` says otherwise.
    template <class Class, class T>
    InterfaceBuilder& property(std::string name, Class& owner, T Class::*member,
                               Property::Access access = Property::Access::ReadWrite) {
        auto get = [&owner, member] { return owner.*member; };
        auto set = [&owner, member](T value) { owner.*member = std::move(value); };
        if (access == Property::Access::Read) add_property<T>(std::move(name), access, std::move(get), nullptr);
        else if (access == Property::Access::Write) add_property<T>(std::move(name), access, nullptr, std::move(set));
        else add_property<T>(std::move(name), access, std::move(get), std::move(set));
        return *this;
    }

private:
    template <class T, class Getter, class Setter>
    void add_property(std::string name, Property::Access access, Getter get, Setter set) {
        static_assert(detail::check_marshallable<T>());
        static_assert(!std::is_same_v<T, UnixFd>, "a property cannot hold an fd (it travels in a variant)");
        static_assert(!std::is_same_v<T, Variant> && !detail::IsStdVariant<T>::value,
                      "a property whose type varies (Variant, std::variant) is not supported: its value would "
                      "travel as the held type, not as the 'v' the introspection data would announce");
        Property p{std::move(name), std::string(signature_of<T>), access, {}, {}};
        if constexpr (!std::is_null_pointer_v<Getter>) {
            p.get = [get = std::move(get)]() mutable { return Variant(get()); };
        }
        if constexpr (!std::is_null_pointer_v<Setter>) {
            p.set = [set = std::move(set), property = p.name](const Variant& value) mutable -> Expected<void, Error> {
                auto typed = value.get<T>();
                if (!typed) return Unexpected(detail::unreadable_property(property, signature_of<T>, value.type()));
                return detail::call_setter(set, std::move(*typed));
            };
        }
        interface_.properties.push_back(std::move(p));
    }

    Interface interface_;
};

// One object path on a Connection and the interfaces exported there: each stays exported until it is
// removed or the Object is dropped (an ObjectManager above the path announces both). The Object refers to
// its Connection, which must outlive it, and is used on the Connection's thread.
class Object {
public:
    Object(Connection& connection, std::string path) : connection_(&connection), path_(std::move(path)) {}
    Object(Object&&) noexcept = default;
    Object& operator=(Object&&) noexcept = default;

    [[nodiscard]] Connection& connection() const noexcept { return *connection_; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    // Exports the interface now (an Error for an invalid path or name, or one already exported here).
    Expected<void, Error> add(InterfaceBuilder interface);
    Expected<void, Error> add(Interface interface);
    // Stops exporting `interface` (nothing if it is not exported here).
    void remove(std::string_view interface);

    // Emits `signal` from this object's path.
    template <class... Args>
    Expected<void, Error> emit(const Signal<Args...>& signal, const std::type_identity_t<Args>&... args) {
        auto message = signal.message(path_, args...);
        if (!message) return Unexpected(std::move(message).error());
        auto sent = connection_->send(std::move(*message));
        if (!sent) return Unexpected(std::move(sent).error());
        return {};
    }
    // org.freedesktop.DBus.Properties.PropertiesChanged with the current values of `names`.
    Expected<void, Error> emit_properties_changed(std::string_view interface, const std::vector<std::string>& names);

private:
    struct Exported {
        std::string interface;
        Slot slot;
    };
    Connection* connection_;
    std::string path_;
    std::vector<Exported> exported_;
};

}  // namespace afbus
