// Security checks (issue 17, item 6), against dbus-daemon and afbus-daemon (AFBUS_TEST_DAEMON): the SASL
// line and attempt limits, ANONYMOUS only where the configuration allows it, a warning for a TCP listener
// that is not on loopback, a sender field the bus always overwrites, credentials only from the kernel,
// and (afbus-daemon) a log line naming the peer for every refusal. docs/reliability.md has the figures.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "afbus/value.hpp"
#include "support/child_process.hpp"
#include "support/pump.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::closed_by_bus;
using test::connect;
using test::driver_call;
using test::raw_connection;
using test::read_reply;
using test::read_sasl_line;
using test::sasl_hex;
using test::send_message;
using test::TestBus;
using test::TestBusOptions;

void send_text(const Fd& fd, std::string_view text) {
    ASSERT_EQ(::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

TestBusOptions logged(std::string extra_config = "", std::string auth = "EXTERNAL") {
    TestBusOptions options;
    options.capture_log = true;
    options.extra_config = std::move(extra_config);
    options.auth = std::move(auth);
    return options;
}

// The daemon's log names this process (the peer of every raw connection here) in a refusal.
void expect_refusal_logged(const TestBus& bus, std::string_view what) {
    if (!test::testing_afbus_daemon()) return;  // dbus-daemon logs few of these
    const std::string log = bus.log();
    const std::string pid = "pid=" + std::to_string(::getpid());
    bool found = false;
    for (std::size_t start = 0; start < log.size() && !found;) {
        std::size_t end = log.find('\n', start);
        if (end == std::string::npos) end = log.size();
        const std::string_view line = std::string_view(log).substr(start, end - start);
        found = line.find(pid) != std::string_view::npos && line.find(what) != std::string_view::npos;
        start = end + 1;
    }
    EXPECT_TRUE(found) << "no log line with \"" << pid << "\" and \"" << what << "\":\n" << log;
}

// A SASL line beyond the limit (dbus-daemon: 16 KiB) ends the connection; the bus serves others.
TEST(SecurityChecks, AnOverlongSaslLineEndsTheConnection) {
    TestBus bus(logged());
    auto bystander = connect(bus);
    ASSERT_TRUE(bystander);
    Fd fd = test::unauthenticated_connection(bus);
    send_text(fd, std::string(1, '\0') + "AUTH EXTERNAL " + std::string(64 * 1024, '3'));
    EXPECT_TRUE(closed_by_bus(fd));
    EXPECT_TRUE(bystander->call(driver_call("GetId")));
    expect_refusal_logged(bus, "line too long");
}

// Failed attempts are limited: the bus answers REJECTED a few times, then closes the connection.
TEST(SecurityChecks, RepeatedFailedAuthenticationEndsTheConnection) {
    TestBus bus(logged());
    Fd fd = test::unauthenticated_connection(bus);
    send_text(fd, std::string(1, '\0'));
    const std::string other_uid = std::to_string(::getuid() == 0 ? 65534 : 0);
    int rejected = 0;
    for (int attempt = 0; attempt < 50; ++attempt) {
        const std::string request = "AUTH EXTERNAL " + sasl_hex(other_uid) + "\r\n";
        if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) break;
        const std::string line = read_sasl_line(fd);
        if (line.empty()) break;  // closed
        EXPECT_TRUE(line.starts_with("REJECTED")) << line;
        ++rejected;
    }
    std::printf("closed after %d rejected attempts\n", rejected);
    EXPECT_GT(rejected, 0);
    EXPECT_LT(rejected, 50) << "never closed";
    EXPECT_TRUE(closed_by_bus(fd));
    expect_refusal_logged(bus, "authentication failed");
}

// Claiming another uid with EXTERNAL fails: the bus compares with the kernel's SO_PEERCRED.
TEST(SecurityChecks, ExternalCannotClaimAnotherUid) {
    TestBus bus;
    Fd fd = test::unauthenticated_connection(bus);
    const std::string other_uid = std::to_string(::getuid() == 0 ? 65534 : 0);
    send_text(fd, std::string(1, '\0') + "AUTH EXTERNAL " + sasl_hex(other_uid) + "\r\n");
    EXPECT_TRUE(read_sasl_line(fd).starts_with("REJECTED"));
    send_text(fd, "AUTH EXTERNAL " + sasl_hex(std::to_string(::getuid())) + "\r\n");
    EXPECT_TRUE(read_sasl_line(fd).starts_with("OK "));
}

// ANONYMOUS is accepted only with <allow_anonymous/> and only when it is among the mechanisms.
TEST(SecurityChecks, AnonymousOnlyWhenTheConfigurationAllowsIt) {
    struct Case {
        const char* what;
        std::string auth;  // "" : dbus-daemon's default mechanisms
        bool allow_anonymous;
        bool accepted;
    };
    const Case cases[] = {
        {"default mechanisms, no allow_anonymous", "", false, false},
        {"default mechanisms, allow_anonymous", "", true, true},
        {"<auth>ANONYMOUS</auth>, no allow_anonymous", "ANONYMOUS", false, false},
        {"<auth>EXTERNAL</auth>, allow_anonymous", "EXTERNAL", true, false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        TestBus bus(logged(c.allow_anonymous ? "<allow_anonymous/>\n" : "", c.auth));
        Fd fd = test::unauthenticated_connection(bus);
        send_text(fd, std::string(1, '\0') + "AUTH ANONYMOUS " + sasl_hex("trace") + "\r\n");
        // Refused either in SASL (afbus-daemon: REJECTED) or right after it (dbus-daemon says OK, then
        // closes the connection before answering Hello).
        const std::string line = read_sasl_line(fd);
        std::optional<Message> reply;
        if (line.starts_with("OK ")) {
            // The bus may close the connection at BEGIN already: these sends may fail.
            Message hello = driver_call("Hello");
            hello.set_serial(1);
            const auto wire = hello.wire();
            std::string bytes = "BEGIN\r\n";
            bytes.append(reinterpret_cast<const char*>(wire.data()), wire.size());
            (void)::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
            reply = read_reply(fd, 1);
        }
        const bool accepted = reply && reply->type() == MessageType::MethodReturn;
        EXPECT_EQ(accepted, c.accepted) << line;
        std::printf("%s: %s\n", c.what, accepted ? "accepted" : line.starts_with("OK ") ? "closed after OK" : "REJECTED");
        if (!accepted) {
            EXPECT_TRUE(line.starts_with("REJECTED") || closed_by_bus(fd));
            continue;
        }
        const std::string name = std::get<0>(read_all<std::string>(*reply).value());
        auto bystander = connect(bus);
        ASSERT_TRUE(bystander);
        auto uid = bystander->call(driver_call("GetConnectionUnixUser", name));
        // dbus-daemon answers with the kernel's uid for a unix socket; afbus-daemon too.
        if (uid) {
            EXPECT_EQ(std::get<0>(read_all<std::uint32_t>(*uid).value()), ::getuid());
        }
    }
}

// A TCP listener on an address other than loopback is worth a warning at start; one on loopback is not.
TEST(SecurityChecks, ATcpListenerNotOnLoopbackIsWarnedAbout) {
    if (!test::testing_afbus_daemon()) GTEST_SKIP() << "dbus-daemon does not warn about it";
    TestBusOptions everywhere = logged();
    everywhere.listen = "tcp:host=127.0.0.1,bind=0.0.0.0,port=0,family=ipv4";  // EXTERNAL only: nobody gets in over TCP
    TestBus open_bus(everywhere);
    const std::string log = open_bus.log();
    EXPECT_EQ(test::count_lines_with(log, "not a loopback address"), 1u) << log;
    EXPECT_NE(log.find("0.0.0.0"), std::string::npos) << log;

    TestBusOptions local = logged();
    local.listen = "tcp:host=127.0.0.1,port=0,family=ipv4";
    TestBus local_bus(local);
    EXPECT_EQ(test::count_lines_with(local_bus.log(), "not a loopback address"), 0u) << local_bus.log();
}

// The sender field a client writes is replaced by its unique name, whatever it claims (the bus, another
// connection, a well-known name it does not own).
TEST(SecurityChecks, AClientCannotSetItsOwnSender) {
    TestBus bus;
    auto receiver = connect(bus);
    auto victim = connect(bus);
    ASSERT_TRUE(receiver && victim);
    ASSERT_EQ(*victim->request_name("org.example.Victim"), RequestNameReply::PrimaryOwner);
    Fd fd = raw_connection(bus);
    send_message(fd, driver_call("Hello"), 1);
    auto hello = read_reply(fd, 1);
    ASSERT_TRUE(hello);
    const std::string own_name = std::get<0>(read_all<std::string>(*hello).value());
    std::vector<std::string> senders;
    auto sub = receiver->subscribe("type='signal',interface='org.example.Forged'",
                                   [&senders](const Message& m) { senders.emplace_back(m.sender()); });
    ASSERT_TRUE(sub);
    const std::string claims[] = {"org.freedesktop.DBus", victim->unique_name(), "org.example.Victim", ":1.9999"};
    std::uint32_t serial = 2;
    for (const std::string& claim : claims) {
        auto signal = MessageBuilder::signal("/org/example", "org.example.Forged", "Claim");
        signal.sender(claim);
        append(signal, claim);
        send_message(fd, signal.build().value(), serial++);
    }
    ASSERT_TRUE(test::pump({receiver.get()}, [&] { return senders.size() == std::size(claims); }, 10s)) << senders.size();
    for (const std::string& sender : senders) EXPECT_EQ(sender, own_name);
    // A forged sender on a call to the bus changes nothing either: the bus answers the real caller.
    auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId");
    call.sender(victim->unique_name());
    send_message(fd, call.build().value(), serial);
    auto reply = read_reply(fd, serial);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->destination(), own_name);
}

// GetConnectionCredentials answers what the kernel said about the socket: this process's pid and uid,
// even when the client sends SCM_CREDENTIALS claiming another pid with its first byte (root may send
// any pid it likes there).
TEST(SecurityChecks, CredentialsComeOnlyFromTheKernel) {
    TestBus bus;
    auto asker = connect(bus);
    ASSERT_TRUE(asker);
    Fd fd = test::unauthenticated_connection(bus);
    // The NUL byte, with credentials naming our parent process if we may (root), else our own.
    ucred forged{::geteuid() == 0 ? ::getppid() : ::getpid(), ::getuid(), ::getgid()};
    char nul = '\0';
    iovec iov{&nul, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_CREDENTIALS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(ucred));
    std::memcpy(CMSG_DATA(cmsg), &forged, sizeof forged);
    ASSERT_EQ(::sendmsg(fd.get(), &msg, MSG_NOSIGNAL), 1) << std::strerror(errno);
    send_text(fd, "AUTH EXTERNAL " + sasl_hex(std::to_string(::getuid())) + "\r\n");
    ASSERT_TRUE(read_sasl_line(fd).starts_with("OK "));
    send_text(fd, "BEGIN\r\n");
    send_message(fd, driver_call("Hello"), 1);
    auto hello = read_reply(fd, 1);
    ASSERT_TRUE(hello && hello->type() == MessageType::MethodReturn);
    const std::string name = std::get<0>(read_all<std::string>(*hello).value());

    auto reply = asker->call(driver_call("GetConnectionCredentials", name));
    ASSERT_TRUE(reply);
    auto [credentials] = read_all<std::map<std::string, Variant>>(*reply).value();
    ASSERT_TRUE(credentials.count("ProcessID"));
    EXPECT_EQ(*credentials.at("ProcessID").get<std::uint32_t>(), static_cast<std::uint32_t>(::getpid()));
    EXPECT_EQ(*credentials.at("UnixUserID").get<std::uint32_t>(), ::getuid());
    auto pid = asker->call(driver_call("GetConnectionUnixProcessID", name));
    ASSERT_TRUE(pid);
    EXPECT_EQ(std::get<0>(read_all<std::uint32_t>(*pid).value()), static_cast<std::uint32_t>(::getpid()));
}

// Refusals for what a connection did are logged with its unique name, uid and pid: a message other than
// Hello first, a message beyond max_message_size, a connection over max_connections_per_user.
TEST(SecurityChecks, EveryRefusalNamesThePeer) {
    if (!test::testing_afbus_daemon()) GTEST_SKIP() << "a check of afbus-daemon's log";
    TestBus bus(logged("<limit name=\"max_message_size\">4096</limit>\n<limit name=\"max_connections_per_user\">2</limit>\n"));
    auto first = connect(bus);
    ASSERT_TRUE(first);
    Fd early = raw_connection(bus);
    send_message(early, MessageBuilder::signal("/x", "org.example.I", "Early").build().value(), 1);
    EXPECT_TRUE(closed_by_bus(early));
    expect_refusal_logged(bus, "without being registered");

    Fd big = raw_connection(bus);
    send_message(big, driver_call("Hello"), 1);
    ASSERT_TRUE(read_reply(big, 1));
    auto signal = MessageBuilder::signal("/x", "org.example.I", "Big");
    append(signal, std::string(8192, 'b'));
    send_message(big, signal.build().value(), 2);
    EXPECT_TRUE(closed_by_bus(big));
    expect_refusal_logged(bus, "max_message_size");

    auto second = connect(bus);
    ASSERT_TRUE(second);
    Fd third = raw_connection(bus);
    send_message(third, driver_call("Hello"), 1);
    auto refused = read_reply(third, 1);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->error_name(), "org.freedesktop.DBus.Error.LimitsExceeded");
    expect_refusal_logged(bus, "max_connections_per_user");
}

}  // namespace
}  // namespace afbus
