// Parses arbitrary text as a .service file and splits Exec lines. Whatever parses must survive being
// written back out (values escaped) and parsed again; whatever splits must survive being re-quoted and
// split again; and the only failures are the documented ones.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/names.hpp"
#include "fuzz_check.hpp"
#include "service_file.hpp"

using afbus::fuzz::check;

namespace {

// The desktop-file escapes, used for every byte that would not survive as itself (leading and
// trailing blanks, line ends, backslashes).
std::string escape_value(std::string_view value) {
    std::string out;
    for (const char c : value) {
        switch (c) {
        case ' ': out += "\\s"; break;
        case '\t': out += "\\t"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\\': out += "\\\\"; break;
        default: out += c; break;
        }
    }
    return out;
}

std::string single_quoted(std::string_view word) {
    std::string out = "'";
    for (const char c : word) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

void check_split(std::string_view command) {
    const auto argv = afbus::daemon::split_exec_command(command);
    if (!argv) {
        check(argv.error() == "Unclosed quotes in command line", "an unexpected split error");
        return;
    }
    check(!argv->empty(), "an empty argv");
    std::string requoted;
    for (const auto& word : *argv) {
        check(word.find('\0') == std::string::npos, "a NUL inside a word");
        if (!requoted.empty()) requoted += ' ';
        requoted += single_quoted(word);
    }
    const auto again = afbus::daemon::split_exec_command(requoted);
    check(again.has_value() && *again == *argv, "re-quoted words do not split back to themselves");
}

void add_key(std::string& file, const char* key, const std::optional<std::string>& value) {
    if (value) file += std::string(key) + "=" + escape_value(*value) + "\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_split(input);

    const auto parsed = afbus::daemon::parse_service_file(input);
    if (!parsed) {
        const auto& error = parsed.error();
        check(!error.reason.empty(), "an error without a reason");
        check(error.line >= 0, "a negative line number");
        check(static_cast<std::size_t>(error.line) <= size + 1, "a line number past the end");
        check(error.line > 0 || !afbus::is_valid_utf8(input) || error.reason.starts_with("No \""),
              "a line-less error that is not about the whole file");
        return 0;
    }
    check(afbus::is_valid_utf8(input), "accepted invalid UTF-8");
    check(input.find("[D-BUS Service]") != std::string_view::npos, "parsed without a [D-BUS Service] section");
    for (const auto* value : {&parsed->name, &parsed->exec})
        check(afbus::is_valid_utf8(*value), "a value that is not UTF-8");
    check_split(parsed->exec);

    std::string rewritten = "[D-BUS Service]\n";
    add_key(rewritten, "Name", parsed->name);
    add_key(rewritten, "Exec", parsed->exec);
    add_key(rewritten, "User", parsed->user);
    add_key(rewritten, "SystemdService", parsed->systemd_service);
    add_key(rewritten, "AssumedAppArmorLabel", parsed->assumed_apparmor_label);
    const auto reparsed = afbus::daemon::parse_service_file(rewritten);
    check(reparsed.has_value(), "a rewritten file does not parse");
    check(reparsed->name == parsed->name && reparsed->exec == parsed->exec && reparsed->user == parsed->user &&
              reparsed->systemd_service == parsed->systemd_service &&
              reparsed->assumed_apparmor_label == parsed->assumed_apparmor_label,
          "a rewritten file parses to different values");
    return 0;
}
