#include "name_signals.hpp"

#include <string>

#include "afbus/types.hpp"

namespace afbus::daemon {

MessageBuilder name_owner_changed(std::string_view name, std::string_view old_owner, std::string_view new_owner) {
    auto signal = MessageBuilder::signal(kDriverPath, kDriverInterface, "NameOwnerChanged");
    append(signal, std::string(name), std::string(old_owner), std::string(new_owner));
    return signal;
}

MessageBuilder name_lost(std::string_view to, std::string_view name) {
    auto signal = MessageBuilder::signal(kDriverPath, kDriverInterface, "NameLost");
    signal.destination(to);
    append(signal, std::string(name));
    return signal;
}

MessageBuilder name_acquired(std::string_view to, std::string_view name) {
    auto signal = MessageBuilder::signal(kDriverPath, kDriverInterface, "NameAcquired");
    signal.destination(to);
    append(signal, std::string(name));
    return signal;
}

}  // namespace afbus::daemon
