#include <algorithm>
#include <cassert>
#include <charconv>

#include "afbus/keyring.hpp"
#include "afbus/sasl.hpp"
#include "sasl/sasl_line.hpp"
#include "sasl/sha1.hpp"

namespace afbus {

using sasl_detail::hex_decode;
using sasl_detail::hex_encode;
using sasl_detail::LineStatus;
using sasl_detail::trim;

namespace {

// libdbus uses 32 random bytes, hex-encoded, for its client challenge.
constexpr std::size_t kClientChallengeBytes = 32;

std::optional<std::uint32_t> parse_cookie_id(std::string_view text) {
    if (text.empty() || text.size() > 10 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::uint64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value > 0x7fffffffu) return std::nullopt;
    return static_cast<std::uint32_t>(value);
}

std::vector<std::string_view> split_words(std::string_view text) {
    std::vector<std::string_view> words;
    std::size_t position = 0;
    while (position < text.size()) {
        const std::size_t end = std::min(text.find(' ', position), text.size());
        if (end > position) words.push_back(text.substr(position, end - position));
        position = end + 1;
    }
    return words;
}

}  // namespace

SaslClient::SaslClient(SaslClientConfig config) : config_(std::move(config)) {
    assert(!config_.mechanisms.empty());
    assert(config_.max_line_length >= 64);
    // The credentials-passing byte; the caller may send it with SCM_CREDENTIALS.
    output_.push_back('\0');
    start_next_mechanism();
}

std::size_t SaslClient::feed(std::string_view input) {
    return sasl_detail::feed_lines(
        line_buffer_, input, config_.max_line_length,
        [this] { return authenticated() || failed(); }, [this](std::string_view line) { handle_line(line); },
        [this](LineStatus status) {
            fail(status == LineStatus::TooLong ? SaslError::LineTooLong : SaslError::InvalidByte);
        });
}

std::string SaslClient::take_output() {
    return std::exchange(output_, {});
}

void SaslClient::handle_line(std::string_view line) {
    const auto command = sasl_detail::split_command(line);
    const std::string_view name = command.name;
    switch (state_) {
        case State::WaitingForData:
            if (name == "DATA") return handle_challenge(command.arguments);
            if (name == "REJECTED") return handle_rejected(command.arguments);
            if (name == "OK") return handle_ok(command.arguments);
            if (name == "ERROR") {
                send_line("CANCEL");
                state_ = State::WaitingForReject;
                return;
            }
            return send_line("ERROR \"Unknown command\"");
        case State::WaitingForOk:
            if (name == "OK") return handle_ok(command.arguments);
            if (name == "REJECTED") return handle_rejected(command.arguments);
            if (name == "DATA" || name == "ERROR") {
                send_line("CANCEL");
                state_ = State::WaitingForReject;
                return;
            }
            return send_line("ERROR \"Unknown command\"");
        case State::WaitingForReject:
            if (name == "REJECTED") return handle_rejected(command.arguments);
            return fail(SaslError::UnexpectedReply);
        case State::WaitingForAgreeUnixFd:
            if (name == "AGREE_UNIX_FD") {
                unix_fd_agreed_ = true;
                return finish();
            }
            // ERROR means "no fd passing", not failure.
            if (name == "ERROR") return finish();
            return fail(SaslError::UnexpectedReply);
        case State::Authenticated:
        case State::Failed:
            break;
    }
    assert(false && "feed() does not hand lines to a finished conversation");
}

void SaslClient::start_next_mechanism() {
    const auto server_offers = [this](SaslMechanism mechanism) {
        if (!server_mechanisms_) return true;
        return std::find(server_mechanisms_->begin(), server_mechanisms_->end(), to_string(mechanism)) !=
               server_mechanisms_->end();
    };
    const auto next =
        std::find_if(config_.mechanisms.begin(), config_.mechanisms.end(), [&](SaslMechanism m) {
            return std::find(tried_.begin(), tried_.end(), m) == tried_.end() && server_offers(m);
        });
    if (next == config_.mechanisms.end()) return fail(SaslError::MechanismsExhausted);

    current_ = *next;
    tried_.push_back(*next);
    mechanism_problem_.clear();
    const std::string identity = hex_encode(std::to_string(config_.uid));
    switch (*next) {
        case SaslMechanism::External:
            if (config_.external_initial_response) {
                send_line("AUTH EXTERNAL " + identity);
                state_ = State::WaitingForOk;
            } else {
                send_line("AUTH EXTERNAL");
                state_ = State::WaitingForData;
            }
            break;
        case SaslMechanism::Anonymous:
            send_line(config_.anonymous_trace.empty()
                          ? std::string("AUTH ANONYMOUS")
                          : "AUTH ANONYMOUS " + hex_encode(config_.anonymous_trace));
            state_ = State::WaitingForOk;
            break;
        case SaslMechanism::DbusCookieSha1:
            send_line("AUTH DBUS_COOKIE_SHA1 " + identity);
            state_ = State::WaitingForData;
            break;
    }
}

void SaslClient::handle_challenge(std::string_view hex_challenge) {
    const auto challenge = hex_decode(trim(hex_challenge));
    if (!challenge) return send_line("ERROR \"Invalid hex encoding\"");
    switch (current_.value_or(SaslMechanism::Anonymous)) {
        case SaslMechanism::External:
            send_line(config_.external_identity_in_data ? "DATA " + hex_encode(std::to_string(config_.uid))
                                                        : std::string("DATA"));
            state_ = State::WaitingForOk;
            return;
        case SaslMechanism::DbusCookieSha1: {
            auto response = cookie_response(*challenge);
            if (!response) {
                mechanism_problem_ = response.error();
                // Stay in WaitingForData: the server answers ERROR with REJECTED and we move on.
                return send_line("ERROR \"" + mechanism_problem_ + "\"");
            }
            send_line("DATA " + hex_encode(*response));
            state_ = State::WaitingForOk;
            return;
        }
        case SaslMechanism::Anonymous:
            break;
    }
    send_line("ERROR \"Unexpected challenge\"");
}

Expected<std::string, std::string> SaslClient::cookie_response(std::string_view challenge) {
    const auto fields = split_words(challenge);
    if (fields.size() != 3 || !is_valid_cookie_context(fields[0]))
        return Unexpected(std::string("malformed DBUS_COOKIE_SHA1 challenge"));
    const auto cookie_id = parse_cookie_id(fields[1]);
    if (!cookie_id) return Unexpected(std::string("malformed DBUS_COOKIE_SHA1 cookie id"));
    const std::string_view server_challenge = fields[2];

    auto cookie = Keyring(config_.keyring_directory, config_.keyring).find(fields[0], *cookie_id);
    if (!cookie) return Unexpected(std::move(cookie).error());

    auto random = sasl_detail::random_bytes(kClientChallengeBytes);
    if (!random) return Unexpected(std::move(random).error());
    const std::string client_challenge = hex_encode(*random);

    std::string hashed(server_challenge);
    hashed += ':';
    hashed += client_challenge;
    hashed += ':';
    hashed += cookie->secret;
    return client_challenge + " " + Sha1::hex_digest(hashed);
}

void SaslClient::handle_ok(std::string_view arguments) {
    const std::string_view guid = trim(arguments);
    if (!sasl_detail::is_guid(guid)) return fail(SaslError::InvalidGuid);
    server_guid_ = guid;
    if (config_.negotiate_unix_fd) {
        send_line("NEGOTIATE_UNIX_FD");
        state_ = State::WaitingForAgreeUnixFd;
        return;
    }
    finish();
}

void SaslClient::handle_rejected(std::string_view arguments) {
    // The spec lets clients ignore every list after the first.
    if (!server_mechanisms_) {
        std::vector<std::string> listed;
        for (std::string_view word : split_words(arguments)) listed.emplace_back(word);
        if (!listed.empty()) server_mechanisms_ = std::move(listed);
    }
    start_next_mechanism();
}

void SaslClient::finish() {
    send_line("BEGIN");
    state_ = State::Authenticated;
}

void SaslClient::send_line(std::string_view line) {
    output_ += line;
    output_ += "\r\n";
}

void SaslClient::fail(SaslError error) {
    state_ = State::Failed;
    error_ = error;
    unix_fd_agreed_ = false;
    line_buffer_.clear();
}

}  // namespace afbus
