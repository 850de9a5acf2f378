// afbus::Proxy: the parts that do not depend on the argument types (afbus/proxy.hpp has the templates).
#include "afbus/proxy.hpp"

#include <utility>

namespace afbus {

namespace detail {

Error typed_read_error(std::string_view interface, std::string_view member, std::string_view got,
                       std::string_view expected, WireError why) {
    const bool other_types = why == WireError::TypeMismatch || why == WireError::NotEnoughArguments;
    std::string text = std::string(interface) + "." + std::string(member) + ": got signature '" +
                       std::string(got) + "', expected '" + std::string(expected) + "' (" +
                       std::string(to_string(why)) + ")";
    return make_error(other_types ? error_names::kInvalidSignature : error_names::kInconsistentMessage,
                      std::move(text));
}

}  // namespace detail

namespace {

// Appends key='value' to a match rule. Bus names, paths, interfaces and members cannot contain a quote,
// so no escaping is needed.
void append_match(std::string& rule, std::string_view key, std::string_view value) {
    rule += ',';
    rule += key;
    rule += "='";
    rule += value;
    rule += '\'';
}

}  // namespace

Proxy::Proxy(Connection& connection, std::string destination, std::string path)
    : connection_(&connection), destination_(std::move(destination)), path_(std::move(path)) {}

MessageBuilder Proxy::start_call(const CallOptions& options, std::string_view interface,
                                 std::string_view member) const {
    auto builder = MessageBuilder::method_call(destination_, path_, interface, member);
    builder.no_auto_start(options.no_auto_start);
    builder.no_reply_expected(options.no_reply);
    return builder;
}

Expected<Message, Error> Proxy::finish_call(MessageBuilder builder, std::string_view interface,
                                            std::string_view member) const {
    auto message = std::move(builder).build();
    if (!message) {
        return Unexpected(make_error(error_names::kInvalidArgs,
                                     "Cannot call " + std::string(interface) + "." + std::string(member) +
                                         " on " + path_ + ": " + std::string(to_string(message.error()))));
    }
    return std::move(*message);
}

Expected<void, Error> Proxy::send_without_reply(Message message) {
    auto serial = connection_->send(std::move(message));
    if (!serial) return Unexpected(std::move(serial).error());
    return {};
}

Error Proxy::no_reply_with_results(std::string_view interface, std::string_view member) {
    return make_error(error_names::kInvalidArgs, "Cannot wait for the reply of " + std::string(interface) +
                                                     "." + std::string(member) +
                                                     ": the call is sent with no_reply");
}

std::string Proxy::signal_match_rule(std::string_view interface, std::string_view member) const {
    std::string rule = "type='signal'";
    if (!destination_.empty()) append_match(rule, "sender", destination_);
    append_match(rule, "path", path_);
    append_match(rule, "interface", interface);
    append_match(rule, "member", member);
    return rule;
}

Expected<Slot, Error> Proxy::subscribe_signal(std::string_view interface, std::string_view member,
                                              Connection::MessageHandler handler) {
    return connection_->subscribe(signal_match_rule(interface, member), std::move(handler));
}

Expected<std::map<std::string, Variant>, Error> Proxy::get_all(std::string_view interface,
                                                               const CallOptions& options) {
    return call<std::map<std::string, Variant>>(options, kPropertiesInterface, "GetAll", interface);
}

Expected<Slot, Error> Proxy::on_properties_changed(std::string_view interface,
                                                   PropertiesChangedHandler handler) {
    // arg0 narrows it to `interface` on the bus already.
    std::string rule = signal_match_rule(kPropertiesInterface, "PropertiesChanged");
    append_match(rule, "arg0", interface);
    return connection_->subscribe(rule, [handler = std::move(handler)](const Message& signal) {
        auto args = read_typed<std::string, std::map<std::string, Variant>, std::vector<std::string>>(
            signal, signal.interface(), signal.member());
        if (!args) return handler(Unexpected(std::move(args).error()));
        auto& [interface_name, changed, invalidated] = *args;
        handler(PropertiesChanged{std::move(interface_name), std::move(changed), std::move(invalidated)});
    });
}

}  // namespace afbus
