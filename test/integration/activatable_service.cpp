// A service for the activation tests, started by the bus from a .service file:
//   activatable-service NAME [MODE]
// It connects to $DBUS_STARTER_ADDRESS, takes NAME and serves org.afbus.Test at /org/afbus/Test
// (Echo(s) -> s; Getenv(s) -> s, "" when unset; Quit()) until the bus goes away or Quit is called.
// MODE makes it misbehave the ways activation must cope with:
//   fork          daemonize first: the started process exits 0 and a child serves
//   exit:N        exit with status N without connecting
//   kill          die of SIGKILL without connecting
//   idle          connect but never take NAME
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "afbus/connection.hpp"
#include "afbus/object.hpp"
#include "afbus/types.hpp"

namespace {

int serve(const std::string& name, bool take_name) {
    const char* address = std::getenv("DBUS_STARTER_ADDRESS");
    if (!address) {
        std::fprintf(stderr, "activatable-service: DBUS_STARTER_ADDRESS is not set\n");
        return 2;
    }
    auto connection = afbus::Connection::open(address);
    if (!connection) {
        std::fprintf(stderr, "activatable-service: cannot connect: %s\n", connection.error().message.c_str());
        return 2;
    }
    afbus::Connection& bus = **connection;
    afbus::Interface interface;
    interface.name = "org.afbus.Test";
    interface.methods.push_back({"Echo", {{"text", "s"}}, {{"text", "s"}},
                                 [](const afbus::Message& call, afbus::MessageBuilder& reply) -> afbus::Expected<void, afbus::Error> {
                                     auto [text] = afbus::read_all<std::string>(call).value();
                                     afbus::append(reply, text);
                                     return {};
                                 }});
    interface.methods.push_back({"Getenv", {{"name", "s"}}, {{"value", "s"}},
                                 [](const afbus::Message& call, afbus::MessageBuilder& reply) -> afbus::Expected<void, afbus::Error> {
                                     auto [variable] = afbus::read_all<std::string>(call).value();
                                     const char* value = std::getenv(variable.c_str());
                                     afbus::append(reply, std::string(value ? value : ""));
                                     return {};
                                 }});
    interface.methods.push_back({"Quit", {}, {},
                                 [&bus](const afbus::Message&, afbus::MessageBuilder&) -> afbus::Expected<void, afbus::Error> {
                                     bus.stop();
                                     return {};
                                 }});
    auto slot = bus.export_interface("/org/afbus/Test", std::move(interface));
    if (!slot) return 2;
    if (take_name && !bus.request_name(name)) return 2;
    (void)bus.run();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: activatable-service NAME [fork|exit:N|kill|idle]\n");
        return 2;
    }
    const std::string name = argv[1];
    const std::string_view mode = argc > 2 ? argv[2] : "";
    if (mode.starts_with("exit:")) return std::atoi(argv[2] + 5);
    if (mode == "kill") ::raise(SIGKILL);
    if (mode == "fork") {
        const pid_t child = ::fork();
        if (child < 0) return 2;
        if (child > 0) return 0;
        ::setsid();
    }
    return serve(name, mode != "idle");
}
