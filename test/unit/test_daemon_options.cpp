#include "options.hpp"

#include <gtest/gtest.h>

namespace afbus::daemon {
namespace {

Options parse(std::vector<std::string> args) {
    auto o = parse_options(args);
    EXPECT_TRUE(o) << (o ? "" : o.error());
    return o ? *o : Options{};
}

TEST(DaemonOptions, TheDbusTestSuitesCommandLine) {
    auto o = parse({"--config-file=/x.conf", "--nofork", "--print-address=1", "--address=unix:tmpdir=/tmp",
                    "--systemd-activation"});
    EXPECT_EQ(o.config_file, "/x.conf");
    EXPECT_EQ(o.fork, false);
    EXPECT_EQ(o.print_address_fd, 1);
    EXPECT_EQ(o.address, "unix:tmpdir=/tmp");
    EXPECT_TRUE(o.systemd_activation);
}

TEST(DaemonOptions, SeparateValuesAndDefaults) {
    auto o = parse({"--config-file", "/y.conf", "--print-address", "5", "--print-pid", "--address", "unix:path=/s"});
    EXPECT_EQ(o.config_file, "/y.conf");
    EXPECT_EQ(o.print_address_fd, 5);
    EXPECT_EQ(o.print_pid_fd, 1);
    EXPECT_EQ(o.address, "unix:path=/s");
    auto s = parse({"--session", "--print-address", "--fork", "--syslog-only", "--nopidfile"});
    EXPECT_EQ(s.bus, Options::BusType::Session);
    EXPECT_EQ(s.print_address_fd, 1);
    EXPECT_EQ(s.fork, true);
    EXPECT_EQ(s.syslog, Options::Syslog::SyslogOnly);
    EXPECT_TRUE(s.no_pidfile);
    EXPECT_EQ(parse({"--system"}).bus, Options::BusType::System);
    EXPECT_TRUE(parse({"--introspect"}).introspect);
    EXPECT_TRUE(parse({"--version"}).version);
}

TEST(DaemonOptions, Errors) {
    EXPECT_EQ(parse_options({"--frobnicate"}).error(), "Unknown command line argument --frobnicate");
    EXPECT_FALSE(parse_options({"--session", "--system"}));
    EXPECT_FALSE(parse_options({"--config-file"}));
    EXPECT_FALSE(parse_options({"--print-address=x"}));
}

}  // namespace
}  // namespace afbus::daemon
