#include "sasl/sasl_line.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

namespace afbus::sasl_detail {
namespace {

int hex_value(char digit) {
    if (digit >= '0' && digit <= '9') return digit - '0';
    if (digit >= 'a' && digit <= 'f') return digit - 'a' + 10;
    if (digit >= 'A' && digit <= 'F') return digit - 'A' + 10;
    return -1;
}

}  // namespace

std::string hex_encode(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes.size() * 2);
    for (char c : bytes) {
        const auto byte = static_cast<unsigned char>(c);
        hex.push_back(kDigits[byte >> 4]);
        hex.push_back(kDigits[byte & 0xF]);
    }
    return hex;
}

std::optional<std::string> hex_decode(std::string_view hex) {
    if (hex.size() % 2 != 0) return std::nullopt;
    std::string bytes;
    bytes.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int high = hex_value(hex[i]);
        const int low = hex_value(hex[i + 1]);
        if (high < 0 || low < 0) return std::nullopt;
        bytes.push_back(static_cast<char>(high * 16 + low));
    }
    return bytes;
}

LineResult read_line(std::string& line, std::string_view input, std::size_t max_line_length) {
    std::size_t consumed = 0;
    while (consumed < input.size()) {
        const char c = input[consumed++];
        // The protocol is ASCII and a NUL is only legal as the very first byte of the stream.
        if (c == '\0' || static_cast<unsigned char>(c) >= 0x80) return {LineStatus::InvalidByte, consumed};
        line.push_back(c);
        if (line.size() >= 2 && line[line.size() - 2] == '\r' && c == '\n') {
            line.resize(line.size() - 2);
            return {LineStatus::Line, consumed};
        }
        if (line.size() >= max_line_length) return {LineStatus::TooLong, consumed};
    }
    return {LineStatus::NeedMore, consumed};
}

Command split_command(std::string_view line) {
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return {line, {}};
    return {line.substr(0, space), line.substr(space + 1)};
}

std::string_view trim(std::string_view text) {
    constexpr std::string_view kBlanks = " \t";
    const std::size_t first = text.find_first_not_of(kBlanks);
    if (first == std::string_view::npos) return {};
    const std::size_t last = text.find_last_not_of(kBlanks);
    return text.substr(first, last - first + 1);
}

bool is_guid(std::string_view text) {
    if (text.size() != 32) return false;
    for (char c : text) {
        if (hex_value(c) < 0) return false;
    }
    return true;
}

Expected<std::string, std::string> random_bytes(std::size_t count) {
    std::string bytes(count, '\0');
    std::size_t filled = 0;
    while (filled < count) {
        const ssize_t n = ::getrandom(bytes.data() + filled, count - filled, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected(system_error("getrandom", errno));
        filled += static_cast<std::size_t>(n);
    }
    return bytes;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char difference = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        difference |= static_cast<unsigned char>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
    return difference == 0;
}

std::string system_error(std::string_view what, int error_number) {
    std::string message(what);
    message += ": ";
    message += std::strerror(error_number);
    return message;
}

}  // namespace afbus::sasl_detail
