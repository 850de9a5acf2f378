#include "service_file.hpp"

#include <utility>

#include "afbus/names.hpp"

namespace afbus::daemon {
namespace {

constexpr std::string_view kServiceSection = "D-BUS Service";

bool is_key_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

// Group names are printable ASCII without brackets; the space must pass, "D-BUS Service" has one.
bool is_valid_section_name(std::string_view name) {
    for (const char c : name) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x1f || byte >= 0x7f || c == '[' || c == ']') return false;
    }
    return true;
}

// Where the line starting at `from` ends and how long its terminator is: "\r\n", a lone "\r" or "\n"
// (_dbus_string_find_eol), or the end of the text with no terminator.
struct LineEnd {
    std::size_t end;
    std::size_t terminator_length;
};

LineEnd find_line_end(std::string_view text, std::size_t from) {
    const std::size_t at = text.find_first_of("\r\n", from);
    if (at == std::string_view::npos) return {text.size(), 0};
    if (text[at] == '\r' && at + 1 < text.size() && text[at + 1] == '\n') return {at, 2};
    return {at, 1};
}

Expected<std::string, std::string> unescape_value(std::string_view raw) {
    std::string value;
    value.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
            value += raw[i];
            continue;
        }
        if (++i == raw.size()) return Unexpected(std::string("Text to be unescaped ended in \\"));
        switch (raw[i]) {
        case 's': value += ' '; break;
        case 't': value += '\t'; break;
        case 'n': value += '\n'; break;
        case 'r': value += '\r'; break;
        case '\\': value += '\\'; break;
        default: return Unexpected(std::string("Text to be unescaped had invalid escape sequence"));
        }
    }
    return value;
}

struct Section {
    std::string name;
    std::vector<std::pair<std::string, std::string>> entries;  // in file order, duplicates kept
};

// bus/desktop-file.c's grammar, cursor for cursor, so that odd inputs (lone CRs, blank lines made of
// "\r", keys followed by spaces) are accepted or refused exactly as dbus-daemon does.
class KeyFileParser {
public:
    explicit KeyFileParser(std::string_view text) : text_(text) {}

    Expected<std::vector<Section>, ServiceFileError> parse() && {
        while (pos_ < text_.size()) {
            Expected<void, ServiceFileError> step;
            if (text_[pos_] == '[') step = parse_section_header();
            else if (text_[pos_] == '#' || rest_of_line_is_blank()) next_line(find_line_end(text_, pos_));
            else if (sections_.empty())
                return Unexpected(error("invalid service file: key=value before [Section]"));
            else step = parse_key_value();
            if (!step) return Unexpected(std::move(step).error());
        }
        return std::move(sections_);
    }

private:
    ServiceFileError error(std::string reason) const { return {line_, std::move(reason)}; }

    void next_line(LineEnd line_end) {
        pos_ = line_end.end + line_end.terminator_length;
        ++line_;
    }

    // dbus-daemon looks for blanks up to the next "\n" only, so a "\r" counts as a blank here even
    // where it ends the line; "  \rName=x" is therefore not blank, and then fails as a key.
    bool rest_of_line_is_blank() const {
        for (std::size_t p = pos_; p < text_.size() && text_[p] != '\n'; ++p) {
            const char c = text_[p];
            if (c != ' ' && c != '\t' && c != '\r' && c != '\f') return false;
        }
        return true;
    }

    Expected<void, ServiceFileError> parse_section_header() {
        const LineEnd line_end = find_line_end(text_, pos_);
        if (line_end.end - pos_ <= 2 || text_[line_end.end - 1] != ']')
            return Unexpected(error("Invalid syntax for section header"));
        const std::string_view name = text_.substr(pos_ + 1, line_end.end - pos_ - 2);
        if (!is_valid_section_name(name)) return Unexpected(error("Invalid characters in section name"));
        sections_.push_back({std::string(name), {}});
        next_line(line_end);
        return {};
    }

    Expected<void, ServiceFileError> parse_key_value() {
        const LineEnd line_end = find_line_end(text_, pos_);
        std::size_t p = pos_;
        while (p < line_end.end && is_key_char(text_[p])) ++p;
        const std::string_view key = text_.substr(pos_, p - pos_);
        if (key.empty()) return Unexpected(error("Empty key name"));
        // A localized key (Name[fr]=…) is dropped whatever follows the bracket.
        if (p < line_end.end && text_[p] == '[') {
            next_line(line_end);
            return {};
        }
        while (p < line_end.end && text_[p] == ' ') ++p;
        if (p < line_end.end && text_[p] != '=') return Unexpected(error("Invalid characters in key name"));
        if (p == line_end.end) return Unexpected(error("No '=' in key/value pair"));
        ++p;
        while (p < line_end.end && text_[p] == ' ') ++p;
        auto value = unescape_value(text_.substr(p, line_end.end - p));
        if (!value) return Unexpected(error(std::move(value).error()));
        sections_.back().entries.emplace_back(std::string(key), std::move(*value));
        next_line(line_end);
        return {};
    }

    std::string_view text_;
    std::size_t pos_ = 0;
    int line_ = 1;
    std::vector<Section> sections_;
};

std::optional<std::string> first_value(const Section& section, std::string_view key) {
    for (const auto& [k, v] : section.entries)
        if (k == key) return v;
    return std::nullopt;
}

ServiceFileError missing_key(std::string_view key) {
    return {0, "No \"" + std::string(key) + "\" key in .service file"};
}

// The argv words of an Exec= line, still quoted: the tokenizing half of _dbus_shell_parse_argv.
Expected<std::vector<std::string>, std::string> tokenize_command_line(std::string_view command) {
    std::vector<std::string> tokens;
    std::string token;
    char open_quote = '\0';  // also '\\' after an unquoted backslash and '#' after an unquoted hash
    bool odd_backslashes = false;  // whether a "\"" inside double quotes is escaped
    for (std::size_t i = 0; i < command.size(); ++i) {
        char c = command[i];
        if (open_quote == '\\') {
            if (c != '\n') {  // backslash-newline joins lines
                token += '\\';
                token += c;
            }
            open_quote = '\0';
        } else if (open_quote == '#') {
            // The comment runs to the newline, which is swallowed with it rather than ending the word.
            while (i < command.size() && command[i] != '\n') ++i;
            open_quote = '\0';
            if (i == command.size()) break;
            c = command[i];
        } else if (open_quote != '\0') {
            if (c == open_quote && !(open_quote == '"' && odd_backslashes)) open_quote = '\0';
            token += c;
        } else {
            switch (c) {
            case '\n':
                tokens.push_back(std::exchange(token, {}));
                break;
            case ' ':
            case '\t':
                if (!token.empty()) tokens.push_back(std::exchange(token, {}));
                break;
            case '\'':
            case '"':
                token += c;
                open_quote = c;
                break;
            case '#':
            case '\\':
                open_quote = c;
                break;
            default:
                token += c;
                break;
            }
        }
        odd_backslashes = c == '\\' ? !odd_backslashes : false;
    }
    // Unconditionally, as dbus-daemon: this is where the trailing "" and the {""} come from.
    tokens.push_back(std::move(token));
    if (open_quote != '\0') return Unexpected(std::string("Unclosed quotes in command line"));
    return tokens;
}

// Quote removal (_dbus_shell_unquote); nullopt for an unterminated quote.
std::optional<std::string> unquote_word(std::string_view word) {
    std::string out;
    std::size_t i = 0;
    while (i < word.size()) {
        const char c = word[i++];
        if (c == '\\') {
            if (i < word.size()) {
                if (word[i] != '\n') out += word[i];
                ++i;
            }
        } else if (c == '\'') {
            const std::size_t close = word.find('\'', i);
            if (close == std::string_view::npos) return std::nullopt;
            out.append(word.substr(i, close - i));
            i = close + 1;
        } else if (c == '"') {
            bool closed = false;
            while (i < word.size()) {
                const char d = word[i++];
                if (d == '"') {
                    closed = true;
                    break;
                }
                if (d != '\\') {
                    out += d;
                } else if (i < word.size() && std::string_view("\"\\`$\n").find(word[i]) != std::string_view::npos) {
                    out += word[i++];
                } else {
                    out += '\\';  // not an escape: the backslash stays and the next byte is read normally
                }
            }
            if (!closed) return std::nullopt;
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::string ServiceFileError::to_string() const {
    return line > 0 ? "line " + std::to_string(line) + ": " + reason : reason;
}

Expected<ServiceFile, ServiceFileError> parse_service_file(std::string_view text) {
    // Also rules out NUL bytes, which dbus-daemon's unescaping would otherwise have to refuse.
    if (!is_valid_utf8(text)) return Unexpected(ServiceFileError{0, "invalid UTF-8"});
    auto sections = KeyFileParser(text).parse();
    if (!sections) return Unexpected(std::move(sections).error());

    const Section* service_section = nullptr;
    for (const auto& section : *sections) {
        if (section.name == kServiceSection) {
            service_section = &section;
            break;  // a repeated [D-BUS Service] section is never read
        }
    }
    const auto value = [&](std::string_view key) {
        return service_section ? first_value(*service_section, key) : std::nullopt;
    };
    ServiceFile file;
    auto name = value("Name");
    if (!name) return Unexpected(missing_key("Name"));
    auto exec = value("Exec");
    if (!exec) return Unexpected(missing_key("Exec"));
    file.name = std::move(*name);
    file.exec = std::move(*exec);
    file.user = value("User");
    file.systemd_service = value("SystemdService");
    file.assumed_apparmor_label = value("AssumedAppArmorLabel");
    return file;
}

Expected<std::vector<std::string>, std::string> split_exec_command(std::string_view exec) {
    exec = exec.substr(0, exec.find('\0'));
    auto tokens = tokenize_command_line(exec);
    if (!tokens) return tokens;
    std::vector<std::string> argv;
    argv.reserve(tokens->size());
    for (const auto& token : *tokens) {
        auto word = unquote_word(token);
        // The tokenizer has already refused unbalanced quotes; this only keeps the two halves honest.
        if (!word) return Unexpected(std::string("Unclosed quotes in command line"));
        argv.push_back(std::move(*word));
    }
    return argv;
}

}  // namespace afbus::daemon
