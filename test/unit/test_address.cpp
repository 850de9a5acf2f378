#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "afbus/address.hpp"

namespace afbus {
namespace {

using namespace std::string_literals;

constexpr std::string_view kGuid = "0123456789abcdef0123456789ABCDEF";

EnvironmentLookup fake_environment(std::map<std::string, std::string> variables) {
    return [variables = std::move(variables)](std::string_view name) -> std::optional<std::string> {
        const auto found = variables.find(std::string(name));
        if (found == variables.end()) return std::nullopt;
        return found->second;
    };
}

struct Valid {
    std::string input;
    std::string canonical;
    std::size_t entries = 1;
};

TEST(Address, ValidAddressesAndTheirCanonicalForm) {
    const std::vector<Valid> cases = {
        {"unix:path=/tmp/dbus-test", "unix:path=/tmp/dbus-test"},
        {"unix:abstract=/tmp/dbus-U8OSdmf7,guid="s + std::string(kGuid),
         "unix:abstract=/tmp/dbus-U8OSdmf7,guid="s + std::string(kGuid)},
        {"unix:tmpdir=/tmp", "unix:tmpdir=/tmp"},
        {"unix:dir=/run/user/1000", "unix:dir=/run/user/1000"},
        {"unix:runtime=yes", "unix:runtime=yes"},
        {"unix:path=/tmp/a%20b", "unix:path=/tmp/a%20b"},
        {"unix:path=%2ftmp%2Fx%41", "unix:path=/tmp/xA"},                // optional escapes are dropped
        {"unix:path=/tmp/%7e%3d%2C%3b", "unix:path=/tmp/%7e%3d%2c%3b"},  // required ones lower-cased
        {"unix:path=/a_b-c.d\\e*f", "unix:path=/a_b-c.d\\e*f"},
        {"unix:path=/x,Foo=bar", "unix:path=/x,Foo=bar"},  // unknown keys are carried along
        {"unix:path=/x,", "unix:path=/x"},                 // trailing ',' as libdbus
        {"tcp:host=127.0.0.1,port=4242,family=ipv4", "tcp:host=127.0.0.1,port=4242,family=ipv4"},
        {"tcp:host=localhost,bind=*,port=0", "tcp:host=localhost,bind=*,port=0"},
        {"tcp:host=%3a%3a1,family=ipv6,port=65535", "tcp:host=%3a%3a1,family=ipv6,port=65535"},
        {"tcp:", "tcp:"},
        {"nonce-tcp:host=localhost,port=1,noncefile=/tmp/nonce",
         "nonce-tcp:host=localhost,port=1,noncefile=/tmp/nonce"},
        {"systemd:", "systemd:"},
        {"systemd:guid="s + std::string(kGuid), "systemd:guid="s + std::string(kGuid)},
        {"launchd:env=DBUS_LAUNCHD_SESSION_BUS_SOCKET", "launchd:env=DBUS_LAUNCHD_SESSION_BUS_SOCKET"},
        {"autolaunch:", "autolaunch:"},
        {"autolaunch:scope=*user", "autolaunch:scope=*user"},
        {"afbus:path=/run/afbus/system", "afbus:path=/run/afbus/system"},
        {"afbus:abstract=afbus-test,guid="s + std::string(kGuid),
         "afbus:abstract=afbus-test,guid="s + std::string(kGuid)},
        {"unixexec:path=ssh,argv1=-xT,argv2=host", "unixexec:path=ssh,argv1=-xT,argv2=host"},
        {"unix:path=/a;unix:path=/b", "unix:path=/a;unix:path=/b", 2},
        {"unix:runtime=yes;unix:tmpdir=/tmp;", "unix:runtime=yes;unix:tmpdir=/tmp", 2},
        {"unix:path=/a;tcp:host=h,port=1;systemd:", "unix:path=/a;tcp:host=h,port=1;systemd:", 3},
    };
    for (const auto& c : cases) {
        const auto parsed = parse_address_list(c.input);
        ASSERT_TRUE(parsed) << c.input << ": " << to_string(parsed.error());
        EXPECT_EQ(parsed->size(), c.entries) << c.input;
        EXPECT_EQ(to_string(*parsed), c.canonical) << c.input;
        const auto reparsed = parse_address_list(to_string(*parsed));
        ASSERT_TRUE(reparsed) << c.canonical;
        EXPECT_EQ(*reparsed, *parsed) << c.canonical;
    }
}

struct Invalid {
    std::string input;
    AddressError error;
};

TEST(Address, InvalidAddresses) {
    const std::vector<Invalid> cases = {
        {"", AddressError::Empty},
        {";", AddressError::EmptyEntry},
        {";unix:path=/a", AddressError::EmptyEntry},
        {"unix:path=/a;;unix:path=/b", AddressError::EmptyEntry},
        {"unix", AddressError::MissingColon},
        {"unix:path=/a;tcp", AddressError::MissingColon},
        {":path=/x", AddressError::InvalidTransport},
        {"un ix:path=/x", AddressError::InvalidTransport},
        {"un%69x:path=/x", AddressError::InvalidTransport},
        {"unix:path", AddressError::MissingEquals},
        {"unix:,path=/x", AddressError::MissingEquals},
        {"unix:path=/x,,guid=0123456789abcdef0123456789abcdef", AddressError::MissingEquals},
        {"unix:path=/x,,", AddressError::MissingEquals},
        {"unix:=x", AddressError::InvalidKey},
        {"unix:pa%74h=/x", AddressError::InvalidKey},
        {"unix:pa.th=/x", AddressError::InvalidKey},
        {"unix:path=/a,path=/b", AddressError::DuplicateKey},
        {"unix:path=/a%zz", AddressError::BadEscape},
        {"unix:path=/a%2", AddressError::BadEscape},
        {"unix:path=/a%", AddressError::BadEscape},
        {"unix:path=/a%%41", AddressError::BadEscape},
        {"unix:path=/tmp/a~b", AddressError::UnescapedByte},
        {"unix:path=/tmp/a=b", AddressError::UnescapedByte},
        {"unix:path=/a b", AddressError::UnescapedByte},
        {"unix:path=/a\xc3\xa9", AddressError::UnescapedByte},
        {"tcp:host=::1", AddressError::UnescapedByte},
        {"unix:path=/x,guid=123", AddressError::InvalidGuid},
        {"unix:path=/x,guid=0123456789abcdef0123456789abcdeg", AddressError::InvalidGuid},
        {"unix:path=/x,guid=0123456789abcdef0123456789abcdef0", AddressError::InvalidGuid},
        {"unix:path=", AddressError::EmptyValue},
        {"tcp:host=", AddressError::EmptyValue},
        {"unix:", AddressError::UnixLocation},
        {"unix:guid=0123456789abcdef0123456789abcdef", AddressError::UnixLocation},
        {"unix:path=/a,abstract=b", AddressError::UnixLocation},
        {"unix:tmpdir=/tmp,runtime=yes", AddressError::UnixLocation},
        {"unix:dir=/a,tmpdir=/b", AddressError::UnixLocation},
        {"afbus:", AddressError::UnixLocation},
        {"afbus:tmpdir=/tmp", AddressError::UnixLocation},
        {"afbus:path=/a,runtime=yes", AddressError::UnixLocation},
        {"unix:runtime=no", AddressError::RuntimeNotYes},
        {"unix:runtime=YES", AddressError::RuntimeNotYes},
        {"tcp:host=a,port=65536", AddressError::InvalidPort},
        {"tcp:host=a,port=-1", AddressError::InvalidPort},
        {"tcp:host=a,port=12a", AddressError::InvalidPort},
        {"nonce-tcp:port=000001", AddressError::InvalidPort},
        {"tcp:host=a,family=ipv5", AddressError::InvalidFamily},
        {"systemd:path=/x", AddressError::UnexpectedKey},
        {"launchd:", AddressError::MissingKey},
        {"unix:path=/a;tcp:port=x", AddressError::InvalidPort},
    };
    for (const auto& c : cases) {
        const auto parsed = parse_address_list(c.input);
        ASSERT_FALSE(parsed) << c.input << " parsed as " << to_string(*parsed);
        EXPECT_EQ(parsed.error(), c.error) << c.input << ": " << to_string(parsed.error());
    }
}

TEST(Address, KeyLookup) {
    const auto parsed = parse_address_list("tcp:host=localhost,port=4242,guid="s + std::string(kGuid));
    ASSERT_TRUE(parsed);
    const AddressEntry& entry = parsed->front();
    EXPECT_EQ(entry.transport(), "tcp");
    EXPECT_EQ(entry.get("host"), "localhost");
    EXPECT_EQ(entry.get("port"), "4242");
    EXPECT_EQ(entry.get("family"), std::nullopt);
    EXPECT_EQ(entry.guid(), kGuid);
    EXPECT_TRUE(entry.has("host"));
    ASSERT_EQ(entry.parameters().size(), 3u);
    EXPECT_EQ(entry.parameters()[1].first, "port");
}

TEST(Address, EscapingRoundTripsEveryByte) {
    std::string all_bytes;
    for (int byte = 0; byte < 256; ++byte) all_bytes += static_cast<char>(byte);
    const std::string escaped = escape_address_value(all_bytes);
    for (char c : escaped) {
        EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) ||
                    std::string_view("-_/.\\*%").find(c) != std::string_view::npos)
            << c;
    }
    const auto unescaped = unescape_address_value(escaped);
    ASSERT_TRUE(unescaped);
    EXPECT_EQ(*unescaped, all_bytes);

    EXPECT_EQ(escape_address_value("/tmp/dbus-ABC_1.2\\*"), "/tmp/dbus-ABC_1.2\\*");
    EXPECT_EQ(escape_address_value("a b,c;d=e:f%"), "a%20b%2cc%3bd%3de%3af%25");
    EXPECT_EQ(unescape_address_value("%41%6a%6A").value(), "Ajj");
    EXPECT_EQ(unescape_address_value("").value(), "");

    // Any value survives an entry's to_string and re-parse.
    const auto entry = AddressEntry::make("unix", {{"path", "/tmp/" + all_bytes.substr(1)}});
    ASSERT_TRUE(entry);
    const auto reparsed = parse_address_list(entry->to_string());
    ASSERT_TRUE(reparsed) << entry->to_string();
    EXPECT_EQ(reparsed->front(), *entry);
}

TEST(Address, MakeValidatesLikeParse) {
    EXPECT_EQ(AddressEntry::make("unix", {}).error(), AddressError::UnixLocation);
    EXPECT_EQ(AddressEntry::make("unix", {{"path", "/a"}, {"path", "/b"}}).error(),
              AddressError::DuplicateKey);
    EXPECT_EQ(AddressEntry::make("unix", {{"pa th", "/a"}}).error(), AddressError::InvalidKey);
    EXPECT_EQ(AddressEntry::make("", {}).error(), AddressError::InvalidTransport);
    EXPECT_TRUE(AddressEntry::make("unix", {{"path", "/a b"}}));
}

TEST(Address, Connectable) {
    struct Case {
        std::string address;
        std::optional<AddressError> error;
    };
    const std::vector<Case> cases = {
        {"unix:path=/a", std::nullopt},
        {"unix:abstract=a", std::nullopt},
        {"unix:runtime=yes", std::nullopt},
        {"unix:tmpdir=/tmp", AddressError::ListenOnly},
        {"unix:dir=/tmp", AddressError::ListenOnly},
        {"afbus:path=/run/afbus", std::nullopt},
        {"tcp:host=localhost,port=1", std::nullopt},
        {"tcp:host=localhost", AddressError::NotConnectable},
        {"tcp:port=1", AddressError::NotConnectable},
        {"tcp:host=localhost,port=0", AddressError::NotConnectable},
        {"nonce-tcp:host=localhost,port=1", AddressError::NotConnectable},
        {"nonce-tcp:host=localhost,port=1,noncefile=/n", std::nullopt},
        {"systemd:", AddressError::ListenOnly},
        {"launchd:env=X", AddressError::UnsupportedTransport},
        {"autolaunch:", AddressError::UnsupportedTransport},
        {"unixexec:path=ssh", AddressError::UnsupportedTransport},
    };
    for (const auto& c : cases) {
        const auto parsed = parse_address_list(c.address);
        ASSERT_TRUE(parsed) << c.address;
        const auto result = check_connectable(parsed->front());
        if (c.error) {
            ASSERT_FALSE(result) << c.address;
            EXPECT_EQ(result.error(), *c.error) << c.address;
        } else {
            EXPECT_TRUE(result) << c.address << ": " << to_string(result.error());
        }
    }
}

TEST(Address, UnixSocketPath) {
    const auto environment = fake_environment({{"XDG_RUNTIME_DIR", "/run/user/1000"}});
    const auto path_of = [&](std::string_view address, const EnvironmentLookup& env) {
        const auto parsed = parse_address_list(address);
        EXPECT_TRUE(parsed) << address;
        return unix_socket_path(parsed->front(), env);
    };
    EXPECT_EQ(path_of("unix:path=/tmp/s", environment).value(), "/tmp/s");
    EXPECT_EQ(path_of("unix:abstract=/tmp/dbus-x", environment).value(), "\0/tmp/dbus-x"s);
    EXPECT_EQ(path_of("afbus:abstract=bus", environment).value(), "\0bus"s);
    EXPECT_EQ(path_of("afbus:path=/run/afbus", environment).value(), "/run/afbus");
    EXPECT_EQ(path_of("unix:runtime=yes", environment).value(), "/run/user/1000/bus");
    EXPECT_EQ(path_of("unix:runtime=yes", fake_environment({})).error(), AddressError::RuntimeDirUnset);
    EXPECT_EQ(path_of("unix:runtime=yes", fake_environment({{"XDG_RUNTIME_DIR", "relative"}})).error(),
              AddressError::RuntimeDirUnset);
    EXPECT_EQ(path_of("unix:tmpdir=/tmp", environment).error(), AddressError::ListenOnly);
    EXPECT_EQ(path_of("tcp:host=a,port=1", environment).error(), AddressError::NotUnixSocket);
    EXPECT_EQ(path_of("unix:path=/a%00b", environment).error(), AddressError::NulInPath);
    EXPECT_EQ(path_of("unix:abstract=a%00b", environment).error(), AddressError::NulInPath);

    // sun_path holds 108 bytes: a path needs its terminator, an abstract name does not.
    EXPECT_TRUE(path_of("unix:path=/" + std::string(106, 'p'), environment));
    EXPECT_EQ(path_of("unix:path=/" + std::string(107, 'p'), environment).error(), AddressError::PathTooLong);
    EXPECT_TRUE(path_of("unix:abstract=" + std::string(107, 'a'), environment));
    EXPECT_EQ(path_of("unix:abstract=" + std::string(108, 'a'), environment).error(),
              AddressError::PathTooLong);
}

TEST(Address, SessionBus) {
    const auto from_variable = session_bus_address(
        fake_environment({{"DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus;tcp:host=h,port=1"},
                          {"XDG_RUNTIME_DIR", "/x"}}));
    ASSERT_TRUE(from_variable);
    EXPECT_EQ(to_string(*from_variable), "unix:path=/run/user/1000/bus;tcp:host=h,port=1");

    const auto fallback = session_bus_address(fake_environment({{"XDG_RUNTIME_DIR", "/run/user/7"}}));
    ASSERT_TRUE(fallback);
    EXPECT_EQ(to_string(*fallback), "unix:path=/run/user/7/bus");

    const auto empty_variable = session_bus_address(
        fake_environment({{"DBUS_SESSION_BUS_ADDRESS", ""}, {"XDG_RUNTIME_DIR", "/run/user/7"}}));
    ASSERT_TRUE(empty_variable);
    EXPECT_EQ(to_string(*empty_variable), "unix:path=/run/user/7/bus");

    EXPECT_EQ(session_bus_address(fake_environment({})).error(), AddressError::SessionBusUnset);
    EXPECT_EQ(session_bus_address(fake_environment({{"DBUS_SESSION_BUS_ADDRESS", "garbage"}})).error(),
              AddressError::MissingColon);
    // A runtime directory with bytes that need escaping still gives a parseable address.
    const auto odd = session_bus_address(fake_environment({{"XDG_RUNTIME_DIR", "/run/user/a b"}}));
    ASSERT_TRUE(odd);
    EXPECT_EQ(to_string(*odd), "unix:path=/run/user/a%20b/bus");
}

TEST(Address, SystemBus) {
    const auto fallback = system_bus_address(fake_environment({}));
    ASSERT_TRUE(fallback);
    EXPECT_EQ(to_string(*fallback), kDefaultSystemBusAddress);
    const auto from_variable =
        system_bus_address(fake_environment({{"DBUS_SYSTEM_BUS_ADDRESS", "unix:abstract=sys"}}));
    ASSERT_TRUE(from_variable);
    EXPECT_EQ(unix_socket_path(from_variable->front(), fake_environment({})).value(), "\0sys"s);
}

TEST(Address, ErrorsHaveNames) {
    EXPECT_EQ(to_string(AddressError::BadEscape), "'%' not followed by two hex digits");
    EXPECT_EQ(to_string(AddressError::SessionBusUnset),
              "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set");
}

}  // namespace
}  // namespace afbus
