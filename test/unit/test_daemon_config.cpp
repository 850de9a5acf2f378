#include "config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace afbus::daemon {
namespace {

const char* const kHead = "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                          " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n";

Expected<BusConfig, ConfigError> parse(const std::string& body, const std::string& dir = "/nonexistent") {
    return parse_config(std::string(kHead) + body, "test.conf", dir);
}

TEST(DaemonConfig, EveryTopLevelElement) {
    auto c = parse(R"(<busconfig>
  <type>session</type>
  <user>messagebus</user>
  <fork/>
  <keep_umask/>
  <syslog/>
  <listen>unix:tmpdir=/tmp</listen>
  <listen>tcp:host=localhost,port=0</listen>
  <pidfile>/run/x.pid</pidfile>
  <auth>EXTERNAL</auth>
  <allow_anonymous/>
  <servicedir>services</servicedir>
  <standard_session_servicedirs/>
  <standard_system_servicedirs/>
  <servicehelper>/usr/lib/helper</servicehelper>
  <limit name="max_match_rules_per_connection">7</limit>
  <limit name="reply_timeout">5000</limit>
  <policy context="default"><allow own="*"/><deny send_destination="org.x" send_interface="org.x.I"/></policy>
  <policy user="root"><allow eavesdrop="true"/></policy>
  <policy group="wheel"><allow send_destination_prefix="org.y"/></policy>
  <policy at_console="true"><allow send_type="method_call" max_fds="4" log="true"/></policy>
  <selinux><associate own="org.x" context="system_u:object_r:x_t"/></selinux>
  <apparmor mode="disabled"/>
  <include ignore_missing="yes">missing.conf</include>
  <include if_selinux_enabled="yes" selinux_root_relative="yes">contexts/dbus_contexts</include>
  <includedir>session.d</includedir>
</busconfig>)",
                   "/etc/test");
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->type, "session");
    EXPECT_EQ(c->user, "messagebus");
    EXPECT_TRUE(c->fork && c->keep_umask && c->syslog && c->allow_anonymous);
    EXPECT_EQ(c->listen, (std::vector<std::string>{"unix:tmpdir=/tmp", "tcp:host=localhost,port=0"}));
    EXPECT_EQ(c->pidfile, "/run/x.pid");
    EXPECT_EQ(c->auth, (std::vector<std::string>{"EXTERNAL"}));
    ASSERT_EQ(c->servicedirs.size(), 3u);
    EXPECT_EQ(c->servicedirs[0].path, "/etc/test/services");
    EXPECT_EQ(c->servicehelper, "/usr/lib/helper");
    EXPECT_EQ(c->limits.max_match_rules_per_connection, 7);
    EXPECT_EQ(c->limits.reply_timeout, 5000);
    ASSERT_EQ(c->policies.size(), 4u);
    EXPECT_EQ(c->policies[0].rules.size(), 2u);
    EXPECT_FALSE(c->policies[0].rules[1].allow);
    EXPECT_EQ(c->policies[1].kind, Policy::Kind::User);
    EXPECT_EQ(c->policies[1].who, "root");
    EXPECT_EQ(c->policies[3].kind, Policy::Kind::AtConsole);
    EXPECT_TRUE(c->has_selinux);
    EXPECT_EQ(c->apparmor_mode, "disabled");
}

TEST(DaemonConfig, ErrorsNameFileLineAndReason) {
    auto bad_limit = parse("<busconfig>\n<limit name=\"no_such_limit\">1</limit>\n</busconfig>");
    ASSERT_FALSE(bad_limit);
    EXPECT_EQ(bad_limit.error().file, "test.conf");
    EXPECT_EQ(bad_limit.error().line, 4);
    EXPECT_EQ(bad_limit.error().reason, "There is no limit called \"no_such_limit\"");
    EXPECT_FALSE(parse("<busconfig><limit name=\"auth_timeout\">soon</limit></busconfig>"));
    EXPECT_FALSE(parse("<busconfig><bogus/></busconfig>"));
    EXPECT_FALSE(parse("<notbusconfig/>"));
    EXPECT_FALSE(parse("<busconfig><policy context=\"sometimes\"/></busconfig>"));
    EXPECT_FALSE(parse("<busconfig><policy user=\"a\" group=\"b\"/></busconfig>"));
    EXPECT_FALSE(parse("<busconfig><policy context=\"default\"><allow frobnicate=\"x\"/></policy></busconfig>"));
    EXPECT_FALSE(parse("<busconfig><include>/nonexistent/file.conf</include></busconfig>"));
    EXPECT_FALSE(parse("<busconfig><listen></listen></busconfig>"));
    // Policy rules are compiled with the config: a bad one fails the load at its own line.
    auto bad_rule = parse("<busconfig>\n<policy context=\"default\">\n<allow own=\"*\"/>\n"
                          "<deny send_member=\"Hello\"/>\n</policy>\n</busconfig>");
    ASSERT_FALSE(bad_rule);
    EXPECT_EQ(bad_rule.error().line, 6);
    EXPECT_NE(bad_rule.error().reason.find("if you specify a member you must specify an interface or a path"),
              std::string::npos);
    auto unclosed = parse("<busconfig>\n<type>session</type>\n");
    ASSERT_FALSE(unclosed);
    EXPECT_NE(unclosed.error().to_string().find("test.conf:"), std::string::npos);
}

TEST(DaemonConfig, IncludesAndIncludedirs) {
    char dir_template[] = "/tmp/afbus-config-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir_template));
    const std::string dir = dir_template;
    std::filesystem::create_directory(dir + "/conf.d");
    std::ofstream(dir + "/conf.d/b.conf") << kHead << "<busconfig><listen>unix:path=/b</listen></busconfig>";
    std::ofstream(dir + "/conf.d/a.conf") << kHead << "<busconfig><listen>unix:path=/a</listen></busconfig>";
    std::ofstream(dir + "/conf.d/ignored.txt") << "not xml";
    std::ofstream(dir + "/loop.conf") << kHead << "<busconfig><include>loop.conf</include></busconfig>";
    std::ofstream(dir + "/main.conf") << kHead
                                      << "<busconfig><type>session</type><includedir>conf.d</includedir>"
                                         "<limit name=\"max_names_per_connection\">3</limit></busconfig>";
    auto c = load_config(dir + "/main.conf");
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->listen, (std::vector<std::string>{"unix:path=/a", "unix:path=/b"}));
    EXPECT_EQ(c->limits.max_names_per_connection, 3);
    auto loop = load_config(dir + "/loop.conf");
    ASSERT_FALSE(loop);
    EXPECT_NE(loop.error().reason.find("Circular"), std::string::npos);
    std::filesystem::remove_all(dir);
}

// A file of an <includedir> that does not parse fails the whole configuration (a reload), or is left
// out, everything it added before its error included, and listed (the start, as dbus-daemon).
TEST(DaemonConfig, ABrokenIncludedirFileFailsOrIsLeftOut) {
    char dir_template[] = "/tmp/afbus-config-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir_template));
    const std::string dir = dir_template;
    std::filesystem::create_directory(dir + "/conf.d");
    std::ofstream(dir + "/conf.d/a.conf") << kHead << "<busconfig><listen>unix:path=/a</listen></busconfig>";
    std::ofstream(dir + "/conf.d/b.conf") << kHead << "<busconfig><listen>unix:path=/b</listen>\n<bogus/></busconfig>";
    std::ofstream(dir + "/conf.d/c.conf") << kHead << "<busconfig><listen>unix:path=/c</listen></busconfig>";
    std::ofstream(dir + "/main.conf") << kHead << "<busconfig><type>session</type><includedir>conf.d</includedir></busconfig>";

    auto failed = load_config(dir + "/main.conf");
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().file, dir + "/conf.d/b.conf");
    EXPECT_EQ(failed.error().line, 4);

    auto skipped = load_config(dir + "/main.conf", IncludedirErrors::Skip);
    ASSERT_TRUE(skipped) << skipped.error().to_string();
    EXPECT_EQ(skipped->listen, (std::vector<std::string>{"unix:path=/a", "unix:path=/c"}));
    ASSERT_EQ(skipped->skipped_files.size(), 1u);
    EXPECT_EQ(skipped->skipped_files[0].to_string(),
              dir + "/conf.d/b.conf:4: Element <bogus> not allowed inside <busconfig> in configuration file");
    std::filesystem::remove_all(dir);
}

TEST(DaemonConfig, BuiltInConfigurationsParse) {
    auto session = parse_config(builtin_session_config(), "builtin", "/nonexistent");
    ASSERT_TRUE(session) << session.error().to_string();
    EXPECT_EQ(session->type, "session");
    EXPECT_EQ(session->limits.max_message_size, 1000000000);
    auto system = parse_config(builtin_system_config(), "builtin", "/nonexistent");
    ASSERT_TRUE(system) << system.error().to_string();
    EXPECT_EQ(system->type, "system");
    EXPECT_EQ(system->user, "messagebus");
}

TEST(DaemonConfig, DebiansInstalledFilesParse) {
    for (const char* f : {"/usr/share/dbus-1/session.conf", "/usr/share/dbus-1/system.conf"}) {
        if (!std::filesystem::exists(f)) continue;
        auto c = load_config(f);
        EXPECT_TRUE(c) << c.error().to_string();
    }
}

}  // namespace
}  // namespace afbus::daemon
