// Pieces of the SASL line protocol shared by SaslClient and SaslServer: CRLF line splitting with a
// length limit, command splitting and the protocol's hex encoding. Private to libafbus.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "afbus/expected.hpp"

namespace afbus::sasl_detail {

// Lower-case, as DBUS_COOKIE_SHA1 demands and every implementation accepts.
std::string hex_encode(std::string_view bytes);
// Either case; an odd length or a non-hex digit is an error (nullopt).
std::optional<std::string> hex_decode(std::string_view hex);

enum class LineStatus { NeedMore, Line, TooLong, InvalidByte };
struct LineResult {
    LineStatus status;
    std::size_t consumed;
};

// Appends input to `line` up to and including the next CRLF, never beyond it, so that whatever
// follows a final line (BEGIN, OK) stays with the caller. On LineStatus::Line, `line` holds the
// line without its CRLF and the caller clears it after use. max_line_length counts the CRLF.
LineResult read_line(std::string& line, std::string_view input, std::size_t max_line_length);

// Reads complete lines from `input` and hands each to `on_line` until `done()`, stopping after the line
// that made it done; a too long line or a bad byte goes to `on_error`. Returns the bytes consumed.
template <class Done, class OnLine, class OnError>
std::size_t feed_lines(std::string& buffer, std::string_view input, std::size_t max_line_length, Done done,
                       OnLine on_line, OnError on_error) {
    std::size_t consumed = 0;
    while (consumed < input.size() && !done()) {
        const LineResult result = read_line(buffer, input.substr(consumed), max_line_length);
        consumed += result.consumed;
        switch (result.status) {
            case LineStatus::NeedMore:
                break;
            case LineStatus::TooLong:
            case LineStatus::InvalidByte:
                on_error(result.status);
                break;
            case LineStatus::Line: {
                const std::string line = std::move(buffer);
                buffer.clear();
                on_line(std::string_view(line));
                break;
            }
        }
    }
    return consumed;
}

struct Command {
    std::string_view name;
    std::string_view arguments;  // everything after the first space, may be empty
};

Command split_command(std::string_view line);
// Strips the ASCII blanks libdbus tolerates around arguments.
std::string_view trim(std::string_view text);
// True for the 32 hex digits of a D-Bus GUID.
bool is_guid(std::string_view text);

// `count` bytes from getrandom(); the reason if the kernel refuses.
Expected<std::string, std::string> random_bytes(std::size_t count);
// Equality that looks at every byte whatever the first difference (only the lengths may leak).
bool constant_time_equal(std::string_view a, std::string_view b);
// "<what>: <strerror(error_number)>"
std::string system_error(std::string_view what, int error_number);

}  // namespace afbus::sasl_detail
