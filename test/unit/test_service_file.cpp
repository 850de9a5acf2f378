// Cases marked "(dbus-daemon)" were checked against dbus-daemon 1.14.10: files in a <servicedir>, then
// ListActivatableNames, and StartServiceByName of a script printing its argv.
#include "service_file.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace afbus::daemon {
namespace {

using namespace std::string_literals;

struct ValidCase {
    const char* what;
    std::string text;
    ServiceFile expected;
};

class ValidServiceFile : public testing::TestWithParam<ValidCase> {};

TEST_P(ValidServiceFile, Parses) {
    const auto& c = GetParam();
    auto file = parse_service_file(c.text);
    ASSERT_TRUE(file) << file.error().to_string();
    EXPECT_EQ(file->name, c.expected.name);
    EXPECT_EQ(file->exec, c.expected.exec);
    EXPECT_EQ(file->user, c.expected.user);
    EXPECT_EQ(file->systemd_service, c.expected.systemd_service);
    EXPECT_EQ(file->assumed_apparmor_label, c.expected.assumed_apparmor_label);
}

ServiceFile service(std::string name, std::string exec) { return {std::move(name), std::move(exec), {}, {}, {}}; }

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidServiceFile,
    testing::Values(
        ValidCase{"minimal", "[D-BUS Service]\nName=org.example.A\nExec=/usr/bin/a\n", service("org.example.A", "/usr/bin/a")},
        ValidCase{"every key",
                  "[D-BUS Service]\nName=org.example.A\nExec=/usr/bin/a --x\nUser=nobody\nSystemdService=a.service\n"
                  "AssumedAppArmorLabel=/usr/bin/a\n",
                  {"org.example.A", "/usr/bin/a --x", "nobody", "a.service", "/usr/bin/a"}},
        ValidCase{"comments, blank and blank-looking lines",
                  "# leading comment\n\n[D-BUS Service]\n#Name=commented\n \t\f\nName=org.example.A\n\nExec=a\n",
                  service("org.example.A", "a")},
        ValidCase{"spaces around = go, trailing ones stay (dbus-daemon)",
                  "[D-BUS Service]\nName  =   org.example.A \nExec= a  b \n", service("org.example.A ", "a  b ")},
        ValidCase{"localized keys are skipped, bracket closed or not (dbus-daemon)",
                  "[D-BUS Service]\nName[fr]=org.example.Fr\nName=org.example.A\nExec[x=whatever\nExec=a\n",
                  service("org.example.A", "a")},
        ValidCase{"the first of duplicate keys wins (dbus-daemon)",
                  "[D-BUS Service]\nName=org.example.First\nName=org.example.Second\nExec=a\nExec=b\n",
                  service("org.example.First", "a")},
        ValidCase{"other sections are parsed and ignored (dbus-daemon)",
                  "[Other]\nName=org.example.Other\nExec=other\n[D-BUS Service]\nName=org.example.A\nExec=a\n",
                  service("org.example.A", "a")},
        ValidCase{"a repeated [D-BUS Service] section is ignored",
                  "[D-BUS Service]\nName=org.example.A\nExec=a\n[D-BUS Service]\nName=org.example.B\nUser=u\n",
                  service("org.example.A", "a")},
        ValidCase{"escapes", "[D-BUS Service]\nName=org.example.A\\s\nExec=a\\sb\\tc\\nd\\re\\\\f\n",
                  service("org.example.A ", "a b\tc\nd\re\\f")},
        ValidCase{"CRLF line ends (dbus-daemon)", "[D-BUS Service]\r\nName=org.example.A\r\nExec=a\r\n",
                  service("org.example.A", "a")},
        ValidCase{"lone CR line ends (dbus-daemon)", "[D-BUS Service]\rName=org.example.A\rExec=a\r",
                  service("org.example.A", "a")},
        ValidCase{"no final newline (dbus-daemon)", "[D-BUS Service]\nName=org.example.A\nExec=a",
                  service("org.example.A", "a")},
        ValidCase{"keys use letters, digits and - (dbus-daemon)", "[D-BUS Service]\nX-Vendor-2=1\nName=org.example.A\nExec=a\n",
                  service("org.example.A", "a")},
        ValidCase{"Name is not validated (dbus-daemon lists these)",
                  "[D-BUS Service]\nName=not a valid name!\nExec=a\n", service("not a valid name!", "a")},
        ValidCase{"empty values are values (dbus-daemon)", "[D-BUS Service]\nName=\nExec=\n", service("", "")},
        ValidCase{"UTF-8 in values",
                  "[D-BUS Service]\nName=org.example.A\nExec=/usr/bin/caf\xc3\xa9\n",
                  service("org.example.A", "/usr/bin/caf\xc3\xa9")},
        ValidCase{"tabs inside a value stay", "[D-BUS Service]\nName=org.example.A\nExec=a\tb\n",
                  service("org.example.A", "a\tb")}),
    [](const testing::TestParamInfo<ValidCase>& info) { return "case" + std::to_string(info.index); });

struct InvalidCase {
    const char* what;
    std::string text;
    int line;
    std::string reason;
};

class InvalidServiceFile : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidServiceFile, IsRefusedWithLineAndReason) {
    const auto& c = GetParam();
    auto file = parse_service_file(c.text);
    ASSERT_FALSE(file) << c.what;
    EXPECT_EQ(file.error().line, c.line) << c.what;
    EXPECT_EQ(file.error().reason, c.reason) << c.what;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InvalidServiceFile,
    testing::Values(
        InvalidCase{"key before any section (dbus-daemon)", "# c\nName=org.example.A\n[D-BUS Service]\nExec=a\n", 2,
                    "invalid service file: key=value before [Section]"},
        InvalidCase{"empty section name (dbus-daemon)", "[D-BUS Service]\n[]\n", 2, "Invalid syntax for section header"},
        InvalidCase{"lone bracket", "[", 1, "Invalid syntax for section header"},
        InvalidCase{"blank after the bracket (dbus-daemon)", "[D-BUS Service] \nName=a\nExec=a\n", 1,
                    "Invalid syntax for section header"},
        InvalidCase{"control character in a section name", "[D-BUS\tService]\n", 1, "Invalid characters in section name"},
        InvalidCase{"non-ASCII section name (dbus-daemon)", "[D-BUS Service]\nName=a\nExec=a\n[S\xc3\xa9\x63tion]\n", 4,
                    "Invalid characters in section name"},
        InvalidCase{"bracket in a section name (dbus-daemon)", "[a[b]\n", 1, "Invalid characters in section name"},
        InvalidCase{"indented key (dbus-daemon)", "[D-BUS Service]\n  Name=org.example.A\nExec=a\n", 2,
                    "Empty key name"},
        InvalidCase{"indented comment (dbus-daemon)", "[D-BUS Service]\n\n  # comment\n", 3, "Empty key name"},
        InvalidCase{"no key (dbus-daemon)", "[D-BUS Service]\n=a\n", 2, "Empty key name"},
        InvalidCase{"blank line made of a lone CR (dbus-daemon)", "[D-BUS Service]\r\rName=a\rExec=a\r", 2, "Empty key name"},
        InvalidCase{"tab before = (dbus-daemon)", "[D-BUS Service]\nName\t=org.example.A\n", 2,
                    "Invalid characters in key name"},
        InvalidCase{"underscore in a key (dbus-daemon)", "[D-BUS Service]\nX_Foo=1\n", 2, "Invalid characters in key name"},
        InvalidCase{"dot in a key (dbus-daemon)", "[D-BUS Service]\nX.Foo=1\n", 2, "Invalid characters in key name"},
        InvalidCase{"key alone (dbus-daemon)", "[D-BUS Service]\nName\n", 2, "No '=' in key/value pair"},
        InvalidCase{"key and spaces (dbus-daemon)", "[D-BUS Service]\nName   ", 2, "No '=' in key/value pair"},
        InvalidCase{"bad line in another section (dbus-daemon)", "[Other]\nfoo bar\n[D-BUS Service]\nName=a\nExec=a\n",
                    2, "Invalid characters in key name"},
        InvalidCase{"trailing backslash (dbus-daemon)", "[D-BUS Service]\nName=a\\\nExec=a\n", 2,
                    "Text to be unescaped ended in \\"},
        InvalidCase{"unknown escape (dbus-daemon)", "[D-BUS Service]\n\n\nName=a\\q\n", 4,
                    "Text to be unescaped had invalid escape sequence"},
        InvalidCase{"an escaped quote is not an escape (dbus-daemon)", "[D-BUS Service]\nExec=\"a\\\"\"\n", 2,
                    "Text to be unescaped had invalid escape sequence"},
        InvalidCase{"line counting across CRLF and comments", "#\r\n[D-BUS Service]\r\n\r\n# x\r\nName\r\n", 5,
                    "No '=' in key/value pair"},
        InvalidCase{"invalid UTF-8 (dbus-daemon)", "[D-BUS Service]\nName=a\nExec=a \xe9\n", 0, "invalid UTF-8"},
        InvalidCase{"NUL byte (dbus-daemon)", "[D-BUS Service]\nName=a\nExec=a\0\n"s, 0, "invalid UTF-8"},
        InvalidCase{"no Name", "[D-BUS Service]\nExec=a\n", 0, "No \"Name\" key in .service file"},
        InvalidCase{"no Exec (dbus-daemon), even with SystemdService",
                    "[D-BUS Service]\nName=a\nSystemdService=a.service\n", 0, "No \"Exec\" key in .service file"},
        InvalidCase{"Exec only in the repeated section (dbus-daemon)",
                    "[D-BUS Service]\nName=a\n[D-BUS Service]\nName=b\nExec=a\n", 0, "No \"Exec\" key in .service file"},
        InvalidCase{"section names are case-sensitive (dbus-daemon)", "[d-bus service]\nName=a\nExec=a\n", 0,
                    "No \"Name\" key in .service file"},
        InvalidCase{"key names are case-sensitive (dbus-daemon)", "[D-BUS Service]\nname=a\nExec=a\n", 0,
                    "No \"Name\" key in .service file"},
        InvalidCase{"empty file", "", 0, "No \"Name\" key in .service file"}),
    [](const testing::TestParamInfo<InvalidCase>& info) { return "case" + std::to_string(info.index); });

TEST(ServiceFileError, ToStringNamesTheLine) {
    EXPECT_EQ((ServiceFileError{3, "Empty key name"}.to_string()), "line 3: Empty key name");
    EXPECT_EQ((ServiceFileError{0, "invalid UTF-8"}.to_string()), "invalid UTF-8");
}

struct SplitCase {
    std::string command;
    std::vector<std::string> argv;
};

class SplitExecCommand : public testing::TestWithParam<SplitCase> {};

TEST_P(SplitExecCommand, SplitsAsDbusDaemon) {
    const auto& c = GetParam();
    auto argv = split_exec_command(c.command);
    ASSERT_TRUE(argv) << c.command << ": " << argv.error();
    EXPECT_EQ(*argv, c.argv) << c.command;
}

// Up to the blank line, every case was checked against dbus-daemon.
INSTANTIATE_TEST_SUITE_P(
    Cases, SplitExecCommand,
    testing::Values(
        SplitCase{"/usr/bin/a --flag value", {"/usr/bin/a", "--flag", "value"}},
        // The trailing blank gives the service an extra empty argument.
        SplitCase{"a x ", {"a", "x", ""}},
        // Exec= empty spawns "" and fails with Spawn.ExecFailed, not InvalidArgs.
        SplitCase{"", {""}},
        SplitCase{"'a b' \"c d\"", {"a b", "c d"}},
        SplitCase{R"(e\sf)", {"esf"}},
        SplitCase{R"("g\"h")", {"g\"h"}},
        SplitCase{R"('i\j')", {"i\\j"}},
        SplitCase{R"(k\\l)", {"k\\l"}},
        SplitCase{R"("m\n")", {"m\\n"}},
        SplitCase{R"("a\\b")", {"a\\b"}},
        SplitCase{R"('x'"y"z)", {"xyz"}},
        SplitCase{"\"\" ''\tv\nw x\\\nz", {"", "", "v", "w", "xz"}},
        SplitCase{R"("\$x\`")", {"$x`"}},
        SplitCase{R"(a"b c"d)", {"ab cd"}},
        SplitCase{R"(\'e)", {"'e"}},
        SplitCase{"$HOME", {"$HOME"}},
        // An unquoted # starts a comment even inside a word, and swallows its newline, so the words
        // around it join.
        SplitCase{"o#p q #r s", {"o"}},
        SplitCase{"a#c\nb", {"ab"}},
        SplitCase{"a #only", {"a", ""}},
        SplitCase{R"(\\#x)", {"\\"}},
        // A newline ends a word even when there is none.
        SplitCase{"a\n", {"a", ""}},
        SplitCase{"a \n", {"a", "", ""}},
        // Inside double quotes backslash-newline is kept as a newline.
        SplitCase{"\"a\\\nb\"", {"a\nb"}},

        SplitCase{"/usr/bin/a", {"/usr/bin/a"}},
        SplitCase{"  a \t\t b", {"a", "b"}},
        SplitCase{"a \t ", {"a", ""}},
        SplitCase{"   ", {""}},
        SplitCase{"~ *", {"~", "*"}},
        SplitCase{"a #c\nb", {"a", "b"}},
        SplitCase{"#only a comment", {""}},
        SplitCase{"a\nb", {"a", "b"}},
        SplitCase{R"(a\ b)", {"a b"}},
        SplitCase{R"(\"abc)", {"\"abc"}},
        SplitCase{R"(\#x)", {"#x"}},
        SplitCase{"'a\"b' \"a'b\"", {"a\"b", "a'b"}},
        SplitCase{"\"a\tb\"", {"a\tb"}},
        SplitCase{"a\0b c"s, {"a"}}),
    [](const testing::TestParamInfo<SplitCase>& info) { return "case" + std::to_string(info.index); });

// dbus-daemon answers these with InvalidArgs "Unclosed quotes in command line" (checked for an unclosed
// single quote, a trailing backslash and a trailing #).
TEST(SplitExecCommand, UnclosedQuotesAreTheOneError) {
    for (const std::string command :
         {"'abc", "\"abc", R"("a\")", R"(w\)", "a 'b c", "a \"b\\\\\\\"", "a #", "x '\"'\""}) {
        auto argv = split_exec_command(command);
        ASSERT_FALSE(argv) << command;
        EXPECT_EQ(argv.error(), "Unclosed quotes in command line") << command;
    }
}

}  // namespace
}  // namespace afbus::daemon
